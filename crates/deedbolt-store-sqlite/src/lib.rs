//! deedbolt's storage ports on an embedded SQLite database: the zero-configuration default.
//!
//! One file under the data directory, in WAL mode so that the CLI and a running server can
//! use it at the same time. Migrations are embedded in the binary and run on open.
//!
//! Every multi-row change that must be atomic (key rotation, first-start secrets) runs in
//! one transaction or one statement.
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
//! - `crm`: [`deedbolt_proptech::store::CrmStore`]; its reads of properties, tenants, ledger
//!   entries and maintenance requests run inline through `read` (rusqlite) rather than
//!   through sqlx.
//!
//! Every port method runs in a `debug` span named after it (`skip_all`: no argument is
//! recorded, so no secret reaches a log, and a disabled span costs one cached check).
#![forbid(unsafe_code, unused_must_use)]
#![warn(missing_docs)]

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deedbolt_core::ports::{Health, Storage, StoreError};
use deedbolt_store_sql::{corrupt, Columns};
use sqlx::sqlite::SqliteRow;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;

mod alerts;
mod audit;
mod clients;
mod crm;
mod flow;
mod keys;
mod pushed;
mod read;
mod refresh;
mod registration;
mod users;

/// The SQLite backend.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The audit writer's own connection (the main pool for an in-memory database): its
    /// page cache stays warm between batches instead of being re-read by whichever pooled
    /// connection comes next, and a batch never waits for a pooled connection.
    audit: SqlitePool,
    /// The inline read path for the PropTech API's reads (`read.rs`); none for an
    /// in-memory database, which only sqlx's one connection can see.
    reader: Option<std::sync::Arc<read::Reader>>,
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Opening or connecting failed.
    #[error("could not open SQLite database {path}: {source}")]
    Connect {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: sqlx::Error,
    },
    /// Migrations failed.
    #[error("could not migrate SQLite database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database file could not be created owner-only, or its permissions (or its
    /// `-wal` and `-shm` files') could not be restricted.
    #[error("could not restrict the permissions of {path} to 0600: {source}")]
    Permissions {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The files SQLite keeps next to a database in WAL mode.
const COMPANION_SUFFIXES: [&str; 2] = ["-wal", "-shm"];

/// Makes the database file at `path` owner-only (0600) before SQLite opens it: creates it
/// so if missing (SQLite would use 0644 under the usual umask), and tightens an existing
/// one and its `-wal`/`-shm` files. SQLite creates those with the database file's mode,
/// so they are 0600 too. The file holds client-secret hashes, refresh-token hashes, users'
/// password hashes, tenants' records and (without a master key) private signing keys.
#[cfg(unix)]
fn restrict_permissions(path: &Path) -> Result<(), OpenError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed = |p: &Path| {
        let path = p.display().to_string();
        move |source| OpenError::Permissions { path, source }
    };
    // Create the file owner-only before SQLite does, but never open an existing one: on
    // Unix, closing *any* descriptor of a file drops every POSIX lock this process holds
    // on it, so opening and closing a database another store in this process already has
    // open would silently release SQLite's locks (and let another process delete the WAL).
    // `set_permissions` below works by path and opens nothing.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(failed(path)(e)),
    }
    let mut files = vec![path.to_path_buf()];
    for suffix in COMPANION_SUFFIXES {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(name.into());
    }
    for file in files.iter().filter(|f| f.exists()) {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
            .map_err(failed(file))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> Result<(), OpenError> {
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database file at `path`. On Unix the
    /// file and its `-wal`/`-shm` files are owner-only (0600).
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        restrict_permissions(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode is durable against process crashes and keeps commits cheap;
            // a power loss can lose the last transactions but never corrupts the file.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let connect_error = |source| OpenError::Connect {
            path: path.display().to_string(),
            source,
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(connect_error)?;
        let store = Self::migrated(pool).await?;
        let audit = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(options)
            .await
            .map_err(connect_error)?;
        Ok(SqliteStore {
            audit,
            reader: Some(std::sync::Arc::new(read::Reader::new(path))),
            ..store
        })
    }

    /// A fresh private in-memory database, for tests.
    ///
    /// One connection only: every connection to `sqlite::memory:` would open its own
    /// empty database.
    pub async fn in_memory() -> Result<Self, OpenError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")
            .map_err(|source| OpenError::Connect {
                path: ":memory:".into(),
                source,
            })?
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|source| OpenError::Connect {
                path: ":memory:".into(),
                source,
            })?;
        Self::migrated(pool).await
    }

    async fn migrated(pool: SqlitePool) -> Result<Self, OpenError> {
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(SqliteStore {
            audit: pool.clone(),
            pool,
            reader: None,
        })
    }

    /// The database file, for a database opened from one.
    pub fn path(&self) -> Option<&Path> {
        self.reader.as_deref().map(read::Reader::path)
    }

    /// Closes the pools, waiting for connections to finish.
    pub async fn close(&self) {
        self.audit.close().await;
        self.pool.close().await;
    }
}

#[async_trait]
impl Storage for SqliteStore {
    async fn close(&self) {
        SqliteStore::close(self).await;
    }
}

// Statements with RETURNING are always run with `fetch_all`: SQLite finishes (and, in
// autocommit mode, commits) such a statement only when it is stepped to the end, and
// `fetch_one`/`fetch_optional` stop after the first row, which left the write lock held by
// an idle pooled connection ("database is locked" for every other writer).

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::backend(e)
}

/// A row read through the mappings `deedbolt_store_sql` shares between the SQL stores.
struct Cols<'r>(&'r SqliteRow);

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

    /// A flag is an `INTEGER` 0/1 here.
    fn flag(&self, col: &str) -> Result<bool, StoreError> {
        Ok(self.0.try_get::<i64, _>(col).map_err(backend)? == 1)
    }
}

#[async_trait]
impl Health for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|_| corrupt(what))
}
