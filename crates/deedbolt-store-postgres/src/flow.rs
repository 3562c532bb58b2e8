//! The authorization-code flow ([`FlowStore`]) on PostgreSQL: pending requests, sessions,
//! consents, codes and the revocation list.

use async_trait::async_trait;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::flow::{AuthorizationRequest, CodeGrant};
use deedbolt_core::ids::ClientId;
use deedbolt_core::ids::{TokenId, UserId};
use deedbolt_core::ports::{FlowStore, Redemption, Session, StoreError};
use deedbolt_core::scope::ScopeSet;
use sqlx::Row;

use crate::{backend, corrupt, from_json, lock_revocations, to_json, PgStore};

#[async_trait]
impl FlowStore for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn delete_pending(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM pending_authorizations WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn delete_session(&self, id_hash: &[u8; 32]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(&id_hash[..])
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn revoke_client_consents(&self, client: &ClientId) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM consents WHERE client_id = $1")
            .bind(client.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn peek_code(&self, hash: &[u8; 32]) -> Result<Option<CodeGrant>, StoreError> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT grant_json FROM auth_codes WHERE code_hash = $1")
                .bind(&hash[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        text.map(|t| from_json(&t, "code grant")).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn prune_expired(&self, now: UnixTime) -> Result<(), StoreError> {
        for sql in [
            "DELETE FROM pending_authorizations WHERE expires_at <= $1",
            "DELETE FROM pushed_authorizations WHERE expires_at <= $1",
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
