//! What an anonymous sender can cost at the authorization endpoint and the sign-in pages
//! (issue 11): the scope alerts it can trigger, the rate limit and the rows it can make the
//! server store, account lockout across IPs, oversized requests, and consent to nothing.
//!
//! Different client IPs are simulated with `X-Forwarded-For` and
//! `--trusted-proxies 127.0.0.1`, as the rate-limit tests do. Stored alerts and audit
//! records are read from the database after a graceful stop (the audit writer drains its
//! queue on shutdown), so counts are exact without waiting.

use std::path::Path;

use deedbolt::config::ServeOverrides;
use deedbolt_core::audit::{AuditFilter, AuditKind};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::flow::{self, CodeGrant};
use deedbolt_core::ids::{ClientId, UserId};
use deedbolt_core::ports::{AlertStore, AuditStore, FlowStore};
use deedbolt_store_sqlite::SqliteStore;
use serde_json::Value;

use crate::helpers::{
    hidden_input, location, pkce_pair, query_params, random_b64url, spawn_app_with, unix_now,
    CodeClient, Jar, Options, TestApp,
};

pub(crate) const CB: &str = "https://app.example.com/cb";
pub(crate) const TENANT: &str = "tia.tenant@example.com";
const ADMIN: &str = "ada.admin@example.com";
pub(crate) const PASSWORD: &str = "juniper-Harbour-Lantern-58-slowly";
pub(crate) const WRONG: &str = "definitely-Not-the-password-17";
const ATTACKER_IP: &str = "203.0.113.66";
const VICTIM_IP: &str = "198.51.100.7";

async fn app_with(overrides: ServeOverrides) -> TestApp {
    spawn_app_with(Options {
        overrides: ServeOverrides {
            trusted_proxies: Some(vec!["127.0.0.1".into()]),
            ..overrides
        },
        ..Default::default()
    })
    .await
}

/// The query of an authorization request with PKCE (or without, when `pkce` is false).
fn authorize_query(client_id: &str, scope: &str, pkce: bool) -> Vec<(String, String)> {
    let (_, challenge) = pkce_pair();
    let mut q = vec![
        ("response_type", "code".to_owned()),
        ("client_id", client_id.to_owned()),
        ("redirect_uri", CB.to_owned()),
        ("scope", scope.to_owned()),
        ("state", random_b64url(8)),
    ];
    if pkce {
        q.push(("code_challenge", challenge));
        q.push(("code_challenge_method", "S256".to_owned()));
    }
    q.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn encode(pairs: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A browser GET from `ip` (through the trusted proxy) with the jar's cookies.
async fn get_from(app: &TestApp, path: &str, ip: &str, jar: &Jar) -> reqwest::Response {
    app.browser_get_with(path, jar, &[("x-forwarded-for", ip)])
        .await
}

/// A browser form POST from `ip` (through the trusted proxy) with the jar's cookies.
async fn post_from(
    app: &TestApp,
    path: &str,
    form: &[(&str, &str)],
    ip: &str,
    jar: &Jar,
) -> reqwest::Response {
    app.browser_post_with(path, form, jar, &[("x-forwarded-for", ip)])
        .await
}

/// An anonymous `GET /authorize` from `ip`.
async fn authorize_from(app: &TestApp, query: &[(String, String)], ip: &str) -> reqwest::Response {
    get_from(
        app,
        &format!("/authorize?{}", encode(query)),
        ip,
        &Jar::default(),
    )
    .await
}

/// The login form of a fresh authorization request, opened from `ip`.
pub(crate) struct LoginForm {
    req: String,
    csrf: String,
    jar: Jar,
}

pub(crate) async fn open_login(app: &TestApp, client_id: &str, scope: &str, ip: &str) -> LoginForm {
    let res = authorize_from(app, &authorize_query(client_id, scope, true), ip).await;
    let login = location(&res).expect("authorize redirects to the login page");
    assert!(login.starts_with("/login?req="), "{login}");
    let mut jar = Jar::default();
    let res = get_from(app, &login, ip, &jar).await;
    assert_eq!(res.status(), 200);
    jar.store(&res);
    let html = res.text().await.expect("login page");
    LoginForm {
        req: hidden_input(&html, "req").expect("req"),
        csrf: hidden_input(&html, "csrf").expect("csrf"),
        jar,
    }
}

pub(crate) async fn submit_login(
    app: &TestApp,
    form: &LoginForm,
    email: &str,
    password: &str,
    ip: &str,
) -> reqwest::Response {
    post_from(
        app,
        "/login",
        &[
            ("csrf", &form.csrf),
            ("req", &form.req),
            ("email", email),
            ("password", password),
        ],
        ip,
        &form.jar,
    )
    .await
}

async fn open_store(data_dir: &Path) -> SqliteStore {
    SqliteStore::open(&data_dir.join("deedbolt.db"))
        .await
        .expect("open store")
}

/// Stops the server and returns every stored alert (oldest first) and the number of
/// `authorization_request` audit records.
async fn stop_and_read(app: TestApp) -> (Vec<Value>, usize) {
    let dir = app.data_dir.clone();
    app.stop().await;
    let store = open_store(dir.path()).await;
    let mut alerts: Vec<Value> = store
        .list_alerts(None, 1000)
        .await
        .expect("alerts")
        .into_iter()
        .map(|a| a.alert)
        .collect();
    alerts.reverse();
    let requests = store
        .search_audit(&AuditFilter {
            kind: Some(AuditKind::AuthorizationRequest),
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("audit")
        .len();
    store.close().await;
    (alerts, requests)
}

// ---------------------------------------------------------------------------------------
// 1. Scope alerts come from validated requests and issued tokens only
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_authorization_requests_raise_at_most_one_scope_alert_and_never_spend_the_first_use_alert(
) {
    let app = app_with(ServeOverrides::default()).await;
    app.create_user(TENANT, "tenant", PASSWORD);
    let client = app.create_code_client("openid tenant:read financial:read", &[CB], false, &[]);

    for i in 0..20 {
        // Beyond the registration, with PKCE: refused with invalid_scope...
        let res = authorize_from(
            &app,
            &authorize_query(&client.id, "tenant:read tenant:write", true),
            ATTACKER_IP,
        )
        .await;
        let back = location(&res).expect("a redirect");
        assert_eq!(query_params(&back)["error"], "invalid_scope", "request {i}");
        // ...without PKCE: refused before the scope is even looked at...
        let res = authorize_from(
            &app,
            &authorize_query(&client.id, "financial:write", false),
            ATTACKER_IP,
        )
        .await;
        let back = location(&res).expect("a redirect");
        assert_eq!(query_params(&back)["error"], "invalid_request");
        // ...and a privileged scope within the registration: just a sign-in page.
        let res = authorize_from(
            &app,
            &authorize_query(&client.id, "financial:read", true),
            ATTACKER_IP,
        )
        .await;
        assert!(location(&res)
            .unwrap_or_default()
            .starts_with("/login?req="));
    }

    // A real token with financial:read is issued afterwards: that is the first use.
    let token = app
        .user_access_token(&client, CB, "openid financial:read", TENANT, PASSWORD)
        .await;
    assert!(!token.is_empty());

    let (alerts, _) = stop_and_read(app).await;
    let details: Vec<&str> = alerts
        .iter()
        .map(|a| {
            assert_eq!(a["kind"], "unusual_scope_request", "{a}");
            assert_eq!(a["client_id"], client.id.as_str(), "{a}");
            a["detail"].as_str().expect("detail")
        })
        .collect();
    assert_eq!(
        details,
        [
            "requested scopes beyond registration: tenant:write",
            "first use of privileged scope financial:read",
        ],
        "60 anonymous requests: one alert; the issued token: its first-use alert"
    );
}

// ---------------------------------------------------------------------------------------
// 2. /authorize is rate-limited per IP; an anonymous flood is cheap
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn authorization_requests_over_the_per_ip_limit_get_a_429_page_and_no_redirect() {
    let app = app_with(ServeOverrides {
        rate_limit_authorize: Some("5/1m".into()),
        ..Default::default()
    })
    .await;
    let client = app.create_code_client("openid tenant:read", &[CB], true, &[]);
    let query = authorize_query(&client.id, "openid", true);
    for i in 0..5 {
        let res = authorize_from(&app, &query, ATTACKER_IP).await;
        assert_eq!(res.status(), 303, "request {}", i + 1);
        assert_eq!(
            res.headers()["ratelimit-policy"],
            "\"authorize\";q=5;w=60",
            "the limit is announced"
        );
    }
    let res = authorize_from(&app, &query, ATTACKER_IP).await;
    assert_eq!(res.status(), 429);
    assert!(location(&res).is_none(), "never a redirect when limited");
    let retry: u32 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=12).contains(&retry), "one request per 12 s: {retry}");
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Too many sign-in requests from your network"),
        "{html}"
    );

    // The form variant counts against the same quota.
    let res = post_from(
        &app,
        "/authorize",
        &query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        ATTACKER_IP,
        &Jar::default(),
    )
    .await;
    assert_eq!(res.status(), 429);

    // Another IP has its own quota.
    let res = authorize_from(&app, &query, VICTIM_IP).await;
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn an_anonymous_flood_keeps_bounded_pending_requests_and_writes_a_sampled_audit() {
    // The limit off, to show the bounds that hold even then.
    let app = app_with(ServeOverrides {
        rate_limit_authorize: Some("off".into()),
        ..Default::default()
    })
    .await;
    let client = app.create_code_client("openid tenant:read", &[CB], true, &[]);
    let query = authorize_query(&client.id, "openid", true);
    let mut logins = Vec::new();
    for _ in 0..70 {
        let res = authorize_from(&app, &query, ATTACKER_IP).await;
        logins.push(location(&res).expect("to the login page"));
    }
    let neighbour = location(&authorize_from(&app, &query, VICTIM_IP).await).expect("login");

    // At most 64 pending per IP: the flood's oldest were replaced, its newest and the
    // other IP's are intact.
    let status = |path: String| {
        let app = &app;
        async move { app.browser_get(&path, &Jar::default()).await.status() }
    };
    for (i, login) in logins.iter().enumerate() {
        let expected = if i < 6 { 400 } else { 200 };
        assert_eq!(status(login.clone()).await, expected, "request {i}");
    }
    assert_eq!(status(neighbour).await, 200);

    // 71 anonymous requests: one sampled audit record per IP, not one per hit.
    let (_, audited) = stop_and_read(app).await;
    assert_eq!(audited, 2, "one per IP per minute");
}

// ---------------------------------------------------------------------------------------
// 3. Login lockout: per account and IP, per IP, and a global per-account ceiling
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_attacker_cannot_lock_the_victim_out_from_the_victims_ip() {
    let app = app_with(ServeOverrides::default()).await;
    app.create_user(TENANT, "tenant", PASSWORD);
    let client = app.create_code_client("openid tenant:read", &[CB], true, &[]);

    let attacker = open_login(&app, &client.id, "openid", ATTACKER_IP).await;
    for i in 1..=5 {
        let res = submit_login(&app, &attacker, TENANT, WRONG, ATTACKER_IP).await;
        assert_eq!(res.status(), 401, "failure {i}");
    }
    let res = submit_login(&app, &attacker, TENANT, PASSWORD, ATTACKER_IP).await;
    assert_eq!(
        res.status(),
        429,
        "the attacker's IP is locked out of the account"
    );

    // The victim, from their own IP, signs in with the right password.
    let victim = open_login(&app, &client.id, "openid", VICTIM_IP).await;
    let res = submit_login(&app, &victim, TENANT, PASSWORD, VICTIM_IP).await;
    assert_eq!(res.status(), 303, "the victim is not locked out");
    assert!(location(&res).unwrap().starts_with("/consent?req="));
}

#[tokio::test]
async fn the_admin_console_login_shares_the_lockout_rules() {
    let app = app_with(ServeOverrides::default()).await;
    app.create_user(ADMIN, "admin", PASSWORD);
    let form = |ip: &'static str| {
        let app = &app;
        async move {
            let res = get_from(app, "/admin", ip, &Jar::default()).await;
            let mut jar = Jar::default();
            jar.store(&res);
            let csrf = hidden_input(&res.text().await.unwrap(), "csrf").expect("csrf");
            (jar, csrf)
        }
    };
    let (jar, csrf) = form(ATTACKER_IP).await;
    let attempt = |password: &'static str, ip: &'static str, jar: Jar, csrf: String| {
        let app = &app;
        async move {
            post_from(
                app,
                "/admin/login",
                &[("csrf", &csrf), ("email", ADMIN), ("password", password)],
                ip,
                &jar,
            )
            .await
            .status()
        }
    };
    for _ in 0..5 {
        assert_eq!(
            attempt(WRONG, ATTACKER_IP, jar.clone(), csrf.clone()).await,
            401
        );
    }
    assert_eq!(
        attempt(PASSWORD, ATTACKER_IP, jar.clone(), csrf.clone()).await,
        429
    );
    let (jar, csrf) = form(VICTIM_IP).await;
    assert_eq!(
        attempt(PASSWORD, VICTIM_IP, jar, csrf).await,
        303,
        "the administrator still signs in from their own IP"
    );
}

#[tokio::test]
async fn one_ip_spraying_many_accounts_is_stopped_by_the_per_ip_limit() {
    let app = app_with(ServeOverrides {
        rate_limit_login: Some("2/15m".into()), // 2 per account and IP, 8 per IP
        ..Default::default()
    })
    .await;
    app.create_user(TENANT, "tenant", PASSWORD);
    let client = app.create_code_client("openid tenant:read", &[CB], true, &[]);
    let form = open_login(&app, &client.id, "openid", ATTACKER_IP).await;
    for i in 0..8 {
        let res = submit_login(
            &app,
            &form,
            &format!("guess{i}@example.com"),
            WRONG,
            ATTACKER_IP,
        )
        .await;
        assert_eq!(res.status(), 401, "guess {i}");
    }
    let res = submit_login(&app, &form, TENANT, PASSWORD, ATTACKER_IP).await;
    assert_eq!(res.status(), 429, "the IP is done, whatever the account");
    let victim = open_login(&app, &client.id, "openid", VICTIM_IP).await;
    assert_eq!(
        submit_login(&app, &victim, TENANT, PASSWORD, VICTIM_IP)
            .await
            .status(),
        303
    );
}

#[tokio::test]
async fn guesses_from_many_ips_reach_the_global_ceiling_of_the_account() {
    let app = app_with(ServeOverrides {
        rate_limit_login: Some("1/15m".into()), // 1 per account and IP, 10 per account
        ..Default::default()
    })
    .await;
    app.create_user(TENANT, "tenant", PASSWORD);
    let client = app.create_code_client("openid tenant:read", &[CB], true, &[]);
    for i in 0..10 {
        let ip = format!("203.0.113.{}", 10 + i);
        let form = open_login(&app, &client.id, "openid", &ip).await;
        let res = submit_login(&app, &form, TENANT, WRONG, &ip).await;
        assert_eq!(res.status(), 401, "IP {ip}");
    }
    let victim = open_login(&app, &client.id, "openid", VICTIM_IP).await;
    let res = submit_login(&app, &victim, TENANT, PASSWORD, VICTIM_IP).await;
    assert_eq!(res.status(), 429, "a distributed attack locks the account");
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("Too many failed sign-in attempts"));
}

// ---------------------------------------------------------------------------------------
// 4. Too many parameters
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_authorization_request_with_more_than_64_parameters_is_refused_not_truncated() {
    let app = app_with(ServeOverrides::default()).await;
    let client = app.create_code_client("openid tenant:read", &[CB], true, &[]);
    let with_padding = |total: usize| {
        let mut q = authorize_query(&client.id, "openid", true);
        let n = total - q.len();
        q.extend((0..n).map(|i| (format!("x{i}"), "1".to_owned())));
        q
    };

    // 64: still a request (unknown parameters are ignored).
    let res = authorize_from(&app, &with_padding(64), ATTACKER_IP).await;
    assert!(location(&res)
        .unwrap_or_default()
        .starts_with("/login?req="));

    // 65, even with every real parameter first: refused, with a page and no redirect.
    let res = authorize_from(&app, &with_padding(65), ATTACKER_IP).await;
    assert_eq!(res.status(), 400);
    assert!(location(&res).is_none());
    let html = res.text().await.unwrap();
    assert!(html.contains("too many parameters"), "{html}");

    // The same as a form.
    let q = with_padding(100);
    let form: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = post_from(&app, "/authorize", &form, ATTACKER_IP, &Jar::default()).await;
    assert_eq!(res.status(), 400);
    assert!(location(&res).is_none());
}

// ---------------------------------------------------------------------------------------
// 5. Consent to nothing; codes for nothing
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn approving_a_consent_with_nothing_to_grant_is_refused_and_nothing_is_stored() {
    let app = app_with(ServeOverrides::default()).await;
    app.create_user(TENANT, "tenant", PASSWORD);
    // Registered for a scope a tenant cannot delegate (property:write) and one it can.
    let client = app.create_code_client("openid property:write", &[CB], true, &[]);

    // Two sign-ins in progress: one for openid, one only for property:write.
    let ok = open_login(&app, &client.id, "openid", VICTIM_IP).await;
    let nothing = open_login(&app, &client.id, "property:write", VICTIM_IP).await;
    let res = submit_login(&app, &nothing, TENANT, PASSWORD, VICTIM_IP).await;
    assert_eq!(res.status(), 303);
    let mut jar = nothing.jar.clone();
    jar.store(&res);
    // The session's CSRF token, from the consent page of the other request.
    let res = get_from(&app, &format!("/consent?req={}", ok.req), VICTIM_IP, &jar).await;
    assert_eq!(res.status(), 200);
    let csrf = hidden_input(&res.text().await.unwrap(), "csrf").expect("consent csrf");

    // Approving the request whose grantable scope is empty: a clear page, no code.
    let res = post_from(
        &app,
        "/consent",
        &[
            ("csrf", &csrf),
            ("req", &nothing.req),
            ("decision", "approve"),
        ],
        VICTIM_IP,
        &jar,
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(location(&res).is_none(), "no code is sent back");
    let html = res.text().await.unwrap();
    assert!(html.contains("nothing to allow"), "{html}");

    // No consent was stored: the next request asks again (and does not fail on it).
    let res = get_from(
        &app,
        &format!(
            "/authorize?{}",
            encode(&authorize_query(&client.id, "openid", true))
        ),
        VICTIM_IP,
        &jar,
    )
    .await;
    assert_eq!(res.status(), 303);
    assert!(
        location(&res).unwrap().starts_with("/consent?req="),
        "consent is asked for, not remembered"
    );
}

#[tokio::test]
async fn a_stored_code_with_an_empty_scope_is_invalid_grant_not_a_server_error() {
    let app = app_with(ServeOverrides::default()).await;
    let user = app.create_user(TENANT, "tenant", PASSWORD);
    let client: CodeClient = app.create_code_client("openid tenant:read", &[CB], false, &[]);
    let (verifier, challenge) = pkce_pair();
    let (code, hash) = flow::new_code().unwrap();
    // A code for nothing, as an earlier version stored when a consent approved nothing.
    let store = open_store(app.data_dir.path()).await;
    store
        .insert_code(
            &hash,
            &CodeGrant {
                client_id: ClientId::parse(&client.id).unwrap(),
                redirect_uri: CB.into(),
                code_challenge: challenge,
                user_id: UserId::parse(&user).unwrap(),
                scope: Default::default(),
                nonce: None,
                auth_time: UnixTime(unix_now()),
                expires_at: UnixTime(unix_now() + 60),
                dpop_jkt: None,
            },
        )
        .await
        .unwrap();
    store.close().await;

    let form = encode(&[
        ("grant_type".into(), "authorization_code".into()),
        ("code".into(), code),
        ("redirect_uri".into(), CB.into()),
        ("code_verifier".into(), verifier),
    ]);
    let res = app.post_token(Some(&client.creds()), &form).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
}
