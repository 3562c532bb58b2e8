//! The backend-for-frontend over HTTP: sign-in through `/bff/login` and `/bff/callback`,
//! the sealed session cookie, API calls through `/bff/api`, CSRF, logout.
//!
//! The tests know the BFF's cookie key (they configure it), so they can open the session
//! cookie the way the server does to look at the tokens inside it (to check they are
//! revoked after logout, rotated after a refresh), and seal sessions of their own (an
//! access token about to expire, a foreign key). That relies on the sealing format of
//! [`deedbolt_client::Sealer`] and on the BFF's session layout and sealing context
//! (`deedbolt-bff-session-v1`): if those change, these tests say so loudly.

use std::sync::Arc;

use deedbolt::config::ServeOverrides;
use deedbolt_client::{SealKey, Sealer};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// The scope the BFF client is registered for (the BFF's default request).
const SCOPE: &str = "openid profile email tenant:read financial:read maintenance:request";
/// The BFF's session cookie.
pub const SESSION: &str = "deedbolt_bff";
/// The cookie holding the browser's pending sign-ins (sealed).
pub const FLOW: &str = "deedbolt_bff_flow";
/// The sealing context of the session cookie (`deedbolt_http::bff`).
const SESSION_CONTEXT: &[u8] = b"deedbolt-bff-session-v1";
/// Every test user's password.
pub const PASSWORD: &str = "correct-horse-battery-7";
/// The tenant who signs in.
pub const TOM: &str = "tom.tenant@example.com";
/// Another tenant, in another unit of the same building.
pub const TESS: &str = "tess.tenant@example.com";

/// A server with the BFF configured, and what the tests know about the BFF's setup.
pub struct BffApp {
    pub app: TestApp,
    /// The BFF's own client credentials (it is an ordinary confidential client).
    pub client: Creds,
    /// A sealer holding the BFF's cookie key.
    pub sealer: Sealer,
    /// `DEEDBOLT_BFF_COOKIE_KEYS` as given to the server.
    pub keys: String,
}

impl BffApp {
    /// The content of a session cookie, opened with the BFF's key; `None` if it does not
    /// open.
    pub fn open(&self, sealed: &str) -> Option<Value> {
        self.sealer.open_json(SESSION_CONTEXT, sealed).ok()
    }

    /// A session cookie with `session` as its content, sealed with the BFF's key.
    pub fn seal(&self, session: &Value) -> String {
        self.sealer
            .seal_json(SESSION_CONTEXT, session)
            .expect("seal a session")
    }
}

/// A server with the BFF configured: its client registered (loopback redirect URI, so any
/// port matches, RFC 8252 §7.3) before the server starts.
pub async fn spawn_bff_app() -> TestApp {
    spawn_bff().await.app
}

/// [`spawn_bff_app`], also returning the BFF's client credentials and cookie key.
pub async fn spawn_bff() -> BffApp {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let out = run_cli(
        dir.path(),
        None,
        &[
            "client",
            "create",
            "--name",
            "bff",
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--scope",
            SCOPE,
            "--redirect-uri",
            "http://127.0.0.1/bff/callback",
            // The same BFF behind a TLS-terminating proxy (cookies_are_secure_...).
            "--redirect-uri",
            "https://portal.example/bff/callback",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("client JSON");
    let client = Creds {
        id: v["client_id"].as_str().expect("id").to_owned(),
        secret: v["client_secret"].as_str().expect("secret").to_owned(),
    };
    let keys = format!("k1:{}", random_b64url(32));
    let sealer = Sealer::new(SealKey::parse_list(&keys).expect("keys")).expect("sealer");
    let app = spawn_app_with(Options {
        data_dir: Some(dir),
        overrides: ServeOverrides {
            bff_client_id: Some(client.id.clone()),
            bff_client_secret: Some(client.secret.clone()),
            bff_cookie_keys: Some(keys.clone()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    BffApp {
        app,
        client,
        sealer,
        keys,
    }
}

/// Another instance of `b`'s server (same database, same issuer) whose BFF has the cookie
/// key ring `keys`.
async fn instance_with_keys(b: &BffApp, keys: &str) -> TestApp {
    spawn_app_with(Options {
        data_dir: Some(b.app.data_dir.clone()),
        overrides: ServeOverrides {
            issuer: Some(b.app.base.clone()),
            bff_client_id: Some(b.client.id.clone()),
            bff_client_secret: Some(b.client.secret.clone()),
            bff_cookie_keys: Some(keys.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
}

/// Starts a sign-in at `login_path` (`/bff/login...`) in a fresh browser and runs login
/// and consent as `email`. Returns the browser's cookies (with the flow cookie) and the
/// callback URL the server redirected to, not yet visited.
pub async fn bff_to_callback(
    app: &TestApp,
    login_path: &str,
    email: &str,
    password: &str,
) -> (Jar, String) {
    let mut jar = Jar::default();
    let res = app.browser_get(login_path, &jar).await;
    assert_eq!(res.status(), 302, "login redirects to /authorize");
    let flow = set_cookie_line(&res, FLOW).expect("the flow cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/bff;", "Max-Age=600"] {
        assert!(flow.contains(attr), "{flow}");
    }
    jar.store(&res);
    let authorize = location(&res).expect("authorize URL");
    assert!(
        authorize.starts_with(&format!("{}/authorize?", app.base)),
        "{authorize}"
    );
    let params = query_params(&authorize);
    let sealed = jar.get(FLOW).expect("flow cookie");
    assert!(
        sealed.starts_with("v1."),
        "the flow cookie is sealed: {sealed}"
    );
    for secret in ["state", "nonce"] {
        assert!(
            !sealed.contains(params[secret].as_str()),
            "{secret} is not in clear"
        );
    }
    assert_eq!(params["code_challenge_method"], "S256");
    assert!(params.contains_key("nonce"), "{authorize}");
    // A second sign-in of the same user skips the consent page (it is remembered).
    let callback = app
        .sign_in_through_pages(&authorize, email, password, "approve", &mut jar)
        .await;
    assert!(
        callback.starts_with(&format!("{}/bff/callback?", app.base)),
        "{callback}"
    );
    (jar, callback)
}

/// Visits the callback; asserts the sign-in completes (303, the session cookie with its
/// attributes, the flow cookie cleared) and returns the redirect target.
async fn complete(app: &TestApp, jar: &mut Jar, callback: &str) -> String {
    let res = app.browser_get(callback, jar).await;
    assert_eq!(res.status(), 303, "callback completes the sign-in");
    let line = set_cookie_line(&res, SESSION).expect("session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/bff"] {
        assert!(line.contains(attr), "{line}");
    }
    let flow = set_cookie_line(&res, FLOW).expect("the flow cookie is cleared");
    assert!(flow.contains("Max-Age=0"), "{flow}");
    jar.store(&res);
    location(&res).expect("callback redirects")
}

/// Runs a whole sign-in as `email` through the BFF; returns the browser's cookies.
pub async fn bff_sign_in(app: &TestApp, email: &str, password: &str) -> Jar {
    let (mut jar, callback) = bff_to_callback(app, "/bff/login", email, password).await;
    assert_eq!(complete(app, &mut jar, &callback).await, "/app");
    assert!(jar.get(SESSION).is_some());
    jar
}

/// `url` with query parameter `name` set to `value` (or removed).
fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let mut u = url::Url::parse(url).expect("URL");
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        if let Some(v) = value {
            q.append_pair(name, v);
        }
    }
    u.to_string()
}

/// A request to the BFF with the jar's cookies, an optional `X-CSRF-Token`, an optional
/// `Origin` and an optional JSON body.
pub async fn bff_send(
    app: &TestApp,
    method: Method,
    path: &str,
    jar: &Jar,
    csrf: Option<&str>,
    origin: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = app.http.request(method, app.url(path));
    if let Some(c) = jar.header() {
        req = req.header("cookie", c);
    }
    if let Some(t) = csrf {
        req = req.header("x-csrf-token", t);
    }
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    req.send().await.expect("BFF request")
}

/// `POST /bff/logout` from the app's own origin with the session's CSRF token.
async fn bff_logout(app: &TestApp, jar: &Jar, csrf: &str) -> reqwest::Response {
    bff_send(
        app,
        Method::POST,
        "/bff/logout",
        jar,
        Some(csrf),
        Some(&app.base),
        None,
    )
    .await
}

/// A GET through the BFF: status and JSON body (`Null` if none).
async fn bff_get(app: &TestApp, path: &str, jar: &Jar) -> (u16, Value) {
    let res = app.browser_get(path, jar).await;
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `/bff/session` as the jar's browser sees it.
pub async fn bff_session(app: &TestApp, jar: &Jar) -> Value {
    let res = app.browser_get("/bff/session", jar).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    res.json().await.expect("session JSON")
}

/// The CSRF token of the jar's session.
pub async fn bff_csrf(app: &TestApp, jar: &Jar) -> String {
    let s = bff_session(app, jar).await;
    assert_eq!(s["authenticated"], true, "{s}");
    s["csrf_token"].as_str().expect("csrf_token").to_owned()
}

/// A "signed out" answer from `/bff/api`: 401 `not_signed_in`, and the session cookie
/// cleared.
#[track_caller]
fn assert_signed_out(what: &str, status: u16, set_cookie: Option<String>, body: &Value) {
    assert_eq!(status, 401, "{what}: {body}");
    assert_eq!(body["error"], "not_signed_in", "{what}: {body}");
    let line = set_cookie.unwrap_or_else(|| panic!("{what}: the session cookie is not cleared"));
    assert!(
        line.starts_with(&format!("{SESSION}=;")) && line.contains("Max-Age=0"),
        "{what}: {line}"
    );
}

/// GETs `path` through the BFF and asserts the session is over.
async fn assert_bff_signed_out(app: &TestApp, path: &str, jar: &Jar, what: &str) {
    let res = app.browser_get(path, jar).await;
    let status = res.status().as_u16();
    let line = set_cookie_line(&res, SESSION);
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_signed_out(what, status, line, &body);
}

// ---------------------------------------------------------------------------------------
// The estate
// ---------------------------------------------------------------------------------------

/// Two tenants in one building, each with a user of role tenant:
///
/// - Tom (`tom`, unit 4B): a 1250.00 charge and a 1000.00 payment (balance GBP 250.00),
///   and one maintenance request, "Leaking tap";
/// - Tess (`tess`, unit 7C): a 900.00 charge, and one request, "Broken window".
pub struct Estate {
    /// A portfolio-wide machine token (every CRM scope).
    pub admin: String,
    pub tom_user: String,
    pub tess_user: String,
    pub tom: i64,
    pub tess: i64,
    pub tom_request: i64,
    pub tess_request: i64,
}

async fn admin_create(app: &TestApp, admin: &str, path: &str, body: Value) -> i64 {
    let (status, v) = app
        .crm_call(Method::POST, path, Some(admin), Some(&body))
        .await;
    assert_eq!(status, 201, "POST {path} {body}: {v}");
    v["id"].as_i64().expect("id")
}

/// Builds the [`Estate`] through the API.
pub async fn estate(app: &TestApp) -> Estate {
    let cc = app.create_client(CRM_SCOPES);
    let admin = app.access_token(&cc, None).await;
    let tom_user = app.create_user_named(TOM, "tenant", PASSWORD, Some("Tom Tenant"));
    let tess_user = app.create_user_named(TESS, "tenant", PASSWORD, Some("Tess Tenant"));
    let property = admin_create(
        app,
        &admin,
        "/api/properties",
        json!({"name": "Harbour View", "address": "1 Quay St", "kind": "residential",
               "units": 12}),
    )
    .await;
    let tenant = |name: &str, user: &str, unit: &str| {
        json!({"name": name, "user_id": user, "property_id": property, "unit": unit,
               "rent": "1250.00", "currency": "GBP", "lease_start": "2026-01-01"})
    };
    let tom = admin_create(
        app,
        &admin,
        "/api/tenants",
        tenant("Tom Tenant", &tom_user, "4B"),
    )
    .await;
    let tess = admin_create(
        app,
        &admin,
        "/api/tenants",
        tenant("Tess Tenant", &tess_user, "7C"),
    )
    .await;
    for (t, kind, amount) in [
        (tom, "charge", "1250.00"),
        (tom, "payment", "1000.00"),
        (tess, "charge", "900.00"),
    ] {
        admin_create(
            app,
            &admin,
            &format!("/api/tenants/{t}/ledger"),
            json!({"kind": kind, "amount": amount, "description": format!("{kind} November"),
                   "effective_on": "2026-11-01"}),
        )
        .await;
    }
    let request = |t: i64, title: &str| {
        json!({"tenant_id": t, "title": title, "description": format!("{title}, please fix"),
               "priority": "normal"})
    };
    let tom_request =
        admin_create(app, &admin, "/api/maintenance", request(tom, "Leaking tap")).await;
    let tess_request = admin_create(
        app,
        &admin,
        "/api/maintenance",
        request(tess, "Broken window"),
    )
    .await;
    Estate {
        admin,
        tom_user,
        tess_user,
        tom,
        tess,
        tom_request,
        tess_request,
    }
}

/// The ids of every maintenance request, as the machine client sees them.
pub async fn all_requests(app: &TestApp, admin: &str) -> Vec<i64> {
    let (status, page) = app
        .crm_call(Method::GET, "/api/maintenance?limit=100", Some(admin), None)
        .await;
    assert_eq!(status, 200, "{page}");
    ids(&page)
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
        .iter()
        .map(|i| i["id"].as_i64().expect("id"))
        .collect()
}

/// A new maintenance request body.
fn draft(title: &str) -> Value {
    json!({"title": title, "description": "It has been dripping since Monday.",
           "priority": "high"})
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_tenant_signs_in_and_reads_through_the_bff() {
    let app = spawn_bff_app().await;
    app.create_user("tom@example.com", "tenant", "correct-horse-battery-7");
    let jar = bff_sign_in(&app, "tom@example.com", "correct-horse-battery-7").await;
    let res = app.browser_get("/bff/session", &jar).await;
    let session: Value = res.json().await.unwrap();
    assert_eq!(session["authenticated"], json!(true));
    let text = session.to_string();
    assert!(
        !text.contains("access_token") && !text.contains("eyJ"),
        "{text}"
    );
    let res = app.browser_get("/bff/api/tenants", &jar).await;
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["items"], json!([]), "no tenant record linked yet");
}

#[tokio::test]
async fn a_tenant_sees_only_their_own_tenancy_and_opens_a_request_through_the_bff() {
    let b = spawn_bff().await;
    let app = &b.app;
    let e = estate(app).await;
    let jar = bff_sign_in(app, TOM, PASSWORD).await;

    // The cookie is sealed: no JWT, no refresh token in clear, though it carries both.
    let sealed = jar.get(SESSION).expect("session cookie").to_owned();
    assert!(sealed.starts_with("v1.k1."), "{sealed}");
    assert!(sealed.len() < 4096, "a cookie must fit in 4 KiB");
    let inside = b
        .open(&sealed)
        .expect("the cookie opens with the BFF's key");
    // Checked against the tokens themselves (a bare "eyJ" can occur in random base64).
    let clear: Vec<String> = ["access_token", "refresh_token"]
        .iter()
        .map(|k| inside["tokens"][k].as_str().expect("a token")[..24].to_owned())
        .collect();
    for token in &clear {
        assert!(!sealed.contains(token.as_str()), "{sealed}");
    }
    assert!(
        inside["tokens"]["access_token"]
            .as_str()
            .unwrap()
            .starts_with("eyJ"),
        "{inside}"
    );
    assert!(
        inside["tokens"].get("id_token").is_none(),
        "the ID token is not kept: {inside}"
    );
    assert!(inside["tokens"]["refresh_token"]
        .as_str()
        .unwrap()
        .starts_with("dbr_"));

    // /bff/session: who, the scope and the CSRF token; never a token.
    let session = bff_session(app, &jar).await;
    let keys: std::collections::BTreeSet<&str> = session
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["authenticated", "csrf_token", "name", "scope", "sub"]
            .into_iter()
            .collect(),
        "{session}"
    );
    assert_eq!(session["sub"], e.tom_user.as_str());
    // `name` is null today (see `the_session_names_the_signed_in_user`).
    let granted: std::collections::BTreeSet<&str> =
        session["scope"].as_str().unwrap().split(' ').collect();
    assert_eq!(granted, SCOPE.split(' ').collect(), "{session}");
    let text = session.to_string();
    for secret in [
        "eyJ",
        "dbr_",
        inside["tokens"]["access_token"].as_str().unwrap(),
    ] {
        assert!(!text.contains(secret), "{text}");
    }
    let csrf = session["csrf_token"].as_str().unwrap().to_owned();

    // Only Tom's own tenancy; Tess's answers like one that does not exist.
    let (status, page) = bff_get(app, "/bff/api/tenants", &jar).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), vec![e.tom], "{page}");
    assert_eq!(page["items"][0]["name"], "Tom Tenant");
    let (status, body) = bff_get(app, &format!("/bff/api/tenants/{}", e.tess), &jar).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "not_found");
    let (status, body) = bff_get(app, &format!("/bff/api/tenants/{}/balance", e.tess), &jar).await;
    assert_eq!(status, 404, "{body}");
    let (status, me) = bff_get(app, &format!("/bff/api/tenants/{}", e.tom), &jar).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["unit"], "4B");

    // The balance.
    let (status, balance) =
        bff_get(app, &format!("/bff/api/tenants/{}/balance", e.tom), &jar).await;
    assert_eq!(status, 200, "{balance}");
    assert_eq!(balance["balance"], "250.00", "{balance}");
    assert_eq!(balance["currency"], "GBP", "{balance}");

    // Maintenance: Tom's own request only.
    let (status, page) = bff_get(app, "/bff/api/maintenance", &jar).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), vec![e.tom_request], "{page}");
    let (status, _) = bff_get(
        app,
        &format!("/bff/api/maintenance/{}", e.tess_request),
        &jar,
    )
    .await;
    assert_eq!(status, 404);

    // A new request, with the CSRF token (and the browser's same-origin Origin).
    let res = bff_send(
        app,
        Method::POST,
        "/bff/api/maintenance",
        &jar,
        Some(&csrf),
        Some(&app.base),
        Some(&draft("Dripping shower")),
    )
    .await;
    assert_eq!(res.status(), 201);
    let loc = location(&res).expect("Location");
    assert!(
        set_cookie_line(&res, SESSION).is_none(),
        "no refresh was due"
    );
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_i64().expect("id");
    assert_eq!(
        loc,
        format!("/bff/api/maintenance/{id}"),
        "Location points into the BFF"
    );
    assert_eq!(created["tenant_id"], e.tom, "{created}");
    let (status, fetched) = bff_get(app, &loc, &jar).await;
    assert_eq!(status, 200, "{fetched}");
    assert_eq!(fetched["title"], "Dripping shower");
    let (status, page) = bff_get(app, "/bff/api/maintenance", &jar).await;
    assert_eq!(status, 200);
    let mut mine = ids(&page);
    mine.sort();
    assert_eq!(mine, vec![e.tom_request, id]);

    // Stored for Tom, as the machine client sees it.
    let (status, stored) = app
        .crm_call(
            Method::GET,
            &format!("/api/maintenance/{id}"),
            Some(&e.admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["tenant_id"], e.tom, "{stored}");
    assert_eq!(stored["title"], "Dripping shower");
    assert_eq!(stored["priority"], "high");

    // The session cookie never changed (no token in any other cookie either).
    assert_eq!(jar.get(SESSION), Some(sealed.as_str()));
    for (name, value) in &jar.0 {
        for token in &clear {
            assert!(!value.contains(token.as_str()), "cookie {name}: {value}");
        }
    }
}

#[tokio::test]
async fn the_session_names_the_signed_in_user() {
    let b = spawn_bff().await;
    let app = &b.app;
    let sub = app.create_user_named(TOM, "tenant", PASSWORD, Some("Tom Tenant"));
    let jar = bff_sign_in(app, TOM, PASSWORD).await;
    let session = bff_session(app, &jar).await;
    assert_eq!(session["sub"], sub.as_str());
    assert!(
        session["scope"]
            .as_str()
            .unwrap()
            .split(' ')
            .any(|s| s == "profile"),
        "{session}"
    );
    // The server gives the name out for the session's own access token.
    let inside = b.open(jar.get(SESSION).unwrap()).unwrap();
    let res = app
        .get(
            "/userinfo",
            Some(inside["tokens"]["access_token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(res.status(), 200);
    let userinfo: Value = res.json().await.unwrap();
    assert_eq!(userinfo["name"], "Tom Tenant", "{userinfo}");
    // So the BFF should too.
    assert_eq!(session["name"], "Tom Tenant", "{session}");
}

#[tokio::test]
async fn the_callback_refuses_replayed_unknown_and_unbound_states() {
    let app = spawn_bff_app().await;
    app.create_user(TOM, "tenant", PASSWORD);

    /// Visits `callback` with `jar` and asserts a 400 that starts no session.
    async fn refused(app: &TestApp, jar: &Jar, callback: &str, what: &str) {
        let res = app.browser_get(callback, jar).await;
        assert_eq!(res.status(), 400, "{what}");
        assert!(
            set_cookie_line(&res, SESSION).is_none(),
            "{what}: no session cookie"
        );
        let html = res.text().await.unwrap();
        assert!(html.contains("Sign-in failed"), "{what}: {html}");
    }

    // A completed callback cannot be completed again: not as is (the flow cookie is gone),
    // nor with a saved copy of the flow cookie put back (the state is single-use).
    let (mut jar, callback) = bff_to_callback(&app, "/bff/login", TOM, PASSWORD).await;
    let saved_flow = jar.get(FLOW).expect("flow cookie").to_owned();
    complete(&app, &mut jar, &callback).await;
    let first = jar.clone();
    assert_eq!(jar.get(FLOW), None);
    refused(&app, &jar, &callback, "the same callback again").await;
    let mut replay = jar.without(SESSION);
    replay.set(FLOW, &saved_flow);
    refused(
        &app,
        &replay,
        &callback,
        "the same callback with its flow cookie",
    )
    .await;
    refused(
        &app,
        &jar.without(SESSION),
        &callback,
        "the same callback, signed out",
    )
    .await;
    // The replays never reached the token endpoint (a replayed code would revoke the
    // tokens issued from it): the first session still works.
    let (status, body) = bff_get(&app, "/bff/api/tenants", &first).await;
    assert_eq!(status, 200, "{body}");

    // A state the server never issued: not in the genuine flow cookie, and a flow cookie
    // made up by hand does not open.
    let (jar, callback) = bff_to_callback(&app, "/bff/login", TOM, PASSWORD).await;
    let unknown = random_b64url(32);
    refused(
        &app,
        &jar,
        &with_param(&callback, "state", Some(&unknown)),
        "an unknown state",
    )
    .await;
    let mut forged = jar.clone();
    forged.set(FLOW, &unknown);
    refused(
        &app,
        &forged,
        &with_param(&callback, "state", Some(&unknown)),
        "an unknown state with a forged flow cookie",
    )
    .await;
    // From another browser (no flow cookie): refused, and the flow is not spent.
    refused(
        &app,
        &Jar::default(),
        &callback,
        "the callback in another browser",
    )
    .await;
    refused(
        &app,
        &jar.without(FLOW),
        &callback,
        "the callback without the flow cookie",
    )
    .await;
    // A wrong or missing issuer (RFC 9207).
    refused(
        &app,
        &jar,
        &with_param(&callback, "iss", Some("https://evil.example")),
        "a wrong iss",
    )
    .await;
    refused(&app, &jar, &with_param(&callback, "iss", None), "no iss").await;
    let mut jar = jar;
    assert_eq!(complete(&app, &mut jar, &callback).await, "/app");

    // Two sign-ins in two browsers: one's flow cookie does not complete the other's
    // callback; each still completes in its own browser.
    let (mut jar_a, callback_a) = bff_to_callback(&app, "/bff/login", TOM, PASSWORD).await;
    let (mut jar_b, callback_b) = bff_to_callback(&app, "/bff/login", TOM, PASSWORD).await;
    assert_ne!(jar_a.get(FLOW), jar_b.get(FLOW));
    refused(
        &app,
        &jar_a,
        &callback_b,
        "B's callback with A's flow cookie",
    )
    .await;
    refused(
        &app,
        &jar_b,
        &callback_a,
        "A's callback with B's flow cookie",
    )
    .await;
    assert_eq!(complete(&app, &mut jar_b, &callback_b).await, "/app");
    assert_eq!(complete(&app, &mut jar_a, &callback_a).await, "/app");
    assert_ne!(jar_a.get(SESSION), jar_b.get(SESSION));
}

#[tokio::test]
async fn anonymous_sign_in_starts_cannot_lock_out_real_sign_ins() {
    // More anonymous /bff/login requests than the old server-side table of pending
    // sign-ins held (deedbolt_client::state::DEFAULT_CAPACITY), none of them finished:
    // every one still starts a sign-in, and a real sign-in afterwards works.
    let app = spawn_bff_app().await;
    app.create_user(TOM, "tenant", PASSWORD);
    let total = deedbolt_client::state::DEFAULT_CAPACITY + 1;
    let workers = 8;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (http, url) = (app.http.clone(), app.url("/bff/login"));
        tasks.spawn(async move {
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            for _ in (w..total).step_by(workers) {
                let res = http.get(&url).send().await.expect("GET /bff/login");
                *statuses.entry(res.status().as_u16()).or_default() += 1;
            }
            statuses
        });
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    while let Some(done) = tasks.join_next().await {
        for (status, n) in done.expect("worker") {
            *statuses.entry(status).or_default() += n;
        }
    }
    assert_eq!(
        statuses,
        [(302, total)].into(),
        "every anonymous sign-in starts"
    );
    let jar = bff_sign_in(&app, TOM, PASSWORD).await;
    assert_eq!(bff_session(&app, &jar).await["authenticated"], true);
}

#[tokio::test]
async fn sign_ins_in_several_tabs_of_one_browser_each_complete_once() {
    let app = spawn_bff_app().await;
    app.create_user(TOM, "tenant", PASSWORD);
    // Three tabs start a sign-in in one browser; the flow cookie keeps all three.
    let mut jar = Jar::default();
    let mut authorize = Vec::new();
    for tab in ["a", "b", "c"] {
        let res = app
            .browser_get(&format!("/bff/login?return_to=%2Fapp%2F{tab}"), &jar)
            .await;
        assert_eq!(res.status(), 302);
        jar.store(&res);
        authorize.push(location(&res).expect("authorize URL"));
    }
    // The user signs in in tab b first, then finishes a and c (already signed in at the
    // authorization server, so /authorize comes straight back).
    let callback_b = app
        .sign_in_through_pages(&authorize[1], TOM, PASSWORD, "approve", &mut jar)
        .await;
    let mut callbacks = Vec::new();
    for url in [&authorize[0], &authorize[2]] {
        let res = app.browser_get(url, &jar).await;
        let back = location(&res).expect("authorize redirects back");
        assert!(back.contains("/bff/callback?"), "{back}");
        callbacks.push(back);
    }
    let saved = jar.clone();
    for (callback, tab) in [
        (&callback_b, "b"),
        (&callbacks[0], "a"),
        (&callbacks[1], "c"),
    ] {
        let res = app.browser_get(callback, &jar).await;
        assert_eq!(res.status(), 303, "tab {tab} completes");
        assert_eq!(
            location(&res).as_deref(),
            Some(format!("/app/{tab}").as_str())
        );
        jar.store(&res);
    }
    assert_eq!(jar.get(FLOW), None, "no sign-in left pending");
    // None completes twice, even with the flow cookie as it was before.
    let res = app.browser_get(&callback_b, &saved).await;
    assert_eq!(res.status(), 400, "a replayed tab");
    assert!(set_cookie_line(&res, SESSION).is_none());

    // A fourth tab drops the oldest pending sign-in (the cookie stays small).
    let mut jar = Jar::default();
    let mut states = Vec::new();
    for _ in 0..4 {
        let res = app.browser_get("/bff/login", &jar).await;
        jar.store(&res);
        states.push(query_params(&location(&res).unwrap())["state"].clone());
    }
    let sealed = jar.get(FLOW).unwrap();
    assert!(sealed.len() < 3000, "{} bytes", sealed.len());
    let oldest = format!(
        "{}/bff/callback?code=x&state={}&iss={}",
        app.base, states[0], app.base
    );
    let res = app.browser_get(&oldest, &jar).await;
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    assert!(html.contains("not started in this browser"), "{html}");
}

#[tokio::test]
async fn the_flow_and_session_cookies_cannot_stand_in_for_each_other() {
    let b = spawn_bff().await;
    let app = &b.app;
    app.create_user(TOM, "tenant", PASSWORD);
    let (flow_jar, callback) = bff_to_callback(app, "/bff/login", TOM, PASSWORD).await;
    let flow = flow_jar.get(FLOW).unwrap().to_owned();
    // A flow cookie presented as the session: sealed with the same key, but for another
    // context, so it does not open.
    let mut as_session = Jar::default();
    as_session.set(SESSION, &flow);
    assert_eq!(bff_session(app, &as_session).await["authenticated"], false);
    assert_eq!(b.open(&flow), None);
    // A session cookie presented as the flow cookie: the callback is refused.
    let signed_in = bff_sign_in(app, TOM, PASSWORD).await;
    let mut as_flow = flow_jar.without(FLOW);
    as_flow.set(FLOW, signed_in.get(SESSION).unwrap());
    let res = app.browser_get(&callback, &as_flow).await;
    assert_eq!(res.status(), 400);
    // The genuine flow cookie still finishes its sign-in.
    let mut jar = flow_jar;
    assert_eq!(complete(app, &mut jar, &callback).await, "/app");
}

#[tokio::test]
async fn a_tampered_or_foreign_session_cookie_is_refused_and_nothing_is_forwarded() {
    let b = spawn_bff().await;
    let app = &b.app;
    let e = estate(app).await;
    let jar = bff_sign_in(app, TOM, PASSWORD).await;
    let csrf = bff_csrf(app, &jar).await;
    let sealed = jar.get(SESSION).unwrap().to_owned();
    let session = b.open(&sealed).unwrap();

    let flipped = {
        let mut chars: Vec<char> = sealed.chars().collect();
        let i = chars.len() / 2;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    let truncated = sealed[..sealed.len() - 4].to_owned();
    // The very same session (live tokens, same key id), sealed with another key.
    let foreign = Sealer::new(vec![SealKey::generate("k1").unwrap()])
        .unwrap()
        .seal_json(SESSION_CONTEXT, &session)
        .unwrap();
    assert!(foreign.starts_with("v1.k1."));
    let renamed = sealed.replacen("v1.k1.", "v1.k2.", 1);
    let versioned = sealed.replacen("v1.", "v2.", 1);
    // The BFF's own key, another context.
    let other_context = b.sealer.seal_json(b"deedbolt-bff-flow", &session).unwrap();
    let before = all_requests(app, &e.admin).await;

    for (what, cookie) in [
        ("one character flipped", flipped.as_str()),
        ("truncated", truncated.as_str()),
        ("sealed with another key", foreign.as_str()),
        ("key id rewritten", renamed.as_str()),
        ("version rewritten", versioned.as_str()),
        ("sealed for another purpose", other_context.as_str()),
        ("empty", ""),
        ("garbage", "not-a-session"),
    ] {
        assert_ne!(cookie, sealed, "{what}");
        let mut bad = jar.clone();
        bad.set(SESSION, cookie);
        assert_bff_signed_out(app, "/bff/api/tenants", &bad, what).await;
        let s = bff_session(app, &bad).await;
        assert_eq!(s["authenticated"], false, "{what}: {s}");
        assert!(s.get("csrf_token").is_none(), "{what}: {s}");
        // Even with the real CSRF token, a POST goes nowhere.
        let res = bff_send(
            app,
            Method::POST,
            "/bff/api/maintenance",
            &bad,
            Some(&csrf),
            None,
            Some(&draft(what)),
        )
        .await;
        let status = res.status().as_u16();
        let line = set_cookie_line(&res, SESSION);
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert_signed_out(what, status, line, &body);
    }
    assert_eq!(
        all_requests(app, &e.admin).await,
        before,
        "nothing was created"
    );
    // The genuine cookie still works.
    let (status, page) = bff_get(app, "/bff/api/tenants", &jar).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), vec![e.tom]);
}

#[tokio::test]
async fn unsafe_methods_need_the_csrf_token_and_a_same_origin() {
    let b = spawn_bff().await;
    let app = &b.app;
    let e = estate(app).await;
    let jar = bff_sign_in(app, TOM, PASSWORD).await;
    let csrf = bff_csrf(app, &jar).await;
    // Tess's session, for a token that is real but not this session's.
    let tess_jar = bff_sign_in(app, TESS, PASSWORD).await;
    let tess_csrf = bff_csrf(app, &tess_jar).await;
    assert_eq!(
        bff_session(app, &tess_jar).await["sub"],
        e.tess_user.as_str()
    );
    assert_ne!(csrf, tess_csrf);
    let before = all_requests(app, &e.admin).await;

    let cases: [(&str, Option<&str>, Option<&str>); 7] = [
        ("no X-CSRF-Token", None, None),
        ("an empty X-CSRF-Token", Some(""), None),
        ("a wrong X-CSRF-Token", Some("not-the-token"), None),
        (
            "another session's X-CSRF-Token",
            Some(tess_csrf.as_str()),
            None,
        ),
        (
            "the right token from another origin",
            Some(csrf.as_str()),
            Some("http://evil.example"),
        ),
        (
            "the right token with Origin: null",
            Some(csrf.as_str()),
            Some("null"),
        ),
        ("no token, same origin", None, Some(app.base.as_str())),
    ];
    for (what, token, origin) in cases {
        for method in [Method::POST, Method::PATCH, Method::DELETE, Method::PUT] {
            let path = if method == Method::POST {
                "/bff/api/maintenance".to_owned()
            } else {
                format!("/bff/api/maintenance/{}", e.tom_request)
            };
            let res = bff_send(
                app,
                method.clone(),
                &path,
                &jar,
                token,
                origin,
                Some(&draft("Forged")),
            )
            .await;
            assert_eq!(res.status(), 403, "{method} {path} with {what}");
            assert!(set_cookie_line(&res, SESSION).is_none());
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"], "csrf_failed", "{what}: {body}");
        }
    }
    assert_eq!(
        all_requests(app, &e.admin).await,
        before,
        "no request was created"
    );
    let (status, stored) = app
        .crm_call(
            Method::GET,
            &format!("/api/maintenance/{}", e.tom_request),
            Some(&e.admin),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(stored["title"], "Leaking tap", "nothing was changed");

    // Safe methods need no token (and are not Origin-checked).
    let (status, page) = bff_get(app, "/bff/api/maintenance", &jar).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), vec![e.tom_request]);

    // The right token, with no Origin (a non-browser) or the server's own: accepted.
    for origin in [None, Some(app.base.as_str())] {
        let res = bff_send(
            app,
            Method::POST,
            "/bff/api/maintenance",
            &jar,
            Some(&csrf),
            origin,
            Some(&draft("Genuine")),
        )
        .await;
        assert_eq!(res.status(), 201, "Origin {origin:?}");
    }
    assert_eq!(all_requests(app, &e.admin).await.len(), before.len() + 2);

    // Logout needs the token too; a refused logout leaves the session working.
    for (what, token, origin) in [
        ("no token", None, None),
        ("a wrong token", Some("nope"), None),
        ("Tess's token", Some(tess_csrf.as_str()), None),
        (
            "the right token from another origin",
            Some(csrf.as_str()),
            Some("http://evil.example"),
        ),
    ] {
        let res = bff_send(app, Method::POST, "/bff/logout", &jar, token, origin, None).await;
        assert_eq!(res.status(), 403, "logout with {what}");
        assert!(
            set_cookie_line(&res, SESSION).is_none(),
            "logout with {what}"
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "csrf_failed");
    }
    let (status, _) = bff_get(app, "/bff/api/tenants", &jar).await;
    assert_eq!(status, 200, "the session survives refused logouts");
    assert_eq!(bff_csrf(app, &jar).await, csrf, "and keeps its CSRF token");
    let (status, _) = bff_get(app, "/bff/api/tenants", &tess_jar).await;
    assert_eq!(status, 200, "so does Tess's");
}

#[tokio::test]
async fn logout_revokes_the_tokens_and_clears_the_cookie() {
    let b = spawn_bff().await;
    let app = &b.app;
    let e = estate(app).await;
    let mut jar = bff_sign_in(app, TOM, PASSWORD).await;
    let csrf = bff_csrf(app, &jar).await;
    let old = jar.clone();
    let inside = b.open(jar.get(SESSION).unwrap()).unwrap();
    let access = inside["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = inside["tokens"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The tokens work before.
    let res = app.get("/api/tenants", Some(&access)).await;
    assert_eq!(res.status(), 200, "the access token works before logout");

    let res = bff_logout(app, &jar, &csrf).await;
    assert_eq!(res.status(), 204);
    let line = set_cookie_line(&res, SESSION).expect("the cookie is cleared");
    assert!(line.starts_with(&format!("{SESSION}=;")), "{line}");
    for attr in ["Max-Age=0", "Path=/bff", "HttpOnly"] {
        assert!(line.contains(attr), "{line}");
    }
    jar.store(&res);
    assert_eq!(jar.get(SESSION), None);
    let s = bff_session(app, &jar).await;
    assert_eq!(s["authenticated"], false);
    assert_bff_signed_out(app, "/bff/api/tenants", &jar, "after logout").await;

    // The old cookie, replayed: it still opens (the session is stateless), but its tokens
    // are revoked server-side, so the BFF ends the session.
    let opened = b
        .open(old.get(SESSION).unwrap())
        .expect("the old cookie still opens");
    assert_eq!(opened["tokens"]["access_token"], access.as_str());
    assert_bff_signed_out(app, "/bff/api/tenants", &old, "the old cookie").await;
    let res = bff_send(
        app,
        Method::POST,
        "/bff/api/maintenance",
        &old,
        Some(&csrf),
        None,
        Some(&draft("After logout")),
    )
    .await;
    assert_eq!(res.status(), 401, "a POST with the old cookie");
    let (_, page) = app
        .crm_call(
            Method::GET,
            "/api/maintenance?limit=100",
            Some(&e.admin),
            None,
        )
        .await;
    assert!(
        !page.to_string().contains("After logout"),
        "nothing was created: {page}"
    );
    // Directly: the access token is refused by the API, and the refresh token by /token.
    let res = app.get("/api/tenants", Some(&access)).await;
    assert_eq!(res.status(), 401, "the access token is revoked");
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", &refresh)
        .finish();
    let res = app.post_token(Some(&b.client), &form).await;
    assert_eq!(res.status(), 400, "the refresh token is revoked");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

#[tokio::test]
async fn a_cookie_kept_from_before_logout_is_not_signed_in() {
    let app = spawn_bff_app().await;
    app.create_user(TOM, "tenant", PASSWORD);
    let jar = bff_sign_in(&app, TOM, PASSWORD).await;
    let csrf = bff_csrf(&app, &jar).await;
    let kept = jar.clone();
    let res = bff_logout(&app, &jar, &csrf).await;
    assert_eq!(res.status(), 204);
    // The copy still opens (the session is stateless), but its tokens are revoked.
    let res = app.browser_get("/bff/session", &kept).await;
    assert_eq!(res.status(), 200);
    let cleared = set_cookie_line(&res, SESSION).expect("the stale cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["authenticated"], false, "{body}");
    assert!(body.get("csrf_token").is_none(), "{body}");
    assert_eq!(body["login_url"], "/bff/login");
}

#[tokio::test]
async fn the_session_refreshes_an_expiring_access_token_and_renews_the_cookie() {
    let b = spawn_bff().await;
    b.app.create_user(TOM, "tenant", PASSWORD);
    let jar = bff_sign_in(&b.app, TOM, PASSWORD).await;
    let (due, old) = expiring(&b, &jar, 30);
    let res = b.app.browser_get("/bff/session", &due).await;
    let mut renewed = due.clone();
    renewed.store(&res);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["authenticated"], true, "{body}");
    let inside = b
        .open(renewed.get(SESSION).expect("a renewed cookie"))
        .unwrap();
    assert_ne!(
        inside["tokens"]["access_token"],
        old["tokens"]["access_token"]
    );
    assert_eq!(bff_session(&b.app, &renewed).await["authenticated"], true);
}

/// Where a browser goes with `location` (RFC 3986 §5.2: dot segments removed): the path.
fn resolved_path(app: &TestApp, location: &str) -> String {
    url::Url::parse(&app.base)
        .unwrap()
        .join(location)
        .expect("a valid Location")
        .path()
        .to_owned()
}

/// Signs in through `login` and asserts where the callback sends the browser: exactly
/// `expected`, which resolves inside the app.
async fn assert_returns_to(app: &TestApp, login: &str, expected: &str) {
    let (mut jar, callback) = bff_to_callback(app, login, TOM, PASSWORD).await;
    let location = complete(app, &mut jar, &callback).await;
    let path = resolved_path(app, &location);
    assert!(
        path == "/app" || path.starts_with("/app/"),
        "{login}: the callback sends the browser to {location} = {path}, outside the app"
    );
    assert_eq!(location, expected, "{login}");
}

#[tokio::test]
async fn return_to_stays_inside_the_app() {
    let app = spawn_bff_app().await;
    app.create_user(TOM, "tenant", PASSWORD);
    for (login, expected) in [
        ("/bff/login?return_to=https%3A%2F%2Fevil.example", "/app"),
        ("/bff/login?return_to=https://evil.example", "/app"),
        ("/bff/login?return_to=%2F%2Fevil.example", "/app"),
        ("/bff/login?return_to=%2Fadmin", "/app"),
        ("/bff/login?return_to=%2Fapp%2F%2Fevil.example", "/app"),
        ("/bff/login?return_to=%2Fapp%5C%5Cevil.example", "/app"),
        ("/bff/login?return_to=/appx", "/app"),
        ("/bff/login?return_to=%2Fapp%2Fx", "/app/x"),
        ("/bff/login?return_to=/app/x", "/app/x"),
        ("/bff/login", "/app"),
    ] {
        assert_returns_to(&app, login, expected).await;
    }
}

#[tokio::test]
async fn return_to_cannot_leave_the_app_through_dot_segments() {
    let app = spawn_bff_app().await;
    app.create_user(TOM, "tenant", PASSWORD);
    for login in [
        "/bff/login?return_to=/app/../admin",
        "/bff/login?return_to=%2Fapp%2F..%2Fadmin",
        "/bff/login?return_to=/app/%2e%2e/authorize",
        "/bff/login?return_to=/app/./../login",
    ] {
        assert_returns_to(&app, login, "/app").await;
    }
}

/// A GET with the path sent exactly as given (an HTTP client would normalise dot
/// segments, RFC 3986 §5.2.4), over a fresh connection. Returns the status and the body.
async fn raw_get(app: &TestApp, path: &str, jar: &Jar) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let host = app.base.strip_prefix("http://").expect("http base");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let cookie = jar
        .header()
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await
    .expect("an answer within 10 s")
    .expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn dot_segments_and_encoded_paths_are_not_forwarded() {
    let b = spawn_bff().await;
    let app = &b.app;
    let e = estate(app).await;
    let jar = bff_sign_in(app, TOM, PASSWORD).await;
    // Sanity: the raw client reaches the API through the BFF.
    let (status, body) = raw_get(app, "/bff/api/tenants", &jar).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Tom Tenant"), "{body}");

    for path in [
        "/bff/api/../token",
        "/bff/api/%2e%2e/token",
        "/bff/api/%2E%2E/token",
        "/bff/api/.%2e/token",
        // Were these forwarded and normalised, they would be /api/tenants: 200.
        "/bff/api/../api/tenants",
        "/bff/api/%2e%2e/api/tenants",
        "/bff/api/tenants/../tenants",
        "/bff/api/./tenants",
        "/bff/api/tenants/%2e%2e/maintenance",
        "/bff/api/tenants%2F..%2Fmaintenance",
        "/bff/api//tenants",
        "/bff/api/tenants/",
        &format!("/bff/api/tenants/{}%2Fbalance", e.tom),
    ] {
        let (status, body) = raw_get(app, path, &jar).await;
        assert_eq!(status, 404, "{path}: {body}");
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"));
        assert_eq!(
            v,
            json!({"error": "not_found", "error_description": "no such API path"}),
            "{path}: the BFF's own answer, nothing forwarded"
        );
    }
}

#[tokio::test]
async fn without_bff_configuration_the_bff_routes_are_404() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/bff/login"),
        (Method::GET, "/bff/login?return_to=%2Fapp"),
        (Method::GET, "/bff/session"),
        (Method::GET, "/bff/callback?code=x&state=y"),
        (Method::POST, "/bff/logout"),
        (Method::GET, "/bff/api/tenants"),
        (Method::POST, "/bff/api/maintenance"),
    ] {
        let res = app
            .http
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{method} {path}");
        assert!(
            res.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("application/json")),
            "{method} {path}"
        );
        assert!(set_cookie_lines(&res).is_empty(), "{method} {path}");
        let body: Value = res.json().await.expect("JSON");
        assert_eq!(body["error"], "not_found", "{method} {path}: {body}");
    }
}

#[tokio::test]
async fn the_demo_app_is_served_with_a_strict_csp_and_no_inline_script() {
    let app = spawn_bff_app().await;
    let csp_of = |res: &reqwest::Response| {
        res.headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no CSP on {}", res.url()))
            .to_owned()
    };
    let res = app.get("/app", None).await;
    assert_eq!(res.status(), 200);
    assert!(res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/html")));
    let csp = csp_of(&res);
    for directive in [
        "script-src 'self'",
        "default-src 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    let html = res.text().await.unwrap();
    let lower = html.to_lowercase();
    // Every <script> loads a file; no inline event handlers, no javascript: URLs.
    let scripts: Vec<&str> = lower.split("<script").skip(1).collect();
    assert!(!scripts.is_empty(), "{html}");
    for s in scripts {
        let (tag, rest) = s.split_once('>').expect("script tag");
        assert!(tag.contains(" src=\"/app/app.js\""), "inline script: {s}");
        assert!(
            rest.trim_start().starts_with("</script>"),
            "inline script: {s}"
        );
    }
    for needle in [
        " onclick=",
        " onload=",
        " onsubmit=",
        " onerror=",
        "javascript:",
    ] {
        assert!(!lower.contains(needle), "{needle} in the page");
    }
    assert!(lower.contains("id=\"signin\""), "{html}");
    assert!(lower.contains("href=\"/bff/login"), "{html}");

    for (path, ty) in [
        ("/app/app.js", "text/javascript"),
        ("/app/app.css", "text/css"),
    ] {
        let res = app.get(path, None).await;
        assert_eq!(res.status(), 200, "{path}");
        assert!(
            res.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with(ty)),
            "{path}"
        );
        assert!(csp_of(&res).contains("script-src 'self'"), "{path}");
        let body = res.text().await.unwrap();
        assert!(!body.contains("eyJ"), "{path}");
    }
}

/// The session in `jar`'s cookie made to expire in `secs` seconds (re-sealed with the
/// BFF's key: the cheap way to reach the refresh path without waiting minutes).
fn expiring(b: &BffApp, jar: &Jar, secs: i64) -> (Jar, Value) {
    let mut session = b.open(jar.get(SESSION).unwrap()).unwrap();
    session["tokens"]["expires_at"] = json!(unix_now() + secs);
    let mut forged = jar.clone();
    forged.set(SESSION, &b.seal(&session));
    (forged, session)
}

#[tokio::test]
async fn an_access_token_about_to_expire_is_refreshed_and_the_cookie_renewed() {
    let b = spawn_bff().await;
    let app = &b.app;
    let e = estate(app).await;
    let jar = bff_sign_in(app, TOM, PASSWORD).await;
    let csrf = bff_csrf(app, &jar).await;
    // Not due: no new cookie.
    let res = app.browser_get("/bff/api/tenants", &jar).await;
    assert_eq!(res.status(), 200);
    assert!(set_cookie_line(&res, SESSION).is_none());

    // 30 s left (the BFF refreshes within 60 s of expiry). Two requests at once with the
    // same cookie share one refresh (a second refresh with the rotated token would look
    // like theft to the server and end the session).
    let (forged, old) = expiring(&b, &jar, 30);
    let balance = format!("/bff/api/tenants/{}/balance", e.tom);
    let (r1, r2) = tokio::join!(
        app.browser_get("/bff/api/tenants", &forged),
        app.browser_get(&balance, &forged),
    );
    let mut renewed = Vec::new();
    for res in [r1, r2] {
        assert_eq!(res.status(), 200);
        let line = set_cookie_line(&res, SESSION).expect("a renewed session cookie");
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/bff"] {
            assert!(line.contains(attr), "{line}");
        }
        let mut j = forged.clone();
        j.store(&res);
        renewed.push(j);
    }
    let new: Vec<Value> = renewed
        .iter()
        .map(|j| {
            b.open(j.get(SESSION).unwrap())
                .expect("the new cookie opens")
        })
        .collect();
    assert_eq!(
        new[0]["tokens"]["access_token"], new[1]["tokens"]["access_token"],
        "one refresh, shared"
    );
    assert_eq!(
        new[0]["tokens"]["refresh_token"],
        new[1]["tokens"]["refresh_token"]
    );
    let new = &new[0];
    assert_ne!(new["tokens"]["access_token"], old["tokens"]["access_token"]);
    assert_ne!(
        new["tokens"]["refresh_token"], old["tokens"]["refresh_token"],
        "the refresh token rotated"
    );
    assert!(new["tokens"]["expires_at"].as_i64().unwrap() > unix_now() + 200);
    assert_eq!(new["sub"], old["sub"]);
    assert_eq!(new["csrf"], old["csrf"], "the CSRF token is kept");
    assert_eq!(new["tokens"]["scope"], old["tokens"]["scope"]);
    let jar = renewed.remove(0);
    assert_eq!(bff_csrf(app, &jar).await, csrf);

    // The renewed cookie works without another refresh, for reads and writes.
    let res = app.browser_get("/bff/api/tenants", &jar).await;
    assert_eq!(res.status(), 200);
    assert!(set_cookie_line(&res, SESSION).is_none());
    let res = bff_send(
        app,
        Method::POST,
        "/bff/api/maintenance",
        &jar,
        Some(&csrf),
        None,
        Some(&draft("After refresh")),
    )
    .await;
    assert_eq!(res.status(), 201);

    // The spent refresh token presented again is reuse: the server revokes the family,
    // and with it the BFF session's new access token.
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair(
            "refresh_token",
            old["tokens"]["refresh_token"].as_str().unwrap(),
        )
        .finish();
    let res = app.post_token(Some(&b.client), &form).await;
    assert_eq!(res.status(), 400);
    assert_bff_signed_out(app, "/bff/api/tenants", &jar, "after reuse detection").await;
}

#[tokio::test]
async fn a_refused_refresh_ends_the_session() {
    let b = spawn_bff().await;
    let app = &b.app;
    let e = estate(app).await;
    let jar = bff_sign_in(app, TOM, PASSWORD).await;
    let before = all_requests(app, &e.admin).await;

    // Due for a refresh, with a refresh token the server does not know.
    let (_, mut session) = expiring(&b, &jar, 10);
    session["tokens"]["refresh_token"] = json!(format!("dbr_{}", random_b64url(32)));
    let mut bogus = jar.clone();
    bogus.set(SESSION, &b.seal(&session));
    assert_bff_signed_out(app, "/bff/api/tenants", &bogus, "an unknown refresh token").await;

    // Expired, with no refresh token at all.
    let (_, mut session) = expiring(&b, &jar, -10);
    session["tokens"]
        .as_object_mut()
        .unwrap()
        .remove("refresh_token");
    let mut none = jar.clone();
    none.set(SESSION, &b.seal(&session));
    let csrf = session["csrf"].as_str().unwrap().to_owned();
    let res = bff_send(
        app,
        Method::POST,
        "/bff/api/maintenance",
        &none,
        Some(&csrf),
        None,
        Some(&draft("No refresh token")),
    )
    .await;
    let status = res.status().as_u16();
    let line = set_cookie_line(&res, SESSION);
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_signed_out("no refresh token", status, line, &body);
    assert_eq!(all_requests(app, &e.admin).await, before);

    // The genuine session is untouched.
    let (status, _) = bff_get(app, "/bff/api/tenants", &jar).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn cookie_keys_rotate_across_instances_without_signing_anyone_out() {
    // Instance 1 seals with k1. Instance 2 (same database and issuer: a scaled-out
    // deployment mid-rotation) has the ring "k2,k1": it opens k1 cookies and seals new
    // ones with k2. Instance 3 has dropped k1: old cookies are no longer sessions there.
    let b = spawn_bff().await;
    b.app.create_user(TOM, "tenant", PASSWORD);
    let jar = bff_sign_in(&b.app, TOM, PASSWORD).await;
    assert!(jar.get(SESSION).unwrap().starts_with("v1.k1."));
    let k2 = format!("k2:{}", random_b64url(32));
    let rotated = instance_with_keys(&b, &format!("{k2},{}", b.keys)).await;

    let res = rotated.browser_get("/bff/api/tenants", &jar).await;
    assert_eq!(
        res.status(),
        200,
        "a k1 cookie opens on the rotated instance"
    );
    assert!(
        set_cookie_line(&res, SESSION).is_none(),
        "and is not rewritten needlessly"
    );

    // A cookie the rotated instance writes (here: after a refresh) is sealed with k2.
    let (due, _) = expiring(&b, &jar, 30);
    let res = rotated.browser_get("/bff/api/tenants", &due).await;
    assert_eq!(res.status(), 200);
    let mut renewed = due.clone();
    renewed.store(&res);
    let sealed = renewed.get(SESSION).expect("a renewed cookie").to_owned();
    assert!(sealed.starts_with("v1.k2."), "{sealed}");
    assert_eq!(
        rotated
            .browser_get("/bff/api/tenants", &renewed)
            .await
            .status(),
        200
    );
    // The first instance does not know k2 yet: not a session there.
    assert_eq!(
        b.app
            .browser_get("/bff/api/tenants", &renewed)
            .await
            .status(),
        401
    );

    // After k1 is dropped, a k1 cookie is not a session (and nothing is forwarded).
    let retired = instance_with_keys(&b, &k2).await;
    let res = retired.browser_get("/bff/api/tenants", &jar).await;
    assert_eq!(res.status(), 401, "k1 retired");
    assert_eq!(
        retired
            .browser_get("/bff/api/tenants", &renewed)
            .await
            .status(),
        200
    );
}

/// The public issuer of [`https_instance`].
const PUBLIC: &str = "https://portal.example";

/// Another instance of `b`'s server whose issuer is https (behind a TLS-terminating
/// proxy: the listener is plain loopback).
async fn https_instance(b: &BffApp) -> TestApp {
    spawn_app_with(Options {
        data_dir: Some(b.app.data_dir.clone()),
        overrides: ServeOverrides {
            issuer: Some(PUBLIC.into()),
            bff_client_id: Some(b.client.id.clone()),
            bff_client_secret: Some(b.client.secret.clone()),
            bff_cookie_keys: Some(b.keys.clone()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn cookies_are_secure_and_prefixed_when_the_issuer_is_https() {
    let b = spawn_bff().await;
    b.app.create_user(TOM, "tenant", PASSWORD);
    let app = https_instance(&b).await;
    // What the proxy would do: the browser's https URLs reach the loopback listener.
    let local = |url: &str| url.replace(PUBLIC, &app.base);
    let (session, flow) = ("__Secure-deedbolt_bff", "__Secure-deedbolt_bff_flow");

    let mut jar = Jar::default();
    let res = app.browser_get("/bff/login", &jar).await;
    assert_eq!(res.status(), 302);
    let authorize = location(&res).unwrap();
    assert!(
        authorize.starts_with("https://portal.example/authorize?"),
        "the browser is sent to the public issuer"
    );
    // Path=/bff, so `__Secure-` (`__Host-` requires Path=/); never the plain name.
    let line = set_cookie_line(&res, flow).expect("prefixed flow cookie");
    for attr in ["; Secure", "Path=/bff;", "SameSite=Lax", "HttpOnly"] {
        assert!(line.contains(attr), "{line}");
    }
    assert!(set_cookie_line(&res, FLOW).is_none());
    jar.store(&res);

    // A whole sign-in over the prefixed cookies (the login pages' included).
    let callback = app
        .sign_in_through_pages(&local(&authorize), TOM, PASSWORD, "approve", &mut jar)
        .await;
    assert!(jar.get("__Host-deedbolt_session").is_some(), "{jar:?}");
    assert!(jar.get("deedbolt_session").is_none(), "{jar:?}");
    let res = app.browser_get(&local(&callback), &jar).await;
    assert_eq!(
        res.status(),
        303,
        "the callback reads the prefixed flow cookie"
    );
    let line = set_cookie_line(&res, session).expect("prefixed session cookie");
    for attr in ["; Secure", "Path=/bff;", "SameSite=Strict", "HttpOnly"] {
        assert!(line.contains(attr), "{line}");
    }
    jar.store(&res);
    let s = bff_session(&app, &jar).await;
    assert_eq!(s["authenticated"], true, "{s}");
    // The same sealed value under the unprefixed name (which a sibling subdomain or a
    // plain-http response could plant) is not read.
    let mut planted = Jar::default();
    planted.set(SESSION, jar.get(session).unwrap());
    assert_eq!(bff_session(&app, &planted).await["authenticated"], false);

    let res = bff_send(
        &app,
        Method::POST,
        "/bff/logout",
        &jar,
        Some(s["csrf_token"].as_str().unwrap()),
        None,
        None,
    )
    .await;
    assert_eq!(res.status(), 204);
    let cleared = set_cookie_line(&res, session).expect("session cookie cleared");
    assert!(
        cleared.contains("; Secure") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );

    // On a plain-http issuer (development on loopback) `Secure` would keep the browser
    // from storing the cookie at all, and prefixed names need it: neither is used.
    let res = b.app.browser_get("/bff/login", &Jar::default()).await;
    let line = set_cookie_line(&res, FLOW).expect("plain flow cookie");
    assert!(!line.contains("Secure"), "{line}");
}
