//! deedbolt's storage ports on PostgreSQL: the backend for running several stateless
//! instances against one database.
//!
//! It mirrors `deedbolt-store-sqlite` statement by statement, with the same semantics:
//! - single-use redemption of codes and refresh tokens is one conditional
//!   `UPDATE … RETURNING` (PostgreSQL re-checks the condition after waiting for a
//!   concurrent writer's row lock, so exactly one of N concurrent redemptions wins);
//! - read-check-write operations that SQLite serialises with `BEGIN IMMEDIATE` take a
//!   row lock (`FOR UPDATE`/`FOR SHARE`) or a transaction-level advisory lock instead;
//! - the revocation list's `seq` and the audit log's `id` are written under advisory locks,
//!   so rows commit in cursor order and a poller (`revoked_since`, `audit tail --follow`)
//!   never skips one;
//! - the ledger is append-only, enforced by a trigger.
//!
//! Migrations are embedded and run on connect (sqlx takes an advisory lock, so instances
//! starting together migrate once).
//!
//! # Layout
//! One file per port, like lldap's `sql-backend-handler`; this file opens, migrates and
//! pools the database and answers [`Health`].
//! - `clients`: [`deedbolt_core::ports::ClientStore`].
//! - `keys`: [`deedbolt_core::ports::KeyStore`].
//! - `users`: [`deedbolt_core::ports::UserStore`].
//! - `flow`: [`deedbolt_core::ports::FlowStore`] (pending requests, sessions, consents,
//!   codes, the revocation list).
//! - `pushed`: [`deedbolt_core::ports::PushedRequestStore`] (RFC 9126 pushed requests).
//! - `refresh`: [`deedbolt_core::ports::RefreshStore`].
//! - `registration`: [`deedbolt_core::ports::RegistrationTokenStore`] (initial access
//!   tokens of dynamic client registration).
//! - `audit`: [`deedbolt_core::ports::AuditStore`].
//! - `alerts`: [`deedbolt_core::ports::AlertStore`].
//! - `crm`: [`deedbolt_proptech::store::CrmStore`].
//!
//! Every port method runs in a `debug` span named after it (`skip_all`: no argument is
//! recorded, so no secret reaches a log, and a disabled span costs one cached check).
#![forbid(unsafe_code, unused_must_use)]
#![warn(missing_docs)]

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deedbolt_core::ports::{Health, Storage, StoreError};
use deedbolt_store_sql::{corrupt, Columns};
use sqlx::postgres::PgRow;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Postgres;
use sqlx::Row;

mod alerts;
mod audit;
mod clients;
mod crm;
mod flow;
mod keys;
mod pushed;
mod refresh;
mod registration;
#[cfg(feature = "testing")]
pub mod testing;
mod users;

/// The PostgreSQL backend.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL does not parse. The URL itself is not repeated: it may hold a password.
    #[error("the PostgreSQL URL is malformed: {0}")]
    Url(#[source] sqlx::Error),
    /// Connecting failed.
    #[error("could not connect to PostgreSQL at {host}:{port}/{database}")]
    Connect {
        /// The server's host.
        host: String,
        /// The server's port.
        port: u16,
        /// The database.
        database: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// Migrations failed.
    #[error("could not migrate the PostgreSQL database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// How many connections each instance keeps at most, unless configured.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// How long a query waits for a connection from the pool before the store answers
/// [`StoreError::Unavailable`]: long enough to ride out a burst, short enough that a
/// request fails over (503, retry) well before a load balancer gives up on it.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// Advisory-lock key under which rows are added to `revoked_tokens` (see the crate docs).
const REVOCATION_LOCK: i64 = 0x6462_7276_6f6b_6531;

/// Advisory-lock key under which audit batches are inserted (see `insert_audit`).
const AUDIT_LOCK: i64 = 0x6462_6175_6469_746c;

/// Advisory-lock key of signing-key rotation.
const KEY_ROTATION_LOCK: i64 = 0x6462_6b65_7972_6f74;

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db?…`)
    /// with a pool of [`DEFAULT_MAX_CONNECTIONS`], and migrates it.
    pub async fn connect(url: &str) -> Result<Self, OpenError> {
        Self::connect_pooled(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// Connects to the database at `url` with a pool of at most `max_connections`
    /// (at least 1), and migrates it.
    pub async fn connect_pooled(url: &str, max_connections: u32) -> Result<Self, OpenError> {
        let options = PgConnectOptions::from_str(url).map_err(OpenError::Url)?;
        let host = options.get_host().to_owned();
        let port = options.get_port();
        let database = options.get_database().unwrap_or("").to_owned();
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| OpenError::Connect {
                host,
                port,
                database,
                source,
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(PgStore { pool })
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Storage for PgStore {
    async fn close(&self) {
        self.pool.close().await;
    }
}

/// A sqlx error as a store error: the server out of reach (no connection to be had from
/// the pool in time, a connection refused or dropped) is [`StoreError::Unavailable`], which
/// callers answer with 503 and a retry; anything else is a backend failure.
fn backend(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Io(_) => StoreError::Unavailable(Box::new(e)),
        e => StoreError::backend(e),
    }
}

/// A row read through the mappings `deedbolt_store_sql` shares between the SQL stores.
struct Cols<'r>(&'r PgRow);

impl Columns for Cols<'_> {
    fn text(&self, col: &str) -> Result<String, StoreError> {
        self.0.try_get(col).map_err(backend)
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        self.0.try_get(col).map_err(backend)
    }

    fn int(&self, col: &str) -> Result<i64, StoreError> {
        self.0.try_get(col).map_err(backend)
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
        self.0.try_get(col).map_err(backend)
    }

    fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.try_get(col).map_err(backend)
    }

    /// A flag is a `BOOLEAN` here.
    fn flag(&self, col: &str) -> Result<bool, StoreError> {
        self.0.try_get(col).map_err(backend)
    }
}

#[async_trait]
impl Health for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// Takes the lock under which rows are added to `revoked_tokens`, until the transaction
/// ends: rows then commit in `seq` order (see the crate docs).
async fn lock_revocations(tx: &mut sqlx::Transaction<'_, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(REVOCATION_LOCK)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|_| corrupt(what))
}
