//! Signing keys and server secrets ([`KeyStore`]) on PostgreSQL.

use async_trait::async_trait;
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::KeyId;
use deedbolt_core::ports::{KeyMaterial, KeyStore, StoreError, StoredKey};
use sqlx::Row;
use zeroize::Zeroizing;

use crate::{backend, corrupt, PgStore, KEY_ROTATION_LOCK};

fn material_parts(material: &KeyMaterial) -> (&[u8], bool) {
    match material {
        KeyMaterial::Sealed(bytes) => (bytes, true),
        KeyMaterial::Plain(bytes) => (bytes, false),
    }
}

fn material_from(bytes: Vec<u8>, sealed: bool) -> KeyMaterial {
    if sealed {
        KeyMaterial::Sealed(bytes)
    } else {
        KeyMaterial::Plain(Zeroizing::new(bytes))
    }
}

#[async_trait]
impl KeyStore for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn rotate_in(&self, key: &StoredKey, now: UnixTime) -> Result<(), StoreError> {
        // Concurrent rotations take turns, as SQLite's single writer makes them: each
        // retires the key the one before it made current (without the lock the second would
        // find no current key to retire and collide on `signing_keys_one_current_per_alg`).
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(KEY_ROTATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "UPDATE signing_keys SET is_current = NULL, retired_at = $1 WHERE is_current AND alg = $2",
        )
        .bind(now.0)
        .bind(key.alg.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let (bytes, sealed) = material_parts(&key.material);
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key, sealed, created_at, retired_at, is_current) \
             VALUES ($1, $2, $3, $4, $5, NULL, TRUE)",
        )
        .bind(key.kid.as_str())
        .bind(key.alg.as_str())
        .bind(bytes)
        .bind(sealed)
        .bind(key.created_at.0)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, alg, private_key, sealed, created_at, retired_at FROM signing_keys \
             ORDER BY is_current DESC NULLS LAST, created_at DESC, seq DESC",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let kid: String = row.try_get("kid").map_err(backend)?;
                let alg: String = row.try_get("alg").map_err(backend)?;
                Ok(StoredKey {
                    kid: KeyId::parse(&kid).map_err(|_| corrupt("kid"))?,
                    alg: alg.parse().map_err(|_| corrupt("alg"))?,
                    material: material_from(
                        row.try_get("private_key").map_err(backend)?,
                        row.try_get("sealed").map_err(backend)?,
                    ),
                    created_at: UnixTime(row.try_get("created_at").map_err(backend)?),
                    retired_at: row
                        .try_get::<Option<i64>, _>("retired_at")
                        .map_err(backend)?
                        .map(UnixTime),
                })
            })
            .collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn prune_keys(&self, cutoff: UnixTime) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM signing_keys WHERE is_current IS NULL AND retired_at < $1")
                .bind(cutoff.0)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(store = "postgres"))]
    async fn secret_or_insert(
        &self,
        name: &str,
        value: &KeyMaterial,
    ) -> Result<KeyMaterial, StoreError> {
        let (bytes, sealed) = material_parts(value);
        let row = sqlx::query(
            "INSERT INTO server_secrets (name, value, sealed) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET name = excluded.name \
             RETURNING value, sealed",
        )
        .bind(name)
        .bind(bytes)
        .bind(sealed)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?
        .into_iter()
        .next()
        .ok_or_else(|| corrupt("no row returned"))?;
        Ok(material_from(
            row.try_get("value").map_err(backend)?,
            row.try_get("sealed").map_err(backend)?,
        ))
    }
}
