//! Registered clients ([`ClientStore`]) on SQLite.

use async_trait::async_trait;
use deedbolt_core::client::{stored, Client};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::ClientId;
use deedbolt_core::ports::{ClientStore, StoreError};
use deedbolt_core::secret::SecretHash;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use deedbolt_store_sql::rows::{self, CLIENT_COLUMNS};

use crate::{backend, Cols, SqliteStore};

fn client_from_row(row: &SqliteRow) -> Result<Client, StoreError> {
    rows::client(&Cols(row))
}

#[async_trait]
impl ClientStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, grant_types, scopes, redirect_uris, public, introspection, properties, id_token_alg, metadata, registration_token_hash, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(client.id.as_str())
        .bind(client.name.as_str())
        .bind(client.secret_hash.as_ref().map(|h| h.as_bytes().to_vec()))
        .bind(stored::grant_types(&client.grant_types))
        .bind(client.scopes.to_string())
        .bind(stored::redirect_uris(&client.redirect_uris))
        .bind(i64::from(client.kind.is_public()))
        .bind(i64::from(client.allow_introspection))
        .bind(stored::properties(client.properties.as_deref()))
        .bind(client.id_token_alg.as_str())
        .bind(rows::client_metadata(client)?)
        .bind(rows::client_registration_token(client))
        .bind(client.created_at.0)
        .bind(client.updated_at.0)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients ORDER BY created_at, rowid"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(client_from_row).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE clients SET name = ?, secret_hash = ?, grant_types = ?, scopes = ?, \
             redirect_uris = ?, public = ?, introspection = ?, properties = ?, id_token_alg = ?, \
             metadata = ?, registration_token_hash = ?, updated_at = ? WHERE id = ?",
        )
        .bind(client.name.as_str())
        .bind(client.secret_hash.as_ref().map(|h| h.as_bytes().to_vec()))
        .bind(stored::grant_types(&client.grant_types))
        .bind(client.scopes.to_string())
        .bind(stored::redirect_uris(&client.redirect_uris))
        .bind(i64::from(client.kind.is_public()))
        .bind(i64::from(client.allow_introspection))
        .bind(stored::properties(client.properties.as_deref()))
        .bind(client.id_token_alg.as_str())
        .bind(rows::client_metadata(client)?)
        .bind(rows::client_registration_token(client))
        .bind(client.updated_at.0)
        .bind(client.id.as_str())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM clients WHERE id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn clients_generation(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT value FROM change_counters WHERE name = 'clients'")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        row.try_get("value").map_err(backend)
    }
}
