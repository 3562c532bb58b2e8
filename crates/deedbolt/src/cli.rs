//! The command line: `deedbolt serve | client | keys`.

use std::path::PathBuf;

use crate::accounts::{audit_cli, register_user};
use crate::storage::Store;
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use deedbolt_core::audit::{AuditFilter, AuditKind, AuditRecord};
use deedbolt_core::client::{
    AuthMethod, Client, ClientKind, ClientMetadata, ClientName, GrantType, NewClient,
};
use deedbolt_core::clock::{Clock, SystemClock, UnixTime};
use deedbolt_core::ids::ClientId;
use deedbolt_core::jose::SigningAlg;
use deedbolt_core::redirect::RedirectUri;
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::seal::MasterKey;
use deedbolt_core::secret::{ClientSecret, SecretHasher};
use deedbolt_core::user::{Email, Role, User};
use serde_json::json;

use crate::config::{
    self, DataDirSource, FileConfig, GlobalOverrides, ServeOverrides, ServeSettings,
};
use crate::console::{print_table, utc, vault};
use crate::startup::{self, Application};
use crate::telemetry;

/// deedbolt: a security-first OAuth 2.0 authorization server for PropTech APIs.
///
/// Settings come from defaults, then a TOML file (--config), then DEEDBOLT_* variables,
/// then flags.
#[derive(Debug, Parser)]
#[command(
    name = "deedbolt",
    version,
    about,
    propagate_version = true,
    after_help = MASTER_KEY_HELP
)]
pub struct Cli {
    /// TOML configuration file; flags and DEEDBOLT_* variables override it.
    #[arg(long, env = "DEEDBOLT_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// The settings every command shares.
    #[command(flatten)]
    pub global: GlobalOverrides,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// What `--help` says about the secrets that are never flags.
const MASTER_KEY_HELP: &str = "\
Secrets are read from the environment only, never from flags or the config file:
  DEEDBOLT_MASTER_KEY   seals signing keys and the secret pepper at rest; without it
                        deedbolt runs in development mode (keys in plain files). Make one
                        with `deedbolt keys generate-master-key`, and give every command
                        (serve and the CLI) the same one.
  DEEDBOLT_BFF_CLIENT_SECRET, DEEDBOLT_BFF_COOKIE_KEYS, DEEDBOLT_METRICS_TOKEN,
  DEEDBOLT_ALERT_WEBHOOK_SECRET: see `deedbolt serve --help`.";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the authorization server and the PropTech API.
    #[command(after_help = MASTER_KEY_HELP)]
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

/// A parser for an enum given by name that lists the valid names in its error (and in
/// `--help`), then parses with the type's own `FromStr`.
fn one_of<T>(
    names: impl IntoIterator<Item = &'static str>,
) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr + Clone + Send + Sync + 'static,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(names).try_map(|name| name.parse::<T>())
}

/// The `--auth-method` names, for [`one_of`].
const AUTH_METHODS: [&str; 6] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "tls_client_auth",
    "self_signed_tls_client_auth",
    "none",
];

/// The role names, for [`one_of`].
const ROLES: [&str; 3] = ["tenant", "manager", "admin"];

/// Filters shared by `audit tail` and `audit search`.
#[derive(Debug, Args, Default)]
pub struct AuditFilterArgs {
    /// Only this client.
    #[arg(long)]
    pub client: Option<String>,
    /// Only this user (by email, like every `--user`).
    #[arg(long, conflicts_with = "user_id")]
    pub user: Option<String>,
    /// Only this user id (e.g. of a deleted user, whose email no longer resolves).
    #[arg(long)]
    pub user_id: Option<String>,
    /// Only this IP.
    #[arg(long)]
    pub ip: Option<String>,
    /// Only this record type.
    #[arg(long = "type", value_parser = one_of::<AuditKind>(AuditKind::ALL.map(AuditKind::as_str)))]
    pub kind: Option<AuditKind>,
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
        /// Bounds what the user can delegate to clients.
        #[arg(long, value_parser = one_of::<Role>(ROLES))]
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
        /// The user's email (`--user` works too, as in every other command).
        #[arg(long, visible_alias = "user")]
        email: String,
        /// The new role.
        #[arg(long, value_parser = one_of::<Role>(ROLES))]
        role: Role,
    },
    /// Delete a user: revokes every token issued for them, then removes the user with
    /// their sessions and consents.
    Delete {
        /// The user's email (`--user` works too, as in every other command).
        #[arg(long, visible_alias = "user")]
        email: String,
    },
    /// Forget a user's remembered consents (to one client, or all).
    RevokeConsent {
        /// The user's email (`--user` works too, as in every other command).
        #[arg(long, visible_alias = "user")]
        email: String,
        /// Only this client.
        #[arg(long)]
        client: Option<ClientId>,
    },
}

/// `serve`: its settings, and whether to run the demo (an action, not a setting).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The settings (flags, `DEEDBOLT_*` variables; the file's keys of the same names).
    #[command(flatten)]
    pub settings: ServeOverrides,
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
        /// Grant type (repeatable).
        #[arg(long = "grant", required = true, value_parser = one_of::<GrantType>(GrantType::ALL.map(GrantType::as_str)))]
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
        /// The algorithm of the client's ID tokens (its `id_token_signed_response_alg`):
        /// ES256, RS256 or EdDSA [default: RS256, as OpenID Connect defines it; ES256 under
        /// --profile fapi2, which does not allow RS256].
        #[arg(long, value_parser = one_of::<SigningAlg>(SigningAlg::ALL.map(SigningAlg::as_str)))]
        id_token_alg: Option<SigningAlg>,
        /// How the client authenticates (its `token_endpoint_auth_method`):
        /// client_secret_basic or client_secret_post (a generated secret, accepted by Basic
        /// or in the body either way), private_key_jwt (a JWT signed with a key of
        /// --jwks-file or --jwks-uri; no secret), tls_client_auth or
        /// self_signed_tls_client_auth (RFC 8705: a client certificate over the mutual-TLS
        /// listener, see --tls-subject-dn and --jwks-file; no secret), none (with --public)
        /// [default: client_secret_basic, none with --public].
        #[arg(long, value_parser = one_of::<AuthMethod>(AUTH_METHODS))]
        auth_method: Option<AuthMethod>,
        /// private_key_jwt: a JSON file holding the client's public JWK Set;
        /// self_signed_tls_client_auth: a JWK Set whose keys carry the client's self-signed
        /// certificate(s) as their first `x5c` entry.
        #[arg(long, conflicts_with = "jwks_uri")]
        jwks_file: Option<PathBuf>,
        /// private_key_jwt: the https URL where the client publishes its public JWK Set.
        #[arg(long)]
        jwks_uri: Option<String>,
        /// private_key_jwt: the one algorithm its assertions must use (ES256, PS256, RS256
        /// or EdDSA) [default: any of them].
        #[arg(long)]
        auth_signing_alg: Option<String>,
        /// The mutual-TLS names and certificate binding (RFC 8705).
        #[command(flatten)]
        tls: Box<crate::client_auth_args::ClientAuthArgs>,
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
    /// Change the algorithm of a client's ID tokens (its `id_token_signed_response_alg`):
    /// ES256, RS256 or EdDSA. Running servers use it within their sync interval; the
    /// client's app must expect the new algorithm (openid-client reads it from the
    /// client's metadata).
    SetIdTokenAlg {
        /// The client id.
        client_id: ClientId,
        /// The algorithm.
        #[arg(value_parser = one_of::<SigningAlg>(SigningAlg::ALL.map(SigningAlg::as_str)))]
        alg: SigningAlg,
    },
    /// Delete a client.
    Delete {
        /// The client id.
        client_id: ClientId,
    },
    /// Initial access tokens for dynamic client registration at /register (RFC 7591).
    #[command(subcommand)]
    RegistrationToken(crate::registration_cli::RegistrationTokenCommand),
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make new current signing keys (one per algorithm: access tokens use --signing-alg's,
    /// ID tokens each client's). Old keys keep verifying until their tokens expire.
    Rotate {
        /// Rotate only the key of this algorithm [default: every algorithm's].
        #[arg(long, value_parser = one_of::<SigningAlg>(SigningAlg::ALL.map(SigningAlg::as_str)))]
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
    let global = cli.global.over(file.global.clone());
    telemetry::init(global.log_format.unwrap_or_default(), global.log.as_deref())?;
    for var in config::unknown_env_vars() {
        tracing::warn!(variable = %var, "unknown DEEDBOLT_* environment variable ignored (typo?)");
    }
    let common = config::resolve_common(&global)?;

    match cli.command {
        Command::Serve(args) => {
            let overrides = args.settings.over(ServeOverrides::secrets_from_env()?);
            let settings = ServeSettings::resolve(common, overrides, &file)?;
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
        Command::SeedDemo { issuer, json } => {
            let issuer = issuer
                .or_else(|| file.serve.issuer.clone())
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
        command => {
            refuse_implicit_data_dir(&common)?;
            let store = startup::open_store(&common).await?;
            let feed = Announcer::new(common.redis.clone());
            let result = match command {
                Command::Client(cmd) => {
                    client_command(&store, &feed, cmd, &common.data_dir, common.profile).await
                }
                Command::Token(TokenCommand::Revoke { client, user }) => {
                    token_revoke(&store, &feed, client, user).await
                }
                Command::Audit(cmd) => audit_command(&store, cmd).await,
                Command::User(cmd) => user_command(&store, &feed, cmd).await,
                Command::Keys(cmd) => keys_command(&store, cmd, &common.data_dir).await,
                Command::Serve(_) | Command::SeedDemo { .. } => {
                    unreachable!("handled above")
                }
            };
            store.close().await;
            result
        }
    }
}

/// A management command run where no data directory was named, and none exists at the
/// default path, would create an empty `./deedbolt-data` and act on it: almost always a
/// command run in the wrong directory (the server uses another one). It is refused, with
/// what to do; an existing default directory is used, and said so, and a named one that
/// does not exist yet is created, and said so.
fn refuse_implicit_data_dir(common: &config::CommonSettings) -> anyhow::Result<()> {
    if !matches!(common.database, crate::storage::Database::Embedded) {
        return Ok(());
    }
    let shown = std::path::absolute(&common.data_dir).unwrap_or_else(|_| common.data_dir.clone());
    if common.data_dir_source == DataDirSource::Given {
        if !common.data_dir.exists() {
            // Named, so created; but a mistyped name would silently start afresh.
            eprintln!("creating a new, empty data directory {}", shown.display());
        }
        return Ok(());
    }
    if !common.data_dir.exists() {
        bail!(
            "no data directory at {} (the default, relative to the working directory), and \
             none was named: give the one the server uses with --data-dir DIR, \
             DEEDBOLT_DATA_DIR=DIR or data_dir in a --config file (`deedbolt serve` and \
             `deedbolt seed-demo` create the default one)",
            shown.display()
        );
    }
    eprintln!(
        "using the data directory {} (the default; choose one with --data-dir or DEEDBOLT_DATA_DIR)",
        shown.display()
    );
    Ok(())
}

fn client_json(c: &Client) -> serde_json::Value {
    let mut v = json!({
        "client_id": c.id,
        "name": c.name,
        "grant_types": c.grant_types,
        "scope": c.scopes,
        "redirect_uris": c.redirect_uris,
        "token_endpoint_auth_method": c.auth_method().as_str(),
        "token_endpoint_auth_signing_alg": c.metadata.token_endpoint_auth_signing_alg,
        "jwks_uri": c.metadata.jwks_uri,
        "jwks": c.metadata.jwks,
        "allow_introspection": c.allow_introspection,
        "properties": c.properties,
        "id_token_signed_response_alg": c.id_token_alg,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
    });
    // The registration metadata (RFC 7591 names), next to the fields above.
    if let (Some(obj), Ok(serde_json::Value::Object(meta))) =
        (v.as_object_mut(), serde_json::to_value(&c.metadata))
    {
        for (key, value) in meta {
            obj.entry(key).or_insert(value);
        }
    }
    v
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
    if c.kind.is_public() {
        println!("public:      yes (no secret; PKCE only)");
    } else {
        println!("auth:        {}", c.auth_method());
    }
    if let Some(uri) = &c.metadata.jwks_uri {
        println!("jwks_uri:    {uri}");
    }
    if c.allows_grant(GrantType::AuthorizationCode) {
        println!(
            "id_tokens:   {} (id_token_signed_response_alg)",
            c.id_token_alg
        );
    }
    if let Some(ids) = &c.properties {
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        println!("properties:  {}", ids.join(" "));
    }
    println!("created_at:  {}", utc(c.created_at));
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
    // Only a client that authenticates with a secret gets one.
    let uses_secret = new
        .metadata
        .token_endpoint_auth_method
        .map_or(!new.kind.is_public(), AuthMethod::uses_secret);
    let secret = if !uses_secret {
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
        kind: new.kind,
        allow_introspection,
        properties,
        id_token_alg: new.id_token_alg,
        metadata: new.metadata,
        registration_token_hash: None,
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

/// Warns on stderr about a client that `profile` refuses wherever clients authenticate
/// (under `fapi2`: a secret or public client), so an operator learns it at registration
/// rather than from the first `invalid_client`. A warning, not a refusal: the data
/// directory may serve servers with other profiles.
fn warn_outside_profile(profile: deedbolt_core::profile::Profile, client: &Client) {
    let method = client.auth_method();
    if !profile.allows_auth_method(method) {
        eprintln!(
            "warning: the {profile} profile refuses `{method}` client authentication: servers \
             running with --profile {profile} will answer this client invalid_client \
             (register it with private_key_jwt, tls_client_auth or self_signed_tls_client_auth)"
        );
    }
    let alg = client.id_token_alg;
    if !profile.allows_jws_alg(alg.as_str()) {
        eprintln!(
            "warning: the {profile} profile does not allow {alg} ID tokens: servers running with \
             --profile {profile} will refuse this client's OpenID requests (use \
             `client set-id-token-alg` with ES256 or EdDSA)"
        );
    }
}

async fn client_command(
    store: &Store,
    feed: &Announcer,
    cmd: ClientCommand,
    data_dir: &std::path::Path,
    profile: deedbolt_core::profile::Profile,
) -> anyhow::Result<()> {
    let now = SystemClock.now();
    match cmd {
        ClientCommand::RegistrationToken(cmd) => {
            crate::registration_cli::run(store, data_dir, cmd, now).await
        }
        ClientCommand::Create {
            name,
            grants,
            scope,
            redirect_uris,
            public,
            allow_introspection,
            properties,
            id_token_alg,
            auth_method,
            jwks_file,
            jwks_uri,
            auth_signing_alg,
            tls,
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
            )?
            .with_id_token_alg(id_token_alg.unwrap_or(profile.default_id_token_alg()));
            let new = match auth_method {
                Some(
                    method @ (AuthMethod::TlsClientAuth | AuthMethod::SelfSignedTlsClientAuth),
                ) => {
                    if jwks_uri.is_some() || auth_signing_alg.is_some() {
                        bail!("--jwks-uri and --auth-signing-alg are for private_key_jwt");
                    }
                    new.with_metadata(tls.metadata(method, jwks_file.as_deref())?)?
                }
                Some(AuthMethod::PrivateKeyJwt) => {
                    new.with_metadata(crate::client_keys::private_key_jwt_metadata(
                        jwks_file.as_deref(),
                        jwks_uri.as_deref(),
                        auth_signing_alg.as_deref(),
                    )?)?
                }
                other => {
                    tls.refuse_names_without_tls_client_auth()?;
                    crate::client_keys::refuse_keys_without_private_key_jwt(
                        jwks_file.as_deref(),
                        jwks_uri.as_deref(),
                        auth_signing_alg.as_deref(),
                    )?;
                    match other {
                        Some(method) => new.with_metadata(ClientMetadata {
                            token_endpoint_auth_method: Some(method),
                            ..ClientMetadata::default()
                        })?,
                        None => new,
                    }
                }
            };
            // Any client's tokens may be required to be certificate-bound (RFC 8705 §3.4).
            let mut new = new;
            new.metadata.tls_client_certificate_bound_access_tokens = tls.tls_bound_tokens;
            let properties = if properties.is_empty() {
                None
            } else {
                if !new.grant_types.contains(&GrantType::ClientCredentials) {
                    bail!("--property limits client-credentials tokens; this client is not registered for client_credentials");
                }
                for id in &properties {
                    if store
                        .find_property(&deedbolt_proptech::Viewer::Portfolio, *id)
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
            warn_outside_profile(profile, &client);
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
                let rows: Vec<[String; 6]> = clients
                    .iter()
                    .map(|c| {
                        let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
                        [
                            c.id.to_string(),
                            c.name.as_str().to_owned(),
                            if c.kind.is_public() {
                                "public"
                            } else {
                                "confidential"
                            }
                            .to_owned(),
                            grants.join(","),
                            utc(c.created_at),
                            c.scopes.to_string(),
                        ]
                    })
                    .collect();
                print_table(
                    ["CLIENT_ID", "NAME", "TYPE", "GRANTS", "CREATED", "SCOPE"],
                    &rows,
                );
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
                Some(c) if c.kind.is_public() => {
                    bail!("client {client_id} is public and has no secret")
                }
                Some(c) if !c.auth_method().uses_secret() => {
                    bail!(
                        "client {client_id} authenticates with {}, not a secret",
                        c.auth_method()
                    )
                }
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
        ClientCommand::SetIdTokenAlg { client_id, alg } => {
            let Some(mut client) = store.find_client(&client_id).await? else {
                bail!("no client with id {client_id}");
            };
            let before = client.id_token_alg;
            client.id_token_alg = alg;
            client.updated_at = now;
            if !store.update_client(&client).await? {
                bail!("no client with id {client_id}");
            }
            audit_cli(
                store,
                AuditRecord::new(AuditKind::ClientChanged, true, now)
                    .client(&client_id)
                    .detail(format!("ID-token algorithm {before} -> {alg} via CLI")),
            )
            .await?;
            warn_outside_profile(profile, &client);
            println!("{client_id}: ID tokens are now signed with {alg} (were {before})");
            Ok(())
        }
        ClientCommand::Delete { client_id } => {
            let Some(deleted) = deedbolt_core::revocation::delete_client_and_tokens(
                store.as_ref(),
                store.as_ref(),
                feed,
                &client_id,
                now,
            )
            .await?
            else {
                bail!("no client with id {client_id}");
            };
            let families = deleted.families;
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
            let vault = vault(store, data_dir)?;
            let algs = match alg {
                Some(alg) => vec![alg],
                None => SigningAlg::ALL.to_vec(),
            };
            let mut made = Vec::with_capacity(algs.len());
            for alg in algs {
                made.push(json!({"kid": vault.rotate(alg, now).await?, "alg": alg}));
            }
            if json {
                println!("{}", serde_json::Value::Array(made));
            } else {
                for key in &made {
                    println!(
                        "new current {} key {}",
                        key["alg"].as_str().unwrap_or(""),
                        key["kid"].as_str().unwrap_or("")
                    );
                }
                println!("running servers pick the new keys up at their next key refresh");
            }
            Ok(())
        }
        KeysCommand::List { json } => {
            let keys = store.list_keys().await?;
            if json {
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
                println!("{}", serde_json::Value::Array(rows));
            } else {
                let rows: Vec<[String; 6]> = keys
                    .iter()
                    .map(|k| {
                        [
                            k.kid.to_string(),
                            k.alg.to_string(),
                            if k.retired_at.is_none() {
                                "current"
                            } else {
                                "retired"
                            }
                            .to_owned(),
                            utc(k.created_at),
                            k.retired_at.map_or_else(|| "-".to_owned(), utc),
                            if matches!(k.material, deedbolt_core::ports::KeyMaterial::Sealed(_)) {
                                "yes"
                            } else {
                                "no (development mode)"
                            }
                            .to_owned(),
                        ]
                    })
                    .collect();
                print_table(
                    ["KID", "ALG", "STATUS", "CREATED", "RETIRED", "SEALED"],
                    &rows,
                );
            }
            Ok(())
        }
        KeysCommand::GenerateMasterKey => unreachable!("handled without opening storage"),
    }
}

/// A time as people read it: `2026-12-06 01:45:10 UTC`.
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
                let rows: Vec<[String; 5]> = users
                    .iter()
                    .map(|u| {
                        [
                            u.email.as_str().to_owned(),
                            u.role.to_string(),
                            u.name.clone().unwrap_or_else(|| "-".into()),
                            utc(u.created_at),
                            u.id.to_string(),
                        ]
                    })
                    .collect();
                print_table(["EMAIL", "ROLE", "NAME", "CREATED", "USER_ID"], &rows);
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

    /// Announces a revocation of one token, like [`Announcer::announce`] does a cutoff.
    async fn announce_revoked(&self, revoked: &deedbolt_core::revocation::Revoked) {
        use deedbolt_core::revocation::RevocationFeed as _;
        let Some(redis) = &self.redis else { return };
        let sent = match deedbolt_store_redis::RedisStore::connect(
            redis.url.expose(),
            &redis.prefix,
        )
        .await
        {
            Ok(feed) => feed.publish(revoked).await.map_err(anyhow::Error::from),
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

/// The CLI's announcements as a [`deedbolt_core::revocation::RevocationFeed`], so the
/// shared deletion path ([`deedbolt_core::revocation::delete_client_and_tokens`]) can use
/// them. A failed announcement is reported to the operator, never an error: the store
/// holds the revocation.
#[async_trait::async_trait]
impl deedbolt_core::revocation::RevocationFeed for Announcer {
    async fn publish(
        &self,
        revoked: &deedbolt_core::revocation::Revoked,
    ) -> Result<(), deedbolt_core::ports::StoreError> {
        self.announce_revoked(revoked).await;
        Ok(())
    }

    async fn publish_cutoff(
        &self,
        cutoff: &deedbolt_core::revocation::Cutoff,
    ) -> Result<(), deedbolt_core::ports::StoreError> {
        self.announce(cutoff.clone()).await;
        Ok(())
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

async fn audit_filter(
    store: &Store,
    args: &AuditFilterArgs,
    limit: u32,
) -> anyhow::Result<AuditFilter> {
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
    let user_id = match (&args.user, &args.user_id) {
        (Some(email), _) => Some(
            user_by_email(store, email)
                .await
                .context("--user takes an email (--user-id takes an id, e.g. of a deleted user)")?
                .id
                .to_string(),
        ),
        (None, id) => id.clone(),
    };
    Ok(AuditFilter {
        client_id: args.client.clone(),
        user_id,
        ip: args.ip.clone(),
        kind: args.kind,
        since,
        before_id: None,
        after_id: None,
        limit: limit.clamp(1, 1000),
    })
}

/// The columns of an audit record in a table.
const AUDIT_HEADERS: [&str; 9] = [
    "ID", "TIME", "TYPE", "RESULT", "CLIENT", "USER_ID", "IP", "ERROR", "DETAIL",
];

fn audit_row(r: &AuditRecord) -> [String; 9] {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    [
        r.id.to_string(),
        utc(r.at),
        r.kind.as_str().to_owned(),
        if r.success { "ok" } else { "FAIL" }.to_owned(),
        dash(&r.client_id),
        dash(&r.user_id),
        dash(&r.ip),
        dash(&r.error),
        r.detail
            .clone()
            .or_else(|| r.scope.clone())
            .unwrap_or_default(),
    ]
}

/// One record as a JSON line, or as a line of fixed-width columns (for `tail`, which
/// prints records as they come and cannot size its columns ahead).
fn print_audit(r: &AuditRecord, json: bool) {
    if json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    let [id, at, kind, result, client, user, ip, error, detail] = audit_row(r);
    println!(
        "{id:>8}  {at:<23}  {kind:<22}  {result:<4}  {client:<28}  {user:<28}  {ip:<15}  {error:<24}  {detail}"
    );
}

async fn audit_command(store: &Store, cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Search { limit, filter } => {
            let f = audit_filter(store, &filter, limit).await?;
            let records = store.search_audit(&f).await?;
            if filter.json {
                for r in &records {
                    print_audit(r, true);
                }
            } else {
                let rows: Vec<_> = records.iter().map(audit_row).collect();
                print_table(AUDIT_HEADERS, &rows);
            }
            Ok(())
        }
        AuditCommand::Tail {
            lines,
            follow,
            filter,
        } => {
            let mut f = audit_filter(store, &filter, lines).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    /// Every `DEEDBOLT_*` variable of every command's arguments.
    fn arg_envs(cmd: &clap::Command, into: &mut std::collections::BTreeSet<String>) {
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                into.insert(env.to_string_lossy().into_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            arg_envs(sub, into);
        }
    }

    #[test]
    fn the_known_variables_are_exactly_the_arguments_and_the_secrets() {
        Cli::command().debug_assert();
        let mut envs = std::collections::BTreeSet::new();
        arg_envs(&Cli::command(), &mut envs);
        let secrets = [
            config::MASTER_KEY_ENV,
            config::WEBHOOK_SECRET_ENV,
            config::BFF_SECRET_ENV,
            config::BFF_COOKIE_KEYS_ENV,
            config::METRICS_TOKEN_ENV,
        ];
        let known: std::collections::BTreeSet<String> = config::KNOWN_ENV
            .iter()
            .filter(|v| !secrets.contains(v))
            .map(|v| (*v).to_owned())
            .collect();
        assert_eq!(
            envs, known,
            "KNOWN_ENV (unknown-variable warnings) drifted from the flags"
        );
    }

    #[test]
    fn flags_and_file_keys_are_one_layer() {
        // A serve flag parsed by clap lands in the same struct the file fills, and wins.
        let cli = Cli::try_parse_from([
            "deedbolt",
            "--data-dir",
            "/srv/d",
            "serve",
            "--listen",
            "127.0.0.1:9100",
            "--trusted-proxies",
            "10.0.0.1,10.0.0.2",
            "--access-token-ttl",
            "20m",
        ])
        .unwrap();
        let Command::Serve(flags) = cli.command else {
            panic!("serve");
        };
        let file =
            config::parse_file("listen = \"127.0.0.1:9000\"\nissuer = \"http://127.0.0.1:9100\"")
                .unwrap();
        let merged = flags.settings.over(file.serve);
        assert_eq!(merged.listen.as_deref(), Some("127.0.0.1:9100"));
        assert_eq!(merged.issuer.as_deref(), Some("http://127.0.0.1:9100"));
        assert_eq!(
            merged.trusted_proxies,
            Some(vec!["10.0.0.1".to_owned(), "10.0.0.2".to_owned()])
        );
        assert_eq!(
            cli.global.data_dir.as_deref(),
            Some(std::path::Path::new("/srv/d"))
        );
    }
}
