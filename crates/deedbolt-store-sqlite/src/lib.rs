//! deedbolt's storage ports on an embedded SQLite database: the zero-configuration default.
//!
//! One file under the data directory, in WAL mode so that the CLI and a running server can
//! use it at the same time. Migrations are embedded in the binary and run on open.
//!
//! Every multi-row change that must be atomic (key rotation, first-start secrets) runs in
//! one transaction or one statement.
#![forbid(unsafe_code, unused_must_use)]
#![warn(missing_docs)]

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deedbolt_core::audit::{AuditFilter, AuditKind, AuditRecord};
use deedbolt_core::client::{stored, Client, ClientName};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::flow::{AuthorizationRequest, CodeGrant};
use deedbolt_core::ids::{ClientId, KeyId};
use deedbolt_core::ids::{TokenId, UserId};
use deedbolt_core::ports::{
    usage_series, AlertStore, AuditStore, ClientStore, CutoffKind, FlowStore, Health, KeyMaterial,
    KeyStore, NewFamily, Redemption, RefreshStore, Session, Storage, StoreError, StoredAlert,
    StoredKey, UserStore,
};
use deedbolt_core::refresh::{RefreshRecord, TokenState};
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::secret::SecretHash;
use deedbolt_core::user::{Email, Role, User};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use zeroize::Zeroizing;

mod crm;

/// The SQLite backend.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
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
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options)
            .await
            .map_err(|source| OpenError::Connect {
                path: path.display().to_string(),
                source,
            })?;
        Self::migrated(pool).await
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
        Ok(SqliteStore { pool })
    }

    /// Closes the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Storage for SqliteStore {
    async fn close(&self) {
        self.pool.close().await;
    }
}

// Statements with RETURNING are always run with `fetch_all`: SQLite finishes (and, in
// autocommit mode, commits) such a statement only when it is stepped to the end, and
// `fetch_one`/`fetch_optional` stop after the first row, which left the write lock held by
// an idle pooled connection ("database is locked" for every other writer).

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::backend(e)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn client_from_row(row: &SqliteRow) -> Result<Client, StoreError> {
    let id: String = row.try_get("id").map_err(backend)?;
    let name: String = row.try_get("name").map_err(backend)?;
    let hash: Option<Vec<u8>> = row.try_get("secret_hash").map_err(backend)?;
    let grants: String = row.try_get("grant_types").map_err(backend)?;
    let scopes: String = row.try_get("scopes").map_err(backend)?;
    let redirects: String = row.try_get("redirect_uris").map_err(backend)?;
    let public: i64 = row.try_get("public").map_err(backend)?;
    let secret_hash = match hash {
        Some(bytes) => Some(SecretHash::from_bytes(&bytes).ok_or_else(|| corrupt("secret_hash"))?),
        None => None,
    };
    let grant_types = stored::parse_grant_types(&grants).map_err(|_| corrupt("grant_types"))?;
    Ok(Client {
        id: ClientId::parse(&id).map_err(|_| corrupt("client id"))?,
        name: ClientName::parse(&name).map_err(|_| corrupt("client name"))?,
        secret_hash,
        grant_types,
        scopes: ScopeSet::parse_stored(&scopes).map_err(|_| corrupt("scopes"))?,
        redirect_uris: stored::parse_redirect_uris(&redirects)
            .map_err(|_| corrupt("redirect_uris"))?,
        public: public == 1,
        allow_introspection: row.try_get::<i64, _>("introspection").map_err(backend)? == 1,
        properties: row
            .try_get::<Option<String>, _>("properties")
            .map_err(backend)?
            .map(|p| stored::parse_properties(&p).map_err(|_| corrupt("client properties")))
            .transpose()?,
        id_token_alg: row
            .try_get::<String, _>("id_token_alg")
            .map_err(backend)?
            .parse()
            .map_err(|_| corrupt("client id_token_alg"))?,
        created_at: UnixTime(row.try_get("created_at").map_err(backend)?),
        updated_at: UnixTime(row.try_get("updated_at").map_err(backend)?),
    })
}

const CLIENT_COLUMNS: &str =
    "id, name, secret_hash, grant_types, scopes, redirect_uris, public, introspection, properties, id_token_alg, created_at, updated_at";

#[async_trait]
impl ClientStore for SqliteStore {
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, grant_types, scopes, redirect_uris, public, introspection, properties, id_token_alg, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(client.id.as_str())
        .bind(client.name.as_str())
        .bind(client.secret_hash.as_ref().map(|h| h.as_bytes().to_vec()))
        .bind(stored::grant_types(&client.grant_types))
        .bind(client.scopes.to_string())
        .bind(stored::redirect_uris(&client.redirect_uris))
        .bind(i64::from(client.public))
        .bind(i64::from(client.allow_introspection))
        .bind(stored::properties(client.properties.as_deref()))
        .bind(client.id_token_alg.as_str())
        .bind(client.created_at.0)
        .bind(client.updated_at.0)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn find_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients ORDER BY created_at, rowid"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(client_from_row).collect()
    }

    async fn replace_secret(
        &self,
        id: &ClientId,
        hash: &SecretHash,
        at: UnixTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE clients SET secret_hash = ?, updated_at = ? WHERE id = ?")
            .bind(hash.as_bytes().to_vec())
            .bind(at.0)
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM clients WHERE id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn clients_generation(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT value FROM change_counters WHERE name = 'clients'")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        row.try_get("value").map_err(backend)
    }
}

fn material_parts(material: &KeyMaterial) -> (&[u8], i64) {
    match material {
        KeyMaterial::Sealed(bytes) => (bytes, 1),
        KeyMaterial::Plain(bytes) => (bytes, 0),
    }
}

fn material_from(bytes: Vec<u8>, sealed: i64) -> KeyMaterial {
    if sealed == 1 {
        KeyMaterial::Sealed(bytes)
    } else {
        KeyMaterial::Plain(Zeroizing::new(bytes))
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn rotate_in(&self, key: &StoredKey, now: UnixTime) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "UPDATE signing_keys SET is_current = NULL, retired_at = ? WHERE is_current = 1 AND alg = ?",
        )
        .bind(now.0)
        .bind(key.alg.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let (bytes, sealed) = material_parts(&key.material);
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key, sealed, created_at, retired_at, is_current) \
             VALUES (?, ?, ?, ?, ?, NULL, 1)",
        )
        .bind(key.kid.as_str())
        .bind(key.alg.as_str())
        .bind(bytes)
        .bind(sealed)
        .bind(key.created_at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, alg, private_key, sealed, created_at, retired_at FROM signing_keys \
             ORDER BY is_current DESC, created_at DESC, rowid DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let kid: String = row.try_get("kid").map_err(backend)?;
                let alg: String = row.try_get("alg").map_err(backend)?;
                Ok(StoredKey {
                    kid: KeyId::parse(&kid).map_err(|_| corrupt("kid"))?,
                    alg: alg.parse().map_err(|_| corrupt("alg"))?,
                    material: material_from(
                        row.try_get("private_key").map_err(backend)?,
                        row.try_get("sealed").map_err(backend)?,
                    ),
                    created_at: UnixTime(row.try_get("created_at").map_err(backend)?),
                    retired_at: row
                        .try_get::<Option<i64>, _>("retired_at")
                        .map_err(backend)?
                        .map(UnixTime),
                })
            })
            .collect()
    }

    async fn prune_keys(&self, cutoff: UnixTime) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM signing_keys WHERE is_current IS NULL AND retired_at < ?")
                .bind(cutoff.0)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn secret_or_insert(
        &self,
        name: &str,
        value: &KeyMaterial,
    ) -> Result<KeyMaterial, StoreError> {
        let (bytes, sealed) = material_parts(value);
        let row = sqlx::query(
            "INSERT INTO server_secrets (name, value, sealed) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET name = excluded.name \
             RETURNING value, sealed",
        )
        .bind(name)
        .bind(bytes)
        .bind(sealed)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .next()
        .ok_or_else(|| corrupt("no row returned"))?;
        Ok(material_from(
            row.try_get("value").map_err(backend)?,
            row.try_get("sealed").map_err(backend)?,
        ))
    }
}

#[async_trait]
impl Health for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

fn user_from_row(row: &SqliteRow) -> Result<User, StoreError> {
    let id: String = row.try_get("id").map_err(backend)?;
    let email: String = row.try_get("email").map_err(backend)?;
    let role: String = row.try_get("role").map_err(backend)?;
    Ok(User {
        id: UserId::parse(&id).map_err(|_| corrupt("user id"))?,
        email: Email::parse(&email).map_err(|_| corrupt("email"))?,
        name: row.try_get("name").map_err(backend)?,
        role: role.parse().map_err(|_| corrupt("role"))?,
        password_hash: row.try_get("password_hash").map_err(backend)?,
        created_at: UnixTime(row.try_get("created_at").map_err(backend)?),
    })
}

const USER_COLUMNS: &str = "id, email, name, role, password_hash, created_at";

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.as_str())
        .bind(user.email.as_str())
        .bind(user.name.as_deref())
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.created_at.0)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict("a user with this email")
            } else {
                backend(e)
            }
        })?;
        Ok(())
    }

    async fn find_user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?"))
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, rowid"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_role(&self, id: &UserId, role: Role) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET role = ? WHERE id = ?")
            .bind(role.as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError> {
        // Sessions and consents go with the row (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|_| corrupt(what))
}

#[async_trait]
impl FlowStore for SqliteStore {
    async fn put_pending(
        &self,
        id: &str,
        request: &AuthorizationRequest,
        expires_at: UnixTime,
        owner: &str,
        max_per_owner: usize,
    ) -> Result<(), StoreError> {
        let keep = i64::try_from(max_per_owner).unwrap_or(i64::MAX);
        // Insert and trim in one write transaction: concurrent requests of one owner
        // cannot both see room and leave more than `max_per_owner` rows.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO pending_authorizations (id, request, expires_at, owner) VALUES (?, ?, ?, ?)",
        )
        .bind(id)
        .bind(to_json(request)?)
        .bind(expires_at.0)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        // Newest first by rowid (insertion order); everything past the newest `keep` goes.
        sqlx::query(
            "DELETE FROM pending_authorizations WHERE owner = ? AND rowid IN \
             (SELECT rowid FROM pending_authorizations WHERE owner = ? ORDER BY rowid DESC LIMIT -1 OFFSET ?)",
        )
        .bind(owner)
        .bind(owner)
        .bind(keep)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn get_pending(
        &self,
        id: &str,
        now: UnixTime,
    ) -> Result<Option<AuthorizationRequest>, StoreError> {
        let row = sqlx::query(
            "SELECT request FROM pending_authorizations WHERE id = ? AND expires_at > ?",
        )
        .bind(id)
        .bind(now.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        match row {
            Some(row) => {
                let text: String = row.try_get("request").map_err(backend)?;
                Ok(Some(from_json(&text, "pending authorization")?))
            }
            None => Ok(None),
        }
    }

    async fn delete_pending(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM pending_authorizations WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn create_session(
        &self,
        id_hash: &[u8; 32],
        session: &Session,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, auth_time, csrf, expires_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&id_hash[..])
        .bind(session.user_id.as_str())
        .bind(session.auth_time.0)
        .bind(&session.csrf)
        .bind(session.expires_at.0)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn find_session(
        &self,
        id_hash: &[u8; 32],
        now: UnixTime,
    ) -> Result<Option<Session>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, auth_time, csrf, expires_at FROM sessions WHERE id_hash = ? AND expires_at > ?",
        )
        .bind(&id_hash[..])
        .bind(now.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.map(|row| {
            let user: String = row.try_get("user_id").map_err(backend)?;
            Ok(Session {
                user_id: UserId::parse(&user).map_err(|_| corrupt("session user"))?,
                auth_time: UnixTime(row.try_get("auth_time").map_err(backend)?),
                csrf: row.try_get("csrf").map_err(backend)?,
                expires_at: UnixTime(row.try_get("expires_at").map_err(backend)?),
            })
        })
        .transpose()
    }

    async fn delete_session(&self, id_hash: &[u8; 32]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(&id_hash[..])
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn find_consent(
        &self,
        user: &UserId,
        client: &ClientId,
    ) -> Result<Option<ScopeSet>, StoreError> {
        let row = sqlx::query("SELECT scopes FROM consents WHERE user_id = ? AND client_id = ?")
            .bind(user.as_str())
            .bind(client.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        match row {
            Some(row) => {
                let s: String = row.try_get("scopes").map_err(backend)?;
                Ok(Some(
                    ScopeSet::parse_stored(&s).map_err(|_| corrupt("consent scopes"))?,
                ))
            }
            None => Ok(None),
        }
    }

    async fn save_consent(
        &self,
        user: &UserId,
        client: &ClientId,
        scope: ScopeSet,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        // Read-modify-write: IMMEDIATE takes the write lock up front. A deferred
        // transaction that reads first cannot wait for the lock later (SQLite answers
        // SQLITE_BUSY at once when another connection committed since the read).
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT scopes FROM consents WHERE user_id = ? AND client_id = ?")
                .bind(user.as_str())
                .bind(client.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let merged = match existing {
            Some(s) => ScopeSet::parse_stored(&s)
                .map_err(|_| corrupt("consent scopes"))?
                .union(&scope),
            None => scope,
        };
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
        )
        .bind(user.as_str())
        .bind(client.as_str())
        .bind(merged.to_string())
        .bind(at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn revoke_consents(
        &self,
        user: &UserId,
        client: Option<&ClientId>,
    ) -> Result<u64, StoreError> {
        let done = match client {
            Some(c) => sqlx::query("DELETE FROM consents WHERE user_id = ? AND client_id = ?")
                .bind(user.as_str())
                .bind(c.as_str()),
            None => sqlx::query("DELETE FROM consents WHERE user_id = ?").bind(user.as_str()),
        }
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn insert_code(&self, hash: &[u8; 32], grant: &CodeGrant) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO auth_codes (code_hash, grant_json, expires_at) VALUES (?, ?, ?)")
            .bind(&hash[..])
            .bind(to_json(grant)?)
            .bind(grant.expires_at.0)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn peek_code(&self, hash: &[u8; 32]) -> Result<Option<CodeGrant>, StoreError> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT grant_json FROM auth_codes WHERE code_hash = ?")
                .bind(&hash[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        text.map(|t| from_json(&t, "code grant")).transpose()
    }

    async fn redeem_code(&self, hash: &[u8; 32], now: UnixTime) -> Result<Redemption, StoreError> {
        // One conditional update: of any number of concurrent redemptions, exactly one
        // finds `redeemed_at IS NULL`.
        let fresh = sqlx::query(
            "UPDATE auth_codes SET redeemed_at = ? WHERE code_hash = ? AND redeemed_at IS NULL \
             RETURNING grant_json",
        )
        .bind(now.0)
        .bind(&hash[..])
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .next();
        if let Some(row) = fresh {
            let text: String = row.try_get("grant_json").map_err(backend)?;
            return Ok(Redemption::Fresh(from_json(&text, "code grant")?));
        }
        let replay = sqlx::query(
            "UPDATE auth_codes SET replayed = 1 WHERE code_hash = ? RETURNING access_jti, access_exp",
        )
        .bind(&hash[..])
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?.into_iter().next();
        match replay {
            None => Ok(Redemption::Unknown),
            Some(row) => {
                let jti: Option<String> = row.try_get("access_jti").map_err(backend)?;
                let exp: Option<i64> = row.try_get("access_exp").map_err(backend)?;
                let issued = match (jti, exp) {
                    (Some(j), Some(e)) => Some((
                        TokenId::parse(&j).map_err(|_| corrupt("access jti"))?,
                        UnixTime(e),
                    )),
                    _ => None,
                };
                Ok(Redemption::Replayed(issued))
            }
        }
    }

    async fn record_code_token(
        &self,
        hash: &[u8; 32],
        jti: &TokenId,
        expires_at: UnixTime,
    ) -> Result<bool, StoreError> {
        let replayed: Option<i64> = sqlx::query_scalar(
            "UPDATE auth_codes SET access_jti = ?, access_exp = ? WHERE code_hash = ? RETURNING replayed",
        )
        .bind(jti.as_str())
        .bind(expires_at.0)
        .bind(&hash[..])
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?.into_iter().next();
        Ok(replayed == Some(1))
    }

    async fn revoke_token(
        &self,
        jti: &TokenId,
        expires_at: UnixTime,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES (?, ?, ?) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti.as_str())
        .bind(expires_at.0)
        .bind(at.0)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn revoked_since(
        &self,
        cursor: i64,
    ) -> Result<(Vec<(TokenId, UnixTime)>, i64), StoreError> {
        let rows = sqlx::query(
            "SELECT seq, jti, expires_at FROM revoked_tokens WHERE seq > ? ORDER BY seq LIMIT 10000",
        )
        .bind(cursor)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut next = cursor;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            next = row.try_get("seq").map_err(backend)?;
            let jti: String = row.try_get("jti").map_err(backend)?;
            out.push((
                TokenId::parse(&jti).map_err(|_| corrupt("revoked jti"))?,
                UnixTime(row.try_get("expires_at").map_err(backend)?),
            ));
        }
        Ok((out, next))
    }

    async fn prune_expired(&self, now: UnixTime) -> Result<(), StoreError> {
        for sql in [
            "DELETE FROM pending_authorizations WHERE expires_at <= ?",
            "DELETE FROM sessions WHERE expires_at <= ?",
            // Spent codes are kept a little past expiry so that a late replay is still
            // recognised (and revokes) rather than looking unknown.
            "DELETE FROM auth_codes WHERE expires_at <= ? - 600",
            "DELETE FROM revoked_tokens WHERE expires_at <= ?",
        ] {
            sqlx::query(sql)
                .bind(now.0)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }
}

#[async_trait]
impl RefreshStore for SqliteStore {
    async fn create_family(
        &self,
        family: &NewFamily,
        token_hash: &[u8; 32],
        issued_at: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO refresh_families (id, client_id, user_id, scope, auth_time, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&family.family_id)
        .bind(family.client_id.as_str())
        .bind(family.user_id.as_str())
        .bind(family.scope.to_string())
        .bind(family.auth_time.0)
        .bind(issued_at.0)
        .bind(family.expires_at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, state, issued_at, expires_at) VALUES (?, ?, 'active', ?, ?)",
        )
        .bind(&token_hash[..])
        .bind(&family.family_id)
        .bind(issued_at.0)
        .bind(expires_at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn find_refresh(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT t.family_id, t.state, t.issued_at, t.expires_at, t.rotated_at, \
                    f.client_id, f.user_id, f.scope, f.auth_time, f.expires_at AS family_expires_at, f.revoked_at \
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.token_hash = ?",
        )
        .bind(&token_hash[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let client: String = row.try_get("client_id").map_err(backend)?;
        let user: String = row.try_get("user_id").map_err(backend)?;
        let scope: String = row.try_get("scope").map_err(backend)?;
        let state: String = row.try_get("state").map_err(backend)?;
        Ok(Some(RefreshRecord {
            family_id: row.try_get("family_id").map_err(backend)?,
            client_id: ClientId::parse(&client).map_err(|_| corrupt("family client"))?,
            user_id: UserId::parse(&user).map_err(|_| corrupt("family user"))?,
            scope: ScopeSet::parse_stored(&scope).map_err(|_| corrupt("family scope"))?,
            state: TokenState::parse(&state).ok_or_else(|| corrupt("refresh state"))?,
            issued_at: UnixTime(row.try_get("issued_at").map_err(backend)?),
            expires_at: UnixTime(row.try_get("expires_at").map_err(backend)?),
            family_expires_at: UnixTime(row.try_get("family_expires_at").map_err(backend)?),
            family_revoked: row
                .try_get::<Option<i64>, _>("revoked_at")
                .map_err(backend)?
                .is_some(),
            rotated_at: row
                .try_get::<Option<i64>, _>("rotated_at")
                .map_err(backend)?
                .map(UnixTime),
            auth_time: UnixTime(row.try_get("auth_time").map_err(backend)?),
        }))
    }

    async fn rotate_refresh(
        &self,
        old_hash: &[u8; 32],
        new_hash: &[u8; 32],
        now: UnixTime,
        new_expires_at: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // The conditional update is the lock: of concurrent rotations of one token, exactly
        // one finds it active.
        let family: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET state = 'rotated', rotated_at = ? \
             WHERE token_hash = ? AND state = 'active' RETURNING family_id",
        )
        .bind(now.0)
        .bind(&old_hash[..])
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        .into_iter()
        .next();
        let Some(family) = family else {
            return Ok(false);
        };
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, state, issued_at, expires_at) VALUES (?, ?, 'active', ?, ?)",
        )
        .bind(&new_hash[..])
        .bind(&family)
        .bind(now.0)
        .bind(new_expires_at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn record_family_access(
        &self,
        family_id: &str,
        jti: &TokenId,
        expires_at: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO family_access_tokens (family_id, jti, expires_at) VALUES (?, ?, ?)",
        )
        .bind(family_id)
        .bind(jti.as_str())
        .bind(expires_at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let revoked: Option<Option<i64>> =
            sqlx::query_scalar("SELECT revoked_at FROM refresh_families WHERE id = ?")
                .bind(family_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(matches!(revoked, Some(Some(_))))
    }

    async fn revoke_family(
        &self,
        family_id: &str,
        now: UnixTime,
    ) -> Result<Vec<(TokenId, UnixTime)>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "UPDATE refresh_families SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
        )
        .bind(now.0)
        .bind(family_id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("UPDATE refresh_tokens SET state = 'revoked' WHERE family_id = ? AND state != 'revoked'")
            .bind(family_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let rows = sqlx::query("SELECT jti, expires_at FROM family_access_tokens WHERE family_id = ? AND expires_at > ?")
            .bind(family_id)
            .bind(now.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let jti: String = row.try_get("jti").map_err(backend)?;
            let exp = UnixTime(row.try_get("expires_at").map_err(backend)?);
            let jti = TokenId::parse(&jti).map_err(|_| corrupt("family jti"))?;
            sqlx::query(
                "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES (?, ?, ?) ON CONFLICT (jti) DO NOTHING",
            )
            .bind(jti.as_str())
            .bind(exp.0)
            .bind(now.0)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            out.push((jti, exp));
        }
        tx.commit().await.map_err(backend)?;
        Ok(out)
    }

    async fn family_of_access(&self, jti: &TokenId) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT family_id FROM family_access_tokens WHERE jti = ?")
            .bind(jti.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    async fn revoke_families_of(
        &self,
        kind: CutoffKind,
        subject: &str,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let column = match kind {
            CutoffKind::Client => "client_id",
            CutoffKind::Subject => "user_id",
        };
        let ids: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT id FROM refresh_families WHERE {column} = ? AND revoked_at IS NULL"
        ))
        .bind(subject)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        for id in &ids {
            self.revoke_family(id, now).await?;
        }
        Ok(ids.len() as u64)
    }

    async fn set_cutoff(
        &self,
        kind: CutoffKind,
        subject: &str,
        cutoff: UnixTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revocation_cutoffs (kind, subject, cutoff) VALUES (?, ?, ?) \
             ON CONFLICT (kind, subject) DO UPDATE SET cutoff = MAX(cutoff, excluded.cutoff)",
        )
        .bind(kind.as_str())
        .bind(subject)
        .bind(cutoff.0)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn cutoffs_since(
        &self,
        since: UnixTime,
    ) -> Result<Vec<(CutoffKind, String, UnixTime)>, StoreError> {
        let rows =
            sqlx::query("SELECT kind, subject, cutoff FROM revocation_cutoffs WHERE cutoff > ?")
                .bind(since.0)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind").map_err(backend)?;
                let kind = match kind.as_str() {
                    "client" => CutoffKind::Client,
                    "subject" => CutoffKind::Subject,
                    _ => return Err(corrupt("cutoff kind")),
                };
                Ok((
                    kind,
                    row.try_get("subject").map_err(backend)?,
                    UnixTime(row.try_get("cutoff").map_err(backend)?),
                ))
            })
            .collect()
    }
}

fn audit_from_row(row: &SqliteRow) -> Result<AuditRecord, StoreError> {
    let kind: String = row.try_get("kind").map_err(backend)?;
    Ok(AuditRecord {
        id: row.try_get("id").map_err(backend)?,
        at: UnixTime(row.try_get("at").map_err(backend)?),
        kind: kind
            .parse::<AuditKind>()
            .map_err(|_| corrupt("audit kind"))?,
        success: row.try_get::<i64, _>("success").map_err(backend)? == 1,
        client_id: row.try_get("client_id").map_err(backend)?,
        user_id: row.try_get("user_id").map_err(backend)?,
        ip: row.try_get("ip").map_err(backend)?,
        user_agent: row.try_get("user_agent").map_err(backend)?,
        scope: row.try_get("scope").map_err(backend)?,
        error: row.try_get("error").map_err(backend)?,
        session: row.try_get("session").map_err(backend)?,
        detail: row.try_get("detail").map_err(backend)?,
    })
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn insert_audit(&self, records: &[AuditRecord]) -> Result<u64, StoreError> {
        // One multi-row INSERT per chunk: atomic, one round trip, and no explicit
        // transaction held open across awaits (group commit for the audit writer).
        // Chunks of a few fixed sizes only, so each connection prepares at most four
        // statements instead of one per batch length.
        let mut rest = records;
        while !rest.is_empty() {
            let size = [256, 64, 16, 4, 1]
                .into_iter()
                .find(|n| *n <= rest.len())
                .unwrap_or(1);
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let mut sql = String::from(
                "INSERT INTO audit_log (at, kind, success, client_id, user_id, ip, user_agent, scope, error, session, detail) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
            }
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q
                    .bind(r.at.0)
                    .bind(r.kind.as_str())
                    .bind(i64::from(r.success))
                    .bind(&r.client_id)
                    .bind(&r.user_id)
                    .bind(&r.ip)
                    .bind(&r.user_agent)
                    .bind(&r.scope)
                    .bind(&r.error)
                    .bind(&r.session)
                    .bind(&r.detail);
            }
            q.execute(&self.pool).await.map_err(backend)?;
        }
        Ok(records.len() as u64)
    }

    async fn search_audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut sql = String::from(
            "SELECT id, at, kind, success, client_id, user_id, ip, user_agent, scope, error, session, detail \
             FROM audit_log WHERE 1 = 1",
        );
        if f.client_id.is_some() {
            sql.push_str(" AND client_id = ?");
        }
        if f.user_id.is_some() {
            sql.push_str(" AND user_id = ?");
        }
        if f.ip.is_some() {
            sql.push_str(" AND ip = ?");
        }
        if f.kind.is_some() {
            sql.push_str(" AND kind = ?");
        }
        if f.since.is_some() {
            sql.push_str(" AND at >= ?");
        }
        if f.before_id.is_some() {
            sql.push_str(" AND id < ?");
        }
        if f.after_id.is_some() {
            sql.push_str(" AND id > ?");
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        let mut q = sqlx::query(&sql);
        if let Some(v) = &f.client_id {
            q = q.bind(v);
        }
        if let Some(v) = &f.user_id {
            q = q.bind(v);
        }
        if let Some(v) = &f.ip {
            q = q.bind(v);
        }
        if let Some(k) = f.kind {
            q = q.bind(k.as_str());
        }
        if let Some(t) = f.since {
            q = q.bind(t.0);
        }
        if let Some(id) = f.before_id {
            q = q.bind(id);
        }
        if let Some(id) = f.after_id {
            q = q.bind(id);
        }
        q = q.bind(i64::from(f.limit.clamp(1, 1000)));
        let rows = q.fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn prune_audit(&self, before: UnixTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM audit_log WHERE at < ?")
            .bind(before.0)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn hourly_audit_counts(
        &self,
        since: UnixTime,
    ) -> Result<Vec<(UnixTime, String, bool, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT (at / 3600) * 3600 AS hour, kind, success, COUNT(*) AS n FROM audit_log \
             WHERE at >= ? GROUP BY hour, kind, success ORDER BY hour",
        )
        .bind(since.0)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok((
                    UnixTime(row.try_get("hour").map_err(backend)?),
                    row.try_get("kind").map_err(backend)?,
                    row.try_get::<i64, _>("success").map_err(backend)? == 1,
                    row.try_get::<i64, _>("n").map_err(backend)?.max(0) as u64,
                ))
            })
            .collect()
    }
}

fn alert_from_row(row: &SqliteRow) -> Result<StoredAlert, StoreError> {
    let text: String = row.try_get("alert").map_err(backend)?;
    Ok(StoredAlert {
        id: row.try_get("id").map_err(backend)?,
        alert: serde_json::from_str(&text).map_err(|_| corrupt("alert"))?,
        delivered_at: row
            .try_get::<Option<i64>, _>("delivered_at")
            .map_err(backend)?
            .map(UnixTime),
        attempts: row
            .try_get::<i64, _>("attempts")
            .map_err(backend)?
            .clamp(0, i64::from(u32::MAX)) as u32,
    })
}

#[async_trait]
impl AlertStore for SqliteStore {
    async fn insert_alert(
        &self,
        alert: &serde_json::Value,
        at: UnixTime,
    ) -> Result<i64, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO alerts (at, alert, next_attempt_at) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(at.0)
        .bind(alert.to_string())
        .bind(at.0)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        ids.into_iter()
            .next()
            .ok_or_else(|| corrupt("no row returned"))
    }

    async fn list_alerts(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, alert, delivered_at, attempts FROM alerts WHERE id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(alert_from_row).collect()
    }

    async fn due_alerts(&self, now: UnixTime, limit: u32) -> Result<Vec<StoredAlert>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, alert, delivered_at, attempts FROM alerts \
             WHERE delivered_at IS NULL AND next_attempt_at <= ? ORDER BY id LIMIT ?",
        )
        .bind(now.0)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(alert_from_row).collect()
    }

    async fn mark_alert_delivered(&self, id: i64, at: UnixTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE alerts SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?")
            .bind(at.0)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn mark_alert_failed(&self, id: i64, next: UnixTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE alerts SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ?")
            .bind(next.0)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn save_privileged_seen(
        &self,
        client_id: &str,
        scopes: ScopeSet,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO privileged_scopes_seen (client_id, scopes) VALUES (?, ?) \
             ON CONFLICT (client_id) DO UPDATE SET scopes = excluded.scopes",
        )
        .bind(client_id)
        .bind(scopes.to_string())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn privileged_seen(&self) -> Result<Vec<(String, ScopeSet)>, StoreError> {
        let rows = sqlx::query("SELECT client_id, scopes FROM privileged_scopes_seen")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let scopes: String = row.try_get("scopes").map_err(backend)?;
                Ok((
                    row.try_get("client_id").map_err(backend)?,
                    ScopeSet::parse_stored(&scopes).map_err(|_| corrupt("privileged scopes"))?,
                ))
            })
            .collect()
    }

    async fn add_usage(&self, client_id: &str, hour: i64, count: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO usage_hourly (client_id, hour, count) VALUES (?, ?, ?) \
             ON CONFLICT (client_id, hour) DO UPDATE SET count = count + excluded.count",
        )
        .bind(client_id)
        .bind(hour)
        .bind(i64::try_from(count).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn usage_history(
        &self,
        client_id: &str,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<Vec<u64>, StoreError> {
        let rows = sqlx::query(
            "SELECT hour, count FROM usage_hourly WHERE client_id = ? AND hour >= ? AND hour < ?",
        )
        .bind(client_id)
        .bind(from_hour)
        .bind(to_hour)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut counts = Vec::with_capacity(rows.len());
        for row in rows {
            let hour: i64 = row.try_get("hour").map_err(backend)?;
            let count: i64 = row.try_get("count").map_err(backend)?;
            counts.push((hour, count.max(0) as u64));
        }
        Ok(usage_series(&counts, from_hour, to_hour))
    }
}
