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
#![forbid(unsafe_code, unused_must_use)]
#![warn(missing_docs)]

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
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};
use zeroize::Zeroizing;

mod crm;
#[cfg(feature = "testing")]
pub mod testing;

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
        Self::connect_with_pool(options, max_connections).await
    }

    /// Connects with parsed options and migrates.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self, OpenError> {
        Self::connect_with_pool(options, DEFAULT_MAX_CONNECTIONS).await
    }

    async fn connect_with_pool(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, OpenError> {
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

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn client_from_row(row: &PgRow) -> Result<Client, StoreError> {
    let id: String = row.try_get("id").map_err(backend)?;
    let name: String = row.try_get("name").map_err(backend)?;
    let hash: Option<Vec<u8>> = row.try_get("secret_hash").map_err(backend)?;
    let grants: String = row.try_get("grant_types").map_err(backend)?;
    let scopes: String = row.try_get("scopes").map_err(backend)?;
    let redirects: String = row.try_get("redirect_uris").map_err(backend)?;
    let public: bool = row.try_get("public").map_err(backend)?;
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
        public,
        allow_introspection: row.try_get("introspection").map_err(backend)?,
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
impl ClientStore for PgStore {
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, grant_types, scopes, redirect_uris, public, introspection, properties, id_token_alg, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(client.id.as_str())
        .bind(client.name.as_str())
        .bind(client.secret_hash.as_ref().map(|h| h.as_bytes().to_vec()))
        .bind(stored::grant_types(&client.grant_types))
        .bind(client.scopes.to_string())
        .bind(stored::redirect_uris(&client.redirect_uris))
        .bind(client.public)
        .bind(client.allow_introspection)
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
            "SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients ORDER BY created_at, seq"
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
        let done =
            sqlx::query("UPDATE clients SET secret_hash = $1, updated_at = $2 WHERE id = $3")
                .bind(hash.as_bytes().to_vec())
                .bind(at.0)
                .bind(id.as_str())
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM clients WHERE id = $1")
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

fn material_parts(material: &KeyMaterial) -> (&[u8], bool) {
    match material {
        KeyMaterial::Sealed(bytes) => (bytes, true),
        KeyMaterial::Plain(bytes) => (bytes, false),
    }
}

fn material_from(bytes: Vec<u8>, sealed: bool) -> KeyMaterial {
    if sealed {
        KeyMaterial::Sealed(bytes)
    } else {
        KeyMaterial::Plain(Zeroizing::new(bytes))
    }
}

#[async_trait]
impl KeyStore for PgStore {
    async fn rotate_in(&self, key: &StoredKey, now: UnixTime) -> Result<(), StoreError> {
        // Concurrent rotations take turns, as SQLite's single writer makes them: each
        // retires the key the one before it made current (without the lock the second
        // would find no current key to retire and collide on `signing_keys_one_current_per_alg`).
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(KEY_ROTATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "UPDATE signing_keys SET is_current = NULL, retired_at = $1 WHERE is_current AND alg = $2",
        )
        .bind(now.0)
        .bind(key.alg.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let (bytes, sealed) = material_parts(&key.material);
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key, sealed, created_at, retired_at, is_current) \
             VALUES ($1, $2, $3, $4, $5, NULL, TRUE)",
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
             ORDER BY is_current DESC NULLS LAST, created_at DESC, seq DESC",
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
            sqlx::query("DELETE FROM signing_keys WHERE is_current IS NULL AND retired_at < $1")
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
            "INSERT INTO server_secrets (name, value, sealed) VALUES ($1, $2, $3) \
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
impl Health for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

fn user_from_row(row: &PgRow) -> Result<User, StoreError> {
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
impl UserStore for PgStore {
    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
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
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY created_at, seq"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_role(&self, id: &UserId, role: Role) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, id: &UserId) -> Result<bool, StoreError> {
        // Sessions and consents go with the row (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
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

#[async_trait]
impl FlowStore for PgStore {
    async fn put_pending(
        &self,
        id: &str,
        request: &AuthorizationRequest,
        expires_at: UnixTime,
        owner: &str,
        max_per_owner: usize,
    ) -> Result<(), StoreError> {
        let keep = i64::try_from(max_per_owner).unwrap_or(i64::MAX);
        // Insert and trim in one transaction under a lock per owner: concurrent requests
        // of one owner cannot both see room and leave more than `max_per_owner` rows.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(owner)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO pending_authorizations (id, request, expires_at, owner) VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(to_json(request)?)
        .bind(expires_at.0)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        // Newest first by seq (insertion order); everything past the newest `keep` goes.
        sqlx::query(
            "DELETE FROM pending_authorizations WHERE owner = $1 AND seq IN \
             (SELECT seq FROM pending_authorizations WHERE owner = $1 ORDER BY seq DESC OFFSET $2)",
        )
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
            "SELECT request FROM pending_authorizations WHERE id = $1 AND expires_at > $2",
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
        sqlx::query("DELETE FROM pending_authorizations WHERE id = $1")
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
            "INSERT INTO sessions (id_hash, user_id, auth_time, csrf, expires_at) VALUES ($1, $2, $3, $4, $5)",
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
            "SELECT user_id, auth_time, csrf, expires_at FROM sessions WHERE id_hash = $1 AND expires_at > $2",
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
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
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
        let row = sqlx::query("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2")
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
        // Read-modify-write under the row's lock. The first consent inserts the row; if it
        // exists already (or a concurrent first consent wins the insert), the row is locked
        // and merged, so no concurrent grant is lost.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let inserted = sqlx::query(
            "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, client_id) DO NOTHING",
        )
        .bind(user.as_str())
        .bind(client.as_str())
        .bind(scope.to_string())
        .bind(at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if inserted.rows_affected() == 1 {
            return tx.commit().await.map_err(backend);
        }
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2 FOR UPDATE",
        )
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
            "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4) \
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
            Some(c) => sqlx::query("DELETE FROM consents WHERE user_id = $1 AND client_id = $2")
                .bind(user.as_str())
                .bind(c.as_str()),
            None => sqlx::query("DELETE FROM consents WHERE user_id = $1").bind(user.as_str()),
        }
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn insert_code(&self, hash: &[u8; 32], grant: &CodeGrant) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO auth_codes (code_hash, grant_json, expires_at) VALUES ($1, $2, $3)",
        )
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
            sqlx::query_scalar("SELECT grant_json FROM auth_codes WHERE code_hash = $1")
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
            "UPDATE auth_codes SET redeemed_at = $1 WHERE code_hash = $2 AND redeemed_at IS NULL \
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
            "UPDATE auth_codes SET replayed = TRUE WHERE code_hash = $1 RETURNING access_jti, access_exp",
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
        let replayed: Option<bool> = sqlx::query_scalar(
            "UPDATE auth_codes SET access_jti = $1, access_exp = $2 WHERE code_hash = $3 RETURNING replayed",
        )
        .bind(jti.as_str())
        .bind(expires_at.0)
        .bind(&hash[..])
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?.into_iter().next();
        Ok(replayed == Some(true))
    }

    async fn revoke_token(
        &self,
        jti: &TokenId,
        expires_at: UnixTime,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        lock_revocations(&mut tx).await?;
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti.as_str())
        .bind(expires_at.0)
        .bind(at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn revoked_since(
        &self,
        cursor: i64,
    ) -> Result<(Vec<(TokenId, UnixTime)>, i64), StoreError> {
        let rows = sqlx::query(
            "SELECT seq, jti, expires_at FROM revoked_tokens WHERE seq > $1 ORDER BY seq LIMIT 10000",
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
            "DELETE FROM pending_authorizations WHERE expires_at <= $1",
            "DELETE FROM sessions WHERE expires_at <= $1",
            // Spent codes are kept a little past expiry so that a late replay is still
            // recognised (and revokes) rather than looking unknown.
            "DELETE FROM auth_codes WHERE expires_at <= $1 - 600",
            "DELETE FROM revoked_tokens WHERE expires_at <= $1",
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
impl RefreshStore for PgStore {
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
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
            "INSERT INTO refresh_tokens (token_hash, family_id, state, issued_at, expires_at) VALUES ($1, $2, 'active', $3, $4)",
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
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id WHERE t.token_hash = $1",
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
            "UPDATE refresh_tokens SET state = 'rotated', rotated_at = $1 \
             WHERE token_hash = $2 AND state = 'active' RETURNING family_id",
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
            "INSERT INTO refresh_tokens (token_hash, family_id, state, issued_at, expires_at) VALUES ($1, $2, 'active', $3, $4)",
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
        // The family row's share lock orders this against `revoke_family` (which updates
        // that row first): either the revocation waits for this insert and then revokes
        // the token too, or this waits for the revocation and sees `revoked_at`.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let revoked: Option<Option<i64>> =
            sqlx::query_scalar("SELECT revoked_at FROM refresh_families WHERE id = $1 FOR SHARE")
                .bind(family_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        sqlx::query(
            "INSERT INTO family_access_tokens (family_id, jti, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(family_id)
        .bind(jti.as_str())
        .bind(expires_at.0)
        .execute(&mut *tx)
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
            "UPDATE refresh_families SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
        )
        .bind(now.0)
        .bind(family_id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("UPDATE refresh_tokens SET state = 'revoked' WHERE family_id = $1 AND state != 'revoked'")
            .bind(family_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let rows = sqlx::query("SELECT jti, expires_at FROM family_access_tokens WHERE family_id = $1 AND expires_at > $2")
            .bind(family_id)
            .bind(now.0)
            .fetch_all(&mut *tx)
            .await
            .map_err(backend)?;
        if !rows.is_empty() {
            lock_revocations(&mut tx).await?;
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let jti: String = row.try_get("jti").map_err(backend)?;
            let exp = UnixTime(row.try_get("expires_at").map_err(backend)?);
            let jti = TokenId::parse(&jti).map_err(|_| corrupt("family jti"))?;
            sqlx::query(
                "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING",
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
        sqlx::query_scalar("SELECT family_id FROM family_access_tokens WHERE jti = $1")
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
            "SELECT id FROM refresh_families WHERE {column} = $1 AND revoked_at IS NULL"
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
            "INSERT INTO revocation_cutoffs (kind, subject, cutoff) VALUES ($1, $2, $3) \
             ON CONFLICT (kind, subject) DO UPDATE SET cutoff = GREATEST(revocation_cutoffs.cutoff, excluded.cutoff)",
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
            sqlx::query("SELECT kind, subject, cutoff FROM revocation_cutoffs WHERE cutoff > $1")
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

fn audit_from_row(row: &PgRow) -> Result<AuditRecord, StoreError> {
    let kind: String = row.try_get("kind").map_err(backend)?;
    Ok(AuditRecord {
        id: row.try_get("id").map_err(backend)?,
        at: UnixTime(row.try_get("at").map_err(backend)?),
        kind: kind
            .parse::<AuditKind>()
            .map_err(|_| corrupt("audit kind"))?,
        success: row.try_get("success").map_err(backend)?,
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
impl AuditStore for PgStore {
    async fn insert_audit(&self, records: &[AuditRecord]) -> Result<u64, StoreError> {
        if records.is_empty() {
            return Ok(0);
        }
        // One statement for the whole batch: atomic, one round trip, one prepared
        // statement whatever the batch size (columns travel as arrays and are unnested).
        let mut at = Vec::with_capacity(records.len());
        let mut kind = Vec::with_capacity(records.len());
        let mut success = Vec::with_capacity(records.len());
        let mut text: [Vec<Option<String>>; 8] = Default::default();
        for r in records {
            at.push(r.at.0);
            kind.push(r.kind.as_str());
            success.push(r.success);
            for (column, value) in text.iter_mut().zip([
                &r.client_id,
                &r.user_id,
                &r.ip,
                &r.user_agent,
                &r.scope,
                &r.error,
                &r.session,
                &r.detail,
            ]) {
                column.push(value.clone());
            }
        }
        let [client_id, user_id, ip, user_agent, scope, error, session, detail] = text;
        // Under the audit lock, batches commit in id order: `audit tail --follow` reads by
        // `after_id` and must not skip a batch of another instance that committed late.
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let done = sqlx::query(
            "INSERT INTO audit_log (at, kind, success, client_id, user_id, ip, user_agent, scope, error, session, detail) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::BOOLEAN[], $4::TEXT[], $5::TEXT[], \
             $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[])",
        )
        .bind(at)
        .bind(kind)
        .bind(success)
        .bind(client_id)
        .bind(user_id)
        .bind(ip)
        .bind(user_agent)
        .bind(scope)
        .bind(error)
        .bind(session)
        .bind(detail)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(done.rows_affected())
    }

    async fn search_audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut qb = QueryBuilder::<Postgres>::new(
            "SELECT id, at, kind, success, client_id, user_id, ip, user_agent, scope, error, session, detail \
             FROM audit_log WHERE TRUE",
        );
        if let Some(v) = &f.client_id {
            qb.push(" AND client_id = ").push_bind(v);
        }
        if let Some(v) = &f.user_id {
            qb.push(" AND user_id = ").push_bind(v);
        }
        if let Some(v) = &f.ip {
            qb.push(" AND ip = ").push_bind(v);
        }
        if let Some(k) = f.kind {
            qb.push(" AND kind = ").push_bind(k.as_str());
        }
        if let Some(t) = f.since {
            qb.push(" AND at >= ").push_bind(t.0);
        }
        if let Some(id) = f.before_id {
            qb.push(" AND id < ").push_bind(id);
        }
        if let Some(id) = f.after_id {
            qb.push(" AND id > ").push_bind(id);
        }
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(f.limit.clamp(1, 1000)));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn prune_audit(&self, before: UnixTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM audit_log WHERE at < $1")
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
             WHERE at >= $1 GROUP BY hour, kind, success ORDER BY hour",
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
                    row.try_get::<bool, _>("success").map_err(backend)?,
                    row.try_get::<i64, _>("n").map_err(backend)?.max(0) as u64,
                ))
            })
            .collect()
    }
}

fn alert_from_row(row: &PgRow) -> Result<StoredAlert, StoreError> {
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
impl AlertStore for PgStore {
    async fn insert_alert(
        &self,
        alert: &serde_json::Value,
        at: UnixTime,
    ) -> Result<i64, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO alerts (at, alert, next_attempt_at) VALUES ($1, $2::jsonb, $3) RETURNING id",
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
            "SELECT id, alert::text AS alert, delivered_at, attempts FROM alerts WHERE id < $1 ORDER BY id DESC LIMIT $2",
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
            "SELECT id, alert::text AS alert, delivered_at, attempts FROM alerts \
             WHERE delivered_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT $2",
        )
        .bind(now.0)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(alert_from_row).collect()
    }

    async fn mark_alert_delivered(&self, id: i64, at: UnixTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE alerts SET delivered_at = $1, attempts = attempts + 1 WHERE id = $2")
            .bind(at.0)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn mark_alert_failed(&self, id: i64, next: UnixTime) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alerts SET attempts = attempts + 1, next_attempt_at = $1 WHERE id = $2",
        )
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
            "INSERT INTO privileged_scopes_seen (client_id, scopes) VALUES ($1, $2) \
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
            "INSERT INTO usage_hourly (client_id, hour, count) VALUES ($1, $2, $3) \
             ON CONFLICT (client_id, hour) DO UPDATE SET count = usage_hourly.count + excluded.count",
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
            "SELECT hour, count FROM usage_hourly WHERE client_id = $1 AND hour >= $2 AND hour < $3",
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
