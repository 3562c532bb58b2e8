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
use deedbolt_core::client::{Client, ClientName, GrantType};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::{ClientId, KeyId};
use deedbolt_core::ports::{
    ClientStore, Health, KeyMaterial, KeyStore, PropertyStore, StoreError, StoredKey,
};
use deedbolt_core::property::{NewProperty, Property};
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::secret::SecretHash;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use zeroize::Zeroizing;

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
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database file at `path`.
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
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
    let secret_hash = match hash {
        Some(bytes) => Some(SecretHash::from_bytes(&bytes).ok_or_else(|| corrupt("secret_hash"))?),
        None => None,
    };
    let grant_types = grants
        .split(' ')
        .filter(|g| !g.is_empty())
        .map(GrantType::from_str)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| corrupt("grant_types"))?;
    Ok(Client {
        id: ClientId::parse(&id).map_err(|_| corrupt("client id"))?,
        name: ClientName::parse(&name).map_err(|_| corrupt("client name"))?,
        secret_hash,
        grant_types,
        scopes: if scopes.is_empty() {
            ScopeSet::empty()
        } else {
            scopes.parse().map_err(|_| corrupt("scopes"))?
        },
        created_at: UnixTime(row.try_get("created_at").map_err(backend)?),
        updated_at: UnixTime(row.try_get("updated_at").map_err(backend)?),
    })
}

const CLIENT_COLUMNS: &str = "id, name, secret_hash, grant_types, scopes, created_at, updated_at";

#[async_trait]
impl ClientStore for SqliteStore {
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        let grants: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, grant_types, scopes, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(client.id.as_str())
        .bind(client.name.as_str())
        .bind(client.secret_hash.as_ref().map(|h| h.as_bytes().to_vec()))
        .bind(grants.join(" "))
        .bind(client.scopes.to_string())
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
            "UPDATE signing_keys SET is_current = NULL, retired_at = ? WHERE is_current = 1",
        )
        .bind(now.0)
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
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(material_from(
            row.try_get("value").map_err(backend)?,
            row.try_get("sealed").map_err(backend)?,
        ))
    }
}

fn property_from_row(row: &SqliteRow) -> Result<Property, StoreError> {
    let kind: String = row.try_get("kind").map_err(backend)?;
    let units: i64 = row.try_get("units").map_err(backend)?;
    Ok(Property {
        id: row.try_get("id").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        address: row.try_get("address").map_err(backend)?,
        kind: kind.parse().map_err(|()| corrupt("property kind"))?,
        units: u32::try_from(units).map_err(|_| corrupt("units"))?,
        created_at: UnixTime(row.try_get("created_at").map_err(backend)?),
        created_by: row.try_get("created_by").map_err(backend)?,
    })
}

#[async_trait]
impl PropertyStore for SqliteStore {
    async fn create_property(
        &self,
        new: &NewProperty,
        created_by: &str,
        at: UnixTime,
    ) -> Result<Property, StoreError> {
        let row = sqlx::query(
            "INSERT INTO properties (name, address, kind, units, created_at, created_by) \
             VALUES (?, ?, ?, ?, ?, ?) \
             RETURNING id, name, address, kind, units, created_at, created_by",
        )
        .bind(&new.name)
        .bind(&new.address)
        .bind(new.kind.as_str())
        .bind(i64::from(new.units))
        .bind(at.0)
        .bind(created_by)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        property_from_row(&row)
    }

    async fn find_property(&self, id: i64) -> Result<Option<Property>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, address, kind, units, created_at, created_by FROM properties WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(property_from_row).transpose()
    }

    async fn list_properties(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Property>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, address, kind, units, created_at, created_by FROM properties \
             WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after.unwrap_or(0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(property_from_row).collect()
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
