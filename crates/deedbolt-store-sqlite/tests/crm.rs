//! The CRM on SQLite: the ledger is append-only even under direct SQL. (The CRM port's
//! behaviours are in the conformance suite, tests/conformance.rs.)

use deedbolt_core::clock::UnixTime;
use deedbolt_proptech::ledger::{EntryKind, NewEntry};
use deedbolt_proptech::store::CrmStore;
use deedbolt_proptech::Viewer;
use deedbolt_store_conformance::{property, tenant};
use deedbolt_store_sqlite::SqliteStore;

#[tokio::test]
async fn the_ledger_refuses_updates_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crm.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let p = property(&store, "One", None).await;
    let t = tenant(&store, "Ann", p.id, None).await;
    let entry = NewEntry {
        kind: EntryKind::Charge,
        amount: "10.00".parse().unwrap(),
        description: "Fee".into(),
        effective_on: "2026-11-01".parse().unwrap(),
    };
    store
        .add_entry(&Viewer::Portfolio, t.id, &entry, "x", UnixTime(2))
        .await
        .unwrap();
    store.close().await;
    // Even a direct SQL connection cannot rewrite history.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for sql in [
        "UPDATE ledger_entries SET amount_minor = 1",
        "DELETE FROM ledger_entries",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
}
