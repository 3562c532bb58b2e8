//! The audit log, the detection rules and `deedbolt audit`, against the real server.
//!
//! Everything is read back the way an operator reads it: `deedbolt audit search --json`
//! (JSON lines, newest first) on the server's data directory. The audit writer is
//! asynchronous, so records are awaited with bounded polling ([`wait_audit`]), or read
//! after a graceful stop (the writer drains its queue on shutdown). "Nothing more was
//! recorded" is asserted behind a [`barrier`]: a later record, once visible, proves that
//! everything queued before it was written (one writer, in queue order).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deedbolt::config::ServeOverrides;
use deedbolt_core::audit::{AuditKind, AuditRecord};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ports::{AlertStore, AuditStore};
use deedbolt_store_sqlite::SqliteStore;
use serde_json::{json, Value};

use crate::helpers::{
    contains_bytes, data_dir_files, hidden_input, jwt_part, location, pkce_pair, query_params,
    random_b64url, run_cli, spawn_app_with, unix_now, CodeClient, Creds, Jar, Options, TestApp,
};

const UA: &str = "audit-test-agent/1.0 (deedbolt integration tests)";
const CB: &str = "https://app.example.com/cb";
const TENANT: &str = "tess.tenant@example.com";
const PASSWORD: &str = "birch-Meadow-Compass-31-gently";
const WRONG_PASSWORD: &str = "not-the-Password-at-all-99";
/// What the tenant logs in for: all of it delegable by the tenant role.
const USER_SCOPE: &str = "tenant:read financial:read";

// ---------------------------------------------------------------------------------------
// Reading the audit log through the CLI
// ---------------------------------------------------------------------------------------

async fn app_with(overrides: ServeOverrides) -> TestApp {
    spawn_app_with(Options {
        overrides,
        ..Default::default()
    })
    .await
}

/// Parses JSON lines.
fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// `deedbolt --data-dir DIR audit search --json --limit 1000 ARGS`: the records, newest
/// first.
fn audit_in(dir: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "search", "--json", "--limit", "1000"];
    all.extend_from_slice(args);
    let out = run_cli(dir, None, &all);
    assert!(
        out.status.success(),
        "deedbolt {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_lines(&out.stdout)
}

/// [`audit_in`] on the server's data directory.
fn audit(app: &TestApp, args: &[&str]) -> Vec<Value> {
    audit_in(app.data_dir.path(), args)
}

/// The records of one type, newest first.
fn of_type(app: &TestApp, kind: &str) -> Vec<Value> {
    audit(app, &["--type", kind])
}

/// Polls `audit search ARGS` (up to 10 s) until `pred` holds; returns those records.
async fn wait_audit(
    app: &TestApp,
    args: &[&str],
    what: &str,
    pred: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let records = audit(app, args);
        if pred(&records) {
            return records;
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}; `audit search {args:?}` has: {records:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for exactly `n` records of `kind` (and returns them, newest first).
async fn wait_count(app: &TestApp, kind: &str, n: usize) -> Vec<Value> {
    wait_audit(
        app,
        &["--type", kind],
        &format!("{n} {kind} record(s)"),
        |r| r.len() >= n,
    )
    .await
}

/// A string field of a record ("" when absent).
fn s<'a>(record: &'a Value, field: &str) -> &'a str {
    record[field].as_str().unwrap_or("")
}

/// Sends a request that is audited (an unsupported grant type, which is neither an
/// authentication failure nor a scope request) and waits until its record is written:
/// every record queued before it is then written too.
async fn barrier(app: &TestApp) {
    let marker = format!("barrier-{}", random_b64url(8));
    let res = app
        .http
        .post(format!("{}/token", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", &marker)
        .body("grant_type=barrier")
        .send()
        .await
        .expect("barrier request");
    assert_eq!(res.status(), 400, "the barrier request is refused");
    wait_audit(
        app,
        &["--type", "token_request_failed"],
        "the barrier record",
        |r| r.iter().any(|x| s(x, "user_agent") == marker),
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// `POST /token` with a form body, optional Basic credentials and extra headers.
async fn token_req(
    app: &TestApp,
    basic: Option<&Creds>,
    form: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    post_form(app, "/token", basic, form, headers).await
}

/// A form POST to `path` with optional Basic credentials and extra headers.
async fn post_form(
    app: &TestApp,
    path: &str,
    basic: Option<&Creds>,
    form: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(c) = basic {
        req = req.basic_auth(&c.id, Some(&c.secret));
    }
    req.send().await.expect("POST")
}

/// A form body.
fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Credentials with the right id and a wrong secret.
fn wrong_secret(creds: &Creds) -> Creds {
    Creds {
        id: creds.id.clone(),
        secret: format!("dbs_wrong{}", random_b64url(16)),
    }
}

/// A client-credentials request with a wrong secret: 401 invalid_client.
async fn fail_client_auth(app: &TestApp, creds: &Creds) {
    let res = token_req(
        app,
        Some(&wrong_secret(creds)),
        "grant_type=client_credentials",
        &[],
    )
    .await;
    assert_eq!(res.status(), 401, "wrong secret");
}

/// The body of a response as JSON.
async fn json(res: reqwest::Response) -> Value {
    res.json().await.expect("JSON body")
}

/// The `jti` of an access token.
fn jti(token: &str) -> String {
    jwt_part(token, 1)["jti"]
        .as_str()
        .expect("jti claim")
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// The browser side of the code flow (cookies kept by hand, a fixed User-Agent)
// ---------------------------------------------------------------------------------------

/// A browser for one site: keeps cookies, sends [`UA`].
struct Browser<'a> {
    app: &'a TestApp,
    jar: Jar,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Browser {
            app,
            jar: Jar::default(),
        }
    }

    async fn get(&mut self, path: &str) -> reqwest::Response {
        let mut req = self
            .app
            .http
            .get(self.app.url(path))
            .header("user-agent", UA);
        if let Some(c) = self.jar.header() {
            req = req.header("cookie", c);
        }
        let res = req.send().await.expect("GET");
        self.jar.store(&res);
        res
    }

    async fn post(&mut self, path: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self
            .app
            .http
            .post(self.app.url(path))
            .header("user-agent", UA)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(pairs));
        if let Some(c) = self.jar.header() {
            req = req.header("cookie", c);
        }
        let res = req.send().await.expect("POST");
        self.jar.store(&res);
        res
    }

    /// `GET /authorize` for `client_id` and `scope` with a fresh PKCE pair (unless
    /// `pkce` is false) and `extra` parameters; returns the response and the verifier.
    async fn authorize(
        &mut self,
        client_id: &str,
        scope: &str,
        pkce: bool,
        extra: &[(&str, &str)],
    ) -> (reqwest::Response, String) {
        let (verifier, challenge) = pkce_pair();
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", CB),
            ("scope", scope),
            ("state", "st-123"),
        ];
        if pkce {
            params.push(("code_challenge", &challenge));
            params.push(("code_challenge_method", "S256"));
        }
        params.extend_from_slice(extra);
        let res = self.get(&format!("/authorize?{}", form(&params))).await;
        (res, verifier)
    }

    /// Opens the login page at `login_path` and submits `email` and `password`.
    async fn login(&mut self, login_path: &str, email: &str, password: &str) -> reqwest::Response {
        let res = self.get(login_path).await;
        assert_eq!(res.status(), 200, "login page");
        let html = res.text().await.expect("login page");
        let csrf = hidden_input(&html, "csrf").expect("csrf field");
        let req = hidden_input(&html, "req").expect("req field");
        self.post(
            "/login",
            &[
                ("csrf", &csrf),
                ("req", &req),
                ("email", email),
                ("password", password),
            ],
        )
        .await
    }

    /// Opens the consent page at `consent_path` and answers `decision`.
    async fn consent(&mut self, consent_path: &str, decision: &str) -> reqwest::Response {
        let res = self.get(consent_path).await;
        assert_eq!(res.status(), 200, "consent page");
        let html = res.text().await.expect("consent page");
        let csrf = hidden_input(&html, "csrf").expect("csrf field");
        let req = hidden_input(&html, "req").expect("req field");
        self.post(
            "/consent",
            &[("csrf", &csrf), ("req", &req), ("decision", decision)],
        )
        .await
    }
}

/// The `Location` of a 303, asserting it starts with `prefix`.
fn redirect_to(res: &reqwest::Response, prefix: &str) -> String {
    assert_eq!(res.status(), 303, "expected a redirect to {prefix}…");
    let loc = location(res).expect("Location");
    assert!(
        loc.starts_with(prefix),
        "Location {loc} should start with {prefix}"
    );
    loc
}

/// The code in a redirect back to [`CB`].
fn code_of(res: &reqwest::Response) -> String {
    let loc = redirect_to(res, CB);
    let q = query_params(&loc);
    assert!(!q.contains_key("error"), "unexpected error: {loc}");
    q.get("code").expect("code").clone()
}

/// A tenant user and a confidential code client (with refresh tokens) for [`USER_SCOPE`].
fn code_setup(app: &TestApp) -> (String, CodeClient) {
    let user_id = app.create_user(TENANT, "tenant", PASSWORD);
    let client = app.create_code_client(USER_SCOPE, &[CB], false, &["refresh_token"]);
    (user_id, client)
}

/// Redeems `code` as `client` (HTTP Basic) with the request's verifier.
async fn redeem(
    app: &TestApp,
    client: &CodeClient,
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    token_req(
        app,
        Some(&client.creds()),
        &form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CB),
            ("code_verifier", verifier),
        ]),
        &[("user-agent", UA)],
    )
    .await
}

/// `grant_type=refresh_token` as `client`.
async fn refresh(app: &TestApp, client: &CodeClient, refresh_token: &str) -> reqwest::Response {
    token_req(
        app,
        Some(&client.creds()),
        &form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ]),
        &[],
    )
    .await
}

// ---------------------------------------------------------------------------------------
// 1. Every event type, with its fields
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_issuance_and_failures_are_audited_with_their_fields() {
    let t0 = unix_now();
    let app = app_with(ServeOverrides::default()).await;
    let creds = app.create_client("property:read financial:read");

    // token_issued
    let res = token_req(
        &app,
        Some(&creds),
        "grant_type=client_credentials&scope=property:read",
        &[("user-agent", UA)],
    )
    .await;
    assert_eq!(res.status(), 200);
    let token = json(res).await["access_token"].as_str().unwrap().to_owned();
    let issued = wait_count(&app, "token_issued", 1).await;
    assert_eq!(issued.len(), 1, "{issued:#?}");
    let r = &issued[0];
    assert_eq!(r["type"], "token_issued");
    assert_eq!(r["success"], true);
    assert_eq!(s(r, "client_id"), creds.id);
    assert_eq!(s(r, "scope"), "property:read");
    assert_eq!(s(r, "ip"), "127.0.0.1");
    assert_eq!(s(r, "user_agent"), UA);
    assert!(r.get("error").is_none(), "{r}");
    assert!(
        r.get("user_id").is_none(),
        "no user in client credentials: {r}"
    );
    let detail = s(r, "detail");
    assert!(detail.contains("grant=client_credentials"), "{detail}");
    assert!(
        detail.contains(&format!("jti={}", jti(&token))),
        "the record names the token by its jti: {detail}"
    );
    let at = r["at"].as_i64().expect("at");
    assert!((t0..=unix_now()).contains(&at), "at {at} is now");
    assert!(r["id"].as_i64().expect("id") > 0);

    // client_auth_failed: a wrong secret.
    let agent = "evil-scanner/0.1";
    let res = token_req(
        &app,
        Some(&wrong_secret(&creds)),
        "grant_type=client_credentials",
        &[("user-agent", agent)],
    )
    .await;
    assert_eq!(res.status(), 401);
    let failed = wait_count(&app, "client_auth_failed", 1).await;
    let r = &failed[0];
    assert_eq!(r["success"], false);
    assert_eq!(s(r, "error"), "invalid_client");
    assert_eq!(s(r, "ip"), "127.0.0.1");
    assert_eq!(s(r, "user_agent"), agent, "the user agent as sent");
    assert!(s(r, "detail").contains("grant=client_credentials"), "{r}");
    // The claimed (unverified) client id, so `audit search --client` finds the attempts.
    assert_eq!(s(r, "client_id"), creds.id, "{r}");

    // token_request_failed: a scope the client is not registered for.
    let res = token_req(
        &app,
        Some(&creds),
        "grant_type=client_credentials&scope=property:write",
        &[("user-agent", UA)],
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["error"], "invalid_scope");
    let failed = wait_count(&app, "token_request_failed", 1).await;
    let r = &failed[0];
    assert_eq!(r["success"], false);
    assert_eq!(s(r, "error"), "invalid_scope");
    assert_eq!(s(r, "client_id"), creds.id);
    assert_eq!(s(r, "scope"), "property:write", "the requested scope");
    assert_eq!(s(r, "ip"), "127.0.0.1");

    // ... and an unsupported grant type, before any client is known.
    let res = token_req(&app, None, "grant_type=password", &[]).await;
    assert_eq!(res.status(), 400);
    let failed = wait_count(&app, "token_request_failed", 2).await;
    assert_eq!(s(&failed[0], "error"), "unsupported_grant_type");
    assert!(failed[0].get("client_id").is_none(), "{}", failed[0]);

    // Nothing else was counted as issued.
    barrier(&app).await;
    assert_eq!(of_type(&app, "token_issued").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_flow_is_audited_step_by_step() {
    let app = app_with(ServeOverrides::default()).await;
    let (user_id, client) = code_setup(&app);
    let mut browser = Browser::new(&app);

    // authorization_request (valid): to the login page.
    let (res, verifier) = browser.authorize(&client.id, USER_SCOPE, true, &[]).await;
    let login = redirect_to(&res, "/login?req=");
    let recs = wait_count(&app, "authorization_request", 1).await;
    let r = &recs[0];
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(s(r, "client_id"), client.id);
    assert_eq!(s(r, "scope"), USER_SCOPE);
    assert_eq!(s(r, "user_agent"), UA);
    assert!(r.get("error").is_none(), "{r}");

    // login: a wrong password, then the right one.
    let res = browser.login(&login, TENANT, WRONG_PASSWORD).await;
    assert_eq!(res.status(), 401);
    let res = browser.login(&login, TENANT, PASSWORD).await;
    let consent = redirect_to(&res, "/consent?req=");
    let logins = wait_count(&app, "login", 2).await;
    let (ok, bad) = (&logins[0], &logins[1]);
    assert_eq!(bad["success"], false, "{bad}");
    assert_eq!(s(bad, "error"), "invalid_credentials");
    assert_eq!(s(bad, "user_id"), user_id, "the account that was tried");
    assert_eq!(s(bad, "client_id"), client.id);
    assert_eq!(s(bad, "ip"), "127.0.0.1");
    assert_eq!(s(bad, "user_agent"), UA);
    assert_eq!(ok["success"], true, "{ok}");
    assert_eq!(s(ok, "user_id"), user_id);
    assert_eq!(s(ok, "client_id"), client.id);
    assert_eq!(s(ok, "ip"), "127.0.0.1");
    assert!(ok.get("error").is_none(), "{ok}");

    // consent: approve.
    let res = browser.consent(&consent, "approve").await;
    let code = code_of(&res);
    let consents = wait_count(&app, "consent", 1).await;
    let r = &consents[0];
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(s(r, "client_id"), client.id);
    assert_eq!(s(r, "user_id"), user_id);
    assert_eq!(s(r, "scope"), USER_SCOPE, "the granted scope");
    assert!(
        s(r, "session").len() >= 4,
        "a session reference correlates browser records: {r}"
    );

    // token_issued for the code: with the user.
    let res = redeem(&app, &client, &code, &verifier).await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh1 = body["refresh_token"].as_str().unwrap().to_owned();
    let issued = wait_count(&app, "token_issued", 1).await;
    let r = &issued[0];
    assert_eq!(s(r, "client_id"), client.id);
    assert_eq!(s(r, "user_id"), user_id);
    assert_eq!(s(r, "scope"), USER_SCOPE);
    assert_eq!(s(r, "user_agent"), UA);
    assert!(s(r, "detail").contains("grant=authorization_code"), "{r}");
    assert!(
        s(r, "detail").contains(&format!("jti={}", jti(&access))),
        "{r}"
    );

    // token_refreshed.
    let res = refresh(&app, &client, &refresh1).await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    let access2 = body["access_token"].as_str().unwrap().to_owned();
    let refreshed = wait_count(&app, "token_refreshed", 1).await;
    let r = &refreshed[0];
    assert_eq!(r["success"], true);
    assert_eq!(s(r, "client_id"), client.id);
    assert_eq!(s(r, "user_id"), user_id);
    assert!(s(r, "detail").contains("grant=refresh_token"), "{r}");

    // token_revoked by the client at /revoke.
    let res = post_form(
        &app,
        "/revoke",
        Some(&client.creds()),
        &form(&[("token", &access2)]),
        &[],
    )
    .await;
    assert_eq!(res.status(), 200);
    let revoked = wait_count(&app, "token_revoked", 1).await;
    let r = &revoked[0];
    assert_eq!(r["success"], true);
    assert_eq!(s(r, "client_id"), client.id);
    assert!(
        s(r, "detail").contains(&format!("jti={}", jti(&access2))),
        "names the revoked token by jti: {r}"
    );

    // reuse_detected: the rotated refresh token presented again...
    let res = refresh(&app, &client, &refresh1).await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["error"], "invalid_grant");
    let reuse = wait_count(&app, "reuse_detected", 1).await;
    let r = &reuse[0];
    assert_eq!(r["success"], false);
    assert_eq!(s(r, "client_id"), client.id);
    assert!(s(r, "detail").contains("refresh token"), "{r}");
    // ... which also fails the token request itself.
    let failed = wait_count(&app, "token_request_failed", 1).await;
    assert_eq!(s(&failed[0], "error"), "invalid_grant");
    assert_eq!(s(&failed[0], "client_id"), client.id);

    // ... and the code replayed.
    let res = redeem(&app, &client, &code, &verifier).await;
    assert_eq!(res.status(), 400);
    let reuse = wait_count(&app, "reuse_detected", 2).await;
    let r = &reuse[0];
    assert_eq!(s(r, "client_id"), client.id);
    assert!(s(r, "detail").contains("code"), "{r}");

    // consent: deny (prompt=consent asks again although consent is remembered).
    let (res, _) = browser
        .authorize(&client.id, USER_SCOPE, true, &[("prompt", "consent")])
        .await;
    let consent = redirect_to(&res, "/consent?req=");
    let res = browser.consent(&consent, "deny").await;
    let loc = redirect_to(&res, CB);
    assert_eq!(query_params(&loc)["error"], "access_denied");
    let consents = wait_count(&app, "consent", 2).await;
    let r = &consents[0];
    assert_eq!(r["success"], false, "{r}");
    assert_eq!(s(r, "error"), "access_denied");
    assert_eq!(s(r, "user_id"), user_id);
    assert_eq!(s(r, "client_id"), client.id);

    // authorization_request refused: no PKCE (redirected with error=invalid_request)...
    let (res, _) = browser.authorize(&client.id, USER_SCOPE, false, &[]).await;
    let loc = redirect_to(&res, CB);
    assert_eq!(query_params(&loc)["error"], "invalid_request");
    let recs = wait_count(&app, "authorization_request", 3).await;
    let r = &recs[0];
    assert_eq!(r["success"], false, "{r}");
    assert_eq!(s(r, "error"), "invalid_request");
    assert_eq!(s(r, "client_id"), client.id);
    // ... and an unknown client (an error page, no redirect).
    let (res, _) = browser
        .authorize("dbc_doesnotexist", USER_SCOPE, true, &[])
        .await;
    assert_eq!(res.status(), 400);
    assert!(location(&res).is_none());
    let recs = wait_count(&app, "authorization_request", 4).await;
    let r = &recs[0];
    assert_eq!(r["success"], false, "{r}");
    assert_eq!(s(r, "error"), "invalid_request");
    assert_eq!(s(r, "client_id"), "dbc_doesnotexist");
    assert_eq!(
        s(r, "ip"),
        "127.0.0.1",
        "authorization requests carry the IP"
    );
    // The prompt=consent request before them was a success.
    assert_eq!(recs[2]["success"], true, "{}", recs[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_changes_are_audited() {
    let app = app_with(ServeOverrides::default()).await;

    // client_created
    let creds = app.create_client("property:read");
    let recs = wait_count(&app, "client_created", 1).await;
    let r = &recs[0];
    assert_eq!(r["success"], true);
    assert_eq!(s(r, "client_id"), creds.id);
    assert_eq!(s(r, "scope"), "property:read");

    // user_created
    let user_id = app.create_user(TENANT, "tenant", PASSWORD);
    let recs = wait_count(&app, "user_created", 1).await;
    assert_eq!(s(&recs[0], "user_id"), user_id);
    assert!(s(&recs[0], "detail").contains("role=tenant"), "{}", recs[0]);

    // token_revoked by an operator: every token of a client, then of a user. A token
    // issued before stops working.
    let token = app.access_token(&creds, None).await;
    assert_eq!(app.get("/api/properties", Some(&token)).await.status(), 200);
    wait_count(&app, "token_issued", 1).await;
    let out = app.cli(&["token", "revoke", "--client", &creds.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = wait_count(&app, "token_revoked", 1).await;
    let r = &recs[0];
    assert_eq!(r["success"], true);
    assert_eq!(s(r, "client_id"), creds.id);
    assert!(s(r, "detail").contains("via CLI"), "{r}");
    crate::helpers::eventually("the revoked client's token is refused", || async {
        app.get("/api/properties", Some(&token)).await.status() == 401
    })
    .await;
    let out = app.cli(&["token", "revoke", "--user", TENANT]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = wait_count(&app, "token_revoked", 2).await;
    assert_eq!(s(&recs[0], "user_id"), user_id);

    // client_changed
    let out = app.cli(&["client", "rotate-secret", &creds.id, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = wait_count(&app, "client_changed", 1).await;
    assert_eq!(s(&recs[0], "client_id"), creds.id);
    assert!(s(&recs[0], "detail").contains("secret"), "{}", recs[0]);

    // client_deleted
    let out = app.cli(&["client", "delete", &creds.id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = wait_count(&app, "client_deleted", 1).await;
    assert_eq!(s(&recs[0], "client_id"), creds.id);
    assert_eq!(recs[0]["success"], true);

    // The whole history of the client, newest first.
    let history: Vec<String> = audit(&app, &["--client", &creds.id])
        .iter()
        .map(|r| s(r, "type").to_owned())
        .collect();
    assert_eq!(
        history,
        [
            "client_deleted",
            "client_changed",
            "token_revoked",
            "token_issued",
            "client_created"
        ],
        "{history:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_requests_are_audited() {
    let app = app_with(ServeOverrides {
        rate_limit_api: Some("2/1h".into()),
        rate_limit_token: Some("2/1h".into()),
        ..Default::default()
    })
    .await;
    let creds = app.create_client("property:read");
    let token = app.access_token(&creds, None).await;

    // The API limit.
    for _ in 0..2 {
        assert_eq!(app.get("/api/properties", Some(&token)).await.status(), 200);
    }
    assert_eq!(app.get("/api/properties", Some(&token)).await.status(), 429);
    let recs = wait_count(&app, "rate_limited", 1).await;
    let r = &recs[0];
    assert_eq!(r["success"], false);
    assert_eq!(s(r, "client_id"), creds.id);
    assert!(s(r, "detail").contains("policy=api"), "{r}");

    // The token limit: the third token request.
    assert_eq!(
        token_req(&app, Some(&creds), "grant_type=client_credentials", &[])
            .await
            .status(),
        200
    );
    let res = token_req(
        &app,
        Some(&creds),
        "grant_type=client_credentials",
        &[("user-agent", UA)],
    )
    .await;
    assert_eq!(res.status(), 429);
    let recs = wait_count(&app, "rate_limited", 2).await;
    let r = &recs[0];
    assert_eq!(r["success"], false);
    assert_eq!(s(r, "client_id"), creds.id);
    assert_eq!(s(r, "error"), "rate_limit_exceeded");
    assert_eq!(s(r, "ip"), "127.0.0.1");
    assert_eq!(s(r, "user_agent"), UA);

    // Exactly one record per refusal, and the refused token request is not "issued".
    barrier(&app).await;
    assert_eq!(of_type(&app, "rate_limited").len(), 2);
    assert_eq!(of_type(&app, "token_issued").len(), 2);
}

// ---------------------------------------------------------------------------------------
// 2. No secrets
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_audit_log_or_the_database_files() {
    let app = app_with(ServeOverrides::default()).await;
    let (_, client) = code_setup(&app);
    let cc = app.create_client("property:read");
    let mut secrets: Vec<(&str, String)> = vec![
        ("code client secret", client.secret.clone().unwrap()),
        ("cc client secret", cc.secret.clone()),
        ("password", PASSWORD.to_owned()),
        ("wrong password", WRONG_PASSWORD.to_owned()),
    ];

    // A client-credentials token, used at the API; a wrong secret tried once.
    let cc_token = app.access_token(&cc, Some("property:read")).await;
    assert_eq!(
        app.get("/api/properties", Some(&cc_token)).await.status(),
        200
    );
    let wrong = wrong_secret(&cc);
    let res = token_req(&app, Some(&wrong), "grant_type=client_credentials", &[]).await;
    assert_eq!(res.status(), 401);
    secrets.push(("wrong client secret", wrong.secret.clone()));

    // The code flow, with a failed login first.
    let mut browser = Browser::new(&app);
    let (res, verifier) = browser.authorize(&client.id, USER_SCOPE, true, &[]).await;
    let login = redirect_to(&res, "/login?req=");
    assert_eq!(
        browser.login(&login, TENANT, WRONG_PASSWORD).await.status(),
        401
    );
    let res = browser.login(&login, TENANT, PASSWORD).await;
    let consent = redirect_to(&res, "/consent?req=");
    let session = browser.jar.get("deedbolt_session").unwrap().to_owned();
    let code = code_of(&browser.consent(&consent, "approve").await);
    let body = json(redeem(&app, &client, &code, &verifier).await).await;
    let access1 = body["access_token"].as_str().unwrap().to_owned();
    let refresh1 = body["refresh_token"].as_str().unwrap().to_owned();
    // A rotation, a reuse (revoking the family), a code replay, a revocation.
    let body = json(refresh(&app, &client, &refresh1).await).await;
    let access2 = body["access_token"].as_str().unwrap().to_owned();
    let refresh2 = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(refresh(&app, &client, &refresh1).await.status(), 400);
    assert_eq!(redeem(&app, &client, &code, &verifier).await.status(), 400);
    let res = post_form(
        &app,
        "/revoke",
        Some(&client.creds()),
        &form(&[("token", &refresh2)]),
        &[],
    )
    .await;
    assert_eq!(res.status(), 200);
    // A rotated secret: the new one is a secret too.
    let rotated = app.cli_json(&["client", "rotate-secret", &cc.id, "--json"]);
    secrets.push((
        "rotated client secret",
        rotated["client_secret"].as_str().unwrap().to_owned(),
    ));

    secrets.push(("session cookie", session));
    secrets.push(("authorization code", code));
    secrets.push(("PKCE verifier", verifier));
    secrets.push(("refresh token 1", refresh1));
    secrets.push(("refresh token 2", refresh2));
    for (name, token) in [
        ("cc access token", cc_token),
        ("access token 1", access1),
        ("access token 2", access2),
    ] {
        let signature = token.rsplit('.').next().unwrap().to_owned();
        assert!(signature.len() >= 40, "{name} has a signature");
        secrets.push((name, token));
        secrets.push((name, signature));
    }

    let data_dir = app.data_dir.clone();
    app.stop().await;

    // The audit log as an operator reads it...
    let out = run_cli(
        data_dir.path(),
        None,
        &["audit", "search", "--json", "--limit", "1000"],
    );
    assert!(out.status.success());
    let records = json_lines(&out.stdout);
    assert!(
        records.len() >= 15,
        "the scenario was audited: {} records",
        records.len()
    );
    let table = run_cli(
        data_dir.path(),
        None,
        &["audit", "search", "--limit", "1000"],
    );
    assert!(table.status.success());
    // ... and every byte of the database files.
    let files = data_dir_files(data_dir.path());
    assert!(
        files.iter().any(|(n, _)| n == "deedbolt.db"),
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (what, secret) in &secrets {
        assert!(
            !contains_bytes(&out.stdout, secret.as_bytes()),
            "{what} appears in `audit search --json`"
        );
        assert!(
            !contains_bytes(&table.stdout, secret.as_bytes()),
            "{what} appears in `audit search`"
        );
        for (file, bytes) in &files {
            assert!(
                !contains_bytes(bytes, secret.as_bytes()),
                "{what} appears in the raw bytes of {file}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// 3. Nothing lost under load
// ---------------------------------------------------------------------------------------

/// The value of a counter in the Prometheus text at GET /metrics.
async fn metric(app: &TestApp, name: &str) -> u64 {
    let text = app.metrics_text().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
        .trim()
        .parse()
        .expect("a counter value")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_record_is_lost_under_concurrent_load() {
    const REQUESTS: usize = 300;
    let app = app_with(ServeOverrides::default()).await;
    let creds = app.create_client("property:read");
    let before = metric(&app, "deedbolt_audit_records_written_total").await;

    let tasks: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let http = app.http.clone();
            let url = format!("{}/token", app.base);
            let creds = creds.clone();
            tokio::spawn(async move {
                http.post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .basic_auth(&creds.id, Some(&creds.secret))
                    .body("grant_type=client_credentials")
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    let mut ok = 0u64;
    for t in tasks {
        if let Ok(Ok(200)) = t.await {
            ok += 1;
        }
    }
    assert!(ok > (REQUESTS as u64) / 2, "most requests succeed: {ok}");

    // The writer catches up while the server runs...
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let written = metric(&app, "deedbolt_audit_records_written_total").await;
        if written >= before + ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "audit records written: {written}, expected at least {}",
            before + ok
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // ... and after a graceful stop every success has exactly one record.
    let data_dir = app.data_dir.clone();
    app.stop().await;
    let issued = audit_in(
        data_dir.path(),
        &["--type", "token_issued", "--client", &creds.id],
    );
    assert_eq!(issued.len() as u64, ok, "one token_issued record per 200");
    let ids: std::collections::HashSet<i64> =
        issued.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), issued.len(), "distinct records");
    let jtis: std::collections::HashSet<&str> = issued.iter().map(|r| s(r, "detail")).collect();
    assert_eq!(jtis.len(), issued.len(), "each names its own token");
}

// ---------------------------------------------------------------------------------------
// 4. Alerts
// ---------------------------------------------------------------------------------------

/// The alert records, newest first.
fn alerts(app: &TestApp) -> Vec<Value> {
    of_type(app, "alert")
}

/// Only the `multiple_auth_failures` alerts (a code client's first privileged scope raises
/// an `unusual_scope_request` alert too).
fn auth_failure_alerts(app: &TestApp) -> Vec<Value> {
    alerts(app)
        .into_iter()
        .filter(|a| {
            a["detail"]
                .as_str()
                .is_some_and(|d| d.contains("multiple_auth_failures"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_failed_client_authentications_from_one_ip_raise_exactly_one_alert() {
    let app = app_with(ServeOverrides::default()).await;
    let creds = app.create_client("property:read");

    for i in 1..=4 {
        fail_client_auth(&app, &creds).await;
        // The alert, if any, is queued before the failure's own record.
        wait_count(&app, "client_auth_failed", i).await;
    }
    assert!(
        alerts(&app).is_empty(),
        "four failures: {:#?}",
        alerts(&app)
    );

    fail_client_auth(&app, &creds).await;
    let recs = wait_audit(&app, &["--type", "alert"], "the alert", |r| !r.is_empty()).await;
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let r = &recs[0];
    assert_eq!(r["success"], false);
    assert_eq!(s(r, "ip"), "127.0.0.1");
    assert!(s(r, "detail").contains("multiple_auth_failures"), "{r}");
    assert!(s(r, "detail").contains("ip:127.0.0.1"), "{r}");

    fail_client_auth(&app, &creds).await;
    wait_count(&app, "client_auth_failed", 6).await;
    assert_eq!(alerts(&app).len(), 1, "one alert per window");

    // The outbox holds the full alert, for the webhook.
    let data_dir = app.data_dir.clone();
    app.stop().await;
    let stored = stored_alerts(data_dir.path()).await;
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(stored[0]["kind"], "multiple_auth_failures");
    assert_eq!(stored[0]["ip"], "127.0.0.1");
    assert_eq!(stored[0]["recommended_action"], "block_ip");
}

/// Every alert in the outbox (newest first), from the database file.
async fn stored_alerts(data_dir: &Path) -> Vec<Value> {
    let store = SqliteStore::open(&data_dir.join("deedbolt.db"))
        .await
        .expect("open store");
    let all = store.list_alerts(None, 1000).await.expect("list alerts");
    store.close().await;
    all.into_iter().map(|a| a.alert).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_failure_threshold_is_configurable_and_failed_logins_count() {
    let app = app_with(ServeOverrides {
        alert_auth_failures: Some("3/5m".into()),
        ..Default::default()
    })
    .await;
    let (_, client) = code_setup(&app);
    let cc = app.create_client("property:read");
    let mut browser = Browser::new(&app);
    let (res, _) = browser.authorize(&client.id, USER_SCOPE, true, &[]).await;
    let login = redirect_to(&res, "/login?req=");

    // A failed login and a failed client authentication: two.
    assert_eq!(
        browser.login(&login, TENANT, WRONG_PASSWORD).await.status(),
        401
    );
    wait_count(&app, "login", 1).await;
    fail_client_auth(&app, &cc).await;
    wait_count(&app, "client_auth_failed", 1).await;
    assert!(
        auth_failure_alerts(&app).is_empty(),
        "{:#?}",
        auth_failure_alerts(&app)
    );

    // The third (a login again) fires.
    assert_eq!(
        browser
            .login(&login, "nobody@example.com", WRONG_PASSWORD)
            .await
            .status(),
        401
    );
    wait_audit(&app, &["--type", "alert"], "the alert", |r| {
        r.iter().any(|a| {
            a["detail"]
                .as_str()
                .is_some_and(|d| d.contains("multiple_auth_failures"))
        })
    })
    .await;
    let recs = auth_failure_alerts(&app);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(s(&recs[0], "ip"), "127.0.0.1");

    // A successful login does not count, and does not reset the window.
    let res = browser.login(&login, TENANT, PASSWORD).await;
    redirect_to(&res, "/consent?req=");
    wait_count(&app, "login", 3).await;
    barrier(&app).await;
    assert_eq!(auth_failure_alerts(&app).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_use_of_a_privileged_scope_is_remembered_across_restarts() {
    let app = app_with(ServeOverrides::default()).await;
    let creds = app.create_client("property:read financial:read");
    let body = "grant_type=client_credentials&scope=financial:read";
    assert_eq!(token_req(&app, Some(&creds), body, &[]).await.status(), 200);
    wait_audit(&app, &["--type", "alert"], "first-use alert", |r| {
        !r.is_empty()
    })
    .await;
    let dir = app.data_dir.clone();
    app.stop().await;

    let app = spawn_app_with(Options {
        data_dir: Some(dir),
        ..Default::default()
    })
    .await;
    assert_eq!(token_req(&app, Some(&creds), body, &[]).await.status(), 200);
    barrier(&app).await;
    assert_eq!(
        alerts(&app).len(),
        1,
        "no second first-use alert: {:#?}",
        alerts(&app)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusual_scope_requests_raise_alerts() {
    let app = app_with(ServeOverrides::default()).await;
    let creds = app.create_client("property:read property:write financial:read");
    let subject = format!("unusual_scope_request client:{}", creds.id);
    let ask = |scope: &str| {
        let body = format!(
            "grant_type=client_credentials&scope={}",
            scope.replace(' ', "+")
        );
        let (app, creds) = (&app, &creds);
        async move { token_req(app, Some(creds), &body, &[]).await }
    };

    // A non-privileged scope: nothing.
    assert_eq!(ask("property:read").await.status(), 200);
    barrier(&app).await;
    assert!(alerts(&app).is_empty(), "{:#?}", alerts(&app));

    // The first token with financial:read alerts...
    assert_eq!(ask("financial:read").await.status(), 200);
    let recs = wait_audit(&app, &["--type", "alert"], "first-use alert", |r| {
        !r.is_empty()
    })
    .await;
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(s(&recs[0], "detail"), subject);
    assert_eq!(s(&recs[0], "client_id"), creds.id);
    // ... the second does not.
    assert_eq!(ask("financial:read property:read").await.status(), 200);
    barrier(&app).await;
    assert_eq!(alerts(&app).len(), 1, "{:#?}", alerts(&app));

    // Beyond the registration: refused, and an alert.
    let res = ask("property:read tenant:write").await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["error"], "invalid_scope");
    let recs = wait_audit(
        &app,
        &["--type", "alert"],
        "beyond-registration alert",
        |r| r.len() >= 2,
    )
    .await;
    assert_eq!(recs.len(), 2, "{recs:#?}");
    assert_eq!(s(&recs[0], "detail"), subject);
    let failed = of_type(&app, "token_request_failed");
    assert!(
        failed
            .iter()
            .any(|r| s(r, "error") == "invalid_scope" && s(r, "client_id") == creds.id),
        "{failed:#?}"
    );
    // The same probe again within the alert window: no news, no second alert...
    assert_eq!(ask("tenant:write").await.status(), 400);
    barrier(&app).await;
    assert_eq!(alerts(&app).len(), 2, "{:#?}", alerts(&app));
    // ...but probing for another scope is.
    assert_eq!(ask("financial:write").await.status(), 400);
    wait_audit(&app, &["--type", "alert"], "a second probe alert", |r| {
        r.len() >= 3
    })
    .await;

    // What each alert was about, from the outbox.
    let data_dir = app.data_dir.clone();
    app.stop().await;
    let mut details: Vec<String> = stored_alerts(data_dir.path())
        .await
        .iter()
        .map(|a| {
            assert_eq!(a["kind"], "unusual_scope_request");
            assert_eq!(a["client_id"], creds.id.as_str());
            assert_eq!(a["recommended_action"], "review_client");
            a["detail"].as_str().unwrap().to_owned()
        })
        .collect();
    details.reverse();
    assert_eq!(details.len(), 3, "{details:?}");
    assert!(
        details[0].contains("first use of privileged scope financial:read"),
        "{details:?}"
    );
    assert!(
        details[1].contains("beyond registration: tenant:write"),
        "{details:?}"
    );
    assert!(
        details[2].contains("beyond registration: financial:write"),
        "{details:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privileged_scope_granted_by_default_counts_as_its_first_use() {
    let app = app_with(ServeOverrides::default()).await;
    let creds = app.create_client("property:read financial:read");
    // No scope: the token carries every registered scope, financial:read included.
    let token = app.access_token(&creds, None).await;
    assert!(
        jwt_part(&token, 1)["scope"]
            .as_str()
            .unwrap()
            .contains("financial:read"),
        "the default grant includes financial:read"
    );
    let recs = wait_audit(&app, &["--type", "alert"], "first-use alert", |r| {
        !r.is_empty()
    })
    .await;
    assert!(
        s(&recs[0], "detail").contains("unusual_scope_request"),
        "{recs:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_request_beyond_the_registration_raises_an_alert() {
    let app = app_with(ServeOverrides::default()).await;
    let (_, client) = code_setup(&app);
    let mut browser = Browser::new(&app);
    let (res, _) = browser
        .authorize(&client.id, "tenant:read property:write", true, &[])
        .await;
    let loc = redirect_to(&res, CB);
    assert_eq!(query_params(&loc)["error"], "invalid_scope");
    let recs = wait_audit(
        &app,
        &["--type", "alert"],
        "beyond-registration alert",
        |r| !r.is_empty(),
    )
    .await;
    assert!(
        s(&recs[0], "detail").contains(&format!("unusual_scope_request client:{}", client.id)),
        "{recs:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_code_also_revokes_the_refresh_token_issued_from_it() {
    let app = app_with(ServeOverrides::default()).await;
    let (_, client) = code_setup(&app);
    let mut browser = Browser::new(&app);
    let (res, verifier) = browser.authorize(&client.id, USER_SCOPE, true, &[]).await;
    let login = redirect_to(&res, "/login?req=");
    let consent = redirect_to(
        &browser.login(&login, TENANT, PASSWORD).await,
        "/consent?req=",
    );
    let code = code_of(&browser.consent(&consent, "approve").await);
    let body = json(redeem(&app, &client, &code, &verifier).await).await;
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(redeem(&app, &client, &code, &verifier).await.status(), 400);
    wait_count(&app, "reuse_detected", 1).await;
    let res = refresh(&app, &client, &refresh_token).await;
    assert_eq!(
        res.status(),
        400,
        "the refresh token issued from a replayed code must not work"
    );
}

/// Waits, if need be, until the current hour has at least a minute left: usage is counted
/// per clock hour, and a test must not straddle two.
async fn clear_of_the_hour_boundary() {
    let into = unix_now().rem_euclid(3600);
    if into > 3600 - 60 {
        tokio::time::sleep(Duration::from_secs((3600 - into + 1) as u64)).await;
    }
}

/// A data directory with a client-credentials client (property:read) whose past week of
/// API usage is `per_hour` calls every hour, and a server on it.
async fn app_with_usage_history(per_hour: u64, overrides: ServeOverrides) -> (TestApp, Creds) {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let out = run_cli(
        dir.path(),
        None,
        &[
            "client",
            "create",
            "--name",
            "busy-client",
            "--grant",
            "client_credentials",
            "--scope",
            "property:read",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let creds = Creds {
        id: v["client_id"].as_str().unwrap().to_owned(),
        secret: v["client_secret"].as_str().unwrap().to_owned(),
    };
    clear_of_the_hour_boundary().await;
    let store = SqliteStore::open(&dir.path().join("deedbolt.db"))
        .await
        .expect("open store");
    let hour = unix_now().div_euclid(3600);
    for h in hour - 168..hour {
        store
            .add_usage(&creds.id, h, per_hour)
            .await
            .expect("add usage");
    }
    store.close().await;
    let app = spawn_app_with(Options {
        data_dir: Some(dir),
        overrides,
        ..Default::default()
    })
    .await;
    (app, creds)
}

/// The token_usage_anomaly alert records of `client`, newest first.
fn usage_alerts(app: &TestApp, client: &str) -> Vec<Value> {
    audit(app, &["--type", "alert", "--client", client])
        .into_iter()
        .filter(|r| s(r, "detail").starts_with("token_usage_anomaly"))
        .collect()
}

/// `n` API calls with `token`, each of which must succeed.
async fn api_calls(app: &TestApp, token: &str, n: usize) {
    for i in 0..n {
        let res = app.get("/api/properties", Some(token)).await;
        assert_eq!(res.status(), 200, "API call {}", i + 1);
    }
}

// History: 10 calls every hour for a week. Mean 10, spread floored at √10 ≈ 3.16, so with
// the default threshold of 5 the score passes 5 at 10 + 5·3.16 = 25.8: the 26th call.
const PER_HOUR: u64 = 10;
const QUIET_CALLS: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomalous_token_usage_alerts_and_auto_revoke_revokes_the_token() {
    let (app, creds) = app_with_usage_history(
        PER_HOUR,
        ServeOverrides {
            auto_revoke: Some(true),
            ..Default::default()
        },
    )
    .await;
    let token = app.access_token(&creds, None).await;
    let jti = jti(&token);

    // Within the client's usual volume: nothing.
    api_calls(&app, &token, QUIET_CALLS).await;
    barrier(&app).await;
    assert!(
        usage_alerts(&app, &creds.id).is_empty(),
        "{:#?}",
        usage_alerts(&app, &creds.id)
    );

    // One more is anomalous: alerts for the client and the token; the token is revoked.
    api_calls(&app, &token, 1).await;
    let recs = wait_audit(
        &app,
        &["--type", "alert", "--client", &creds.id],
        "usage alerts",
        |r| r.len() >= 2,
    )
    .await;
    let details: Vec<&str> = recs.iter().map(|r| s(r, "detail")).collect();
    assert!(
        details.contains(&format!("token_usage_anomaly client:{}", creds.id).as_str()),
        "{details:?}"
    );
    assert!(
        details.contains(&format!("token_usage_anomaly token:{jti}").as_str()),
        "{details:?}"
    );
    let res = app.get("/api/properties", Some(&token)).await;
    assert_eq!(res.status(), 401, "the token is revoked");
    let revoked = wait_count(&app, "token_revoked", 1).await;
    assert_eq!(s(&revoked[0], "client_id"), creds.id);
    assert!(
        s(&revoked[0], "detail").contains(&format!("jti={jti}")),
        "{}",
        revoked[0]
    );
    assert!(
        s(&revoked[0], "detail").contains("usage_anomaly"),
        "{}",
        revoked[0]
    );

    // Only that token: the client gets a new one that works.
    let fresh = app.access_token(&creds, None).await;
    assert_eq!(app.get("/api/properties", Some(&fresh)).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomalous_token_usage_without_auto_revoke_only_alerts() {
    let (app, creds) = app_with_usage_history(PER_HOUR, ServeOverrides::default()).await;
    let token = app.access_token(&creds, None).await;
    let jti = jti(&token);
    api_calls(&app, &token, QUIET_CALLS).await;
    barrier(&app).await;
    assert!(usage_alerts(&app, &creds.id).is_empty());

    api_calls(&app, &token, 1).await;
    let recs = wait_audit(
        &app,
        &["--type", "alert", "--client", &creds.id],
        "usage alerts",
        |r| r.len() >= 2,
    )
    .await;
    assert!(
        recs.iter()
            .any(|r| s(r, "detail") == format!("token_usage_anomaly token:{jti}")),
        "{recs:#?}"
    );
    // The token keeps working, and alerts once per hour, not per call.
    api_calls(&app, &token, 10).await;
    barrier(&app).await;
    assert_eq!(usage_alerts(&app, &creds.id).len(), 2);
    assert!(of_type(&app, "token_revoked").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_usage_history_is_not_judged_anomalous() {
    clear_of_the_hour_boundary().await;
    let app = app_with(ServeOverrides {
        auto_revoke: Some(true),
        ..Default::default()
    })
    .await;
    let creds = app.create_client("property:read");
    let token = app.access_token(&creds, None).await;
    // A new integration's first busy hour: 20 calls.
    api_calls(&app, &token, 20).await;
    barrier(&app).await;
    assert!(
        usage_alerts(&app, &creds.id).is_empty(),
        "a client without a day of history must not alert: {:#?}",
        usage_alerts(&app, &creds.id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_client_authentication_at_revoke_and_introspect_is_audited() {
    let app = app_with(ServeOverrides::default()).await;
    let creds = app.create_client("property:read");
    let wrong = wrong_secret(&creds);
    for path in ["/revoke", "/introspect"] {
        let res = post_form(&app, path, Some(&wrong), "token=whatever", &[]).await;
        assert_eq!(res.status(), 401, "{path}");
    }
    barrier(&app).await;
    let failed = of_type(&app, "client_auth_failed");
    assert_eq!(failed.len(), 2, "{failed:#?}");
    for r in &failed {
        assert_eq!(s(r, "error"), "invalid_client");
        assert_eq!(s(r, "ip"), "127.0.0.1");
    }
}

// ---------------------------------------------------------------------------------------
// 5. The CLI
// ---------------------------------------------------------------------------------------

/// Registers a client-credentials client in `dir` with the CLI; returns its id.
fn cli_client(dir: &Path) -> String {
    let out = run_cli(
        dir,
        None,
        &[
            "client",
            "create",
            "--name",
            "tail-client",
            "--grant",
            "client_credentials",
            "--scope",
            "property:read",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["client_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn audit_tail_prints_the_most_recent_records_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = (0..7).map(|_| cli_client(dir.path())).collect();

    let out = run_cli(dir.path(), None, &["audit", "tail", "-n", "5", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = json_lines(&out.stdout);
    let clients: Vec<&str> = recs.iter().map(|r| s(r, "client_id")).collect();
    assert_eq!(
        clients,
        ids[2..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    let seq: Vec<i64> = recs.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(seq.windows(2).all(|w| w[0] < w[1]), "oldest first: {seq:?}");
    // The same five as the newest five of `search`, in reverse.
    let mut newest = audit_in(dir.path(), &[]);
    newest.truncate(5);
    newest.reverse();
    assert_eq!(recs, newest);

    // The table form: one line per record, in the same order.
    let out = run_cli(dir.path(), None, &["audit", "tail", "-n", "5"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    for (line, id) in lines.iter().zip(&ids[2..]) {
        assert!(
            line.contains(id.as_str()) && line.contains("client_created"),
            "{line}"
        );
    }
}

#[tokio::test]
async fn audit_tail_with_zero_lines_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    cli_client(dir.path());
    let out = run_cli(dir.path(), None, &["audit", "tail", "-n", "0", "--json"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_search_filters_by_client_type_and_since() {
    let app = app_with(ServeOverrides::default()).await;
    let a = app.create_client("property:read");
    let b = app.create_client("property:read");
    for _ in 0..3 {
        app.access_token(&a, None).await;
    }
    for _ in 0..2 {
        app.access_token(&b, None).await;
    }
    let res = token_req(
        &app,
        Some(&a),
        "grant_type=client_credentials&scope=tenant:read",
        &[],
    )
    .await;
    assert_eq!(res.status(), 400);
    wait_count(&app, "token_issued", 5).await;
    wait_count(&app, "token_request_failed", 1).await;
    // A token_issued record of A from two hours ago (as if written then).
    let store = SqliteStore::open(&app.data_dir.path().join("deedbolt.db"))
        .await
        .unwrap();
    let old = UnixTime(unix_now() - 7200);
    store
        .insert_audit(&[AuditRecord::new(AuditKind::TokenIssued, true, old)
            .client(&a.id)
            .ip("192.0.2.9")
            .detail("grant=client_credentials jti=old")])
        .await
        .unwrap();
    store.close().await;

    let since = unix_now() - 3600;
    let recs = audit(
        &app,
        &["--client", &a.id, "--type", "token_issued", "--since", "1h"],
    );
    assert_eq!(recs.len(), 3, "{recs:#?}");
    for r in &recs {
        assert_eq!(s(r, "type"), "token_issued");
        assert_eq!(s(r, "client_id"), a.id);
        assert!(r["at"].as_i64().unwrap() >= since - 5, "{r}");
    }
    let seq: Vec<i64> = recs.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(seq.windows(2).all(|w| w[0] > w[1]), "newest first: {seq:?}");

    // Without --since the old one is there too; other filters combine the same way.
    assert_eq!(
        audit(&app, &["--client", &a.id, "--type", "token_issued"]).len(),
        4
    );
    assert_eq!(audit(&app, &["--type", "token_issued"]).len(), 6);
    assert_eq!(
        audit(&app, &["--type", "token_issued", "--since", "1h"]).len(),
        5
    );
    assert_eq!(
        audit(&app, &["--type", "token_issued", "--ip", "192.0.2.9"]).len(),
        1
    );
    let of_b = audit(&app, &["--client", &b.id]);
    let kinds: Vec<&str> = of_b.iter().map(|r| s(r, "type")).collect();
    assert_eq!(
        kinds,
        ["token_issued", "token_issued", "client_created"],
        "{of_b:#?}"
    );
    let of_a_failed = audit(&app, &["--client", &a.id, "--type", "token_request_failed"]);
    assert_eq!(of_a_failed.len(), 1);
    assert_eq!(s(&of_a_failed[0], "error"), "invalid_scope");
    // --limit keeps the newest.
    let out = app.cli(&[
        "audit",
        "search",
        "--json",
        "--type",
        "token_issued",
        "--limit",
        "2",
    ]);
    assert!(out.status.success());
    let two = json_lines(&out.stdout);
    assert_eq!(two.len(), 2, "{two:#?}");
    assert_eq!(two[0], audit(&app, &["--type", "token_issued"])[0]);
}

#[tokio::test]
async fn audit_rejects_an_unknown_type_clearly() {
    let dir = tempfile::tempdir().unwrap();
    cli_client(dir.path());
    for cmd in ["search", "tail"] {
        let out = run_cli(dir.path(), None, &["audit", cmd, "--type", "token_stolen"]);
        assert!(
            !out.status.success(),
            "audit {cmd} --type token_stolen must fail"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("token_stolen") && err.contains("--type"),
            "names the bad value and the flag: {err}"
        );
        assert!(
            err.contains("possible values") && err.contains("client_auth_failed"),
            "lists the valid types: {err}"
        );
        assert!(out.stdout.is_empty(), "prints no records");
    }
    let out = run_cli(
        dir.path(),
        None,
        &["audit", "search", "--since", "yesterday"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--since"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child process killed (by its own handle) when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_tail_follow_prints_a_record_written_after_it_started() {
    use std::io::BufRead as _;
    let app = app_with(ServeOverrides::default()).await;
    let creds = app.create_client("property:read");
    app.access_token(&creds, None).await;
    wait_count(&app, "token_issued", 1).await;

    let mut cmd = std::process::Command::new(crate::helpers::bin());
    cmd.arg("--data-dir")
        .arg(app.data_dir.path())
        .args(["audit", "tail", "--follow", "--json", "-n", "2"])
        .env_remove("DEEDBOLT_MASTER_KEY")
        .env("DEEDBOLT_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = KillOnDrop(cmd.spawn().expect("spawn audit tail --follow"));
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |rx: &std::sync::mpsc::Receiver<String>| -> Value {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a line from audit tail --follow within 10 s");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };

    // The two most recent records first: client_created, token_issued.
    let first = tokio::task::block_in_place(|| [next_line(&rx), next_line(&rx)]);
    assert_eq!(s(&first[0], "type"), "client_created");
    assert_eq!(s(&first[1], "type"), "token_issued");

    // A record written now is printed as it arrives.
    let marker = format!("follow-{}", random_b64url(8));
    let res = token_req(
        &app,
        Some(&creds),
        "grant_type=client_credentials",
        &[("user-agent", &marker)],
    )
    .await;
    assert_eq!(res.status(), 200);
    let next = tokio::task::block_in_place(|| next_line(&rx));
    assert_eq!(s(&next, "type"), "token_issued", "{next}");
    assert_eq!(s(&next, "user_agent"), marker, "{next}");
    assert!(next["id"].as_i64() > first[1]["id"].as_i64());
    // Still running until stopped.
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "--follow keeps running"
    );
    drop(child);
}

// ---------------------------------------------------------------------------------------
// 6. Proxy headers
// ---------------------------------------------------------------------------------------

/// A successful and a failed token request with `X-Forwarded-For: 9.9.9.9`; returns the
/// IPs of their records.
async fn forwarded_ips(app: &TestApp) -> (String, String) {
    let creds = app.create_client("property:read");
    let xff = [("x-forwarded-for", "9.9.9.9")];
    let res = token_req(app, Some(&creds), "grant_type=client_credentials", &xff).await;
    assert_eq!(res.status(), 200);
    let res = token_req(
        app,
        Some(&wrong_secret(&creds)),
        "grant_type=client_credentials",
        &xff,
    )
    .await;
    assert_eq!(res.status(), 401);
    let ok = wait_count(app, "token_issued", 1).await;
    let failed = wait_count(app, "client_auth_failed", 1).await;
    (s(&ok[0], "ip").to_owned(), s(&failed[0], "ip").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    let app = app_with(ServeOverrides::default()).await;
    assert_eq!(
        forwarded_ips(&app).await,
        ("127.0.0.1".to_owned(), "127.0.0.1".to_owned()),
        "X-Forwarded-For from an untrusted peer is ignored"
    );

    let app = app_with(ServeOverrides {
        trusted_proxies: Some(vec!["127.0.0.1".into()]),
        ..Default::default()
    })
    .await;
    assert_eq!(
        forwarded_ips(&app).await,
        ("9.9.9.9".to_owned(), "9.9.9.9".to_owned()),
        "behind a trusted proxy the forwarded address is the client's"
    );
    // Searchable by that address, and the auth-failure detector counts it, not the proxy.
    assert_eq!(audit(&app, &["--ip", "9.9.9.9"]).len(), 2);
    let creds = app.create_client("property:read");
    for _ in 0..4 {
        let res = token_req(
            &app,
            Some(&wrong_secret(&creds)),
            "grant_type=client_credentials",
            &[("x-forwarded-for", "9.9.9.9")],
        )
        .await;
        assert_eq!(res.status(), 401);
    }
    let recs = wait_audit(&app, &["--type", "alert"], "the alert", |r| !r.is_empty()).await;
    assert_eq!(s(&recs[0], "ip"), "9.9.9.9");
    assert!(s(&recs[0], "detail").contains("ip:9.9.9.9"), "{}", recs[0]);
}

#[tokio::test]
async fn crm_changes_are_audited_with_ids_only() {
    let app = crate::helpers::spawn_app().await;
    let creds = app.create_client(
        "property:write tenant:write financial:write maintenance:request maintenance:manage",
    );
    let token = app.access_token(&creds, None).await;
    let post = |path: &'static str, body: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            let res = app
                .http
                .post(format!("{}{path}", app.base))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201, "{path}");
        }
    };
    post(
        "/api/properties",
        json!({"name": "Secret Towers", "address": "7 Hidden Lane", "kind": "residential", "units": 2}),
    )
    .await;
    post(
        "/api/tenants",
        json!({"name": "Private Person", "property_id": 1, "unit": "1", "rent": "987.65",
               "currency": "GBP", "lease_start": "2026-01-01"}),
    )
    .await;
    post(
        "/api/tenants/1/ledger",
        json!({"kind": "charge", "amount": "987.65", "description": "Rent", "effective_on": "2026-11-01"}),
    )
    .await;
    let records = wait_audit(&app, &["--type", "record_changed"], "3 CRM records", |r| {
        r.len() == 3
    })
    .await;
    let details: Vec<&str> = records
        .iter()
        .map(|r| r["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details,
        [
            "ledger entry 1 (charge) for tenant 1",
            "tenant 1 created",
            "property 1 created"
        ]
    );
    for r in &records {
        assert_eq!(r["client_id"], json!(creds.id));
        let text = r.to_string();
        for private in ["Secret Towers", "Hidden Lane", "Private Person", "987"] {
            assert!(!text.contains(private), "{text}");
        }
    }
}
