//! Alerts, their webhook outbox and per-client usage ([`AlertStore`]) on SQLite.

use async_trait::async_trait;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ports::{usage_series, AlertStore, StoreError, StoredAlert};
use deedbolt_core::scope::ScopeSet;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use deedbolt_store_sql::rows;

use crate::{backend, corrupt, Cols, SqliteStore};

fn alert_from_row(row: &SqliteRow) -> Result<StoredAlert, StoreError> {
    rows::alert(&Cols(row))
}

#[async_trait]
impl AlertStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn insert_alert(
        &self,
        alert: &serde_json::Value,
        at: UnixTime,
    ) -> Result<i64, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO alerts (at, alert, next_attempt_at) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(at.0)
        .bind(alert.to_string())
        .bind(at.0)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        ids.into_iter()
            .next()
            .ok_or_else(|| corrupt("no row returned"))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn list_alerts(
        &self,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredAlert>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, alert, delivered_at, attempts FROM alerts WHERE id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(alert_from_row).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn due_alerts(&self, now: UnixTime, limit: u32) -> Result<Vec<StoredAlert>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, alert, delivered_at, attempts FROM alerts \
             WHERE delivered_at IS NULL AND next_attempt_at <= ? ORDER BY id LIMIT ?",
        )
        .bind(now.0)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter().map(alert_from_row).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn mark_alert_delivered(&self, id: i64, at: UnixTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE alerts SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?")
            .bind(at.0)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn mark_alert_failed(&self, id: i64, next: UnixTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE alerts SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ?")
            .bind(next.0)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn save_privileged_seen(
        &self,
        client_id: &str,
        scopes: ScopeSet,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO privileged_scopes_seen (client_id, scopes) VALUES (?, ?) \
             ON CONFLICT (client_id) DO UPDATE SET scopes = excluded.scopes",
        )
        .bind(client_id)
        .bind(scopes.to_string())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn privileged_seen(&self) -> Result<Vec<(String, ScopeSet)>, StoreError> {
        let rows = sqlx::query("SELECT client_id, scopes FROM privileged_scopes_seen")
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let scopes: String = row.try_get("scopes").map_err(backend)?;
                Ok((
                    row.try_get("client_id").map_err(backend)?,
                    ScopeSet::parse_stored(&scopes).map_err(|_| corrupt("privileged scopes"))?,
                ))
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn add_usage(&self, client_id: &str, hour: i64, count: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO usage_hourly (client_id, hour, count) VALUES (?, ?, ?) \
             ON CONFLICT (client_id, hour) DO UPDATE SET count = count + excluded.count",
        )
        .bind(client_id)
        .bind(hour)
        .bind(i64::try_from(count).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "sqlite"))]
    async fn usage_history(
        &self,
        client_id: &str,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<Vec<u64>, StoreError> {
        let rows = sqlx::query(
            "SELECT hour, count FROM usage_hourly WHERE client_id = ? AND hour >= ? AND hour < ?",
        )
        .bind(client_id)
        .bind(from_hour)
        .bind(to_hour)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut counts = Vec::with_capacity(rows.len());
        for row in rows {
            let hour: i64 = row.try_get("hour").map_err(backend)?;
            let count: i64 = row.try_get("count").map_err(backend)?;
            counts.push((hour, count.max(0) as u64));
        }
        Ok(usage_series(&counts, from_hour, to_hour))
    }
}
