//! What only PostgreSQL itself can show: the schema's own guarantees, under direct SQL.

use deedbolt_core::clock::UnixTime;
use deedbolt_proptech::ledger::{EntryKind, NewEntry};
use deedbolt_proptech::property::{NewProperty, PropertyKind};
use deedbolt_proptech::store::{CrmStore, Write};
use deedbolt_proptech::tenant::NewTenant;
use deedbolt_proptech::Viewer;
use deedbolt_store_postgres::testing::{database_url, drop_database, fresh_database};
use deedbolt_store_postgres::PgStore;
use sqlx::Connection;

#[tokio::test]
async fn the_ledger_refuses_updates_deletes_and_truncation() {
    let Some(server) = database_url() else { return };
    let url = fresh_database(&server).await.unwrap();
    let store = PgStore::connect(&url).await.unwrap();
    let p = store
        .create_property(
            &NewProperty {
                name: "One".into(),
                address: "1 Quay St".into(),
                kind: PropertyKind::Residential,
                units: 4,
                manager_id: None,
            },
            "test",
            UnixTime(1),
        )
        .await
        .unwrap();
    let t = NewTenant {
        name: "Ann".into(),
        email: None,
        phone: None,
        user_id: None,
        property_id: p.id,
        unit: "1A".into(),
        rent: "1000.00".parse().unwrap(),
        currency: "GBP".parse().unwrap(),
        lease_start: "2026-01-01".parse().unwrap(),
    };
    let Write::Done(t) = store
        .create_tenant(&Viewer::Portfolio, &t, UnixTime(1))
        .await
        .unwrap()
    else {
        panic!("tenant not created")
    };
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
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for sql in [
        "UPDATE ledger_entries SET amount_minor = 1",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_entries CASCADE",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_entries")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
    conn.close().await.unwrap();
    drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn a_malformed_url_is_refused_without_echoing_it() {
    let err = PgStore::connect("postgres://user:s3cret@[bad")
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

#[tokio::test]
async fn instances_starting_together_migrate_once() {
    let Some(server) = database_url() else { return };
    let url = fresh_database(&server).await.unwrap();
    let (a, b, c) = tokio::join!(
        PgStore::connect(&url),
        PgStore::connect(&url),
        PgStore::connect(&url)
    );
    for s in [a, b, c] {
        s.unwrap().close().await;
    }
    drop_database(&url).await.unwrap();
}
