//! Response headers every user's browser relies on: HSTS on an https issuer (never on
//! plain http), `__Host-` cookie names there, and `Cache-Control: no-store` on the API and
//! the admin console, errors included.

use deedbolt::config::ServeOverrides;
use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

/// A server whose issuer is https (behind a TLS-terminating proxy; the listener is plain
/// loopback).
async fn spawn_https_app() -> TestApp {
    spawn_app_with(Options {
        overrides: ServeOverrides {
            issuer: Some("https://auth.example".into()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
}

/// Paths answered with success, redirects and errors alike.
const PATHS: &[&str] = &[
    "/healthz",
    "/.well-known/oauth-authorization-server",
    "/jwks.json",
    "/admin",
    "/api/tenants",
    "/no/such/path",
    "/authorize?client_id=nobody",
];

/// Response header `name` as text, if present.
fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

fn hsts(res: &reqwest::Response) -> Option<String> {
    header(res, "strict-transport-security")
}

#[tokio::test]
async fn an_https_issuer_sends_hsts_on_every_response() {
    let app = spawn_https_app().await;
    for path in PATHS {
        let res = app.get(path, None).await;
        assert_eq!(
            hsts(&res).as_deref(),
            Some("max-age=31536000; includeSubDomains"),
            "{path} ({})",
            res.status()
        );
    }
    let res = app.post_token(None, "grant_type=client_credentials").await;
    assert_eq!(res.status(), 401);
    assert!(hsts(&res).is_some(), "an error from /token");
}

#[tokio::test]
async fn a_plain_http_issuer_sends_no_hsts_and_unprefixed_cookies() {
    let app = spawn_app().await;
    for path in PATHS {
        let res = app.get(path, None).await;
        assert_eq!(hsts(&res), None, "{path}");
    }
    let res = app.get("/admin", None).await;
    let line = set_cookie_line(&res, "deedbolt_admin_csrf").expect("plain CSRF cookie");
    assert!(!line.contains("Secure"), "{line}");
}

#[tokio::test]
async fn an_https_issuer_names_its_cookies_with_the_host_prefix() {
    let app = spawn_https_app().await;
    app.create_user("ada@example.com", "admin", "correct-horse-battery-7");
    // The admin console: its CSRF cookie, then its session after signing in.
    let mut jar = Jar::default();
    let res = app.browser_get("/admin", &jar).await;
    let line = set_cookie_line(&res, "__Host-deedbolt_admin_csrf").expect("prefixed cookie");
    for attr in ["; Secure", "Path=/;", "HttpOnly"] {
        assert!(line.contains(attr), "{line}");
    }
    assert!(!line.contains("Domain="), "{line}");
    assert!(set_cookie_line(&res, "deedbolt_admin_csrf").is_none());
    jar.store(&res);
    let csrf = hidden_input(&res.text().await.unwrap(), "csrf").expect("csrf field");
    let res = app
        .browser_post(
            "/admin/login",
            &[
                ("csrf", &csrf),
                ("email", "ada@example.com"),
                ("password", "correct-horse-battery-7"),
            ],
            &jar,
        )
        .await;
    assert_eq!(res.status(), 303, "the form's prefixed CSRF cookie is read");
    let line = set_cookie_line(&res, "__Host-deedbolt_session").expect("prefixed session");
    assert!(
        line.contains("; Secure") && line.contains("Path=/;"),
        "{line}"
    );
    jar.store(&res);
    let res = app.browser_get("/admin", &jar).await;
    let html = res.text().await.unwrap();
    assert!(
        !html.contains("Admin sign-in"),
        "the prefixed session is read: {html}"
    );

    // An unprefixed copy (which a sibling subdomain could plant) is not a session.
    let mut planted = Jar::default();
    planted.set(
        "deedbolt_session",
        jar.get("__Host-deedbolt_session").unwrap(),
    );
    let html = app
        .browser_get("/admin", &planted)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Admin sign-in"), "{html}");
}

fn cache_control(res: &reqwest::Response) -> Option<String> {
    header(res, "cache-control")
}

#[tokio::test]
async fn api_and_admin_responses_are_never_stored_errors_included() {
    let app = spawn_app().await;
    let creds = app.create_client("tenant:read tenant:write");
    let token = app.access_token(&creds, None).await;
    let cases: Vec<(Method, &str, Option<&str>, u16)> = vec![
        (Method::GET, "/api/tenants", Some(&token), 200),
        (Method::GET, "/api/tenants", None, 401),
        (Method::GET, "/api/tenants/999999", Some(&token), 404),
        (Method::GET, "/api/openapi.json", None, 200),
        (Method::POST, "/api/tenants", Some(&token), 422),
        (Method::GET, "/api/no-such-thing", Some(&token), 404),
        (Method::GET, "/admin", None, 200),
        (Method::GET, "/admin/api/audit", None, 401),
        (Method::GET, "/admin/api/alerts", Some(&token), 403),
    ];
    for (method, path, bearer, status) in cases {
        let mut req = app
            .http
            .request(method.clone(), app.url(path))
            .header("content-type", "application/json");
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        if method == Method::POST {
            req = req.body(json!({"unexpected": true}).to_string());
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), status, "{method} {path}");
        assert_eq!(
            cache_control(&res).as_deref(),
            Some("no-store"),
            "{method} {path} ({status})"
        );
    }
    // Public documents may still be cached.
    let res = app.get("/jwks.json", None).await;
    assert_ne!(cache_control(&res).as_deref(), Some("no-store"));
}
