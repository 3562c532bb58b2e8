//! Refresh-token families and revocation cutoffs ([`RefreshStore`]) on SQLite.

use async_trait::async_trait;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::ClientId;
use deedbolt_core::ids::{TokenId, UserId};
use deedbolt_core::ports::{CutoffKind, NewFamily, RefreshStore, StoreError};
use deedbolt_core::refresh::{RefreshRecord, TokenState};
use deedbolt_core::scope::ScopeSet;
use sqlx::Row;

use crate::{backend, corrupt, SqliteStore};

#[async_trait]
impl RefreshStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn create_family(
        &self,
        family: &NewFamily,
        token_hash: &[u8; 32],
        issued_at: UnixTime,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO refresh_families (id, client_id, user_id, scope, auth_time, created_at, expires_at, dpop_jkt) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&family.family_id)
        .bind(family.client_id.as_str())
        .bind(family.user_id.as_str())
        .bind(family.scope.to_string())
        .bind(family.auth_time.0)
        .bind(issued_at.0)
        .bind(family.expires_at.0)
        .bind(family.dpop_jkt.as_deref())
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn find_refresh(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT t.family_id, t.state, t.issued_at, t.expires_at, t.rotated_at, \
                    f.client_id, f.user_id, f.scope, f.auth_time, f.expires_at AS family_expires_at, f.revoked_at, f.dpop_jkt \
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
            dpop_jkt: row.try_get("dpop_jkt").map_err(backend)?,
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn bind_family_key(&self, family_id: &str, jkt: &str) -> Result<bool, StoreError> {
        // The conditional update is the lock: only an unbound family takes a key.
        let bound = sqlx::query(
            "UPDATE refresh_families SET dpop_jkt = ? WHERE id = ? AND dpop_jkt IS NULL",
        )
        .bind(jkt)
        .bind(family_id)
        .execute(&self.pool)
        .await
        .map_err(backend)?
        .rows_affected();
        if bound == 1 {
            return Ok(true);
        }
        // Already bound (or unknown): bound to this key counts as bound.
        let current: Option<Option<String>> =
            sqlx::query_scalar("SELECT dpop_jkt FROM refresh_families WHERE id = ?")
                .bind(family_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(current.flatten().as_deref() == Some(jkt))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn family_of_access(&self, jti: &TokenId) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT family_id FROM family_access_tokens WHERE jti = ?")
            .bind(jti.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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
