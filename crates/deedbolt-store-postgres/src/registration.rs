//! Initial access tokens of dynamic client registration ([`RegistrationTokenStore`]) on
//! PostgreSQL.

use async_trait::async_trait;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ports::{RegistrationTokenStore, StoreError};
use deedbolt_core::registration::InitialAccessToken;
use deedbolt_core::secret::SecretHash;
use deedbolt_store_sql::rows::{self, REGISTRATION_TOKEN_COLUMNS};

use crate::{backend, Cols, PgStore};

#[async_trait]
impl RegistrationTokenStore for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn insert_registration_token(
        &self,
        token: &InitialAccessToken,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO registration_tokens (id, token_hash, scopes, max_uses, uses, created_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&token.id)
        .bind(token.hash.as_bytes().to_vec())
        .bind(token.scopes.map(|s| s.to_string()))
        .bind(token.max_uses.map(i64::from))
        .bind(i64::from(token.uses))
        .bind(token.created_at.0)
        .bind(token.expires_at.0)
        .bind(token.revoked_at.map(|t| t.0))
        .execute(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict("a registration token with this id or hash")
            }
            _ => backend(e),
        })?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn list_registration_tokens(&self) -> Result<Vec<InitialAccessToken>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {REGISTRATION_TOKEN_COLUMNS} FROM registration_tokens ORDER BY created_at, seq"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|r| rows::registration_token(&Cols(r)))
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn find_registration_token(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<InitialAccessToken>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {REGISTRATION_TOKEN_COLUMNS} FROM registration_tokens WHERE token_hash = $1"
        ))
        .bind(hash.as_bytes().to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref()
            .map(|r| rows::registration_token(&Cols(r)))
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn spend_registration_token(
        &self,
        hash: &SecretHash,
        now: UnixTime,
    ) -> Result<Option<InitialAccessToken>, StoreError> {
        // One conditional statement: PostgreSQL re-checks the condition after waiting for a
        // concurrent writer's row lock, so no use is spent twice.
        let rows = sqlx::query(&format!(
            "UPDATE registration_tokens SET uses = uses + 1 \
             WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 \
               AND (max_uses IS NULL OR uses < max_uses) \
             RETURNING {REGISTRATION_TOKEN_COLUMNS}"
        ))
        .bind(hash.as_bytes().to_vec())
        .bind(now.0)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.first()
            .map(|r| rows::registration_token(&Cols(r)))
            .transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn revoke_registration_token(&self, id: &str, at: UnixTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE registration_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(at.0)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}
