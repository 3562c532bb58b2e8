//! The port conformance suite on SQLite (a private in-memory database per test).

use deedbolt_store_sqlite::SqliteStore;

async fn fresh_store() -> Option<SqliteStore> {
    Some(SqliteStore::in_memory().await.expect("in-memory SQLite"))
}

deedbolt_store_conformance::conformance_suite!(fresh_store);
