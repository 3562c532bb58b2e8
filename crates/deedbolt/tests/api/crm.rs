//! The PropTech CRM API end to end (properties, tenants, the ledger, maintenance
//! requests): real tokens from this server — a portfolio-wide machine client, and users
//! of each role through the whole login and consent flow — against real rows, over HTTP.
//!
//! The core property under test is owner binding: what a token may *do* is its scopes,
//! which *records* it reaches is its subject's role, and a record outside its reach
//! answers exactly like one that does not exist (404).

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{
    crm_error_fields, location, spawn_app, CodeClient, Creds, TestApp, CRM_SCOPES,
};

const CB: &str = "https://crm.example.com/cb";
const PASSWORD: &str = "correct-horse-battery-7";
const M1_EMAIL: &str = "maggie.manager@example.com";
const M2_EMAIL: &str = "mo.manager@example.com";
const TA_EMAIL: &str = "ada.tenant@example.com";
const TB_EMAIL: &str = "bob.tenant@example.com";
const ADMIN_EMAIL: &str = "alice.admin@example.com";
/// Everything a manager's role can delegate of the CRM (all but financial:write).
const MANAGER_SCOPES: &str = "property:read property:write tenant:read tenant:write \
     financial:read maintenance:request maintenance:manage";
/// Everything a tenant's role can delegate of the CRM.
const TENANT_SCOPES: &str = "tenant:read financial:read maintenance:request";

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    app.crm_call(Method::GET, path, Some(token), None).await
}

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    app.crm_call(Method::POST, path, Some(token), Some(&body))
        .await
}

async fn patch(app: &TestApp, path: &str, token: &str, body: Value) -> (u16, Value) {
    app.crm_call(Method::PATCH, path, Some(token), Some(&body))
        .await
}

/// POSTs `body` to `path`, asserts 201 with a Location, and returns the body and Location.
async fn create(app: &TestApp, path: &str, token: &str, body: Value) -> (Value, String) {
    let res = app
        .crm_send(Method::POST, path, Some(token), Some(&body))
        .await;
    let status = res.status().as_u16();
    let loc = location(&res);
    let text = res.text().await.unwrap();
    assert_eq!(status, 201, "POST {path} {body}: {text}");
    let loc = loc.unwrap_or_else(|| panic!("POST {path} answered 201 without a Location"));
    (serde_json::from_str(&text).expect("JSON body"), loc)
}

/// POSTs and returns only the created object's id.
async fn create_id(app: &TestApp, path: &str, token: &str, body: Value) -> i64 {
    let (v, _) = create(app, path, token, body).await;
    v["id"].as_i64().expect("id")
}

/// The ids of a page's items, in order.
fn item_ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
        .iter()
        .map(|i| i["id"].as_i64().expect("item id"))
        .collect()
}

/// The ids of a whole (at most 100 items) list, asserting 200 and a single page.
async fn list_ids(app: &TestApp, path: &str, token: &str) -> Vec<i64> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let (status, page) = get(app, &format!("{path}{sep}limit=100"), token).await;
    assert_eq!(status, 200, "GET {path}: {page}");
    assert!(page.get("next_cursor").is_none(), "{path} fits one page");
    item_ids(&page)
}

/// Asserts a 404 `not_found` answer.
#[track_caller]
fn assert_not_found(what: &str, (status, body): &(u16, Value)) {
    assert_eq!(*status, 404, "{what}: {body}");
    assert_eq!(body["error"], "not_found", "{what}: {body}");
}

/// Asserts a 422 naming exactly `fields` (in order).
#[track_caller]
fn assert_invalid(what: &str, (status, body): &(u16, Value), fields: &[&str]) {
    assert_eq!(*status, 422, "{what}: {body}");
    assert_eq!(crm_error_fields(body), fields, "{what}: {body}");
}

/// The message of the 422 field error for `field`.
fn field_message(body: &Value, field: &str) -> String {
    body["fields"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["field"] == field))
        .and_then(|f| f["message"].as_str())
        .unwrap_or_else(|| panic!("no error for {field} in {body}"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// The portfolio
// ---------------------------------------------------------------------------------------

/// A small portfolio built through the API by a machine client holding every CRM scope:
///
/// - manager 1 manages property `p1` ("Harbour View"), manager 2 property `p2`;
/// - tenant `ta` (user A, unit 4B) and `tc` (no user, unit 5A) live in `p1`, tenant `tb`
///   (user B) in `p2`;
/// - `ta`'s ledger: a 1250.00 charge and a 1000.00 payment; `tb`'s: a 900.00 charge;
/// - one maintenance request each: `ra` (high), `rb` (urgent), `rc` (low).
struct Portfolio {
    app: TestApp,
    /// The machine client (every CRM scope).
    cc: Creds,
    /// Its token with every CRM scope.
    admin: String,
    /// A confidential code client registered for every scope, for user logins.
    code: CodeClient,
    m1: String,
    m2: String,
    ta_user: String,
    tb_user: String,
    p1: i64,
    p2: i64,
    ta: i64,
    tb: i64,
    tc: i64,
    ra: i64,
    rb: i64,
    rc: i64,
}

impl Portfolio {
    async fn new() -> Portfolio {
        let app = spawn_app().await;
        let cc = app.create_client(CRM_SCOPES);
        let admin = app.access_token(&cc, None).await;
        let code = app.create_code_client(&format!("openid {CRM_SCOPES}"), &[CB], false, &[]);
        let m1 = app.create_user(M1_EMAIL, "manager", PASSWORD);
        let m2 = app.create_user(M2_EMAIL, "manager", PASSWORD);
        let ta_user = app.create_user(TA_EMAIL, "tenant", PASSWORD);
        let tb_user = app.create_user(TB_EMAIL, "tenant", PASSWORD);

        let p1 = create_id(
            &app,
            "/api/properties",
            &admin,
            json!({"name": "Harbour View", "address": "1 Quay St", "kind": "residential",
                   "units": 12, "manager_id": m1}),
        )
        .await;
        let p2 = create_id(
            &app,
            "/api/properties",
            &admin,
            json!({"name": "Market Hall", "address": "2 Market Sq", "kind": "commercial",
                   "units": 4, "manager_id": m2}),
        )
        .await;
        let tenant = |name: &str, user: Option<&str>, property: i64, unit: &str, rent: &str| {
            json!({"name": name, "email": format!("{}@example.com", unit.to_lowercase()),
                   "phone": "+44 20 7946 0000", "user_id": user, "property_id": property,
                   "unit": unit, "rent": rent, "currency": "GBP", "lease_start": "2025-01-01"})
        };
        let ta = create_id(
            &app,
            "/api/tenants",
            &admin,
            tenant("Ada Tenant", Some(&ta_user), p1, "4B", "1250.00"),
        )
        .await;
        let tb = create_id(
            &app,
            "/api/tenants",
            &admin,
            tenant("Bob Tenant", Some(&tb_user), p2, "G1", "900.00"),
        )
        .await;
        let tc = create_id(
            &app,
            "/api/tenants",
            &admin,
            tenant("Cy Unlinked", None, p1, "5A", "1100.00"),
        )
        .await;
        for (t, kind, amount, on) in [
            (ta, "charge", "1250.00", "2025-01-01"),
            (ta, "payment", "1000.00", "2025-01-05"),
            (tb, "charge", "900.00", "2025-01-01"),
        ] {
            create(
                &app,
                &format!("/api/tenants/{t}/ledger"),
                &admin,
                json!({"kind": kind, "amount": amount, "description": format!("{kind} {on}"),
                       "effective_on": on}),
            )
            .await;
        }
        let request = |t: i64, title: &str, priority: &str| {
            json!({"tenant_id": t, "title": title, "description": format!("{title}, please fix"),
                   "priority": priority})
        };
        let ra = create_id(
            &app,
            "/api/maintenance",
            &admin,
            request(ta, "Leaking tap", "high"),
        )
        .await;
        let rb = create_id(
            &app,
            "/api/maintenance",
            &admin,
            request(tb, "Broken window", "urgent"),
        )
        .await;
        let rc = create_id(
            &app,
            "/api/maintenance",
            &admin,
            request(tc, "Noisy boiler", "low"),
        )
        .await;
        Portfolio {
            app,
            cc,
            admin,
            code,
            m1,
            m2,
            ta_user,
            tb_user,
            p1,
            p2,
            ta,
            tb,
            tc,
            ra,
            rb,
            rc,
        }
    }

    /// A user's access token for `scope`, through login and consent.
    async fn login(&self, email: &str, scope: &str) -> String {
        self.app
            .user_access_token(&self.code, CB, scope, email, PASSWORD)
            .await
    }

    /// A machine-client token narrowed to exactly `scope`.
    async fn scoped(&self, scope: &str) -> String {
        self.app.access_token(&self.cc, Some(scope)).await
    }

    /// Everything the machine client sees at `path` (ids).
    async fn all(&self, path: &str) -> Vec<i64> {
        list_ids(&self.app, path, &self.admin).await
    }

    /// The object at `path` as the machine client sees it.
    async fn fetch(&self, path: &str) -> Value {
        let (status, v) = get(&self.app, path, &self.admin).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    /// The number of records of every kind, to show a refused request changed nothing.
    async fn counts(&self) -> Vec<usize> {
        let mut out = vec![
            self.all("/api/properties").await.len(),
            self.all("/api/tenants").await.len(),
            self.all("/api/maintenance").await.len(),
        ];
        for t in [self.ta, self.tb, self.tc] {
            out.push(self.all(&format!("/api/tenants/{t}/ledger")).await.len());
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// 1. Every operation with its scope
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_operation_succeeds_with_its_scope_and_returns_what_was_stored() {
    let p = Portfolio::new().await;
    let app = &p.app;
    let mut tokens = std::collections::HashMap::new();
    for s in [
        "property:read",
        "property:write",
        "tenant:read",
        "tenant:write",
        "financial:read",
        "financial:write",
        "maintenance:request",
        "maintenance:manage",
    ] {
        tokens.insert(s, p.scoped(s).await);
    }
    let t = |s: &str| tokens[s].clone();

    // Properties.
    let (prop, loc) = create(
        app,
        "/api/properties",
        &t("property:write"),
        json!({"name": " Dock House ", "address": "3 Wharf Rd", "kind": "mixed_use",
               "units": 30, "manager_id": p.m1}),
    )
    .await;
    let id = prop["id"].as_i64().unwrap();
    assert_eq!(loc, format!("/api/properties/{id}"));
    assert_eq!(prop["name"], "Dock House", "names are trimmed");
    assert_eq!(prop["address"], "3 Wharf Rd");
    assert_eq!(prop["kind"], "mixed_use");
    assert_eq!(prop["units"], 30);
    assert_eq!(prop["manager_id"], p.m1.as_str());
    assert_eq!(prop["created_by"], p.cc.id.as_str());
    assert!(prop["created_at"].as_i64().unwrap() > 0);
    assert_eq!(
        get(app, &loc, &t("property:read")).await,
        (200, prop.clone())
    );
    let (status, page) = get(app, "/api/properties", &t("property:read")).await;
    assert_eq!(status, 200);
    assert!(page["items"].as_array().unwrap().contains(&prop), "{page}");

    let (status, changed) = patch(
        app,
        &loc,
        &t("property:write"),
        json!({"units": 31, "name": "Dock House East"}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    let mut expected = prop.clone();
    expected["units"] = json!(31);
    expected["name"] = json!("Dock House East");
    assert_eq!(changed, expected, "only the fields sent change");
    assert_eq!(get(app, &loc, &t("property:read")).await, (200, expected));

    // Tenants.
    let (tenant, loc) = create(
        app,
        "/api/tenants",
        &t("tenant:write"),
        json!({"name": "Dee Newcomer", "email": "Dee@Example.com", "phone": "+44 20 7946 0999",
               "property_id": id, "unit": "2A", "rent": "975.5", "currency": "GBP",
               "lease_start": "2025-03-01"}),
    )
    .await;
    let tid = tenant["id"].as_i64().unwrap();
    assert_eq!(loc, format!("/api/tenants/{tid}"));
    assert_eq!(tenant["name"], "Dee Newcomer");
    assert_eq!(tenant["email"], "dee@example.com");
    assert_eq!(tenant["phone"], "+44 20 7946 0999");
    assert_eq!(tenant["user_id"], Value::Null);
    assert_eq!(tenant["property_id"], id);
    assert_eq!(tenant["unit"], "2A");
    assert_eq!(
        tenant["rent"], "975.50",
        "money is returned with two decimals"
    );
    assert_eq!(tenant["currency"], "GBP");
    assert_eq!(tenant["lease_start"], "2025-03-01");
    assert_eq!(
        get(app, &loc, &t("tenant:read")).await,
        (200, tenant.clone())
    );
    let (status, page) = get(app, "/api/tenants", &t("tenant:read")).await;
    assert_eq!(status, 200);
    assert!(
        page["items"].as_array().unwrap().contains(&tenant),
        "{page}"
    );

    let (status, changed) = patch(
        app,
        &loc,
        &t("tenant:write"),
        json!({"rent": "1000.00", "unit": "2B", "user_id": p.tb_user.clone()}),
    )
    .await;
    // tb_user is already linked to tb: refused.
    assert_invalid("relinking a linked user", &(status, changed), &["user_id"]);
    let (status, changed) = patch(
        app,
        &loc,
        &t("tenant:write"),
        json!({"rent": "1000.00", "unit": "2B"}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    let mut expected = tenant.clone();
    expected["rent"] = json!("1000.00");
    expected["unit"] = json!("2B");
    assert_eq!(changed, expected);
    assert_eq!(get(app, &loc, &t("tenant:read")).await, (200, expected));

    // The ledger.
    let ledger = format!("/api/tenants/{tid}/ledger");
    let (entry, loc) = create(
        app,
        &ledger,
        &t("financial:write"),
        json!({"kind": "charge", "amount": "1000.00", "description": "March rent",
               "effective_on": "2025-03-01"}),
    )
    .await;
    let eid = entry["id"].as_i64().unwrap();
    assert_eq!(loc, format!("/api/tenants/{tid}/ledger/{eid}"));
    assert_eq!(entry["tenant_id"], tid);
    assert_eq!(entry["kind"], "charge");
    assert_eq!(entry["amount"], "1000.00");
    assert_eq!(entry["amount_minor"], 100_000);
    assert_eq!(entry["currency"], "GBP");
    assert_eq!(entry["description"], "March rent");
    assert_eq!(entry["effective_on"], "2025-03-01");
    assert_eq!(entry["created_by"], p.cc.id.as_str());
    let (status, page) = get(app, &ledger, &t("financial:read")).await;
    assert_eq!(status, 200);
    assert_eq!(page["items"], json!([entry]));
    let (status, balance) = get(
        app,
        &format!("/api/tenants/{tid}/balance"),
        &t("financial:read"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        balance,
        json!({"tenant_id": tid, "currency": "GBP", "balance": "1000.00",
               "balance_minor": 100_000, "charged": "1000.00", "paid": "0.00"})
    );

    // Maintenance.
    let (request, loc) = create(
        app,
        "/api/maintenance",
        &t("maintenance:request"),
        json!({"tenant_id": tid, "title": "Sticky door", "description": "The front door sticks"}),
    )
    .await;
    let rid = request["id"].as_i64().unwrap();
    assert_eq!(loc, format!("/api/maintenance/{rid}"));
    assert_eq!(request["tenant_id"], tid);
    assert_eq!(request["property_id"], id, "the tenant's property");
    assert_eq!(request["unit"], "2B", "the tenant's unit");
    assert_eq!(request["title"], "Sticky door");
    assert_eq!(request["description"], "The front door sticks");
    assert_eq!(request["priority"], "normal", "the default priority");
    assert_eq!(request["status"], "open");
    assert_eq!(request["assignee"], Value::Null);
    assert_eq!(request["created_by"], p.cc.id.as_str());
    // Either maintenance scope reads.
    for s in ["maintenance:request", "maintenance:manage"] {
        assert_eq!(get(app, &loc, &t(s)).await, (200, request.clone()), "{s}");
        let (status, page) = get(app, "/api/maintenance", &t(s)).await;
        assert_eq!(status, 200);
        assert!(page["items"].as_array().unwrap().contains(&request), "{s}");
    }
    let (status, changed) = patch(
        app,
        &loc,
        &t("maintenance:manage"),
        json!({"status": "in_progress", "assignee": "Pat Plumber", "priority": "high"}),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["status"], "in_progress");
    assert_eq!(changed["assignee"], "Pat Plumber");
    assert_eq!(changed["priority"], "high");
    assert_eq!(changed["title"], "Sticky door");
    assert!(changed["updated_at"].as_i64() >= request["updated_at"].as_i64());
    assert_eq!(
        get(app, &loc, &t("maintenance:manage")).await,
        (200, changed)
    );
}

/// The Location of a new ledger entry names a resource that can be fetched.
#[tokio::test]
async fn a_new_ledger_entry_location_can_be_fetched() {
    let p = Portfolio::new().await;
    let (entry, loc) = create(
        &p.app,
        &format!("/api/tenants/{}/ledger", p.tc),
        &p.admin,
        json!({"kind": "charge", "amount": "10.00", "description": "Key cut",
               "effective_on": "2025-02-01"}),
    )
    .await;
    assert_eq!(get(&p.app, &loc, &p.admin).await, (200, entry));
}

// ---------------------------------------------------------------------------------------
// 2. Every operation without its scope
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_operation_without_its_scope_is_insufficient_scope() {
    let p = Portfolio::new().await;
    let app = &p.app;
    let before = p.counts().await;
    let (ta, ra, p1) = (p.ta, p.ra, p.p1);
    let property = json!({"name": "N", "address": "A", "kind": "residential", "units": 1});
    let tenant = json!({"name": "N", "property_id": p1, "unit": "1", "rent": "1.00",
                        "currency": "GBP", "lease_start": "2025-01-01"});
    let entry = json!({"kind": "charge", "amount": "1.00", "description": "D",
                       "effective_on": "2025-01-01"});
    let request = json!({"tenant_id": ta, "title": "T", "description": "D"});
    // (method, path, body, the scopes the operation needs — any one of them where several)
    let ops: Vec<(Method, String, Option<Value>, &[&str])> = vec![
        (
            Method::GET,
            "/api/properties".into(),
            None,
            &["property:read"],
        ),
        (
            Method::POST,
            "/api/properties".into(),
            Some(property.clone()),
            &["property:write"],
        ),
        (
            Method::GET,
            format!("/api/properties/{p1}"),
            None,
            &["property:read"],
        ),
        (
            Method::PATCH,
            format!("/api/properties/{p1}"),
            Some(json!({"units": 2})),
            &["property:write"],
        ),
        (Method::GET, "/api/tenants".into(), None, &["tenant:read"]),
        (
            Method::POST,
            "/api/tenants".into(),
            Some(tenant),
            &["tenant:write"],
        ),
        (
            Method::GET,
            format!("/api/tenants/{ta}"),
            None,
            &["tenant:read"],
        ),
        (
            Method::PATCH,
            format!("/api/tenants/{ta}"),
            Some(json!({"unit": "9Z"})),
            &["tenant:write"],
        ),
        (
            Method::GET,
            format!("/api/tenants/{ta}/ledger"),
            None,
            &["financial:read"],
        ),
        (
            Method::POST,
            format!("/api/tenants/{ta}/ledger"),
            Some(entry),
            &["financial:write"],
        ),
        (
            Method::GET,
            format!("/api/tenants/{ta}/balance"),
            None,
            &["financial:read"],
        ),
        (
            Method::GET,
            "/api/maintenance".into(),
            None,
            &["maintenance:request", "maintenance:manage"],
        ),
        (
            Method::POST,
            "/api/maintenance".into(),
            Some(request),
            &["maintenance:request"],
        ),
        (
            Method::GET,
            format!("/api/maintenance/{ra}"),
            None,
            &["maintenance:request", "maintenance:manage"],
        ),
        (
            Method::PATCH,
            format!("/api/maintenance/{ra}"),
            Some(json!({"status": "in_progress"})),
            &["maintenance:manage"],
        ),
    ];
    for (method, path, body, needs) in ops {
        // Everything else the machine client may have.
        let rest: Vec<&str> = CRM_SCOPES
            .split(' ')
            .filter(|s| !needs.contains(s))
            .collect();
        let token = p.scoped(&rest.join(" ")).await;
        let res = app
            .crm_send(method.clone(), &path, Some(&token), body.as_ref())
            .await;
        assert_eq!(res.status(), 403, "{method} {path} without {needs:?}");
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("error=\"insufficient_scope\""),
            "{method} {path}: {challenge}"
        );
        for s in needs {
            assert!(
                challenge.contains(s),
                "{method} {path}: the challenge names {s}: {challenge}"
            );
        }
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "insufficient_scope", "{method} {path}");
    }
    assert_eq!(p.counts().await, before, "nothing was created");
    assert_eq!(p.fetch(&format!("/api/properties/{p1}")).await["units"], 12);
    assert_eq!(p.fetch(&format!("/api/tenants/{ta}")).await["unit"], "4B");
    assert_eq!(
        p.fetch(&format!("/api/maintenance/{ra}")).await["status"],
        "open"
    );
}

// ---------------------------------------------------------------------------------------
// 3. A tenant's token
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_tenant_reaches_only_their_own_records() {
    let p = Portfolio::new().await;
    let app = &p.app;
    let a = p.login(TA_EMAIL, TENANT_SCOPES).await;
    let (ta, tb, tc) = (p.ta, p.tb, p.tc);

    // Their own records.
    let (status, me) = get(app, &format!("/api/tenants/{ta}"), &a).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user_id"], p.ta_user.as_str());
    assert_eq!(me, p.fetch(&format!("/api/tenants/{ta}")).await);
    assert_eq!(
        list_ids(app, &format!("/api/tenants/{ta}/ledger"), &a)
            .await
            .len(),
        2
    );
    let (status, balance) = get(app, &format!("/api/tenants/{ta}/balance"), &a).await;
    assert_eq!(status, 200);
    assert_eq!(balance["balance"], "250.00");
    assert_eq!(
        get(app, &format!("/api/maintenance/{}", p.ra), &a).await.0,
        200
    );

    // Nobody else's: B's, and C's in the same building. Exactly like a missing id.
    for t in [tb, tc] {
        for path in [
            format!("/api/tenants/{t}"),
            format!("/api/tenants/{t}/ledger"),
            format!("/api/tenants/{t}/balance"),
        ] {
            let res = get(app, &path, &a).await;
            assert_not_found(&path, &res);
            let missing = path.replace(&format!("/{t}"), "/999999");
            assert_eq!(res, get(app, &missing, &a).await, "{path} looks missing");
        }
    }
    for r in [p.rb, p.rc] {
        let res = get(app, &format!("/api/maintenance/{r}"), &a).await;
        assert_not_found("another tenant's request", &res);
        assert_eq!(res, get(app, "/api/maintenance/999999", &a).await);
    }

    // Lists hold only A's records, whatever the filter says.
    assert_eq!(list_ids(app, "/api/tenants", &a).await, [ta]);
    assert!(
        list_ids(app, &format!("/api/tenants?property_id={}", p.p2), &a)
            .await
            .is_empty()
    );
    assert_eq!(list_ids(app, "/api/maintenance", &a).await, [p.ra]);
    assert!(
        list_ids(app, &format!("/api/maintenance?tenant_id={tb}"), &a)
            .await
            .is_empty()
    );

    // A opens a request for themselves without naming a tenant.
    let (mine, _) = create(
        app,
        "/api/maintenance",
        &a,
        json!({"title": "No hot water", "description": "Since this morning", "priority": "urgent"}),
    )
    .await;
    assert_eq!(mine["tenant_id"], ta);
    assert_eq!(mine["property_id"], p.p1);
    assert_eq!(mine["unit"], "4B");
    assert_eq!(mine["created_by"], p.ta_user.as_str());
    assert_eq!(mine["status"], "open");
    assert_eq!(
        list_ids(app, "/api/maintenance", &a).await,
        [p.ra, mine["id"].as_i64().unwrap()]
    );
    // Naming their own tenant id is fine; naming B's is not.
    create(
        app,
        "/api/maintenance",
        &a,
        json!({"tenant_id": ta, "title": "Draughty window", "description": "Bedroom"}),
    )
    .await;
    let before = p.counts().await;
    let res = post(
        app,
        "/api/maintenance",
        &a,
        json!({"tenant_id": tb, "title": "Not mine", "description": "B's flat"}),
    )
    .await;
    assert_invalid("a request for another tenant", &res, &["tenant_id"]);
    assert_eq!(p.counts().await, before, "nothing was opened for B");

    // A cannot change anything: 403 for every write but opening requests.
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/api/tenants/{ta}"),
            json!({"phone": "+44 1"}),
        ),
        (
            Method::PATCH,
            format!("/api/maintenance/{}", p.ra),
            json!({"status": "cancelled"}),
        ),
        (
            Method::POST,
            format!("/api/tenants/{ta}/ledger"),
            json!({"kind": "credit", "amount": "250.00", "description": "Mine", "effective_on": "2025-01-06"}),
        ),
        (
            Method::POST,
            "/api/tenants".to_owned(),
            json!({"name": "X", "property_id": p.p1, "unit": "1", "rent": "1.00", "currency": "GBP", "lease_start": "2025-01-01"}),
        ),
        (
            Method::PATCH,
            format!("/api/properties/{}", p.p1),
            json!({"units": 1}),
        ),
        (Method::GET, "/api/properties".to_owned(), Value::Null),
    ] {
        let body = (!body.is_null()).then_some(body);
        let (status, res) = app
            .crm_call(method.clone(), &path, Some(&a), body.as_ref())
            .await;
        assert_eq!(status, 403, "{method} {path}: {res}");
    }
    assert_eq!(p.counts().await, before);
    assert_eq!(p.fetch(&format!("/api/tenants/{ta}")).await, me);
    assert_eq!(
        p.fetch(&format!("/api/maintenance/{}", p.ra)).await["status"],
        "open"
    );
    assert_eq!(
        p.fetch(&format!("/api/tenants/{ta}/balance")).await["balance"],
        "250.00"
    );
}

/// A tenant user never gets a staff scope, whatever the client asks for: the role bounds
/// the grant.
#[tokio::test]
async fn a_tenant_login_is_granted_only_tenant_scopes() {
    let p = Portfolio::new().await;
    let b = p.login(TB_EMAIL, CRM_SCOPES).await;
    let claims = crate::helpers::jwt_part(&b, 1);
    let granted: BTreeSet<&str> = claims["scope"].as_str().unwrap().split(' ').collect();
    let expected: BTreeSet<&str> = TENANT_SCOPES.split(' ').collect();
    assert_eq!(granted, expected);
    assert_eq!(list_ids(&p.app, "/api/tenants", &b).await, [p.tb]);
    assert_eq!(list_ids(&p.app, "/api/maintenance", &b).await, [p.rb]);
}

// ---------------------------------------------------------------------------------------
// 4. A manager's token
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_manager_reaches_only_the_properties_they_manage() {
    let p = Portfolio::new().await;
    let app = &p.app;
    let m = p.login(M1_EMAIL, MANAGER_SCOPES).await;
    let (p1, p2, ta, tb, tc) = (p.p1, p.p2, p.ta, p.tb, p.tc);

    // Reads: their property, its tenants (linked or not), their ledgers and requests.
    assert_eq!(list_ids(app, "/api/properties", &m).await, [p1]);
    assert!(
        list_ids(app, &format!("/api/properties?manager_id={}", p.m2), &m)
            .await
            .is_empty()
    );
    assert_eq!(list_ids(app, "/api/tenants", &m).await, [ta, tc]);
    assert!(list_ids(app, &format!("/api/tenants?property_id={p2}"), &m)
        .await
        .is_empty());
    assert_eq!(list_ids(app, "/api/maintenance", &m).await, [p.ra, p.rc]);
    assert_eq!(get(app, &format!("/api/properties/{p1}"), &m).await.0, 200);
    assert_eq!(
        get(app, &format!("/api/tenants/{ta}/balance"), &m).await.1["balance"],
        "250.00"
    );
    assert_eq!(
        list_ids(app, &format!("/api/tenants/{tc}/ledger"), &m).await,
        Vec::<i64>::new()
    );

    // Manager 2's records are 404 for reads and writes alike.
    let before = p.counts().await;
    let p2_before = p.fetch(&format!("/api/properties/{p2}")).await;
    let tb_before = p.fetch(&format!("/api/tenants/{tb}")).await;
    let rb_before = p.fetch(&format!("/api/maintenance/{}", p.rb)).await;
    for (method, path, body) in [
        (Method::GET, format!("/api/properties/{p2}"), None),
        (
            Method::PATCH,
            format!("/api/properties/{p2}"),
            Some(json!({"units": 5})),
        ),
        (Method::GET, format!("/api/tenants/{tb}"), None),
        (
            Method::PATCH,
            format!("/api/tenants/{tb}"),
            Some(json!({"unit": "G2"})),
        ),
        (Method::GET, format!("/api/tenants/{tb}/ledger"), None),
        (Method::GET, format!("/api/tenants/{tb}/balance"), None),
        (Method::GET, format!("/api/maintenance/{}", p.rb), None),
        (
            Method::PATCH,
            format!("/api/maintenance/{}", p.rb),
            Some(json!({"status": "in_progress"})),
        ),
    ] {
        let res = app
            .crm_call(method.clone(), &path, Some(&m), body.as_ref())
            .await;
        assert_not_found(&format!("{method} {path}"), &res);
    }
    // Creating a tenant in manager 2's property, moving one there, or opening a request
    // for manager 2's tenant: the referenced record does not exist for this token.
    let res = post(
        app,
        "/api/tenants",
        &m,
        json!({"name": "Sneaky", "property_id": p2, "unit": "G9", "rent": "1.00",
               "currency": "GBP", "lease_start": "2025-01-01"}),
    )
    .await;
    assert_invalid("a tenant in an invisible property", &res, &["property_id"]);
    assert_eq!(field_message(&res.1, "property_id"), "no such property");
    let res = patch(
        app,
        &format!("/api/tenants/{ta}"),
        &m,
        json!({"property_id": p2}),
    )
    .await;
    assert_invalid(
        "moving a tenant to an invisible property",
        &res,
        &["property_id"],
    );
    let res = post(
        app,
        "/api/maintenance",
        &m,
        json!({"tenant_id": tb, "title": "T", "description": "D"}),
    )
    .await;
    assert_invalid("a request for an invisible tenant", &res, &["tenant_id"]);
    assert_eq!(p.counts().await, before, "nothing was created");
    assert_eq!(p.fetch(&format!("/api/properties/{p2}")).await, p2_before);
    assert_eq!(p.fetch(&format!("/api/tenants/{tb}")).await, tb_before);
    assert_eq!(
        p.fetch(&format!("/api/maintenance/{}", p.rb)).await,
        rb_before
    );
    assert_eq!(
        p.fetch(&format!("/api/tenants/{ta}")).await["property_id"],
        p1
    );

    // Their own records they may change.
    let (status, changed) = patch(
        app,
        &format!("/api/properties/{p1}"),
        &m,
        json!({"units": 14}),
    )
    .await;
    assert_eq!((status, &changed["units"]), (200, &json!(14)), "{changed}");
    let (status, changed) = patch(
        app,
        &format!("/api/maintenance/{}", p.rc),
        &m,
        json!({"status": "in_progress"}),
    )
    .await;
    assert_eq!(
        (status, &changed["status"]),
        (200, &json!("in_progress")),
        "{changed}"
    );
    let (opened, _) = create(
        app,
        "/api/maintenance",
        &m,
        json!({"tenant_id": tc, "title": "Gutter", "description": "Blocked"}),
    )
    .await;
    assert_eq!(opened["created_by"], p.m1.as_str());
    // But not record money: managers cannot hold financial:write.
    let (status, _) = post(
        app,
        &format!("/api/tenants/{ta}/ledger"),
        &m,
        json!({"kind": "credit", "amount": "1.00", "description": "D", "effective_on": "2025-01-01"}),
    )
    .await;
    assert_eq!(status, 403);

    // A manager's new property is theirs; they cannot hand it (or p1) to someone else.
    let (mine, _) = create(
        app,
        "/api/properties",
        &m,
        json!({"name": "Quay Lofts", "address": "4 Quay St", "kind": "residential", "units": 6}),
    )
    .await;
    assert_eq!(mine["manager_id"], p.m1.as_str());
    assert_eq!(mine["created_by"], p.m1.as_str());
    let mine_id = mine["id"].as_i64().unwrap();
    assert_eq!(list_ids(app, "/api/properties", &m).await, [p1, mine_id]);
    create(
        app,
        "/api/properties",
        &m,
        json!({"name": "Quay Annex", "address": "5 Quay St", "kind": "residential", "units": 2,
               "manager_id": p.m1}),
    )
    .await;
    let before = p.counts().await;
    let res = post(
        app,
        "/api/properties",
        &m,
        json!({"name": "Gift", "address": "6 Quay St", "kind": "residential", "units": 1,
               "manager_id": p.m2}),
    )
    .await;
    assert_invalid("a property for another manager", &res, &["manager_id"]);
    let res = patch(
        app,
        &format!("/api/properties/{p1}"),
        &m,
        json!({"manager_id": p.m2}),
    )
    .await;
    assert_invalid("reassigning a property", &res, &["manager_id"]);
    assert_eq!(p.counts().await, before);
    assert_eq!(
        p.fetch(&format!("/api/properties/{p1}")).await["manager_id"],
        p.m1.as_str()
    );
}

/// An administrator's token sees and changes the whole portfolio, like a machine client.
#[tokio::test]
async fn an_admin_user_reaches_the_whole_portfolio() {
    let p = Portfolio::new().await;
    let app = &p.app;
    let admin_id = app.create_user(ADMIN_EMAIL, "admin", PASSWORD);
    let a = p.login(ADMIN_EMAIL, CRM_SCOPES).await;
    assert_eq!(list_ids(app, "/api/properties", &a).await, [p.p1, p.p2]);
    assert_eq!(list_ids(app, "/api/tenants", &a).await, [p.ta, p.tb, p.tc]);
    assert_eq!(
        list_ids(app, "/api/maintenance", &a).await,
        [p.ra, p.rb, p.rc]
    );
    let (entry, _) = create(
        app,
        &format!("/api/tenants/{}/ledger", p.tb),
        &a,
        json!({"kind": "payment", "amount": "900.00", "description": "January",
               "effective_on": "2025-01-03"}),
    )
    .await;
    assert_eq!(entry["created_by"], admin_id.as_str());
    assert_eq!(
        p.fetch(&format!("/api/tenants/{}/balance", p.tb)).await["balance"],
        "0.00"
    );
    // Only a portfolio-wide token may reassign a property.
    let (status, moved) = patch(
        app,
        &format!("/api/properties/{}", p.p2),
        &a,
        json!({"manager_id": p.m1}),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["manager_id"], p.m1.as_str());
    // ...and only to a manager.
    let res = patch(
        app,
        &format!("/api/properties/{}", p.p2),
        &a,
        json!({"manager_id": p.ta_user}),
    )
    .await;
    assert_invalid("a tenant as manager", &res, &["manager_id"]);
}

/// The binding is worked out from the data on every request, not frozen into the token: a
/// tenant user without a record sees nothing until one is linked to them; a manager stops
/// seeing a tenant who moves to another manager's property, and that manager starts.
#[tokio::test]
async fn the_binding_follows_the_records_on_every_request() {
    let p = Portfolio::new().await;
    let app = &p.app;
    let new_email = "nell.newcomer@example.com";
    let nell = app.create_user(new_email, "tenant", PASSWORD);
    let n = p.login(new_email, TENANT_SCOPES).await;
    let m1 = p.login(M1_EMAIL, MANAGER_SCOPES).await;
    let m2 = p.login(M2_EMAIL, MANAGER_SCOPES).await;
    let tc = p.tc;

    // Not linked yet: nothing to see, and no record to open a request for.
    assert!(list_ids(app, "/api/tenants", &n).await.is_empty());
    assert!(list_ids(app, "/api/maintenance", &n).await.is_empty());
    assert_not_found("tc", &get(app, &format!("/api/tenants/{tc}"), &n).await);
    let res = post(
        app,
        "/api/maintenance",
        &n,
        json!({"title": "Locked out", "description": "No key yet"}),
    )
    .await;
    assert_invalid("an unlinked tenant user", &res, &["tenant_id"]);

    // Linked to tc: the same token now reaches tc, its ledger and its request.
    let (status, linked) = patch(
        app,
        &format!("/api/tenants/{tc}"),
        &p.admin,
        json!({"user_id": nell}),
    )
    .await;
    assert_eq!(status, 200, "{linked}");
    assert_eq!(list_ids(app, "/api/tenants", &n).await, [tc]);
    assert_eq!(list_ids(app, "/api/maintenance", &n).await, [p.rc]);
    assert_eq!(
        get(app, &format!("/api/tenants/{tc}/balance"), &n).await.0,
        200
    );
    let (opened, _) = create(
        app,
        "/api/maintenance",
        &n,
        json!({"title": "Locked out", "description": "Key does not turn"}),
    )
    .await;
    assert_eq!(opened["tenant_id"], tc);

    // An administrator moves tc to manager 2's property (a manager could not: see
    // a_manager_reaches_only_the_properties_they_manage); both managers' views follow.
    assert_eq!(list_ids(app, "/api/tenants", &m1).await, [p.ta, tc]);
    let (status, moved) = patch(
        app,
        &format!("/api/tenants/{tc}"),
        &p.admin,
        json!({"property_id": p.p2, "unit": "G2"}),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(list_ids(app, "/api/tenants", &m1).await, [p.ta]);
    assert_not_found(
        "a tenant who moved away",
        &get(app, &format!("/api/tenants/{tc}/ledger"), &m1).await,
    );
    assert_eq!(list_ids(app, "/api/tenants", &m2).await, [p.tb, tc]);
    assert_eq!(
        get(app, &format!("/api/tenants/{tc}/balance"), &m2).await.0,
        200
    );
    // A request opened after the move belongs to the new property.
    let (later, _) = create(
        app,
        "/api/maintenance",
        &n,
        json!({"title": "New flat", "description": "Radiator cold"}),
    )
    .await;
    assert_eq!(
        (&later["property_id"], &later["unit"]),
        (&json!(p.p2), &json!("G2"))
    );
    let later_id = later["id"].as_i64().unwrap();
    assert!(list_ids(app, "/api/maintenance", &m2)
        .await
        .contains(&later_id));
    assert!(!list_ids(app, "/api/maintenance", &m1)
        .await
        .contains(&later_id));
}

/// A tenant user is linked to at most one tenant record, even when several requests race
/// to link them.
#[tokio::test]
async fn a_tenant_user_is_linked_at_most_once_even_under_concurrency() {
    let p = Portfolio::new().await;
    let app = &p.app;
    let user = app.create_user("rita.race@example.com", "tenant", PASSWORD);
    let before = p.all("/api/tenants").await.len();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let http = app.http.clone();
        let url = format!("{}/api/tenants", app.base);
        let token = p.admin.clone();
        let body = json!({"name": format!("Racer {i}"), "user_id": user, "property_id": p.p1,
                          "unit": format!("R{i}"), "rent": "1.00", "currency": "GBP",
                          "lease_start": "2025-01-01"});
        tasks.push(tokio::spawn(async move {
            let res = http
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }));
    }
    let mut created = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            201 => created += 1,
            _ => assert_invalid("a second link", &(status, body), &["user_id"]),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(p.all("/api/tenants").await.len(), before + 1);
    // Nor can an existing record take a linked user.
    let res = patch(
        app,
        &format!("/api/tenants/{}", p.tc),
        &p.admin,
        json!({"user_id": user}),
    )
    .await;
    assert_invalid("linking a linked user", &res, &["user_id"]);
}

/// Unknown ids and ids that are not positive integers are 404, for every route with one.
#[tokio::test]
async fn unknown_and_non_numeric_ids_are_not_found() {
    let p = Portfolio::new().await;
    let app = &p.app;
    let entry = json!({"kind": "charge", "amount": "1.00", "description": "D",
                       "effective_on": "2025-01-01"});
    for id in [
        "999999",
        "abc",
        "0",
        "-1",
        "1.5",
        "1e2",
        "%20",
        "9223372036854775808",
    ] {
        for (method, path, body) in [
            (Method::GET, format!("/api/properties/{id}"), None),
            (
                Method::PATCH,
                format!("/api/properties/{id}"),
                Some(json!({"units": 2})),
            ),
            (Method::GET, format!("/api/tenants/{id}"), None),
            (
                Method::PATCH,
                format!("/api/tenants/{id}"),
                Some(json!({"unit": "1"})),
            ),
            (Method::GET, format!("/api/tenants/{id}/ledger"), None),
            (
                Method::POST,
                format!("/api/tenants/{id}/ledger"),
                Some(entry.clone()),
            ),
            (Method::GET, format!("/api/tenants/{id}/balance"), None),
            (Method::GET, format!("/api/maintenance/{id}"), None),
            (
                Method::PATCH,
                format!("/api/maintenance/{id}"),
                Some(json!({"assignee": "X"})),
            ),
        ] {
            let res = app
                .crm_call(method.clone(), &path, Some(&p.admin), body.as_ref())
                .await;
            assert_not_found(&format!("{method} {path}"), &res);
        }
    }
}

// ---------------------------------------------------------------------------------------
// 5. Money
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn money_is_exact() {
    let p = Portfolio::new().await;
    let app = &p.app;
    let tc = p.tc;
    let ledger = format!("/api/tenants/{tc}/ledger");
    let balance = format!("/api/tenants/{tc}/balance");
    let entry = |kind: &str, amount: Value| json!({"kind": kind, "amount": amount, "description": "entry", "effective_on": "2025-02-01"});
    assert_eq!(
        p.fetch(&balance).await,
        json!({"tenant_id": tc, "currency": "GBP", "balance": "0.00", "balance_minor": 0,
               "charged": "0.00", "paid": "0.00"}),
        "an empty ledger balances at zero"
    );

    // 0.10 + 0.10 + 0.10 - 0.30 is zero, exactly.
    for _ in 0..3 {
        let (e, _) = create(app, &ledger, &p.admin, entry("charge", json!("0.10"))).await;
        assert_eq!(
            (&e["amount"], &e["amount_minor"]),
            (&json!("0.10"), &json!(10))
        );
    }
    create(app, &ledger, &p.admin, entry("payment", json!("0.30"))).await;
    assert_eq!(
        p.fetch(&balance).await,
        json!({"tenant_id": tc, "currency": "GBP", "balance": "0.00", "balance_minor": 0,
               "charged": "0.30", "paid": "0.30"})
    );

    // Refused amounts, each reported on `amount` alone, and nothing recorded.
    let before = p.all(&ledger).await;
    for bad in [
        json!("1.005"),
        json!("-1"),
        json!("-1.00"),
        json!("1e3"),
        json!("0"),
        json!("0.00"),
        json!(""),
        json!("1."),
        json!(".5"),
        json!(" 1.00"),
        json!("1,000.00"),
        json!("NaN"),
        json!("100000000.01"),
        json!(12.5),
        json!(12),
        json!(null),
    ] {
        let res = post(app, &ledger, &p.admin, entry("charge", bad.clone())).await;
        assert_invalid(&format!("amount {bad}"), &res, &["amount"]);
    }
    assert_eq!(p.all(&ledger).await, before);

    // Overpaying leaves a negative balance; large amounts stay exact.
    create(app, &ledger, &p.admin, entry("payment", json!("50"))).await;
    let b = p.fetch(&balance).await;
    assert_eq!(
        (&b["balance"], &b["balance_minor"]),
        (&json!("-50.00"), &json!(-5000))
    );
    create(
        app,
        &ledger,
        &p.admin,
        entry("charge", json!("99999999.99")),
    )
    .await;
    create(app, &ledger, &p.admin, entry("charge", json!("0.01"))).await;
    create(app, &ledger, &p.admin, entry("credit", json!("0.5"))).await;
    let b = p.fetch(&balance).await;
    assert_eq!(
        b,
        json!({"tenant_id": tc, "currency": "GBP", "balance": "99999949.50",
               "balance_minor": 9_999_994_950_i64, "charged": "100000000.30",
               "paid": "50.80"})
    );

    // Rent follows the same rules.
    let res = patch(
        app,
        &format!("/api/tenants/{tc}"),
        &p.admin,
        json!({"rent": "1100.005"}),
    )
    .await;
    assert_invalid("rent with three decimals", &res, &["rent"]);
    let res = patch(
        app,
        &format!("/api/tenants/{tc}"),
        &p.admin,
        json!({"rent": 1100}),
    )
    .await;
    assert_invalid("rent as a JSON number", &res, &["rent"]);
    let (status, t) = patch(
        app,
        &format!("/api/tenants/{tc}"),
        &p.admin,
        json!({"rent": "1100.5"}),
    )
    .await;
    assert_eq!((status, &t["rent"]), (200, &json!("1100.50")), "{t}");
}

// ---------------------------------------------------------------------------------------
// 6. Validation
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_requests_report_every_bad_field_and_change_nothing() {
    let p = Portfolio::new().await;
    let app = &p.app;
    let admin = &p.admin;
    let before = p.counts().await;

    let res = post(
        app,
        "/api/properties",
        admin,
        json!({"name": "  ", "address": "x".repeat(501), "kind": "castle", "units": 0,
               "manager_id": "bad id!"}),
    )
    .await;
    assert_invalid(
        "property",
        &res,
        &["name", "address", "kind", "units", "manager_id"],
    );
    assert_eq!(
        field_message(&res.1, "units"),
        "must be between 1 and 100000"
    );
    assert!(field_message(&res.1, "kind").contains("residential"));
    let res = post(app, "/api/properties", admin, json!({})).await;
    assert_invalid(
        "empty property",
        &res,
        &["name", "address", "kind", "units"],
    );
    assert_eq!(field_message(&res.1, "name"), "is required");
    let res = post(
        app,
        "/api/properties",
        admin,
        json!({"name": "N", "address": "A", "kind": "residential", "units": 100001}),
    )
    .await;
    assert_invalid("too many units", &res, &["units"]);
    let res = post(
        app,
        "/api/properties",
        admin,
        json!({"name": "N", "address": "A", "kind": "residential", "units": 1,
               "manager_id": p.ta_user}),
    )
    .await;
    assert_invalid("a tenant user as manager", &res, &["manager_id"]);

    let res = post(
        app,
        "/api/tenants",
        admin,
        json!({"email": "nope", "phone": "call me", "property_id": 0, "rent": "12.345",
               "currency": "pounds", "lease_start": "2025-02-30", "user_id": "bad id!"}),
    )
    .await;
    assert_invalid(
        "tenant",
        &res,
        &[
            "name",
            "email",
            "phone",
            "user_id",
            "property_id",
            "unit",
            "rent",
            "currency",
            "lease_start",
        ],
    );
    let valid_tenant = |extra: Value| {
        let mut t = json!({"name": "N", "property_id": p.p1, "unit": "9", "rent": "1.00",
                           "currency": "GBP", "lease_start": "2025-01-01"});
        for (k, v) in extra.as_object().unwrap() {
            t[k] = v.clone();
        }
        t
    };
    for (what, extra, field) in [
        (
            "an unknown property",
            json!({"property_id": 999999}),
            "property_id",
        ),
        (
            "an already linked user",
            json!({"user_id": p.ta_user}),
            "user_id",
        ),
        (
            "a manager as tenant user",
            json!({"user_id": p.m1}),
            "user_id",
        ),
        (
            "an unknown user",
            json!({"user_id": "no-such-user"}),
            "user_id",
        ),
        (
            "a leap day in a common year",
            json!({"lease_start": "2025-02-29"}),
            "lease_start",
        ),
        (
            "lower-case currency",
            json!({"currency": "gbp"}),
            "currency",
        ),
    ] {
        let res = post(app, "/api/tenants", admin, valid_tenant(extra)).await;
        assert_invalid(what, &res, &[field]);
    }
    let ta_path = format!("/api/tenants/{}", p.ta);
    let res = patch(app, &ta_path, admin, json!({"currency": "EUR"})).await;
    assert_invalid("changing the currency", &res, &["currency"]);
    let res = patch(app, &ta_path, admin, json!({})).await;
    assert_invalid("an empty change", &res, &["body"]);
    let res = patch(app, &ta_path, admin, json!({"name": "", "phone": "x"})).await;
    assert_invalid("a bad change", &res, &["name", "phone"]);

    let res = post(
        app,
        &format!("/api/tenants/{}/ledger", p.ta),
        admin,
        json!({"kind": "refund", "amount": "-5", "effective_on": "yesterday"}),
    )
    .await;
    assert_invalid(
        "ledger entry",
        &res,
        &["kind", "amount", "description", "effective_on"],
    );

    let res = post(
        app,
        "/api/maintenance",
        admin,
        json!({"tenant_id": p.ta, "title": "", "description": "x".repeat(2001), "priority": "asap"}),
    )
    .await;
    assert_invalid(
        "maintenance request",
        &res,
        &["title", "description", "priority"],
    );
    let res = post(
        app,
        "/api/maintenance",
        admin,
        json!({"title": "T", "description": "D"}),
    )
    .await;
    assert_invalid("staff without a tenant", &res, &["tenant_id"]);
    let res = post(
        app,
        "/api/maintenance",
        admin,
        json!({"tenant_id": 999999, "title": "T", "description": "D"}),
    )
    .await;
    assert_invalid("an unknown tenant", &res, &["tenant_id"]);
    let res = patch(
        app,
        &format!("/api/maintenance/{}", p.ra),
        admin,
        json!({"status": "done"}),
    )
    .await;
    assert_invalid("an unknown status", &res, &["status"]);

    // Unknown fields are refused, not ignored.
    for (path, body) in [
        (
            "/api/properties".to_owned(),
            json!({"name": "N", "address": "A", "kind": "residential", "units": 1, "colour": "red"}),
        ),
        ("/api/tenants".to_owned(), valid_tenant(json!({"pets": 2}))),
        (
            "/api/maintenance".to_owned(),
            json!({"tenant_id": p.ta, "title": "T", "description": "D", "status": "closed"}),
        ),
        (
            format!("/api/tenants/{}/ledger", p.ta),
            json!({"kind": "charge", "amount": "1.00", "description": "D", "effective_on": "2025-01-01",
                "currency": "USD"}),
        ),
    ] {
        let (status, body) = post(app, &path, admin, body).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(body["error"], "validation_failed");
        assert!(body.to_string().contains("unknown field"), "{path}: {body}");
    }
    let (status, _) = patch(
        app,
        &format!("/api/properties/{}", p.p1),
        admin,
        json!({"units": 2, "owner": "me"}),
    )
    .await;
    assert_eq!(status, 422);

    // Malformed JSON is 400; another content type 415; neither creates anything.
    let good = json!({"name": "N", "address": "A", "kind": "residential", "units": 1}).to_string();
    for (ctype, body, expected) in [
        (
            Some("application/json"),
            "{\"name\": \"N\",".to_owned(),
            400,
        ),
        (Some("application/json"), format!("{good} trailing"), 400),
        (Some("application/json"), String::new(), 400),
        (Some("text/plain"), good.clone(), 415),
        (
            Some("application/x-www-form-urlencoded"),
            "name=N".to_owned(),
            415,
        ),
        (None, good.clone(), 415),
    ] {
        let mut req = app
            .http
            .post(format!("{}/api/properties", app.base))
            .bearer_auth(admin)
            .body(body.clone());
        if let Some(c) = ctype {
            req = req.header("content-type", c);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), expected, "{ctype:?} {body}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"], "invalid_request", "{ctype:?} {body}");
    }
    // A JSON body that is not an object.
    let (status, _) = post(app, "/api/properties", admin, json!(["N"])).await;
    assert_eq!(status, 422);
    // The media type's parameters do not matter.
    let res = app
        .http
        .post(format!("{}/api/properties", app.base))
        .bearer_auth(admin)
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    let mut after = p.counts().await;
    after[0] -= 1;
    assert_eq!(
        after, before,
        "only the last, valid request created anything"
    );
    assert_eq!(
        p.fetch(&format!("/api/properties/{}", p.p1)).await["units"],
        12
    );
    assert_eq!(p.fetch(&ta_path).await["currency"], "GBP");
}

/// A field of the wrong JSON type is reported together with the other bad fields.
#[tokio::test]
async fn a_type_error_is_reported_with_the_other_bad_fields() {
    let p = Portfolio::new().await;
    let res = post(
        &p.app,
        &format!("/api/tenants/{}/ledger", p.ta),
        &p.admin,
        json!({"kind": "refund", "amount": 12.5, "effective_on": "yesterday"}),
    )
    .await;
    assert_invalid(
        "ledger entry with a number amount",
        &res,
        &["kind", "amount", "description", "effective_on"],
    );
}

/// A body full of bad fields (here about 62 KB: 800 unknown fields with long names and a
/// wrong-typed field with a 12 KB value) gets a small 422: the first 20 field errors, a
/// note of how many more there were, no long input echoed, and nothing created.
#[tokio::test]
async fn a_body_full_of_bad_fields_gets_a_small_422_and_changes_nothing() {
    let app = spawn_app().await;
    let creds = app.create_client(CRM_SCOPES);
    let token = app.access_token(&creds, None).await;
    let mut body = serde_json::Map::new();
    for i in 0..800 {
        body.insert(format!("unknown_{i:04}_{}", "x".repeat(40)), json!(i));
    }
    let long = "9".repeat(14_000);
    body.insert("units".into(), json!(long));
    let body = Value::Object(body);
    let sent = body.to_string().len();
    assert!(
        (60_000..64 * 1024).contains(&sent),
        "a body under the limit: {sent}"
    );

    let res = app
        .crm_send(Method::POST, "/api/properties", Some(&token), Some(&body))
        .await;
    assert_eq!(res.status(), 422);
    let text = res.text().await.expect("body");
    assert!(
        text.len() < 8 * 1024,
        "a small answer: {} bytes",
        text.len()
    );
    assert!(!text.contains(&long[..300]), "the long value is not echoed");
    let answer: Value = serde_json::from_str(&text).expect("JSON");
    let fields = crm_error_fields(&answer);
    assert_eq!(fields.len(), 20, "{answer}");
    assert_eq!(answer["truncated"], true, "{answer}");
    // Every unknown field, and name, address, kind (missing) and units (wrong type).
    assert_eq!(answer["fields_omitted"], 804 - 20, "{answer}");
    for f in ["name", "address", "kind", "units"] {
        assert!(
            fields.iter().any(|x| x == f),
            "{f} among the first: {fields:?}"
        );
    }
    assert!(
        fields.iter().all(|f| f.len() < 100),
        "field names are cut: {fields:?}"
    );

    // A few bad fields are all listed, with no truncation note.
    let (status, answer) = post(&app, "/api/properties", &token, json!({"units": 0})).await;
    assert_eq!(status, 422);
    assert!(answer.get("truncated").is_none(), "{answer}");
    assert_eq!(crm_error_fields(&answer).len(), 4, "{answer}");

    let (status, page) = get(&app, "/api/properties", &token).await;
    assert_eq!(status, 200);
    assert_eq!(page["items"], json!([]), "nothing was created");
}

// ---------------------------------------------------------------------------------------
// 7. Lists
// ---------------------------------------------------------------------------------------

/// Follows `next_cursor` from `first` (a path with its query) to the end; returns every
/// page's items.
async fn pages(app: &TestApp, first: &str, token: &str) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    let mut path = first.to_owned();
    for _ in 0..50 {
        let (status, page) = get(app, &path, token).await;
        assert_eq!(status, 200, "GET {path}: {page}");
        out.push(page["items"].as_array().unwrap().clone());
        match page.get("next_cursor") {
            None => return out,
            Some(c) => {
                let c = c.as_str().expect("next_cursor is a string");
                path = format!("{first}&cursor={c}");
            }
        }
    }
    panic!("{first} never ends");
}

#[tokio::test]
async fn lists_page_completely_with_a_cursor_in_either_order() {
    let app = spawn_app().await;
    let creds = app.create_client(CRM_SCOPES);
    let token = app.access_token(&creds, None).await;
    // Repeated names put page boundaries inside runs of equal sort values.
    let names = [
        "Cedar", "Alder", "Birch", "Cedar", "Birch", "Dogwood", "Cedar",
    ];
    let mut made = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let kind = if i % 3 == 0 {
            "commercial"
        } else {
            "residential"
        };
        let id = create_id(
            &app,
            "/api/properties",
            &token,
            json!({"name": name, "address": format!("{i} Elm Row"), "kind": kind, "units": i + 1}),
        )
        .await;
        made.push((id, name.to_string(), kind));
    }
    let ids_of = |pages: &[Vec<Value>]| -> Vec<i64> {
        pages
            .iter()
            .flatten()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    };
    let mut by_id: Vec<i64> = made.iter().map(|m| m.0).collect();
    by_id.sort();
    let mut by_name: Vec<(String, i64)> = made.iter().map(|m| (m.1.clone(), m.0)).collect();
    by_name.sort();
    let by_name: Vec<i64> = by_name.into_iter().map(|(_, id)| id).collect();
    let by_name_desc: Vec<i64> = by_name.iter().rev().copied().collect();

    for (query, expected) in [
        ("limit=3", &by_id),
        ("limit=3&sort=id", &by_id),
        ("limit=3&sort=name", &by_name),
        ("limit=3&sort=-name", &by_name_desc),
        ("limit=3&sort=created_at", &by_id),
    ] {
        let got = pages(&app, &format!("/api/properties?{query}"), &token).await;
        let sizes: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 3, 1], "{query}");
        let ids = ids_of(&got);
        assert_eq!(&ids, expected, "{query}: complete, in order");
        assert_eq!(
            ids.iter().collect::<BTreeSet<_>>().len(),
            ids.len(),
            "{query}: no overlap"
        );
    }
    let desc = pages(&app, "/api/properties?limit=7&sort=-id", &token).await;
    assert_eq!(desc.len(), 1, "an exactly full page has no next_cursor");
    assert_eq!(
        ids_of(&desc),
        by_id.iter().rev().copied().collect::<Vec<_>>()
    );
    let all = pages(&app, "/api/properties?limit=2&sort=-name", &token).await;
    assert_eq!(ids_of(&all), by_name_desc);

    // A cursor belongs to its sort order.
    let (_, first) = get(&app, "/api/properties?limit=3&sort=-name", &token).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    for query in [
        format!("sort=name&cursor={cursor}"),
        format!("cursor={cursor}"),
        format!("sort=-id&cursor={cursor}"),
    ] {
        let res = get(&app, &format!("/api/properties?{query}"), &token).await;
        assert_invalid(&query, &res, &["cursor"]);
        assert_eq!(
            field_message(&res.1, "cursor"),
            "was made for another sort order"
        );
    }
    // Garbage cursors, bad parameters, unknown parameters.
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    for (query, field) in [
        ("cursor=abc".to_owned(), "cursor"),
        ("cursor=%25%25%25".to_owned(), "cursor"),
        (format!("cursor={}", b64("{}")), "cursor"),
        (format!("cursor={}", b64("not json")), "cursor"),
        (format!("cursor={}", "A".repeat(600)), "cursor"),
        ("limit=0".to_owned(), "limit"),
        ("limit=101".to_owned(), "limit"),
        ("limit=ten".to_owned(), "limit"),
        ("limit=-1".to_owned(), "limit"),
        ("limit=2&limit=3".to_owned(), "limit"),
        ("sort=colour".to_owned(), "sort"),
        ("sort=address".to_owned(), "sort"),
        ("colour=red".to_owned(), "colour"),
        ("kind=castle".to_owned(), "kind"),
        ("manager_id=bad%20id!".to_owned(), "manager_id"),
    ] {
        let res = get(&app, &format!("/api/properties?{query}"), &token).await;
        assert_invalid(&query, &res, &[field]);
    }
    let res = get(&app, "/api/properties?limit=0&sort=x&colour=red", &token).await;
    assert_invalid("several bad parameters", &res, &["limit", "sort", "colour"]);
    let res = get(&app, "/api/tenants?kind=residential", &token).await;
    assert_invalid("a filter of another resource", &res, &["kind"]);

    // Filters narrow.
    let commercial: Vec<i64> = made
        .iter()
        .filter(|m| m.2 == "commercial")
        .map(|m| m.0)
        .collect();
    assert_eq!(
        list_ids(&app, "/api/properties?kind=commercial", &token).await,
        commercial
    );
    assert!(list_ids(&app, "/api/properties?kind=mixed_use", &token)
        .await
        .is_empty());
    let got = pages(
        &app,
        "/api/properties?limit=1&kind=residential&sort=-name",
        &token,
    )
    .await;
    assert_eq!(got.len(), 4);
    assert!(got.iter().flatten().all(|i| i["kind"] == "residential"));
}

#[tokio::test]
async fn list_filters_narrow_tenants_ledgers_and_requests() {
    let p = Portfolio::new().await;
    let app = &p.app;
    let admin = &p.admin;
    let (ta, tb, tc) = (p.ta, p.tb, p.tc);

    assert_eq!(
        list_ids(app, &format!("/api/tenants?property_id={}", p.p1), admin).await,
        [ta, tc]
    );
    assert_eq!(
        list_ids(app, &format!("/api/tenants?property_id={}", p.p2), admin).await,
        [tb]
    );
    let res = get(app, "/api/tenants?property_id=one", admin).await;
    assert_invalid("property_id=one", &res, &["property_id"]);
    let (status, page) = get(app, "/api/tenants?sort=-name&limit=1", admin).await;
    assert_eq!(status, 200);
    assert_eq!(item_ids(&page), [tc], "Cy, Bob, Ada");

    // Maintenance: status, priority, property, tenant, and sorting by urgency.
    let (status, _) = patch(
        app,
        &format!("/api/maintenance/{}", p.ra),
        admin,
        json!({"status": "in_progress"}),
    )
    .await;
    assert_eq!(status, 200);
    for (query, expected) in [
        ("status=open", vec![p.rb, p.rc]),
        ("status=in_progress", vec![p.ra]),
        ("status=closed", vec![]),
        ("priority=urgent", vec![p.rb]),
        ("priority=normal", vec![]),
        (&format!("property_id={}", p.p1) as &str, vec![p.ra, p.rc]),
        (&format!("tenant_id={tb}"), vec![p.rb]),
        (&format!("status=open&property_id={}", p.p1), vec![p.rc]),
        ("sort=-priority", vec![p.rb, p.ra, p.rc]),
        ("sort=priority", vec![p.rc, p.ra, p.rb]),
        ("sort=-updated_at&status=open", vec![p.rc, p.rb]),
    ] {
        assert_eq!(
            list_ids(app, &format!("/api/maintenance?{query}"), admin).await,
            expected,
            "{query}"
        );
    }
    for (query, field) in [
        ("status=done", "status"),
        ("priority=asap", "priority"),
        ("tenant_id=x", "tenant_id"),
        ("sort=title", "sort"),
        ("assignee=Pat", "assignee"),
    ] {
        let res = get(app, &format!("/api/maintenance?{query}"), admin).await;
        assert_invalid(query, &res, &[field]);
    }

    // The ledger: kind and an inclusive date range; paging by effective date.
    let ledger = format!("/api/tenants/{ta}/ledger");
    for (kind, amount, on) in [
        ("charge", "1250.00", "2025-02-01"),
        ("credit", "50.00", "2025-02-10"),
        ("charge", "1250.00", "2025-03-01"),
    ] {
        create(
            app,
            &ledger,
            admin,
            json!({"kind": kind, "amount": amount, "description": "D", "effective_on": on}),
        )
        .await;
    }
    let dates = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["effective_on"].as_str().unwrap().to_owned())
            .collect()
    };
    for (query, expected) in [
        (
            "kind=charge",
            vec!["2025-01-01", "2025-02-01", "2025-03-01"],
        ),
        ("kind=payment", vec!["2025-01-05"]),
        ("kind=credit", vec!["2025-02-10"]),
        (
            "from=2025-01-05&to=2025-02-10",
            vec!["2025-01-05", "2025-02-01", "2025-02-10"],
        ),
        ("from=2025-02-02", vec!["2025-02-10", "2025-03-01"]),
        ("to=2025-01-01", vec!["2025-01-01"]),
        ("from=2025-02-01&to=2025-02-01", vec!["2025-02-01"]),
        (
            "kind=charge&from=2025-01-02",
            vec!["2025-02-01", "2025-03-01"],
        ),
        (
            "sort=-effective_on&kind=charge",
            vec!["2025-03-01", "2025-02-01", "2025-01-01"],
        ),
        ("from=2026-01-01", vec![]),
    ] {
        let (status, page) = get(app, &format!("{ledger}?{query}"), admin).await;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(dates(&page), expected, "{query}");
    }
    for (query, field) in [
        ("from=2025-03-01&to=2025-01-01", "to"),
        ("from=2025-13-01", "from"),
        ("to=01/02/2025", "to"),
        ("kind=refund", "kind"),
        ("sort=amount", "sort"),
        ("tenant_id=1", "tenant_id"),
    ] {
        let res = get(app, &format!("{ledger}?{query}"), admin).await;
        assert_invalid(query, &res, &[field]);
    }
    let got = pages(app, &format!("{ledger}?limit=2&sort=-effective_on"), admin).await;
    let all: Vec<&str> = got
        .iter()
        .flatten()
        .map(|e| e["effective_on"].as_str().unwrap())
        .collect();
    assert_eq!(
        all,
        [
            "2025-03-01",
            "2025-02-10",
            "2025-02-01",
            "2025-01-05",
            "2025-01-01"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// 8. Maintenance status transitions
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn maintenance_requests_follow_the_status_transitions() {
    let p = Portfolio::new().await;
    let app = &p.app;
    let m = p.login(M1_EMAIL, MANAGER_SCOPES).await;
    let status_of = |r: i64| format!("/api/maintenance/{r}");

    // The legal path, as manager 1.
    let ra = status_of(p.ra);
    let created = p.fetch(&ra).await;
    for next in ["in_progress", "resolved", "closed"] {
        let (status, r) = patch(app, &ra, &m, json!({"status": next})).await;
        assert_eq!(status, 200, "→ {next}: {r}");
        assert_eq!(r["status"], next);
        assert!(r["updated_at"].as_i64() >= created["updated_at"].as_i64());
        assert_eq!(r["created_at"], created["created_at"]);
    }
    // A closed request no longer changes, in any way.
    for body in [
        json!({"status": "in_progress"}),
        json!({"status": "closed"}),
        json!({"assignee": "Pat"}),
        json!({"priority": "low"}),
    ] {
        let res = patch(app, &ra, &m, body.clone()).await;
        assert_invalid(&format!("closed request {body}"), &res, &["status"]);
    }
    let after = p.fetch(&ra).await;
    assert_eq!(
        (&after["status"], &after["assignee"], &after["priority"]),
        (&json!("closed"), &Value::Null, &json!("high"))
    );

    // Illegal jumps name the allowed transitions and change nothing.
    let rb = status_of(p.rb);
    let before = p.fetch(&rb).await;
    let res = patch(
        app,
        &rb,
        &p.admin,
        json!({"status": "closed", "assignee": "Pat"}),
    )
    .await;
    assert_invalid("open → closed", &res, &["status"]);
    let msg = field_message(&res.1, "status");
    assert!(
        msg.contains("in_progress") && msg.contains("cancelled"),
        "{msg}"
    );
    assert_eq!(
        msg,
        "cannot change from open to closed; allowed: in_progress, cancelled"
    );
    for bad in ["resolved", "on_hold", "open"] {
        let res = patch(app, &rb, &p.admin, json!({"status": bad})).await;
        assert_invalid(&format!("open → {bad}"), &res, &["status"]);
    }
    assert_eq!(
        p.fetch(&rb).await,
        before,
        "status, assignee and updated_at unchanged"
    );

    // Every other edge: on hold and back, resolved and reopened, then cancelled for good.
    let rc = status_of(p.rc);
    for next in [
        "in_progress",
        "on_hold",
        "in_progress",
        "resolved",
        "in_progress",
        "on_hold",
        "cancelled",
    ] {
        let (status, r) = patch(app, &rc, &m, json!({"status": next})).await;
        assert_eq!((status, &r["status"]), (200, &json!(next)), "→ {next}: {r}");
    }
    for next in ["open", "in_progress", "closed"] {
        let res = patch(app, &rc, &m, json!({"status": next})).await;
        assert_invalid(&format!("cancelled → {next}"), &res, &["status"]);
        assert!(field_message(&res.1, "status").contains("cancelled"));
    }
    let res = patch(app, &rc, &m, json!({"assignee": "Pat"})).await;
    assert_invalid("cancelled, reassigned", &res, &["status"]);
    // From on_hold, resolving directly is not allowed; from resolved, on_hold is not.
    let (r, _) = create(
        app,
        "/api/maintenance",
        &p.admin,
        json!({"tenant_id": p.ta, "title": "Mould", "description": "Bathroom ceiling"}),
    )
    .await;
    let rd = status_of(r["id"].as_i64().unwrap());
    for (next, ok) in [
        ("in_progress", true),
        ("on_hold", true),
        ("resolved", false),
        ("closed", false),
        ("in_progress", true),
        ("resolved", true),
        ("on_hold", false),
        ("cancelled", false),
        ("closed", true),
    ] {
        let (status, body) = patch(app, &rd, &p.admin, json!({"status": next})).await;
        assert_eq!(status, if ok { 200 } else { 422 }, "→ {next}: {body}");
    }
    // Assigning and re-prioritising a live request does not need a status change.
    let (status, r) = patch(app, &rb, &m, json!({"assignee": "Pat"})).await;
    assert_eq!(status, 404, "rb is manager 2's: {r}");
    let (status, r) = patch(
        app,
        &rb,
        &p.admin,
        json!({"assignee": " Pat Plumber ", "priority": "low"}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (&r["status"], &r["assignee"], &r["priority"]),
        (&json!("open"), &json!("Pat Plumber"), &json!("low"))
    );
}

// ---------------------------------------------------------------------------------------
// 9. The ledger is append-only
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_ledger_is_append_only() {
    let p = Portfolio::new().await;
    let app = &p.app;
    let ta = p.ta;
    let ledger = format!("/api/tenants/{ta}/ledger");
    let entries = p.fetch(&format!("{ledger}?limit=100")).await;
    let balance = p.fetch(&format!("/api/tenants/{ta}/balance")).await;
    let eid = entries["items"][0]["id"].as_i64().unwrap();
    let change = json!({"kind": "charge", "amount": "0.01", "description": "Edited",
                        "effective_on": "2025-01-01"});
    for path in [ledger.clone(), format!("{ledger}/{eid}")] {
        for method in [Method::PUT, Method::PATCH, Method::DELETE] {
            let (status, body) = app
                .crm_call(method.clone(), &path, Some(&p.admin), Some(&change))
                .await;
            assert!(
                matches!(status, 404 | 405),
                "{method} {path}: {status} {body}"
            );
        }
    }
    // Nor can the other records be deleted.
    for path in [
        format!("/api/properties/{}", p.p1),
        format!("/api/tenants/{ta}"),
        format!("/api/maintenance/{}", p.ra),
    ] {
        let (status, body) = app
            .crm_call(Method::DELETE, &path, Some(&p.admin), None)
            .await;
        assert!(
            matches!(status, 404 | 405),
            "DELETE {path}: {status} {body}"
        );
        assert_eq!(
            get(app, &path, &p.admin).await.0,
            200,
            "{path} is still there"
        );
    }
    assert_eq!(p.fetch(&format!("{ledger}?limit=100")).await, entries);
    assert_eq!(
        p.fetch(&format!("/api/tenants/{ta}/balance")).await,
        balance
    );
    assert_eq!(p.counts().await[0..3], [2, 3, 3]);
}

#[tokio::test]
async fn a_client_registered_for_some_properties_reaches_only_those() {
    let app = spawn_app().await;
    let admin = app.access_token(&app.create_client(CRM_SCOPES), None).await;
    let mut properties = Vec::new();
    let mut tenants = Vec::new();
    for name in ["Kept", "Other"] {
        let (s, p) = app
            .crm_call(
                Method::POST,
                "/api/properties",
                Some(&admin),
                Some(
                    &json!({"name": name, "address": "1 Road", "kind": "residential", "units": 3}),
                ),
            )
            .await;
        assert_eq!(s, 201);
        let pid = p["id"].as_i64().unwrap();
        properties.push(pid);
        let (s, t) = app
            .crm_call(
                Method::POST,
                "/api/tenants",
                Some(&admin),
                Some(
                    &json!({"name": format!("T of {name}"), "property_id": pid, "unit": "1",
                              "rent": "500.00", "currency": "GBP", "lease_start": "2026-01-01"}),
                ),
            )
            .await;
        assert_eq!(s, 201);
        tenants.push(t["id"].as_i64().unwrap());
    }
    // A contractor's system: maintenance and tenants of the first property only.
    let kept = properties[0].to_string();
    let v = app.cli_json(&[
        "client",
        "create",
        "--name",
        "contractor",
        "--grant",
        "client_credentials",
        "--scope",
        "property:read property:write tenant:read maintenance:manage maintenance:request",
        "--property",
        &kept,
        "--json",
    ]);
    assert_eq!(v["properties"], json!([properties[0]]));
    let creds = Creds {
        id: v["client_id"].as_str().unwrap().to_owned(),
        secret: v["client_secret"].as_str().unwrap().to_owned(),
    };
    let token = app.access_token(&creds, None).await;
    let get = |path: String| {
        let app = &app;
        let token = token.clone();
        async move { app.crm_call(Method::GET, &path, Some(&token), None).await }
    };
    let (s, list) = get("/api/properties".into()).await;
    assert_eq!(s, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["items"][0]["id"], json!(properties[0]));
    assert_eq!(
        get(format!("/api/properties/{}", properties[1])).await.0,
        404
    );
    assert_eq!(get(format!("/api/tenants/{}", tenants[0])).await.0, 200);
    assert_eq!(get(format!("/api/tenants/{}", tenants[1])).await.0, 404);
    let (_, list) = get("/api/tenants".into()).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    // Requests: only for tenants it can see.
    let open = |tenant: i64| {
        let app = &app;
        let token = token.clone();
        async move {
            app.crm_call(
                Method::POST,
                "/api/maintenance",
                Some(&token),
                Some(&json!({"tenant_id": tenant, "title": "Boiler", "description": "Service"})),
            )
            .await
        }
    };
    assert_eq!(open(tenants[0]).await.0, 201);
    let (s, body) = open(tenants[1]).await;
    assert_eq!(s, 422);
    assert_eq!(crm_error_fields(&body), ["tenant_id"]);
    // It cannot create properties (it could not see them) nor reach others by PATCH.
    let (s, _) = app
        .crm_call(
            Method::POST,
            "/api/properties",
            Some(&token),
            Some(&json!({"name": "New", "address": "2 Road", "kind": "residential", "units": 1})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = app
        .crm_call(
            Method::PATCH,
            &format!("/api/properties/{}", properties[1]),
            Some(&token),
            Some(&json!({"name": "Taken"})),
        )
        .await;
    assert_eq!(s, 404);

    // Registering for a property that does not exist is refused.
    let out = app.cli(&[
        "client",
        "create",
        "--name",
        "x",
        "--grant",
        "client_credentials",
        "--scope",
        "property:read",
        "--property",
        "999",
        "--json",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such property"));

    // A deleted client's tokens reach nothing (within the client-cache sync interval).
    let out = app.cli(&["client", "delete", &creds.id]);
    assert!(out.status.success());
    crate::helpers::eventually("the deleted client's token is refused", || {
        let get = &get;
        async move { get("/api/properties".into()).await.0 == 401 }
    })
    .await;
}
