//! The append-only audit log ([`AuditStore`]) on SQLite.

use async_trait::async_trait;
use deedbolt_core::audit::{AuditFilter, AuditRecord};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ports::{AuditStore, StoreError};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use deedbolt_store_sql::rows;

use crate::{backend, Cols, SqliteStore};

fn audit_from_row(row: &SqliteRow) -> Result<AuditRecord, StoreError> {
    rows::audit(&Cols(row))
}

/// The most rows in one INSERT (11 parameters each, well under SQLite's 32,766); the audit
/// writer's batches are this size at most.
const MAX_ROWS: usize = 512;

#[async_trait]
impl AuditStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn insert_audit(&self, records: &[AuditRecord]) -> Result<u64, StoreError> {
        // One multi-row INSERT per batch (group commit for the audit writer) on the writer's
        // own connection: atomic, one commit, one round trip to sqlx's worker, and no
        // transaction held open across awaits (the write lock is never held while this
        // task waits to be polled). A commit rewrites the last page of the table and of
        // each index, so one per batch rather than one per fixed-size chunk writes fewer
        // pages to the WAL. Statements of other sizes than a full batch are not kept
        // prepared, so the connection's statement cache holds one of these at most.
        for chunk in records.chunks(MAX_ROWS) {
            let mut sql = String::with_capacity(130 + 36 * chunk.len());
            sql.push_str(
                "INSERT INTO audit_log (at, kind, success, client_id, user_id, ip, user_agent, scope, error, session, detail) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
            }
            let mut q = sqlx::query(&sql).persistent(chunk.len() == MAX_ROWS);
            for r in chunk {
                q = q
                    .bind(r.at.0)
                    .bind(r.kind.as_str())
                    .bind(i64::from(r.success))
                    .bind(&r.client_id)
                    .bind(&r.user_id)
                    .bind(&r.ip)
                    .bind(&r.user_agent)
                    .bind(&r.scope)
                    .bind(&r.error)
                    .bind(&r.session)
                    .bind(&r.detail);
            }
            q.execute(&self.audit).await.map_err(backend)?;
        }
        Ok(records.len() as u64)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn search_audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut sql = String::from(
            "SELECT id, at, kind, success, client_id, user_id, ip, user_agent, scope, error, session, detail \
             FROM audit_log WHERE 1 = 1",
        );
        if f.client_id.is_some() {
            sql.push_str(" AND client_id = ?");
        }
        if f.user_id.is_some() {
            sql.push_str(" AND user_id = ?");
        }
        if f.ip.is_some() {
            sql.push_str(" AND ip = ?");
        }
        if f.kind.is_some() {
            sql.push_str(" AND kind = ?");
        }
        if f.since.is_some() {
            sql.push_str(" AND at >= ?");
        }
        if f.before_id.is_some() {
            sql.push_str(" AND id < ?");
        }
        if f.after_id.is_some() {
            sql.push_str(" AND id > ?");
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        let mut q = sqlx::query(&sql);
        if let Some(v) = &f.client_id {
            q = q.bind(v);
        }
        if let Some(v) = &f.user_id {
            q = q.bind(v);
        }
        if let Some(v) = &f.ip {
            q = q.bind(v);
        }
        if let Some(k) = f.kind {
            q = q.bind(k.as_str());
        }
        if let Some(t) = f.since {
            q = q.bind(t.0);
        }
        if let Some(id) = f.before_id {
            q = q.bind(id);
        }
        if let Some(id) = f.after_id {
            q = q.bind(id);
        }
        q = q.bind(i64::from(f.limit.clamp(1, 1000)));
        let rows = q.fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter().map(audit_from_row).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn prune_audit(&self, before: UnixTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM audit_log WHERE at < ?")
            .bind(before.0)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn hourly_audit_counts(
        &self,
        since: UnixTime,
    ) -> Result<Vec<(UnixTime, String, bool, u64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT (at / 3600) * 3600 AS hour, kind, success, COUNT(*) AS n FROM audit_log \
             WHERE at >= ? GROUP BY hour, kind, success ORDER BY hour",
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
                    row.try_get::<i64, _>("success").map_err(backend)? == 1,
                    row.try_get::<i64, _>("n").map_err(backend)?.max(0) as u64,
                ))
            })
            .collect()
    }
}
