//! The command line: `deedbolt serve | client | keys`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use deedbolt_core::client::{Client, ClientName, GrantType, NewClient};
use deedbolt_core::clock::{Clock, SystemClock, UnixTime};
use deedbolt_core::ids::ClientId;
use deedbolt_core::jose::SigningAlg;
use deedbolt_core::keyring::KeyVault;
use deedbolt_core::ports::{ClientStore, KeyStore};
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::seal::MasterKey;
use deedbolt_core::secret::{ClientSecret, SecretHasher};
use deedbolt_store_sqlite::SqliteStore;
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
    Serve(ServeArgs),
    /// Register and manage OAuth clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys and the master key.
    #[command(subcommand)]
    Keys(KeysCommand),
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
}

/// `client` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its id and secret (the secret is shown this once).
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Grant type (repeatable); only client_credentials in this release.
        #[arg(long = "grant", required = true)]
        grants: Vec<GrantType>,
        /// Space-separated scopes the client may get, e.g. "property:read financial:read".
        #[arg(long)]
        scope: ScopeSet,
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
    let common = config::resolve_common(cli.data_dir.clone(), &file);

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
                },
                &file,
            )?;
            let master = config::master_key_from_env()?;
            let app = Application::build(settings, master).await?;
            app.run_until(startup::shutdown_signal()).await
        }
        Command::Client(cmd) => {
            let store = startup::open_store(&common.data_dir).await?;
            let result = client_command(&store, cmd, &common.data_dir).await;
            store.close().await;
            result
        }
        Command::Keys(KeysCommand::GenerateMasterKey) => {
            let key = MasterKey::generate_encoded()?;
            println!("{}", key.as_str());
            Ok(())
        }
        Command::Keys(cmd) => {
            let store = startup::open_store(&common.data_dir).await?;
            let result = keys_command(&store, cmd, &common.data_dir).await;
            store.close().await;
            result
        }
    }
}

fn vault(store: &SqliteStore, data_dir: &std::path::Path) -> anyhow::Result<KeyVault> {
    let master = config::master_key_from_env()?;
    if master.is_none() {
        startup::warn_development_mode(data_dir);
    }
    Ok(KeyVault::new(Arc::new(store.clone()), master.map(Arc::new)))
}

fn client_json(c: &Client) -> serde_json::Value {
    json!({
        "client_id": c.id,
        "name": c.name,
        "grant_types": c.grant_types,
        "scope": c.scopes,
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
    println!("created_at:  {}", c.created_at.0);
}

async fn client_command(
    store: &SqliteStore,
    cmd: ClientCommand,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let now = SystemClock.now();
    match cmd {
        ClientCommand::Create {
            name,
            grants,
            scope,
            json,
        } => {
            let new = NewClient::new(ClientName::parse(&name)?, grants, scope)?;
            let hasher = SecretHasher::new(&vault(store, data_dir)?.pepper().await?);
            let secret = ClientSecret::generate()?;
            let client = Client {
                id: ClientId::generate()?,
                name: new.name,
                secret_hash: Some(hasher.hash(&secret)),
                grant_types: new.grant_types,
                scopes: new.scopes,
                created_at: now,
                updated_at: now,
            };
            store.insert_client(&client).await?;
            if json {
                let mut v = client_json(&client);
                v["client_secret"] = json!(secret.expose_secret());
                println!("{v}");
            } else {
                print_client(&client);
                println!("client_secret: {}", secret.expose_secret());
                eprintln!("Store the secret now: it is shown only this once.");
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
            if store.find_client(&client_id).await?.is_none() {
                bail!("no client with id {client_id}");
            }
            let hasher = SecretHasher::new(&vault(store, data_dir)?.pepper().await?);
            let secret = ClientSecret::generate()?;
            if !store
                .replace_secret(&client_id, &hasher.hash(&secret), now)
                .await?
            {
                bail!("no client with id {client_id}");
            }
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
            if !store.delete_client(&client_id).await? {
                bail!("no client with id {client_id}");
            }
            println!("deleted {client_id}");
            eprintln!(
                "Running servers stop accepting it within their sync interval \
                 (--key-refresh-interval, 1s by default)."
            );
            Ok(())
        }
    }
}

async fn keys_command(
    store: &SqliteStore,
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
