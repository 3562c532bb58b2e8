//! Pushed authorization requests ([`PushedRequestStore`], RFC 9126) on PostgreSQL.

use async_trait::async_trait;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::flow::AuthorizationRequest;
use deedbolt_core::ids::ClientId;
use deedbolt_core::ports::{PushedRequestStore, StoreError};
use sqlx::Row;

use crate::{backend, from_json, to_json, PgStore};

#[async_trait]
impl PushedRequestStore for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn put_pushed(
        &self,
        key: &[u8; 32],
        request: &AuthorizationRequest,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO pushed_authorizations (key_hash, client_id, request, expires_at) \
             VALUES ($1, $2, $3, $4)",
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
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
             WHERE key_hash = $1 AND client_id = $2 AND expires_at > $3 RETURNING request",
        )
        .bind(&key[..])
        .bind(client.as_str())
        .bind(now.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        match row {
            Some(row) => {
                let text: String = row.try_get("request").map_err(backend)?;
                Ok(Some(from_json(&text, "pushed authorization request")?))
            }
            None => Ok(None),
        }
    }
}
