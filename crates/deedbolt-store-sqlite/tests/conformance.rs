//! The port conformance suite on SQLite: on a private in-memory database per test, and on
//! a database file per test (where the PropTech reads take the inline read path).

use deedbolt_store_sqlite::SqliteStore;

async fn fresh_store() -> Option<SqliteStore> {
    Some(SqliteStore::in_memory().await.expect("in-memory SQLite"))
}

deedbolt_store_conformance::conformance_suite!(fresh_store);

mod file {
    use deedbolt_store_sqlite::SqliteStore;

    async fn fresh_store() -> Option<SqliteStore> {
        let dir = tempfile::Builder::new()
            .prefix("deedbolt-conformance-")
            .tempdir()
            .expect("temporary directory")
            .keep();
        Some(
            SqliteStore::open(&dir.join("deedbolt.db"))
                .await
                .expect("SQLite file"),
        )
    }

    /// Closes the store and removes its directory.
    async fn release(store: SqliteStore) {
        let dir = store
            .path()
            .and_then(|p| p.parent())
            .map(std::path::Path::to_path_buf);
        store.close().await;
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    deedbolt_store_conformance::conformance_suite!(fresh_store, release);
}
