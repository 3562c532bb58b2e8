//! The admin console: the JSON API (`/admin/api/audit`, `/admin/api/alerts`) with bearer
//! tokens of an administrator (with and without `admin:read`), a tenant and a client, and
//! how the admin scopes are registered and advertised; the dashboard (`/admin`) over plain
//! HTTP (login form, errors, the dashboard's tables and chart, logout); and the dashboard
//! in headless Chromium.

use std::collections::HashSet;

use serde_json::Value;

use crate::browser::{browser_available, within_budget, Browser};
use crate::helpers::{
    eventually, hidden_input, jwt_part, location, set_cookie_line, spawn_app, www_authenticate,
    CodeClient, Creds, Jar, TestApp,
};

const ADMIN: &str = "ada.admin@example.com";
const TENANT: &str = "tina.tenant@example.com";
const PASSWORD: &str = "plum-Orchard-Lantern-77-quietly";
const CB: &str = "https://app.example.com/cb";
const INCORRECT: &str = "The email or password is incorrect.";

/// What the code client is registered for: the admin API's scope among others.
const CODE_SCOPES: &str = "openid property:read admin:read";

/// A server with an administrator, a tenant, a confidential code client registered for
/// `admin:read` and a client-credentials client.
struct Env {
    app: TestApp,
    admin_id: String,
    code_client: CodeClient,
    cc: Creds,
}

async fn setup() -> Env {
    let app = spawn_app().await;
    let admin_id = app.create_user(ADMIN, "admin", PASSWORD);
    app.create_user(TENANT, "tenant", PASSWORD);
    let code_client = app.create_code_client(CODE_SCOPES, &[CB], false, &[]);
    let cc = app.create_client("property:read");
    Env {
        app,
        admin_id,
        code_client,
        cc,
    }
}

impl Env {
    /// `email`'s access token through the code client, asking for `admin:read` (granted
    /// only if `email` is an administrator).
    async fn token_of(&self, email: &str) -> String {
        self.app
            .user_access_token(&self.code_client, CB, "openid admin:read", email, PASSWORD)
            .await
    }
}

/// `GET path` with an optional bearer token; the status and the JSON body.
async fn api(app: &TestApp, path: &str, token: Option<&str>) -> (u16, Value, String) {
    let res = app.get(path, token).await;
    let status = res.status().as_u16();
    let challenge = www_authenticate(&res);
    if status == 200 {
        assert_eq!(res.headers()["cache-control"], "no-store", "{path}");
    }
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body, challenge)
}

/// Every item of `path` (which has no query yet), `limit` at a time, following
/// `next_cursor`; asserts ids strictly decrease across pages.
async fn all_pages(app: &TestApp, path: &str, limit: u32, token: &str) -> (Vec<Value>, usize) {
    let mut items: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit={limit}&cursor={c}"),
            None => format!("{path}?limit={limit}"),
        };
        let (status, body, _) = api(app, &url, Some(token)).await;
        assert_eq!(status, 200, "{url}: {body}");
        pages += 1;
        let page = body["items"].as_array().expect("items").clone();
        assert!(page.len() <= limit as usize, "{url}: page too long");
        items.extend(page);
        match body["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(
                    c,
                    items.last().expect("a page with a cursor has items")["id"]
                        .as_i64()
                        .expect("id")
                        .to_string(),
                    "the cursor is the last item's id"
                );
                cursor = Some(c.to_owned());
            }
            None => {
                assert!(body["next_cursor"].is_null(), "{body}");
                break;
            }
        }
        assert!(pages < 100, "pagination does not end");
    }
    let ids: Vec<i64> = items
        .iter()
        .map(|i| i["id"].as_i64().expect("id"))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats: {ids:?}"
    );
    (items, pages)
}

/// Three `unusual_scope_request` alerts (scopes beyond registration: a different one each
/// time, since a repeated probe alerts once per window) and one `multiple_auth_failures`,
/// in that order. (The first admin token already raised one: the code client's first use
/// of the privileged `admin:read`.)
async fn raise_alerts(env: &Env) {
    for scope in ["property:write", "tenant:read", "tenant:write"] {
        let res = env
            .app
            .post_token(
                Some(&env.cc),
                &format!("grant_type=client_credentials&scope={scope}"),
            )
            .await;
        assert_eq!(res.status(), 400, "scope beyond registration is refused");
    }
    env.app.raise_auth_failure_alert(&env.cc).await;
}

// ---------------------------------------------------------------------------------------
// The JSON API
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn admin_api_admits_only_an_administrators_token() {
    let env = setup().await;
    let app = &env.app;
    for path in ["/admin/api/audit", "/admin/api/alerts"] {
        // No token: 401 with a bare Bearer challenge.
        let (status, body, challenge) = api(app, path, None).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(challenge, "Bearer realm=\"deedbolt\"");

        // A token that does not verify: 401 invalid_token.
        let (status, body, challenge) = api(app, path, Some("abc.def.ghi")).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(body["error"], "invalid_token");
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

        // A malformed header: 400.
        let res = app
            .http
            .get(format!("{}{path}", app.base))
            .header("authorization", "Bearer a b")
            .send()
            .await
            .expect("GET");
        assert_eq!(res.status(), 400, "{path}");
    }

    let tenant = env.token_of(TENANT).await;
    let client = app.access_token(&env.cc, None).await;
    let admin = env.token_of(ADMIN).await;
    for path in ["/admin/api/audit", "/admin/api/alerts"] {
        for (who, token) in [("a tenant", &tenant), ("a client", &client)] {
            let (status, body, challenge) = api(app, path, Some(token)).await;
            assert_eq!(status, 403, "{who} at {path}: {body}");
            assert_eq!(body["error"], "insufficient_scope", "{body}");
            assert!(
                challenge.contains("error=\"insufficient_scope\""),
                "{challenge}"
            );
        }
        let (status, body, _) = api(app, path, Some(&admin)).await;
        assert_eq!(status, 200, "the admin at {path}: {body}");
        assert!(body["items"].is_array(), "{body}");
    }

    // A revoked admin token stops working at once.
    let res = app
        .http
        .post(format!("{}/revoke", app.base))
        .basic_auth(&env.code_client.id, env.code_client.secret.as_deref())
        .form(&[("token", admin.as_str())])
        .send()
        .await
        .expect("revoke");
    assert_eq!(res.status(), 200);
    let (status, _, _) = api(app, "/admin/api/audit", Some(&admin)).await;
    assert_eq!(status, 401, "a revoked token is refused");
}

#[tokio::test]
async fn admin_api_pages_through_audit_records_and_alerts() {
    let env = setup().await;
    let app = &env.app;
    let admin = env.token_of(ADMIN).await;
    raise_alerts(&env).await;

    // The writer commits in the background: wait for the last records raised above.
    eventually("the alert and auth-failure records are written", || async {
        let (_, alerts, _) = api(app, "/admin/api/audit?type=alert", Some(&admin)).await;
        let (_, failed, _) = api(
            app,
            "/admin/api/audit?type=client_auth_failed",
            Some(&admin),
        )
        .await;
        alerts["items"].as_array().map(Vec::len) == Some(5)
            && failed["items"].as_array().map(Vec::len) == Some(5)
    })
    .await;

    // Audit: pages of 3 add up to the single page of everything.
    let (_, everything, _) = api(app, "/admin/api/audit?limit=500", Some(&admin)).await;
    let everything = everything["items"].as_array().expect("items").clone();
    assert!(everything.len() > 10, "{everything:?}");
    let (paged, pages) = all_pages(app, "/admin/api/audit", 3, &admin).await;
    assert_eq!(paged, everything, "pagination neither skips nor repeats");
    assert_eq!(pages, everything.len().div_ceil(3));
    let kinds: HashSet<&str> = everything
        .iter()
        .map(|r| r["type"].as_str().expect("type"))
        .collect();
    for kind in [
        "authorization_request",
        "login",
        "consent",
        "token_issued",
        "token_request_failed",
        "client_auth_failed",
        "alert",
    ] {
        assert!(kinds.contains(kind), "{kind} in {kinds:?}");
    }

    // Filters, combined: the three refused scope requests of the client.
    let (_, body, _) = api(
        app,
        &format!(
            "/admin/api/audit?client={}&type=token_request_failed&ip=127.0.0.1",
            env.cc.id
        ),
        Some(&admin),
    )
    .await;
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{body}");
    assert!(
        items.iter().all(|r| r["client_id"] == env.cc.id.as_str()
            && r["type"] == "token_request_failed"
            && r["ip"] == "127.0.0.1"
            && r["success"] == false),
        "{body}"
    );
    let (_, body, _) = api(
        app,
        &format!("/admin/api/audit?user={}&type=login", env.admin_id),
        Some(&admin),
    )
    .await;
    let logins = body["items"].as_array().expect("items");
    assert_eq!(logins.len(), 1, "{body}");
    assert_eq!(logins[0]["success"], true);
    let (_, body, _) = api(app, "/admin/api/audit?since=4102444800", Some(&admin)).await;
    assert_eq!(body["items"], Value::Array(vec![]), "nothing after 2100");
    assert!(body["next_cursor"].is_null());

    // Bad parameters: 400 invalid_request.
    for q in [
        "limit=0",
        "limit=501",
        "limit=ten",
        "cursor=-1",
        "cursor=abc",
        "type=nope",
        "since=yesterday",
        "clinet=dbc_x",
        "limit=1&limit=2",
    ] {
        let (status, body, _) = api(app, &format!("/admin/api/audit?{q}"), Some(&admin)).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(body["error"], "invalid_request", "{q}: {body}");
    }
    let (status, _, _) = api(app, "/admin/api/alerts?client=x", Some(&admin)).await;
    assert_eq!(status, 400, "alerts take no audit filters");

    // Alerts: 5, newest first, in pages of 3 then 2.
    let (alerts, pages) = all_pages(app, "/admin/api/alerts", 3, &admin).await;
    assert_eq!(pages, 2);
    let kinds: Vec<&str> = alerts
        .iter()
        .map(|a| a["alert"]["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        [
            "multiple_auth_failures",
            "unusual_scope_request",
            "unusual_scope_request",
            "unusual_scope_request",
            "unusual_scope_request"
        ]
    );
    assert_eq!(alerts[0]["alert"]["subject"], "ip:127.0.0.1");
    assert_eq!(
        alerts[1]["alert"]["subject"],
        format!("client:{}", env.cc.id).as_str()
    );
    assert_eq!(
        alerts[4]["alert"]["subject"],
        format!("client:{}", env.code_client.id).as_str(),
        "the code client's first admin:read"
    );
    for a in &alerts {
        assert!(a["delivered_at"].is_null(), "no webhook: undelivered: {a}");
        assert_eq!(a["attempts"], 0, "{a}");
    }
    // The default page holds them all, with no next page.
    let (_, body, _) = api(app, "/admin/api/alerts", Some(&admin)).await;
    assert_eq!(body["items"].as_array().map(Vec::len), Some(5));
    assert!(body["next_cursor"].is_null());
}

/// Asserts the 403 of a token without `admin:read` at `path`: `insufficient_scope`
/// naming the scope, in the body and in the challenge (RFC 6750 §3).
#[track_caller]
fn assert_needs_admin_read(
    who: &str,
    path: &str,
    (status, body, challenge): &(u16, Value, String),
) {
    assert_eq!(*status, 403, "{who} at {path}: {body}");
    assert_eq!(
        body["error"], "insufficient_scope",
        "{who} at {path}: {body}"
    );
    assert_eq!(body["scope"], "admin:read", "{who} at {path}: {body}");
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"admin:read\""),
        "{who} at {path}: {challenge}"
    );
}

#[tokio::test]
async fn an_administrators_token_without_admin_read_does_not_open_the_admin_api() {
    let env = setup().await;
    let app = &env.app;
    // An app the administrator signed in to for something else: it never asked for the
    // audit log, and must not read it.
    let sign_in_app = app.create_code_client("openid", &[CB], false, &[]);
    let openid_only = app
        .user_access_token(&sign_in_app, CB, "openid", ADMIN, PASSWORD)
        .await;
    assert_eq!(jwt_part(&openid_only, 1)["scope"], "openid");
    // The admin's token through the code client, without asking for admin:read.
    let property_only = app
        .user_access_token(&env.code_client, CB, "property:read", ADMIN, PASSWORD)
        .await;
    let granted = env.token_of(ADMIN).await;
    assert_eq!(jwt_part(&granted, 1)["scope"], "openid admin:read");
    for path in ["/admin/api/audit", "/admin/api/alerts"] {
        assert_needs_admin_read(
            "openid only",
            path,
            &api(app, path, Some(&openid_only)).await,
        );
        assert_needs_admin_read(
            "property:read only",
            path,
            &api(app, path, Some(&property_only)).await,
        );
        let (status, body, _) = api(app, path, Some(&granted)).await;
        assert_eq!(status, 200, "admin:read granted, at {path}: {body}");
    }
}

#[tokio::test]
async fn client_credentials_never_carry_admin_scopes_nor_open_the_admin_api() {
    let env = setup().await;
    let app = &env.app;
    // A machine-only registration cannot hold an admin scope: a clear error, no client.
    let before = app.cli_json(&["client", "list", "--json"]);
    let out = app.cli(&[
        "client",
        "create",
        "--name",
        "robot",
        "--grant",
        "client_credentials",
        "--scope",
        "admin:read",
    ]);
    assert!(
        !out.status.success(),
        "admin:read for a machine client is refused"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("authorization_code"), "{stderr}");
    assert_eq!(
        app.cli_json(&["client", "list", "--json"]),
        before,
        "nothing registered"
    );

    // A client registered for both grants and admin:read: its own tokens never get it.
    let both = app.create_code_client(
        "property:read admin:read",
        &[CB],
        false,
        &["client_credentials"],
    );
    let res = app
        .post_token(
            Some(&both.creds()),
            "grant_type=client_credentials&scope=admin:read",
        )
        .await;
    assert_eq!(res.status(), 400, "admin:read by client credentials");
    let body: Value = res.json().await.expect("error JSON");
    assert_eq!(body["error"], "invalid_scope", "{body}");
    let res = app
        .post_token(Some(&both.creds()), "grant_type=client_credentials")
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("token JSON");
    assert_eq!(
        body["scope"], "property:read",
        "the default leaves admin:read out"
    );
    let own = body["access_token"].as_str().expect("access_token");
    for path in ["/admin/api/audit", "/admin/api/alerts"] {
        let (status, body, _) = api(app, path, Some(own)).await;
        assert_eq!(status, 403, "a client's own token at {path}: {body}");
        assert_eq!(body["error"], "insufficient_scope", "{body}");
    }
}

#[tokio::test]
async fn admin_scopes_are_advertised_where_they_can_be_had() {
    let app = spawn_app().await;
    let public_json = |path: &'static str| {
        let app = &app;
        async move {
            let res = app.get(path, None).await;
            assert_eq!(res.status(), 200, "{path}");
            res.json::<Value>().await.expect("JSON")
        }
    };
    let meta = public_json("/.well-known/oauth-authorization-server").await;
    let supported = meta["scopes_supported"]
        .as_array()
        .expect("scopes_supported");
    for s in ["admin:read", "admin:write"] {
        assert!(supported.iter().any(|v| v == s), "{s} in {supported:?}");
    }
    let doc = public_json("/api/openapi.json").await;
    let flows = &doc["components"]["securitySchemes"]["oauth2"]["flows"];
    let code = flows["authorizationCode"]["scopes"]["admin:read"]
        .as_str()
        .expect("the code flow lists admin:read");
    assert!(code.contains("security audit log"), "{code}");
    assert!(
        flows["clientCredentials"]["scopes"]
            .get("admin:read")
            .is_none()
            && flows["clientCredentials"]["scopes"]
                .get("admin:write")
                .is_none(),
        "client credentials never get admin scopes: {flows}"
    );
}

// ---------------------------------------------------------------------------------------
// The dashboard over HTTP
// ---------------------------------------------------------------------------------------

/// The admin login form as a browser holds it.
struct AdminForm {
    jar: Jar,
    csrf: String,
}

/// `GET /admin` with `jar`: a 200 page under the strict CSP, with no script and no
/// inline style. Returns the HTML.
async fn open_admin(app: &TestApp, jar: &Jar) -> String {
    let res = app.browser_get("/admin", jar).await;
    let status = res.status();
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .expect("ASCII CSP")
        .to_owned();
    let html = res.text().await.expect("page");
    assert_eq!(status, 200, "{html}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        !html.contains("<script") && !html.contains("style="),
        "no script and no inline style on admin pages"
    );
    html
}

async fn login_form(app: &TestApp) -> AdminForm {
    let res = app.browser_get("/admin", &Jar::default()).await;
    assert_eq!(res.status(), 200);
    assert!(set_cookie_line(&res, "deedbolt_admin_csrf")
        .is_some_and(|l| l.contains("SameSite=Strict") && l.contains("HttpOnly")));
    let mut jar = Jar::default();
    jar.store(&res);
    let html = res.text().await.expect("login page");
    assert!(html.contains("action=\"/admin/login\""), "{html}");
    assert!(html.contains("name=\"password\""));
    let csrf = hidden_input(&html, "csrf").expect("csrf");
    assert_eq!(jar.get("deedbolt_admin_csrf"), Some(csrf.as_str()));
    AdminForm { jar, csrf }
}

async fn submit(app: &TestApp, form: &AdminForm, email: &str, password: &str) -> reqwest::Response {
    app.browser_post(
        "/admin/login",
        &[
            ("csrf", &form.csrf),
            ("email", email),
            ("password", password),
        ],
        &form.jar,
    )
    .await
}

/// The error paragraph of a refused login.
async fn login_error(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 401);
    assert!(
        set_cookie_line(&res, "deedbolt_session").is_none(),
        "no session"
    );
    let html = res.text().await.expect("page");
    let start = html.find("<p class=\"error\"").expect("an error message");
    let end = start + html[start..].find("</p>").expect("end of message");
    assert!(html.contains("action=\"/admin/login\""), "the form again");
    html[start..end].to_owned()
}

#[tokio::test]
async fn admin_page_signs_in_administrators_only_and_shows_the_dashboard() {
    let env = setup().await;
    let app = &env.app;
    // One alert to show: 5 failed client authentications from 127.0.0.1.
    app.raise_auth_failure_alert(&env.cc).await;

    // Without a session: the login form.
    let html = open_admin(app, &Jar::default()).await;
    assert!(html.contains("action=\"/admin/login\""), "{html}");
    assert!(!html.contains("id=\"alerts\""), "no data before login");
    let css = app.browser_get("/static/admin.css", &Jar::default()).await;
    assert_eq!(css.status(), 200, "the admin stylesheet is served");

    // Wrong password, unknown account, a tenant's right password: one and the same answer.
    let form = login_form(app).await;
    let wrong = login_error(submit(app, &form, ADMIN, "not-the-password").await).await;
    assert!(wrong.contains(INCORRECT), "{wrong}");
    let form = login_form(app).await;
    let unknown = login_error(submit(app, &form, "nobody@example.com", PASSWORD).await).await;
    let form = login_form(app).await;
    let tenant = login_error(submit(app, &form, TENANT, PASSWORD).await).await;
    assert_eq!(
        wrong, tenant,
        "a non-admin account looks like a wrong password"
    );
    assert_eq!(wrong, unknown);

    // CSRF: no cookie, or a different token, is refused.
    let form = login_form(app).await;
    let res = app
        .browser_post(
            "/admin/login",
            &[
                ("csrf", &form.csrf),
                ("email", ADMIN),
                ("password", PASSWORD),
            ],
            &Jar::default(),
        )
        .await;
    assert_eq!(res.status(), 403);
    let res = app
        .browser_post(
            "/admin/login",
            &[("csrf", "forged"), ("email", ADMIN), ("password", PASSWORD)],
            &form.jar,
        )
        .await;
    assert_eq!(res.status(), 403);

    // The administrator: 303 to /admin with the session cookie.
    let form = login_form(app).await;
    let res = submit(app, &form, ADMIN, PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res).as_deref(), Some("/admin"));
    let session = set_cookie_line(&res, "deedbolt_session").expect("a session");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax"));
    let mut jar = form.jar.clone();
    jar.store(&res);
    assert_eq!(
        jar.get("deedbolt_admin_csrf"),
        None,
        "the login CSRF cookie is cleared"
    );

    let html = open_admin(app, &jar).await;
    assert!(html.contains("<table id=\"alerts\""), "alerts table");
    assert!(html.contains("<table id=\"audit\""), "audit table");
    assert!(html.contains("<svg id=\"chart\""), "the chart");
    assert_eq!(html.matches("class=\"bar-issued\"").count(), 24, "24 hours");
    assert!(
        html.contains("multiple_auth_failures"),
        "the alert is listed"
    );
    assert!(html.contains("ip:127.0.0.1"));
    assert!(html.contains("block_ip"), "its recommended action");
    assert!(html.contains(ADMIN), "who is signed in");

    // The audit table shows the refused non-admin login once the writer has caught up.
    eventually("the dashboard lists the refused logins", || async {
        let res = app.browser_get("/admin", &jar).await;
        let html = res.text().await.unwrap_or_default();
        html.contains("not_admin") && html.contains("invalid_credentials")
    })
    .await;

    // Sign out with the session's CSRF token: back to the login form.
    let csrf = hidden_input(&html, "csrf").expect("logout csrf");
    let res = app.browser_post("/logout", &[("csrf", &csrf)], &jar).await;
    assert_eq!(res.status(), 200);
    jar.store(&res);
    assert_eq!(jar.get("deedbolt_session"), None);
    let html = open_admin(app, &jar).await;
    assert!(html.contains("action=\"/admin/login\""));
    assert!(!html.contains("id=\"alerts\""));
}

// ---------------------------------------------------------------------------------------
// The dashboard in a real browser
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn admin_dashboard_in_a_real_browser() {
    if !browser_available("admin_dashboard_in_a_real_browser") {
        return;
    }
    within_budget(async {
        let env = setup().await;
        let app = &env.app;
        app.raise_auth_failure_alert(&env.cc).await;
        let browser = Browser::start().await;

        browser.goto(&format!("{}/admin", app.base)).await;
        browser.type_into("input[name=email]", ADMIN).await;
        browser
            .type_into("input[name=password][type=password]", PASSWORD)
            .await;
        browser.click("button#login[type=submit]").await;

        browser.wait_for("table#alerts").await;
        browser.wait_for("table#audit").await;
        browser.wait_for("svg#chart").await;
        let url = browser.current_url().await;
        assert_eq!(
            url,
            format!("{}/admin", app.base),
            "redirected to the dashboard"
        );
        let alerts = browser.wait_for("table#alerts").await;
        let text = browser.step("read the alerts", alerts.text()).await;
        if !(text.contains("multiple_auth_failures") && text.contains("ip:127.0.0.1")) {
            browser
                .fail(&format!("the alert is not on the dashboard: {text}"))
                .await;
        }
        browser.wait_for("svg#chart rect.bar-failed").await;
        browser.wait_for("button#logout").await;
        browser.close().await;
    })
    .await;
}
