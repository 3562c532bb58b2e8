//! The CRM port: every query applies the viewer, keyset pages are complete in both
//! directions, status transitions are checked against the stored status.

use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::UserId;
use deedbolt_core::user::Role;
use deedbolt_proptech::ledger::{EntryFilter, EntryKind, NewEntry};
use deedbolt_proptech::list::{ListParams, ListSpec, Page};
use deedbolt_proptech::maintenance::{NewRequest, Priority, RequestFilter, RequestUpdate, Status};
use deedbolt_proptech::property::{NewProperty, Property, PropertyFilter, PropertyKind};
use deedbolt_proptech::store::Write;
use deedbolt_proptech::tenant::{NewTenant, Tenant, TenantChanges, TenantFilter};
use deedbolt_proptech::Viewer;

use crate::clients::user;
use crate::Backend;

/// A four-unit residential property named `name`, managed by `manager`: a fixture.
pub async fn property(store: &impl Backend, name: &str, manager: Option<&UserId>) -> Property {
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

/// A tenant of `property` (unit 1A, 1000.00 GBP), linked to `user`: a fixture.
pub async fn tenant(
    store: &impl Backend,
    name: &str,
    property: i64,
    user: Option<&UserId>,
) -> Tenant {
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

fn params(spec: &ListSpec, q: &[(&str, &str)]) -> ListParams {
    spec.parse(q.iter().copied()).unwrap()
}

/// Two managers with a property each; a tenant user in each property.
struct World<'a, S> {
    store: &'a S,
    m1: Viewer,
    m2: Viewer,
    t1: Viewer,
    t2: Viewer,
    p2: Property,
    a: Tenant,
    b: Tenant,
}

async fn world<S: Backend>(store: &S) -> World<'_, S> {
    let m1 = user(store, "m1@example.com", Role::Manager).await;
    let m2 = user(store, "m2@example.com", Role::Manager).await;
    let t1 = user(store, "t1@example.com", Role::Tenant).await;
    let t2 = user(store, "t2@example.com", Role::Tenant).await;
    let p1 = property(store, "One", Some(&m1)).await;
    let p2 = property(store, "Two", Some(&m2)).await;
    let a = tenant(store, "Ann", p1.id, Some(&t1)).await;
    let b = tenant(store, "Bob", p2.id, Some(&t2)).await;
    World {
        store,
        m1: Viewer::Manager { user: m1 },
        m2: Viewer::Manager { user: m2 },
        t1: Viewer::Tenant { user: t1 },
        t2: Viewer::Tenant { user: t2 },
        p2,
        a,
        b,
    }
}

/// Every read applies the viewer: what a manager or tenant may not see does not exist.
pub async fn every_read_applies_the_viewer(store: &impl Backend) {
    let w = world(store).await;
    let s = w.store;
    let props = |v: &Viewer| {
        let v = v.clone();
        async move {
            s.list_properties(
                &v,
                &params(&deedbolt_proptech::property::LIST, &[]),
                &PropertyFilter::default(),
            )
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect::<Vec<_>>()
        }
    };
    assert_eq!(props(&Viewer::Portfolio).await, ["One", "Two"]);
    assert_eq!(props(&w.m1).await, ["One"]);
    assert_eq!(props(&w.m2).await, ["Two"]);
    assert_eq!(
        props(&w.t1).await,
        ["One"],
        "a tenant sees the property they live in"
    );

    for (viewer, own, other) in [
        (&w.m1, &w.a, &w.b),
        (&w.t1, &w.a, &w.b),
        (&w.t2, &w.b, &w.a),
    ] {
        assert!(s.find_tenant(viewer, own.id).await.unwrap().is_some());
        assert!(s.find_tenant(viewer, other.id).await.unwrap().is_none());
        assert!(s.balance(viewer, other.id).await.unwrap().is_none());
        let lp = params(&deedbolt_proptech::ledger::LIST, &[]);
        assert!(s
            .list_entries(viewer, other.id, &lp, &EntryFilter::default())
            .await
            .unwrap()
            .is_none());
        let tenants = s
            .list_tenants(
                viewer,
                &params(&deedbolt_proptech::tenant::LIST, &[]),
                &TenantFilter::default(),
            )
            .await
            .unwrap();
        assert_eq!(tenants.iter().map(|t| t.id).collect::<Vec<_>>(), [own.id]);
    }
    assert!(s.find_property(&w.m1, w.p2.id).await.unwrap().is_none());
    assert!(s.find_property(&w.t1, w.p2.id).await.unwrap().is_none());
}

/// A viewer for a list of properties (a client registered for some properties) sees those
/// properties and their tenants and ledgers; for an empty list, nothing at all.
pub async fn a_property_list_viewer_sees_only_its_properties(store: &impl Backend) {
    let w = world(store).await;
    let s = w.store;
    let one = Viewer::Properties {
        ids: vec![w.a.property_id],
    };
    let none = Viewer::Properties { ids: vec![] };
    let names = |v: Viewer| async move {
        s.list_properties(
            &v,
            &params(&deedbolt_proptech::property::LIST, &[]),
            &PropertyFilter::default(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
    };
    let tenants = |v: Viewer| async move {
        s.list_tenants(
            &v,
            &params(&deedbolt_proptech::tenant::LIST, &[]),
            &TenantFilter::default(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect::<Vec<_>>()
    };
    assert_eq!(names(one.clone()).await, ["One"]);
    assert_eq!(tenants(one.clone()).await, [w.a.id]);
    assert!(s.find_tenant(&one, w.b.id).await.unwrap().is_none());
    assert!(s.balance(&one, w.a.id).await.unwrap().is_some());
    assert!(s.find_property(&one, w.p2.id).await.unwrap().is_none());

    assert!(names(none.clone()).await.is_empty());
    assert!(tenants(none.clone()).await.is_empty());
    assert!(s.find_tenant(&none, w.a.id).await.unwrap().is_none());
    assert!(s.balance(&none, w.a.id).await.unwrap().is_none());
    let requests = s
        .list_requests(
            &none,
            &params(&deedbolt_proptech::maintenance::LIST, &[]),
            &RequestFilter::default(),
        )
        .await
        .unwrap();
    assert!(requests.is_empty());
}

/// Writes to records outside the viewer change nothing.
pub async fn writes_outside_the_viewer_change_nothing(store: &impl Backend) {
    let w = world(store).await;
    let s = w.store;
    let changes = deedbolt_proptech::property::PropertyChanges {
        name: Some("Mine now".into()),
        ..Default::default()
    };
    assert!(matches!(
        s.update_property(&w.m1, w.p2.id, &changes).await.unwrap(),
        Write::NotFound
    ));
    assert_eq!(
        s.find_property(&Viewer::Portfolio, w.p2.id)
            .await
            .unwrap()
            .unwrap()
            .name,
        "Two"
    );

    let entry = NewEntry {
        kind: EntryKind::Charge,
        amount: "10.00".parse().unwrap(),
        description: "Fee".into(),
        effective_on: "2026-11-01".parse().unwrap(),
    };
    assert!(matches!(
        s.add_entry(&w.m1, w.b.id, &entry, "m1", UnixTime(2))
            .await
            .unwrap(),
        Write::NotFound
    ));
    assert_eq!(
        s.balance(&Viewer::Portfolio, w.b.id)
            .await
            .unwrap()
            .unwrap()
            .balance_minor,
        0
    );

    let t = NewTenant {
        name: "Sneaky".into(),
        email: None,
        phone: None,
        user_id: None,
        property_id: w.p2.id,
        unit: "9".into(),
        rent: "1.00".parse().unwrap(),
        currency: "GBP".parse().unwrap(),
        lease_start: "2026-01-01".parse().unwrap(),
    };
    match s.create_tenant(&w.m1, &t, UnixTime(2)).await.unwrap() {
        Write::Invalid(e) => assert_eq!(e.field, "property_id"),
        other => panic!("{other:?}"),
    }
    let req = NewRequest {
        tenant_id: Some(w.b.id),
        title: "Leak".into(),
        description: "Drip".into(),
        priority: Priority::High,
    };
    match s
        .open_request(&w.t1, w.b.id, &req, "t1", UnixTime(2))
        .await
        .unwrap()
    {
        Write::Invalid(e) => assert_eq!(e.field, "tenant_id"),
        other => panic!("{other:?}"),
    }
    let all = s
        .list_requests(
            &Viewer::Portfolio,
            &params(&deedbolt_proptech::maintenance::LIST, &[]),
            &RequestFilter::default(),
        )
        .await
        .unwrap();
    assert!(all.is_empty());
}

/// Keyset pages list every row once, in order, both directions, with ties.
pub async fn keyset_pages_are_complete_in_both_directions_with_ties(store: &impl Backend) {
    for name in ["b", "a", "b", "c", "a", "b", "c"] {
        property(store, name, None).await;
    }
    let spec = &deedbolt_proptech::property::LIST;
    for sort in ["id", "name", "-name", "-id", "created_at"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = vec![("sort", sort), ("limit", "2")];
            if let Some(c) = &cursor {
                q.push(("cursor", c.as_str()));
            }
            let p = params(spec, &q);
            let rows = store
                .list_properties(&Viewer::Portfolio, &p, &PropertyFilter::default())
                .await
                .unwrap();
            let page = Page::from_rows(rows, &p);
            seen.extend(page.items.iter().map(|p| (p.name.clone(), p.id)));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let mut expected = seen.clone();
        match sort {
            "name" => expected.sort(),
            "-name" => expected.sort_by(|x, y| y.cmp(x)),
            "-id" => expected.sort_by_key(|x| std::cmp::Reverse(x.1)),
            _ => expected.sort_by_key(|x| x.1),
        }
        assert_eq!(seen.len(), 7, "{sort}: every row once");
        assert_eq!(seen, expected, "{sort}: in order");
    }
}

/// Concurrent status transitions are judged against the stored status: one wins.
pub async fn a_transition_is_checked_against_the_stored_status(store: &impl Backend) {
    let w = world(store).await;
    let s = w.store;
    let req = NewRequest {
        tenant_id: None,
        title: "Leak".into(),
        description: "Drip".into(),
        priority: Priority::Normal,
    };
    let r = match s
        .open_request(&w.t1, w.a.id, &req, "t1", UnixTime(2))
        .await
        .unwrap()
    {
        Write::Done(r) => r,
        other => panic!("{other:?}"),
    };
    let to = |status| RequestUpdate {
        status: Some(status),
        ..Default::default()
    };
    // Two staff race to move it on: one wins, the other's transition is judged against
    // the stored status.
    let portfolio = Viewer::Portfolio;
    let start = to(Status::InProgress);
    let (x, y) = tokio::join!(
        s.update_request(&w.m1, r.id, &start, UnixTime(3)),
        s.update_request(&portfolio, r.id, &start, UnixTime(3)),
    );
    let done = [x.unwrap(), y.unwrap()]
        .into_iter()
        .filter(|w| matches!(w, Write::Done(_)))
        .count();
    assert_eq!(done, 1);
    assert!(matches!(
        s.update_request(&w.m2, r.id, &to(Status::Resolved), UnixTime(4))
            .await
            .unwrap(),
        Write::NotFound
    ));
    assert!(matches!(
        s.update_request(&w.m1, r.id, &to(Status::Closed), UnixTime(4))
            .await
            .unwrap(),
        Write::Invalid(_)
    ));
    let now = s.find_request(&w.t1, r.id).await.unwrap().unwrap();
    assert_eq!(now.status, Status::InProgress);
}

/// A tenant user is linked to one tenant record only, and only a tenant-role user.
pub async fn a_tenant_user_is_linked_once(store: &impl Backend) {
    let p = property(store, "One", None).await;
    let tina = user(store, "tina@example.com", Role::Tenant).await;
    let mgr = user(store, "mgr@example.com", Role::Manager).await;
    let first = tenant(store, "Tina", p.id, Some(&tina)).await;
    let again = NewTenant {
        name: "Tina again".into(),
        email: None,
        phone: None,
        user_id: Some(tina.clone()),
        property_id: p.id,
        unit: "2B".into(),
        rent: "900.00".parse().unwrap(),
        currency: "GBP".parse().unwrap(),
        lease_start: "2026-02-01".parse().unwrap(),
    };
    match store
        .create_tenant(&Viewer::Portfolio, &again, UnixTime(2))
        .await
        .unwrap()
    {
        Write::Invalid(e) => assert_eq!(e.field, "user_id"),
        other => panic!("{other:?}"),
    }
    let as_manager = NewTenant {
        user_id: Some(mgr),
        ..again
    };
    match store
        .create_tenant(&Viewer::Portfolio, &as_manager, UnixTime(2))
        .await
        .unwrap()
    {
        Write::Invalid(e) => assert_eq!(e.field, "user_id"),
        other => panic!("{other:?}"),
    }
    // Re-linking the same record to its own user is fine.
    let same = TenantChanges {
        user_id: Some(tina.clone()),
        unit: Some("1C".into()),
        ..Default::default()
    };
    match store
        .update_tenant(&Viewer::Portfolio, first.id, &same)
        .await
        .unwrap()
    {
        Write::Done(t) => assert_eq!((t.unit.as_str(), t.user_id.as_ref()), ("1C", Some(&tina))),
        other => panic!("{other:?}"),
    }
    let found = store
        .find_tenant_of_user(&Viewer::Portfolio, &tina)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, first.id);
}

/// The balance is charges minus payments and credits, in the tenant's currency.
pub async fn the_balance_sums_the_ledger(store: &impl Backend) {
    let p = property(store, "One", None).await;
    let t = tenant(store, "Ann", p.id, None).await;
    let empty = store
        .balance(&Viewer::Portfolio, t.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(empty.balance_minor, 0);
    for (kind, amount, on) in [
        (EntryKind::Charge, "1000.00", "2026-01-01"),
        (EntryKind::Charge, "1000.00", "2026-02-01"),
        (EntryKind::Payment, "1500.00", "2026-02-03"),
        (EntryKind::Credit, "25.50", "2026-02-04"),
    ] {
        let e = NewEntry {
            kind,
            amount: amount.parse().unwrap(),
            description: "x".into(),
            effective_on: on.parse().unwrap(),
        };
        match store
            .add_entry(&Viewer::Portfolio, t.id, &e, "ops", UnixTime(3))
            .await
            .unwrap()
        {
            Write::Done(entry) => {
                assert_eq!(entry.kind, kind);
                let found = store
                    .find_entry(&Viewer::Portfolio, t.id, entry.id)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(found.amount_minor, entry.amount_minor);
            }
            other => panic!("{other:?}"),
        }
    }
    let b = store
        .balance(&Viewer::Portfolio, t.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.balance_minor, 200_000 - 150_000 - 2_550);
    let feb = EntryFilter {
        from: Some("2026-02-01".parse().unwrap()),
        ..EntryFilter::default()
    };
    let entries = store
        .list_entries(
            &Viewer::Portfolio,
            t.id,
            &params(&deedbolt_proptech::ledger::LIST, &[]),
            &feb,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(entries.len(), 3);
}
