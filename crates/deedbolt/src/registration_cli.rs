//! `deedbolt client registration-token create | list | revoke`: the initial access tokens
//! that allow dynamic client registration at `/register` (RFC 7591 §3) when the server
//! runs with `--registration token` (the default).
//!
//! A token is printed once; only its keyed hash is stored (like a client secret). It
//! expires, may be limited to a number of registrations and to a scope set, and can be
//! revoked; every issue and revocation is audited.

use anyhow::{bail, Context};
use clap::Subcommand;
use deedbolt_core::audit::{AuditKind, AuditRecord};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::registration::{InitialAccessToken, IssuedToken};
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::secret::SecretHasher;
use serde_json::json;

use crate::accounts::audit_cli;
use crate::config::parse_duration;
use crate::console::{print_table, utc, vault};
use crate::storage::Store;

/// `client registration-token` subcommands.
#[derive(Debug, Subcommand)]
pub enum RegistrationTokenCommand {
    /// Issue an initial access token; prints it (shown this once). Give it to whoever
    /// may register clients: `POST /register` with `Authorization: Bearer <token>`.
    Create {
        /// How long the token works, e.g. 1h, 7d (at most 366d).
        #[arg(long)]
        expires_in: String,
        /// How many clients it may register [default: any number until it expires].
        #[arg(long)]
        max_uses: Option<u32>,
        /// The most a client registered with it may get, space-separated (administration
        /// scopes never) [default: the server's --registration-scope set].
        #[arg(long)]
        scope: Option<ScopeSet>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List initial access tokens (ids and state only; the tokens are not stored).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an initial access token: it registers no more clients (clients it
    /// registered stay).
    Revoke {
        /// The token's id (`iat_…`, from `list` or `create`).
        id: String,
    },
}

fn token_json(t: &InitialAccessToken, now: UnixTime) -> serde_json::Value {
    json!({
        "id": t.id,
        "scope": t.scopes.map(|s| s.to_string()),
        "max_uses": t.max_uses,
        "uses": t.uses,
        "created_at": t.created_at,
        "expires_at": t.expires_at,
        "revoked_at": t.revoked_at,
        "state": t.state_at(now),
    })
}

/// Runs a `client registration-token` command.
pub async fn run(
    store: &Store,
    data_dir: &std::path::Path,
    cmd: RegistrationTokenCommand,
    now: UnixTime,
) -> anyhow::Result<()> {
    match cmd {
        RegistrationTokenCommand::Create {
            expires_in,
            max_uses,
            scope,
            json,
        } => {
            let lifetime = parse_duration(&expires_in).context("invalid --expires-in")?;
            let secs = i64::try_from(lifetime.as_secs()).context("--expires-in is too long")?;
            let hasher = SecretHasher::new(&vault(store, data_dir)?.pepper().await?);
            let issued = IssuedToken::issue(&hasher, scope, max_uses, now, secs)?;
            store.insert_registration_token(&issued.record).await?;
            let mut detail = format!("{} via CLI", issued.record.id);
            if let Some(n) = max_uses {
                detail.push_str(&format!("; max_uses={n}"));
            }
            let mut record =
                AuditRecord::new(AuditKind::RegistrationTokenIssued, true, now).detail(detail);
            if let Some(s) = scope {
                record = record.scope(s);
            }
            audit_cli(store, record).await?;
            if json {
                let mut v = token_json(&issued.record, now);
                v["token"] = json!(issued.token.expose_secret());
                println!("{v}");
            } else {
                println!("id:         {}", issued.record.id);
                println!("expires_at: {}", utc(issued.record.expires_at));
                if let Some(n) = max_uses {
                    println!("max_uses:   {n}");
                }
                if let Some(s) = scope {
                    println!("scope:      {s}");
                }
                println!("token:      {}", issued.token.expose_secret());
                eprintln!("Store the token now: it is shown only this once.");
            }
            Ok(())
        }
        RegistrationTokenCommand::List { json } => {
            let tokens = store.list_registration_tokens().await?;
            if json {
                let all: Vec<_> = tokens.iter().map(|t| token_json(t, now)).collect();
                println!("{}", serde_json::Value::Array(all));
            } else {
                let rows: Vec<[String; 6]> = tokens
                    .iter()
                    .map(|t| {
                        [
                            t.id.clone(),
                            t.state_at(now).to_owned(),
                            match t.max_uses {
                                Some(max) => format!("{}/{max}", t.uses),
                                None => t.uses.to_string(),
                            },
                            utc(t.created_at),
                            utc(t.expires_at),
                            t.scopes
                                .map_or_else(|| "(server default)".to_owned(), |s| s.to_string()),
                        ]
                    })
                    .collect();
                print_table(
                    ["ID", "STATE", "USES", "CREATED", "EXPIRES", "SCOPE"],
                    &rows,
                );
            }
            Ok(())
        }
        RegistrationTokenCommand::Revoke { id } => {
            if !store.revoke_registration_token(&id, now).await? {
                bail!("no active registration token with id {id}");
            }
            audit_cli(
                store,
                AuditRecord::new(AuditKind::RegistrationTokenRevoked, true, now)
                    .detail(format!("{id} via CLI")),
            )
            .await?;
            println!("revoked {id}; it registers no more clients");
            Ok(())
        }
    }
}
