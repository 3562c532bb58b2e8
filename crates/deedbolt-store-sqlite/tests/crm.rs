//! The CRM on SQLite: the ledger is append-only even under direct SQL. (The CRM port's
//! behaviours are in the conformance suite, tests/conformance.rs.)

use deedbolt_core::clock::UnixTime;
use deedbolt_core::crm::ledger::{EntryKind, NewEntry};
use deedbolt_core::crm::property::{NewProperty, Property, PropertyKind};
use deedbolt_core::crm::tenant::{NewTenant, Tenant};
use deedbolt_core::crm::Viewer;
use deedbolt_core::ids::UserId;
use deedbolt_core::ports::{CrmStore, Write};
use deedbolt_store_sqlite::SqliteStore;

async fn property(store: &SqliteStore, name: &str, manager: Option<&UserId>) -> Property {
    let p = NewProperty {
        name: name.into(),
        address: "1 Quay St".into(),
        kind: PropertyKind::Residential,
        units: 4,
        manager_id: manager.cloned(),
    };
    store
        .create_property(&p, "test", UnixTime(1))
        .await
        .unwrap()
}

async fn tenant(store: &SqliteStore, name: &str, property: i64, user: Option<&UserId>) -> Tenant {
    let t = NewTenant {
        name: name.into(),
        email: None,
        phone: None,
        user_id: user.cloned(),
        property_id: property,
        unit: "1A".into(),
        rent: "1000.00".parse().unwrap(),
        currency: "GBP".parse().unwrap(),
        lease_start: "2026-01-01".parse().unwrap(),
    };
    match store
        .create_tenant(&Viewer::Portfolio, &t, UnixTime(1))
        .await
        .unwrap()
    {
        Write::Done(t) => t,
        other => panic!("{other:?}"),
    }
}

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
