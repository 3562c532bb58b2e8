//! The audit log, the alert outbox, usage history and remembered privileged scopes.

use deedbolt_core::audit::{AuditFilter, AuditKind, AuditRecord};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::scope::ScopeSet;

use crate::Backend;

fn record(kind: AuditKind, success: bool, at: i64, client: &str) -> AuditRecord {
    let mut r = AuditRecord::new(kind, success, UnixTime(at));
    r.client_id = Some(client.into());
    r.user_id = Some("usr_1".into());
    r.ip = Some("192.0.2.7".into());
    r.user_agent = Some("curl/8 'quoted' \"too\"".into());
    r.scope = Some("tenant:read".into());
    r.error = (!success).then(|| "invalid_grant".into());
    r.session = Some("ab12".into());
    r.detail = Some("{\"n\":1}".into());
    r
}

fn filter() -> AuditFilter {
    AuditFilter {
        limit: 1000,
        ..AuditFilter::default()
    }
}

/// A batch is stored whole, in order, and searched newest first by every filter.
pub async fn audit_records_are_inserted_in_batches_and_searched(store: &impl Backend) {
    assert_eq!(store.insert_audit(&[]).await.unwrap(), 0);
    let batch: Vec<_> = (0..300)
        .map(|i| {
            let client = if i % 3 == 0 { "dbc_a" } else { "dbc_b" };
            let kind = if i % 2 == 0 {
                AuditKind::TokenIssued
            } else {
                AuditKind::Login
            };
            let mut r = record(kind, i % 5 != 0, 1000 + i, client);
            if i == 7 {
                r.ip = None;
                r.detail = None;
            }
            r
        })
        .collect();
    assert_eq!(store.insert_audit(&batch).await.unwrap(), 300);

    let all = store.search_audit(&filter()).await.unwrap();
    assert_eq!(all.len(), 300);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let at: Vec<_> = all.iter().rev().map(|r| r.at.0).collect();
    assert_eq!(at, (1000..1300).collect::<Vec<_>>(), "batch order kept");
    let mut first = all.last().unwrap().clone();
    first.id = 0;
    assert_eq!(first, batch[0], "every field round-trips");
    let seventh = all.iter().find(|r| r.at.0 == 1007).unwrap();
    assert_eq!(
        (seventh.ip.as_deref(), seventh.detail.as_deref()),
        (None, None)
    );

    let by = |f: AuditFilter| async move { store.search_audit(&f).await.unwrap() };
    assert_eq!(
        by(AuditFilter {
            client_id: Some("dbc_a".into()),
            ..filter()
        })
        .await
        .len(),
        100
    );
    assert_eq!(
        by(AuditFilter {
            kind: Some(AuditKind::Login),
            ..filter()
        })
        .await
        .len(),
        150
    );
    assert_eq!(
        by(AuditFilter {
            since: Some(UnixTime(1290)),
            ..filter()
        })
        .await
        .len(),
        10
    );
    assert_eq!(
        by(AuditFilter {
            ip: Some("192.0.2.7".into()),
            ..filter()
        })
        .await
        .len(),
        299
    );
    assert_eq!(
        by(AuditFilter {
            user_id: Some("usr_2".into()),
            ..filter()
        })
        .await
        .len(),
        0
    );
    let page = by(AuditFilter {
        limit: 10,
        ..filter()
    })
    .await;
    assert_eq!(page.len(), 10);
    let next = by(AuditFilter {
        limit: 10,
        before_id: Some(page[9].id),
        ..filter()
    })
    .await;
    assert!(next[0].id < page[9].id);
    let tail = by(AuditFilter {
        after_id: Some(page[1].id),
        ..filter()
    })
    .await;
    assert_eq!(tail, page[..1]);
    let injected = by(AuditFilter {
        client_id: Some("x' OR '1'='1".into()),
        ..filter()
    })
    .await;
    assert!(injected.is_empty());
}

/// Concurrent batches are all read by an `after_id` poller, each record once.
pub async fn audit_records_are_tailed_by_id_without_gaps(store: &impl Backend) {
    let writers = {
        let store = store.clone();
        tokio::spawn(async move {
            for round in 0..5 {
                let tasks: Vec<_> = (0..6)
                    .map(|i| {
                        let store = store.clone();
                        tokio::spawn(async move {
                            let batch: Vec<_> = (0..10)
                                .map(|j| {
                                    record(AuditKind::Login, true, round * 100 + i * 10 + j, "c")
                                })
                                .collect();
                            store.insert_audit(&batch).await.unwrap();
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            }
        })
    };
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        // Checked before the read: the read after the writers finished sees everything.
        let finished = writers.is_finished();
        let rows = store
            .search_audit(&AuditFilter {
                after_id: Some(after),
                ..filter()
            })
            .await
            .unwrap();
        let empty = rows.is_empty();
        for r in rows.iter().rev() {
            after = after.max(r.id);
            seen.push(r.at.0);
        }
        if finished && empty {
            break;
        }
        tokio::task::yield_now().await;
    }
    writers.await.unwrap();
    seen.sort_unstable();
    let written: Vec<i64> = (0..5)
        .flat_map(|round| (0..60).map(move |k| round * 100 + k))
        .collect();
    assert_eq!(seen, written, "every record once");
}

/// Old records are pruned; hourly counts group by hour, kind and outcome.
pub async fn audit_records_are_pruned_and_counted_per_hour(store: &impl Backend) {
    let records = [
        record(AuditKind::Login, true, 3600, "c"),
        record(AuditKind::Login, true, 3700, "c"),
        record(AuditKind::Login, false, 3800, "c"),
        record(AuditKind::TokenIssued, true, 7300, "c"),
        record(AuditKind::TokenIssued, true, 100, "c"),
    ];
    store.insert_audit(&records).await.unwrap();
    let mut counts = store.hourly_audit_counts(UnixTime(3600)).await.unwrap();
    counts.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
    assert_eq!(
        counts,
        [
            (UnixTime(3600), "login".to_owned(), false, 1),
            (UnixTime(3600), "login".to_owned(), true, 2),
            (UnixTime(7200), "token_issued".to_owned(), true, 1),
        ]
    );
    assert_eq!(store.prune_audit(UnixTime(3700)).await.unwrap(), 2);
    assert_eq!(store.search_audit(&filter()).await.unwrap().len(), 3);
}

/// Alerts are kept until delivered, retried when due, and listed newest first.
pub async fn alerts_are_an_outbox(store: &impl Backend) {
    let a = serde_json::json!({"kind": "refresh_reuse", "client_id": "dbc_a", "n": 1});
    let b = serde_json::json!({"kind": "first_privileged_scope", "scopes": ["admin"]});
    let id_a = store.insert_alert(&a, UnixTime(10)).await.unwrap();
    let id_b = store.insert_alert(&b, UnixTime(20)).await.unwrap();
    assert!(id_b > id_a);
    let listed = store.list_alerts(None, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|x| x.id).collect::<Vec<_>>(),
        [id_b, id_a]
    );
    assert_eq!(listed[1].alert, a, "the JSON round-trips");
    assert_eq!(
        store
            .list_alerts(Some(id_b), 10)
            .await
            .unwrap()
            .iter()
            .map(|x| x.id)
            .collect::<Vec<_>>(),
        [id_a]
    );

    let due = store.due_alerts(UnixTime(15), 10).await.unwrap();
    assert_eq!(due.iter().map(|x| x.id).collect::<Vec<_>>(), [id_a]);
    store.mark_alert_failed(id_a, UnixTime(100)).await.unwrap();
    store
        .mark_alert_delivered(id_b, UnixTime(21))
        .await
        .unwrap();
    assert!(store.due_alerts(UnixTime(99), 10).await.unwrap().is_empty());
    let retry = store.due_alerts(UnixTime(100), 10).await.unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(
        (retry[0].id, retry[0].attempts, retry[0].delivered_at),
        (id_a, 1, None)
    );
    let delivered = store.list_alerts(None, 1).await.unwrap();
    assert_eq!(delivered[0].delivered_at, Some(UnixTime(21)));
    assert_eq!(delivered[0].attempts, 1);
}

/// Usage accumulates per hour, history starts at the first recorded hour; privileged
/// scopes seen are replaced per client.
pub async fn usage_and_privileged_scopes_are_remembered(store: &impl Backend) {
    assert!(store
        .usage_history("dbc_a", 0, 10)
        .await
        .unwrap()
        .is_empty());
    store.add_usage("dbc_a", 3, 5).await.unwrap();
    store.add_usage("dbc_a", 3, 2).await.unwrap();
    store.add_usage("dbc_a", 5, 1).await.unwrap();
    store.add_usage("dbc_b", 4, 9).await.unwrap();
    assert_eq!(
        store.usage_history("dbc_a", 0, 7).await.unwrap(),
        [7, 0, 1, 0]
    );
    // Within a window, history starts at the first hour recorded in it.
    assert_eq!(store.usage_history("dbc_a", 4, 7).await.unwrap(), [1, 0]);

    let first: ScopeSet = "admin:read".parse().unwrap();
    let later: ScopeSet = "admin:read admin:write".parse().unwrap();
    store.save_privileged_seen("dbc_a", first).await.unwrap();
    store.save_privileged_seen("dbc_a", later).await.unwrap();
    assert_eq!(
        store.privileged_seen().await.unwrap(),
        [("dbc_a".to_owned(), later)]
    );
}
