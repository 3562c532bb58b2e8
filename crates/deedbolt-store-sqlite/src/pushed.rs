//! Pushed authorization requests ([`PushedRequestStore`], RFC 9126) on SQLite.

use async_trait::async_trait;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::flow::AuthorizationRequest;
use deedbolt_core::ids::ClientId;
use deedbolt_core::ports::{PushedRequestStore, StoreError};
use sqlx::Row;

use crate::{backend, from_json, to_json, SqliteStore};

#[async_trait]
impl PushedRequestStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn put_pushed(
        &self,
        key: &[u8; 32],
        request: &AuthorizationRequest,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pushed_authorizations (key_hash, client_id, request, expires_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(&key[..])
        .bind(request.client_id.as_str())
        .bind(to_json(request)?)
        .bind(expires_at.0)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn take_pushed(
        &self,
        key: &[u8; 32],
        client: &ClientId,
        now: UnixTime,
    ) -> Result<Option<AuthorizationRequest>, StoreError> {
        // One statement: of concurrent takes, exactly one deletes the row and reads it.
        // An expired request is not returned (pruning deletes it later).
        let row = sqlx::query(
            "DELETE FROM pushed_authorizations \
             WHERE key_hash = ? AND client_id = ? AND expires_at > ? RETURNING request",
        )
        .bind(&key[..])
        .bind(client.as_str())
        .bind(now.0)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .next();
        match row {
            Some(row) => {
                let text: String = row.try_get("request").map_err(backend)?;
                Ok(Some(from_json(&text, "pushed authorization request")?))
            }
            None => Ok(None),
        }
    }
}
