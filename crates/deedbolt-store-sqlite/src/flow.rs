//! The authorization-code flow ([`FlowStore`]) on SQLite: pending requests, sessions,
//! consents, codes and the revocation list.

use async_trait::async_trait;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::flow::{AuthorizationRequest, CodeGrant};
use deedbolt_core::ids::ClientId;
use deedbolt_core::ids::{TokenId, UserId};
use deedbolt_core::ports::{FlowStore, Redemption, Session, StoreError};
use deedbolt_core::scope::ScopeSet;
use sqlx::Row;

use crate::{backend, corrupt, from_json, to_json, SqliteStore};

#[async_trait]
impl FlowStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn delete_pending(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM pending_authorizations WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn delete_session(&self, id_hash: &[u8; 32]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(&id_hash[..])
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn revoke_client_consents(&self, client: &ClientId) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM consents WHERE client_id = ?")
            .bind(client.as_str())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn peek_code(&self, hash: &[u8; 32]) -> Result<Option<CodeGrant>, StoreError> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT grant_json FROM auth_codes WHERE code_hash = ?")
                .bind(&hash[..])
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        text.map(|t| from_json(&t, "code grant")).transpose()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn revoked_since(
        &self,
        cursor: i64,
    ) -> Result<(Vec<(TokenId, UnixTime)>, i64), StoreError> {
        // One row per page, not one per revoked token: sqlx hands every row from its
        // worker thread to the caller separately, which made loading 10^5 revocations at
        // start-up take 190 ms. The page comes back as one string, `jti TAB expires_at`
        // lines (neither a tab nor a newline can be in an id), in any order (a set is
        // built from it), with the page's highest seq as the next cursor.
        let (page, next, n): (String, i64, i64) = sqlx::query_as(
            "SELECT COALESCE(group_concat(jti || char(9) || expires_at, char(10)), ''), \
                    COALESCE(MAX(seq), ?), COUNT(*) \
             FROM (SELECT seq, jti, expires_at FROM revoked_tokens WHERE seq > ? \
                   ORDER BY seq LIMIT 50000)",
        )
        .bind(cursor)
        .bind(cursor)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        for line in page.split('\n').filter(|l| !l.is_empty()) {
            let (jti, expires_at) = line
                .split_once('\t')
                .ok_or_else(|| corrupt("revoked jti"))?;
            out.push((
                TokenId::parse(jti).map_err(|_| corrupt("revoked jti"))?,
                UnixTime(expires_at.parse().map_err(|_| corrupt("revoked expiry"))?),
            ));
        }
        Ok((out, next))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn prune_expired(&self, now: UnixTime) -> Result<(), StoreError> {
        for sql in [
            "DELETE FROM pending_authorizations WHERE expires_at <= ?",
            "DELETE FROM pushed_authorizations WHERE expires_at <= ?",
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
