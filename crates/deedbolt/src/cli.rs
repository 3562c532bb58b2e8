//! The command line: `deedbolt serve | client | keys`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::accounts::{audit_cli, register_user};
use crate::storage::Store;
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use deedbolt_core::audit::{AuditFilter, AuditKind, AuditRecord};
use deedbolt_core::client::{Client, ClientKind, ClientName, GrantType, NewClient};
use deedbolt_core::clock::{Clock, SystemClock, UnixTime};
use deedbolt_core::ids::ClientId;
use deedbolt_core::jose::SigningAlg;
use deedbolt_core::keyring::KeyVault;
use deedbolt_core::redirect::RedirectUri;
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::seal::MasterKey;
use deedbolt_core::secret::{ClientSecret, SecretHasher};
use deedbolt_core::user::{Email, Role, User};
use serde_json::json;

use crate::config::{self, FileConfig, ServeOverrides, ServeSettings};
use crate::startup::{self, Application};
use crate::telemetry::{self, LogFormat};

/// deedbolt: a security-first OAuth 2.0 authorization server for PropTech APIs.
#[derive(Debug, Parser)]
#[command(name = "deedbolt", version, about, propagate_version = true)]
pub struct Cli {
    /// TOML configuration file; flags and DEEDBOLT_* variables override it.
    #[arg(long, env = "DEEDBOLT_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory holding the embedded database [default: ./deedbolt-data].
    #[arg(long, env = "DEEDBOLT_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (`postgres://user:password@host:port/db`) for durable state shared
    /// by several instances [default: the SQLite file in the data directory]. Its value
    /// is never shown (it may hold a password).
    #[arg(
        long,
        env = "DEEDBOLT_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<crate::storage::DatabaseUrl>,
    /// The most PostgreSQL connections this process keeps open [default: 16].
    #[arg(long, env = "DEEDBOLT_DATABASE_MAX_CONNECTIONS", global = true)]
    pub database_max_connections: Option<u32>,
    /// Shared fast state (rate limits, revocation propagation) on Redis, `redis://host:port`,
    /// for running several instances [default: in-process, one instance]. The CLI uses it
    /// to announce revocations to running servers at once. Never shown (it may hold a
    /// password).
    #[arg(
        long,
        env = "DEEDBOLT_REDIS_URL",
        global = true,
        hide_env_values = true
    )]
    pub redis_url: Option<String>,
    /// The prefix of every Redis key [default: deedbolt:].
    #[arg(long, env = "DEEDBOLT_REDIS_PREFIX", global = true)]
    pub redis_prefix: Option<String>,
    /// Log line format.
    #[arg(long, env = "DEEDBOLT_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `info,deedbolt_http=debug`.
    #[arg(long, env = "DEEDBOLT_LOG", global = true)]
    pub log: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the authorization server and the PropTech API.
    Serve(Box<ServeArgs>),
    /// Register and manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys and the master key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Register and manage users (resource owners).
    #[command(subcommand)]
    User(UserCommand),
    /// Incident response on issued tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Fill an empty data directory with a demo portfolio and the users and clients to try
    /// it (passwords and secrets are generated and printed once).
    SeedDemo {
        /// The issuer the server will run with (the demo app's redirect URI is built from
        /// it) [default: http://127.0.0.1:8080].
        #[arg(long, env = "DEEDBOLT_ISSUER")]
        issuer: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Filters shared by `audit tail` and `audit search`.
#[derive(Debug, Args, Default)]
pub struct AuditFilterArgs {
    /// Only this client.
    #[arg(long)]
    pub client: Option<String>,
    /// Only this user id.
    #[arg(long)]
    pub user: Option<String>,
    /// Only this IP.
    #[arg(long)]
    pub ip: Option<String>,
    /// Only this record type (e.g. token_issued, login, client_auth_failed, alert).
    #[arg(long = "type")]
    pub kind: Option<deedbolt_core::audit::AuditKind>,
    /// Only records this recent (e.g. 1h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The most recent records (oldest first); with --follow, keep printing new ones.
    Tail {
        /// How many recent records to show first.
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: u32,
        /// Keep printing new records as they are written.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Filters.
        #[command(flatten)]
        filter: AuditFilterArgs,
    },
    /// Records matching the filters, newest first.
    Search {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Filters.
        #[command(flatten)]
        filter: AuditFilterArgs,
    },
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Revoke everything issued so far to a client or to a user: every refresh-token family,
    /// and every access token (running servers reject them from their next sync).
    Revoke {
        /// The client whose tokens to revoke.
        #[arg(long, conflicts_with = "user", required_unless_present = "user")]
        client: Option<ClientId>,
        /// The user (by email) whose tokens to revoke.
        #[arg(long)]
        user: Option<String>,
    },
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Register a user. The password is read from stdin (--password-stdin) or a prompt,
    /// never from an argument.
    Create {
        /// Login email.
        #[arg(long)]
        email: String,
        /// tenant, manager or admin: bounds what the user can delegate to clients.
        #[arg(long)]
        role: Role,
        /// Display name (the `name` claim).
        #[arg(long)]
        name: Option<String>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List users.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a user's role. Takes effect at once: API calls and refreshes look the role
    /// up, so a demoted user's apps keep only what the new role may delegate.
    SetRole {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// tenant, manager or admin.
        #[arg(long)]
        role: Role,
    },
    /// Delete a user: revokes every token issued for them, then removes the user with
    /// their sessions and consents.
    Delete {
        /// The user's email.
        #[arg(long)]
        email: String,
    },
    /// Forget a user's remembered consents (to one client, or all).
    RevokeConsent {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// Only this client.
        #[arg(long)]
        client: Option<ClientId>,
    },
}

/// Flags of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "DEEDBOLT_LISTEN")]
    pub listen: Option<String>,
    /// Issuer URL [default: http://<listen address>]; must be https except on loopback.
    #[arg(long, env = "DEEDBOLT_ISSUER")]
    pub issuer: Option<String>,
    /// Audience (`aud`) of access tokens [default: <issuer>/api].
    #[arg(long, env = "DEEDBOLT_AUDIENCE")]
    pub audience: Option<String>,
    /// Access-token lifetime, 5m to 60m [default: 15m].
    #[arg(long, env = "DEEDBOLT_ACCESS_TOKEN_TTL")]
    pub access_token_ttl: Option<String>,
    /// Signing algorithm for new keys: ES256, RS256 or EdDSA [default: ES256].
    #[arg(long, env = "DEEDBOLT_SIGNING_ALG")]
    pub signing_alg: Option<String>,
    /// How often to pick up keys and clients changed by the CLI or other instances [default: 1s].
    #[arg(long, env = "DEEDBOLT_KEY_REFRESH_INTERVAL")]
    pub key_refresh_interval: Option<String>,
    /// Lifetime of one refresh token, 1d to 8w [default: 14d].
    #[arg(long, env = "DEEDBOLT_REFRESH_TOKEN_TTL")]
    pub refresh_token_ttl: Option<String>,
    /// Absolute lifetime of a refresh-token family [default: 90d].
    #[arg(long, env = "DEEDBOLT_REFRESH_FAMILY_TTL")]
    pub refresh_family_ttl: Option<String>,
    /// Grace period in which a repeated refresh gets the same new pair, 0s to 60s [default: 0s].
    #[arg(long, env = "DEEDBOLT_REFRESH_GRACE")]
    pub refresh_grace: Option<String>,
    /// Token requests per client, COUNT/WINDOW or `off` [default: 10/1h].
    #[arg(long, env = "DEEDBOLT_RATE_LIMIT_TOKEN")]
    pub rate_limit_token: Option<String>,
    /// Refresh requests per client [default: 5/5m].
    #[arg(long, env = "DEEDBOLT_RATE_LIMIT_REFRESH")]
    pub rate_limit_refresh: Option<String>,
    /// API calls per client [default: 1000/1h].
    #[arg(long, env = "DEEDBOLT_RATE_LIMIT_API")]
    pub rate_limit_api: Option<String>,
    /// Failed logins per account and client IP; four times as many per IP, ten times as
    /// many per account over all IPs [default: 5/15m].
    #[arg(long, env = "DEEDBOLT_RATE_LIMIT_LOGIN")]
    pub rate_limit_login: Option<String>,
    /// Authorization requests (/authorize) per client IP, COUNT/WINDOW or `off` [default: 60/1m].
    #[arg(long, env = "DEEDBOLT_RATE_LIMIT_AUTHORIZE")]
    pub rate_limit_authorize: Option<String>,
    /// Comma-separated IPs of reverse proxies whose X-Forwarded-For is believed [default: none].
    #[arg(long, env = "DEEDBOLT_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// How long audit records are kept [default: 90d].
    #[arg(long, env = "DEEDBOLT_AUDIT_RETENTION")]
    pub audit_retention: Option<String>,
    /// Revoke a token automatically when its usage is anomalous [default: false].
    #[arg(long, env = "DEEDBOLT_AUTO_REVOKE")]
    pub auto_revoke: Option<bool>,
    /// Usage anomaly score that raises token_usage_anomaly [default: 5].
    #[arg(long, env = "DEEDBOLT_ANOMALY_THRESHOLD")]
    pub anomaly_threshold: Option<f64>,
    /// Failed authentications per IP that raise multiple_auth_failures [default: 5/5m].
    #[arg(long, env = "DEEDBOLT_ALERT_AUTH_FAILURES")]
    pub alert_auth_failures: Option<String>,
    /// URL to POST alerts to, signed with HMAC-SHA256 under DEEDBOLT_ALERT_WEBHOOK_SECRET
    /// (environment only, at least 32 characters); https, or http on loopback [default: none].
    #[arg(long, env = "DEEDBOLT_ALERT_WEBHOOK")]
    pub alert_webhook: Option<String>,
    /// The backend-for-frontend's client id; enables `/bff` and the demo app at `/app`.
    /// Its secret and cookie keys come from DEEDBOLT_BFF_CLIENT_SECRET and
    /// DEEDBOLT_BFF_COOKIE_KEYS (environment only) [default: none].
    #[arg(long, env = "DEEDBOLT_BFF_CLIENT_ID")]
    pub bff_client_id: Option<String>,
    /// The scope the backend-for-frontend requests [default: openid profile email
    /// tenant:read financial:read maintenance:request].
    #[arg(long, env = "DEEDBOLT_BFF_SCOPE")]
    pub bff_scope: Option<String>,
    /// How long before an access token expires the backend-for-frontend refreshes it,
    /// up to 1h [default: 60s].
    #[arg(long, env = "DEEDBOLT_BFF_REFRESH_BEFORE")]
    pub bff_refresh_before: Option<String>,
    /// A separate listener serving only /metrics, e.g. on a private network. On the main
    /// listener /metrics needs DEEDBOLT_METRICS_TOKEN (environment only, at least 32
    /// characters) as a bearer token, and is not served without one [default: none].
    #[arg(long, env = "DEEDBOLT_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Run the demo: on first start seed the demo portfolio, users and clients (passwords
    /// are printed once) and store the demo app's settings in the data directory (sealed
    /// under DEEDBOLT_MASTER_KEY when set); every start runs the demo app at /app with
    /// them. Explicit DEEDBOLT_BFF_* settings take precedence.
    #[arg(long)]
    pub demo: bool,
}

/// `client` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its id and secret (the secret is shown this once).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Grant type (repeatable): client_credentials, authorization_code.
        #[arg(long = "grant", required = true)]
        grants: Vec<GrantType>,
        /// Space-separated scopes the client may get, e.g. "property:read financial:read".
        #[arg(long)]
        scope: ScopeSet,
        /// Redirect URI (repeatable) for authorization_code, compared exactly.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A public client (single-page or native app): no secret, PKCE only.
        #[arg(long)]
        public: bool,
        /// A resource server: may introspect every access token for this server's
        /// audience (RFC 7662); other clients learn only about their own tokens.
        #[arg(long)]
        allow_introspection: bool,
        /// Limit the client's own (client-credentials) tokens to this property and its
        /// tenants, ledgers and maintenance requests (repeatable) [default: the whole
        /// portfolio within its scopes].
        #[arg(long = "property")]
        properties: Vec<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List clients.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one client.
    Show {
        /// The client id.
        client_id: ClientId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace a client's secret; prints the new one (shown this once). Running servers
    /// stop accepting the old secret within their sync interval (1 s by default).
    RotateSecret {
        /// The client id.
        client_id: ClientId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a client.
    Delete {
        /// The client id.
        client_id: ClientId,
    },
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new current signing key. Old keys keep verifying until their tokens expire.
    Rotate {
        /// Algorithm of the new key [default: that of the current key].
        #[arg(long)]
        alg: Option<SigningAlg>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List signing keys (public information only).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a fresh random master key for DEEDBOLT_MASTER_KEY.
    GenerateMasterKey,
}

/// Parses the command line and runs it.
pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => config::load_file(path)?,
        None => FileConfig::default(),
    };
    let log_format = match cli.log_format {
        Some(f) => f,
        None => match file.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("invalid log_format `{other}` in config (text or json)"),
        },
    };
    telemetry::init(log_format, cli.log.as_deref().or(file.log.as_deref()))?;
    for var in config::unknown_env_vars() {
        tracing::warn!(variable = %var, "unknown DEEDBOLT_* environment variable ignored (typo?)");
    }
    let common = config::resolve_common(
        cli.data_dir.clone(),
        cli.database_url.clone(),
        cli.database_max_connections,
        &file,
    )?;

    match cli.command {
        Command::Serve(args) => {
            let settings = ServeSettings::resolve(
                common,
                ServeOverrides {
                    listen: args.listen,
                    issuer: args.issuer,
                    audience: args.audience,
                    access_token_ttl: args.access_token_ttl,
                    signing_alg: args.signing_alg,
                    key_refresh_interval: args.key_refresh_interval,
                    refresh_token_ttl: args.refresh_token_ttl,
                    refresh_family_ttl: args.refresh_family_ttl,
                    refresh_grace: args.refresh_grace,
                    rate_limit_token: args.rate_limit_token,
                    rate_limit_refresh: args.rate_limit_refresh,
                    rate_limit_api: args.rate_limit_api,
                    rate_limit_login: args.rate_limit_login,
                    rate_limit_authorize: args.rate_limit_authorize,
                    trusted_proxies: args.trusted_proxies,
                    redis_url: cli.redis_url,
                    redis_prefix: cli.redis_prefix,
                    audit_retention: args.audit_retention,
                    auto_revoke: args.auto_revoke,
                    anomaly_threshold: args.anomaly_threshold,
                    alert_auth_failures: args.alert_auth_failures,
                    alert_webhook: args.alert_webhook,
                    alert_webhook_secret: config::webhook_secret_from_env()?,
                    bff_client_id: args.bff_client_id,
                    bff_scope: args.bff_scope,
                    bff_refresh_before: args.bff_refresh_before,
                    bff_client_secret: config::secret_env(config::BFF_SECRET_ENV)?,
                    bff_cookie_keys: config::secret_env(config::BFF_COOKIE_KEYS_ENV)?,
                    metrics_listen: args.metrics_listen,
                    metrics_token: config::secret_env(config::METRICS_TOKEN_ENV)?,
                },
                &file,
            )?;
            let master = config::master_key_from_env()?;
            let demo = if args.demo {
                startup::Demo::On
            } else {
                startup::Demo::Off
            };
            let mut app = Application::build_with(settings, master, demo).await?;
            if let Some(seeded) = app.take_demo_seeded() {
                crate::demo::print_users(&seeded);
                println!();
                println!(
                    "Open {}/app and sign in as tom.tenant@example.com (a tenant) or \
                     maya.manager@example.com (a manager).",
                    app.issuer()
                );
            }
            app.run_until(startup::shutdown_signal()).await
        }
        Command::Client(cmd) => {
            let store = startup::open_store(&common).await?;
            let feed = Announcer::new(config::resolve_redis(
                cli.redis_url,
                cli.redis_prefix,
                &file,
            )?);
            let result = client_command(&store, &feed, cmd, &common.data_dir).await;
            store.close().await;
            result
        }
        Command::Token(TokenCommand::Revoke { client, user }) => {
            let store = startup::open_store(&common).await?;
            let feed = Announcer::new(config::resolve_redis(
                cli.redis_url,
                cli.redis_prefix,
                &file,
            )?);
            let result = token_revoke(&store, &feed, client, user).await;
            store.close().await;
            result
        }
        Command::Audit(cmd) => {
            let store = startup::open_store(&common).await?;
            let result = audit_command(&store, cmd).await;
            store.close().await;
            result
        }
        Command::User(cmd) => {
            let store = startup::open_store(&common).await?;
            let feed = Announcer::new(config::resolve_redis(
                cli.redis_url,
                cli.redis_prefix,
                &file,
            )?);
            let result = user_command(&store, &feed, cmd).await;
            store.close().await;
            result
        }
        Command::SeedDemo { issuer, json } => {
            let issuer = issuer
                .or_else(|| file.issuer.clone())
                .unwrap_or_else(|| format!("http://{}", config::DEFAULT_LISTEN));
            let store = startup::open_store(&common).await?;
            let result = match vault(&store, &common.data_dir) {
                Ok(vault) => {
                    crate::demo::seed_demo_command(&store, &vault, &common.data_dir, &issuer, json)
                        .await
                }
                Err(e) => Err(e),
            };
            store.close().await;
            result
        }
        Command::Keys(KeysCommand::GenerateMasterKey) => {
            let key = MasterKey::generate_encoded()?;
            println!("{}", key.as_str());
            Ok(())
        }
        Command::Keys(cmd) => {
            let store = startup::open_store(&common).await?;
            let result = keys_command(&store, cmd, &common.data_dir).await;
            store.close().await;
            result
        }
    }
}

pub(crate) fn vault(store: &Store, data_dir: &std::path::Path) -> anyhow::Result<KeyVault> {
    let master = config::master_key_from_env()?;
    if master.is_none() {
        startup::warn_development_mode(data_dir);
    }
    Ok(KeyVault::new(store.clone(), master.map(Arc::new)))
}

fn client_json(c: &Client) -> serde_json::Value {
    json!({
        "client_id": c.id,
        "name": c.name,
        "grant_types": c.grant_types,
        "scope": c.scopes,
        "redirect_uris": c.redirect_uris,
        "token_endpoint_auth_method": if c.public { "none" } else { "client_secret_basic" },
        "allow_introspection": c.allow_introspection,
        "properties": c.properties,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    })
}

fn print_client(c: &Client) {
    let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
    println!("client_id:   {}", c.id);
    println!("name:        {}", c.name.as_str());
    println!("grant_types: {}", grants.join(" "));
    println!("scope:       {}", c.scopes);
    for r in &c.redirect_uris {
        println!("redirect:    {r}");
    }
    if c.public {
        println!("public:      yes (no secret; PKCE only)");
    }
    if let Some(ids) = &c.properties {
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        println!("properties:  {}", ids.join(" "));
    }
    println!("created_at:  {}", c.created_at.0);
}

/// Registers a client (generating its secret if it is confidential) and audits it. The
/// secret is returned to be shown once; only its keyed hash is stored.
pub(crate) async fn register_client(
    store: &Store,
    data_dir: &std::path::Path,
    new: NewClient,
    allow_introspection: bool,
    properties: Option<Vec<i64>>,
) -> anyhow::Result<(Client, Option<ClientSecret>)> {
    let now = SystemClock.now();
    let secret = if new.public {
        None
    } else {
        let hasher = SecretHasher::new(&vault(store, data_dir)?.pepper().await?);
        let secret = ClientSecret::generate()?;
        Some((hasher.hash(&secret), secret))
    };
    let client = Client {
        id: ClientId::generate()?,
        name: new.name,
        secret_hash: secret.as_ref().map(|(h, _)| h.clone()),
        grant_types: new.grant_types,
        scopes: new.scopes,
        redirect_uris: new.redirect_uris,
        public: new.public,
        allow_introspection,
        properties,
        created_at: now,
        updated_at: now,
    };
    store.insert_client(&client).await?;
    audit_cli(
        store,
        AuditRecord::new(AuditKind::ClientCreated, true, now)
            .client(&client.id)
            .scope(client.scopes)
            .detail("via CLI"),
    )
    .await?;
    Ok((client, secret.map(|(_, s)| s)))
}

async fn client_command(
    store: &Store,
    feed: &Announcer,
    cmd: ClientCommand,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let now = SystemClock.now();
    match cmd {
        ClientCommand::Create {
            name,
            grants,
            scope,
            redirect_uris,
            public,
            allow_introspection,
            properties,
            json,
        } => {
            let redirect_uris = redirect_uris
                .iter()
                .map(|r| {
                    RedirectUri::parse(r).with_context(|| format!("invalid --redirect-uri {r}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            if public && allow_introspection {
                bail!("a public client cannot introspect tokens (it has no secret to authenticate with)");
            }
            let kind = if public {
                ClientKind::Public
            } else {
                ClientKind::Confidential
            };
            let new = NewClient::new(
                ClientName::parse(&name)?,
                grants,
                scope,
                redirect_uris,
                kind,
            )?;
            let properties = if properties.is_empty() {
                None
            } else {
                if !new.grant_types.contains(&GrantType::ClientCredentials) {
                    bail!("--property limits client-credentials tokens; this client is not registered for client_credentials");
                }
                for id in &properties {
                    if store
                        .find_property(&deedbolt_core::crm::Viewer::Portfolio, *id)
                        .await?
                        .is_none()
                    {
                        bail!("--property {id}: no such property");
                    }
                }
                let mut ids = properties;
                ids.sort_unstable();
                ids.dedup();
                Some(ids)
            };
            let (client, secret) =
                register_client(store, data_dir, new, allow_introspection, properties).await?;
            if json {
                let mut v = client_json(&client);
                if let Some(secret) = &secret {
                    v["client_secret"] = json!(secret.expose_secret());
                }
                println!("{v}");
            } else {
                print_client(&client);
                if let Some(secret) = &secret {
                    println!("client_secret: {}", secret.expose_secret());
                    eprintln!("Store the secret now: it is shown only this once.");
                }
            }
            Ok(())
        }
        ClientCommand::List { json } => {
            let clients = store.list_clients().await?;
            if json {
                let all: Vec<_> = clients.iter().map(client_json).collect();
                println!("{}", serde_json::Value::Array(all));
            } else {
                println!("{:<28} {:<24} {:<20} SCOPE", "CLIENT_ID", "NAME", "GRANTS");
                for c in &clients {
                    let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
                    println!(
                        "{:<28} {:<24} {:<20} {}",
                        c.id,
                        c.name.as_str(),
                        grants.join(","),
                        c.scopes
                    );
                }
            }
            Ok(())
        }
        ClientCommand::Show { client_id, json } => {
            let client = store
                .find_client(&client_id)
                .await?
                .with_context(|| format!("no client with id {client_id}"))?;
            if json {
                println!("{}", client_json(&client));
            } else {
                print_client(&client);
            }
            Ok(())
        }
        ClientCommand::RotateSecret { client_id, json } => {
            match store.find_client(&client_id).await? {
                None => bail!("no client with id {client_id}"),
                Some(c) if c.public => bail!("client {client_id} is public and has no secret"),
                Some(_) => {}
            }
            let hasher = SecretHasher::new(&vault(store, data_dir)?.pepper().await?);
            let secret = ClientSecret::generate()?;
            if !store
                .replace_secret(&client_id, &hasher.hash(&secret), now)
                .await?
            {
                bail!("no client with id {client_id}");
            }
            audit_cli(
                store,
                AuditRecord::new(AuditKind::ClientChanged, true, now)
                    .client(&client_id)
                    .detail("secret rotated via CLI"),
            )
            .await?;
            if json {
                println!(
                    "{}",
                    json!({"client_id": client_id, "client_secret": secret.expose_secret()})
                );
            } else {
                println!("client_id:     {client_id}");
                println!("client_secret: {}", secret.expose_secret());
                eprintln!(
                    "Running servers stop accepting the old secret within their sync interval \
                     (--key-refresh-interval, 1s by default). Store the new secret now: it is \
                     shown only this once."
                );
            }
            Ok(())
        }
        ClientCommand::Delete { client_id } => {
            if store.find_client(&client_id).await?.is_none() {
                bail!("no client with id {client_id}");
            }
            let families = revoke_client_tokens(store, feed, &client_id, now).await?;
            if !store.delete_client(&client_id).await? {
                bail!("no client with id {client_id}");
            }
            audit_cli(
                store,
                AuditRecord::new(AuditKind::ClientDeleted, true, now)
                    .client(&client_id)
                    .detail(format!(
                        "via CLI; its tokens and {families} refresh-token families revoked"
                    )),
            )
            .await?;
            println!(
                "deleted {client_id}; revoked its access tokens and {families} refresh-token family(ies)"
            );
            feed.explain("it and its tokens");
            Ok(())
        }
    }
}

async fn keys_command(
    store: &Store,
    cmd: KeysCommand,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let now = SystemClock.now();
    match cmd {
        KeysCommand::Rotate { alg, json } => {
            let stored = store.list_keys().await?;
            let alg = alg
                .or_else(|| {
                    stored
                        .iter()
                        .find(|k| k.retired_at.is_none())
                        .map(|k| k.alg)
                })
                .unwrap_or(SigningAlg::ES256);
            let kid = vault(store, data_dir)?.rotate(alg, now).await?;
            if json {
                println!("{}", json!({"kid": kid, "alg": alg}));
            } else {
                println!("new current key {kid} ({alg}); running servers pick it up at their next key refresh");
            }
            Ok(())
        }
        KeysCommand::List { json } => {
            let keys = store.list_keys().await?;
            let rows: Vec<_> = keys
                .iter()
                .map(|k| {
                    json!({
                        "kid": k.kid,
                        "alg": k.alg,
                        "status": if k.retired_at.is_none() { "current" } else { "retired" },
                        "created_at": k.created_at,
                        "retired_at": k.retired_at.map(|UnixTime(t)| t),
                        "sealed": matches!(k.material, deedbolt_core::ports::KeyMaterial::Sealed(_)),
                    })
                })
                .collect();
            if json {
                println!("{}", serde_json::Value::Array(rows));
            } else {
                println!("{:<45} {:<6} {:<8} SEALED", "KID", "ALG", "STATUS");
                for r in rows {
                    println!(
                        "{:<45} {:<6} {:<8} {}",
                        r["kid"].as_str().unwrap_or(""),
                        r["alg"].as_str().unwrap_or(""),
                        r["status"].as_str().unwrap_or(""),
                        r["sealed"]
                    );
                }
            }
            Ok(())
        }
        KeysCommand::GenerateMasterKey => unreachable!("handled without opening storage"),
    }
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = rpassword::prompt_password("Password: ")
        .context("cannot read the password (use --password-stdin)")?;
    let second = rpassword::prompt_password("Repeat:   ")?;
    if first != second {
        bail!("the passwords do not match");
    }
    Ok(first)
}

fn user_json(u: &User) -> serde_json::Value {
    json!({
        "user_id": u.id,
        "email": u.email,
        "name": u.name,
        "role": u.role,
        "created_at": u.created_at,
    })
}

async fn user_command(store: &Store, feed: &Announcer, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            email,
            role,
            name,
            password_stdin,
            json,
        } => {
            let email = Email::parse(&email)?;
            let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
            if name
                .as_ref()
                .is_some_and(|n| n.chars().count() > 100 || n.chars().any(char::is_control))
            {
                bail!("name must be at most 100 printable characters");
            }
            let user =
                register_user(store, email, role, name, read_password(password_stdin)?).await?;
            if json {
                println!("{}", user_json(&user));
            } else {
                println!(
                    "created user {} ({}, {})",
                    user.id,
                    user.email.as_str(),
                    user.role
                );
            }
            Ok(())
        }
        UserCommand::List { json } => {
            let users = store.list_users().await?;
            if json {
                println!(
                    "{}",
                    serde_json::Value::Array(users.iter().map(user_json).collect())
                );
            } else {
                println!("{:<28} {:<32} ROLE", "USER_ID", "EMAIL");
                for u in &users {
                    println!("{:<28} {:<32} {}", u.id, u.email.as_str(), u.role);
                }
            }
            Ok(())
        }
        UserCommand::SetRole { email, role } => {
            let user = user_by_email(store, &email).await?;
            if !store.set_role(&user.id, role).await? {
                bail!("no user with email {}", user.email.as_str());
            }
            audit_cli(
                store,
                AuditRecord::new(AuditKind::UserChanged, true, SystemClock.now())
                    .user(&user.id)
                    .detail(format!("role {} -> {role} via CLI", user.role)),
            )
            .await?;
            println!("{} is now {role}", user.email.as_str());
            Ok(())
        }
        UserCommand::Delete { email } => {
            use deedbolt_core::ports::CutoffKind;
            let user = user_by_email(store, &email).await?;
            let now = SystemClock.now();
            // Revoke first, delete last (a failure leaves the user with tokens revoked).
            cut_off(store, feed, CutoffKind::Subject, user.id.as_str(), now).await?;
            let families = store
                .revoke_families_of(CutoffKind::Subject, user.id.as_str(), now)
                .await?;
            if !store.delete_user(&user.id).await? {
                bail!("no user with email {}", user.email.as_str());
            }
            audit_cli(
                store,
                AuditRecord::new(AuditKind::UserChanged, true, now)
                    .user(&user.id)
                    .detail(format!(
                        "deleted via CLI; its tokens and {families} refresh-token families revoked"
                    )),
            )
            .await?;
            println!(
                "deleted {}; revoked its access tokens and {families} refresh-token family(ies)",
                user.email.as_str()
            );
            feed.explain("their tokens");
            Ok(())
        }
        UserCommand::RevokeConsent { email, client } => {
            let user = user_by_email(store, &email).await?;
            let n = store.revoke_consents(&user.id, client.as_ref()).await?;
            println!("revoked {n} consent(s) of {}", user.email.as_str());
            Ok(())
        }
    }
}

/// Revokes everything issued to a client that is being deleted: a client cutoff ahead of
/// now ([`deedbolt_core::revocation::deleted_client_cutoff`]) kills its access tokens on
/// every server at its next sync, and its refresh-token families are revoked. Runs
/// *before* the client row is deleted, so a failure leaves the client in place with its
/// tokens revoked (the safe side) and the deletion can simply be retried.
async fn revoke_client_tokens(
    store: &Store,
    feed: &Announcer,
    client_id: &ClientId,
    now: UnixTime,
) -> anyhow::Result<u64> {
    use deedbolt_core::ports::CutoffKind;
    let cutoff = deedbolt_core::revocation::deleted_client_cutoff(now);
    cut_off(store, feed, CutoffKind::Client, client_id.as_str(), cutoff).await?;
    Ok(store
        .revoke_families_of(CutoffKind::Client, client_id.as_str(), now)
        .await?)
}

/// The user with this email, or a clear error.
async fn user_by_email(store: &Store, email: &str) -> anyhow::Result<User> {
    let email = Email::parse(email)?;
    store
        .find_user_by_email(&email)
        .await?
        .with_context(|| format!("no user with email {}", email.as_str()))
}

/// Records a cutoff in the store (the source of truth every server syncs from), then
/// announces it on the revocation feed so that running servers apply it at once.
async fn cut_off(
    store: &Store,
    feed: &Announcer,
    kind: deedbolt_core::ports::CutoffKind,
    subject: &str,
    at: UnixTime,
) -> anyhow::Result<()> {
    store.set_cutoff(kind, subject, at).await?;
    feed.announce(deedbolt_core::revocation::Cutoff {
        kind,
        subject: subject.to_owned(),
        at,
    })
    .await;
    Ok(())
}

/// Announces the CLI's revocations to running servers over Redis, when Redis is
/// configured. An announcement that fails is not an error (the store has the revocation,
/// and every server picks it up at its next sync); the operator is told so.
struct Announcer {
    redis: Option<config::RedisSettings>,
    /// Whether every announcement so far reached Redis.
    delivered: std::sync::atomic::AtomicBool,
}

impl Announcer {
    fn new(redis: Option<config::RedisSettings>) -> Self {
        Announcer {
            redis,
            delivered: std::sync::atomic::AtomicBool::new(true),
        }
    }

    async fn announce(&self, cutoff: deedbolt_core::revocation::Cutoff) {
        use deedbolt_core::revocation::RevocationFeed as _;
        let Some(redis) = &self.redis else { return };
        let sent = match deedbolt_store_redis::RedisStore::connect(
            redis.url.expose(),
            &redis.prefix,
        )
        .await
        {
            Ok(feed) => feed
                .publish_cutoff(&cutoff)
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(anyhow::Error::from(e)),
        };
        if let Err(e) = sent {
            self.delivered
                .store(false, std::sync::atomic::Ordering::SeqCst);
            eprintln!(
                "warning: could not announce the revocation on Redis {} ({e:#}); it is stored, \
                 and running servers apply it at their next sync",
                redis.url
            );
        }
    }

    /// Tells the operator when running servers stop accepting `what`.
    fn explain(&self, what: &str) {
        if self.redis.is_some() && self.delivered.load(std::sync::atomic::Ordering::SeqCst) {
            eprintln!("Running servers sharing this Redis stop accepting {what} at once.");
        } else {
            eprintln!(
                "Running servers stop accepting {what} at their next sync \
                 (--key-refresh-interval, 1s by default)."
            );
        }
    }
}

async fn token_revoke(
    store: &Store,
    feed: &Announcer,
    client: Option<ClientId>,
    user: Option<String>,
) -> anyhow::Result<()> {
    use deedbolt_core::ports::CutoffKind;
    let now = SystemClock.now();
    let (kind, subject, label) = match (client, user) {
        (Some(c), _) => {
            if store.find_client(&c).await?.is_none() {
                bail!("no client with id {c}");
            }
            (CutoffKind::Client, c.to_string(), format!("client {c}"))
        }
        (None, Some(email)) => {
            let u = user_by_email(store, &email).await?;
            (
                CutoffKind::Subject,
                u.id.to_string(),
                format!("user {}", u.email.as_str()),
            )
        }
        (None, None) => bail!("give --client or --user"),
    };
    cut_off(store, feed, kind, &subject, now).await?;
    let families = store.revoke_families_of(kind, &subject, now).await?;
    let mut record = AuditRecord::new(AuditKind::TokenRevoked, true, now).detail(format!(
        "all tokens of {label} via CLI ({families} families)"
    ));
    record = match kind {
        CutoffKind::Client => record.client(&subject),
        CutoffKind::Subject => record.user(&subject),
    };
    audit_cli(store, record).await?;
    println!("revoked every access token issued to {label} so far and {families} refresh-token family(ies)");
    feed.explain("those access tokens");
    Ok(())
}

fn audit_filter(
    args: &AuditFilterArgs,
    limit: u32,
) -> anyhow::Result<deedbolt_core::audit::AuditFilter> {
    let since = match &args.since {
        Some(s) => {
            let d = config::parse_duration(s).context("invalid --since")?;
            Some(
                SystemClock
                    .now()
                    .minus_secs(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
            )
        }
        None => None,
    };
    Ok(deedbolt_core::audit::AuditFilter {
        client_id: args.client.clone(),
        user_id: args.user.clone(),
        ip: args.ip.clone(),
        kind: args.kind,
        since,
        before_id: None,
        after_id: None,
        limit: limit.clamp(1, 1000),
    })
}

fn print_audit(r: &deedbolt_core::audit::AuditRecord, json: bool) {
    if json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!(
        "{:>8} {:>10} {:<22} {:<4} {:<28} {:<28} {:<15} {:<24} {}",
        r.id,
        r.at.0,
        r.kind.as_str(),
        if r.success { "ok" } else { "FAIL" },
        dash(&r.client_id),
        dash(&r.user_id),
        dash(&r.ip),
        dash(&r.error),
        r.detail
            .clone()
            .or_else(|| r.scope.clone())
            .unwrap_or_default()
    );
}

async fn audit_command(store: &Store, cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Search { limit, filter } => {
            let f = audit_filter(&filter, limit)?;
            for r in store.search_audit(&f).await? {
                print_audit(&r, filter.json);
            }
            Ok(())
        }
        AuditCommand::Tail {
            lines,
            follow,
            filter,
        } => {
            let mut f = audit_filter(&filter, lines)?;
            let mut recent = if lines == 0 {
                Vec::new()
            } else {
                store.search_audit(&f).await?
            };
            recent.reverse();
            let mut last = recent.last().map(|r| r.id).unwrap_or(0);
            for r in &recent {
                print_audit(r, filter.json);
            }
            if !follow {
                return Ok(());
            }
            if last == 0 {
                let all = AuditFilter {
                    limit: 1,
                    ..Default::default()
                };
                last = store
                    .search_audit(&all)
                    .await?
                    .first()
                    .map(|r| r.id)
                    .unwrap_or(0);
            }
            f.limit = 1000;
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                }
                // Newest first, 1000 at a time: read pages back to `last` before printing,
                // so a burst of more than 1000 records is printed whole and in order.
                f.after_id = Some(last);
                f.before_id = None;
                let mut new = Vec::new();
                loop {
                    let page = store.search_audit(&f).await?;
                    let full = page.len() as u32 == f.limit;
                    f.before_id = page.last().map(|r| r.id);
                    new.extend(page);
                    if !full {
                        break;
                    }
                }
                new.reverse();
                for r in &new {
                    print_audit(r, filter.json);
                    last = last.max(r.id);
                }
            }
        }
    }
}
