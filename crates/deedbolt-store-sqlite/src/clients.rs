//! Registered clients ([`ClientStore`]) on SQLite.

use async_trait::async_trait;
use deedbolt_core::client::{stored, Client, ClientName};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::ClientId;
use deedbolt_core::ports::{ClientStore, StoreError};
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::secret::SecretHash;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::{backend, corrupt, SqliteStore};

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
        created_at: UnixTime(row.try_get("created_at").map_err(backend)?),
        updated_at: UnixTime(row.try_get("updated_at").map_err(backend)?),
    })
}

const CLIENT_COLUMNS: &str =
    "id, name, secret_hash, grant_types, scopes, redirect_uris, public, introspection, properties, created_at, updated_at";

#[async_trait]
impl ClientStore for SqliteStore {
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, grant_types, scopes, redirect_uris, public, introspection, properties, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
