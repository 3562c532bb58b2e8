//! The append-only audit log ([`AuditStore`]) on PostgreSQL.

use async_trait::async_trait;
use deedbolt_core::audit::{AuditFilter, AuditRecord};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ports::{AuditStore, StoreError};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use deedbolt_store_sql::rows;

use crate::{backend, Cols, PgStore, AUDIT_LOCK};

fn audit_from_row(row: &PgRow) -> Result<AuditRecord, StoreError> {
    rows::audit(&Cols(row))
}

#[async_trait]
impl AuditStore for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn prune_audit(&self, before: UnixTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM audit_log WHERE at < $1")
            .bind(before.0)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
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
