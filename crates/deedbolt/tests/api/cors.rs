//! CORS: off by default; for the configured origins on discovery, the JWKS, /token,
//! /revoke and /userinfo (preflights answered, never with credentials); `*` only for
//! discovery and the JWKS; never on the pages that use cookies.

use deedbolt::config::ServeOverrides;
use reqwest::Method;

use crate::helpers::{spawn_app, spawn_app_with, try_spawn_app, Options, TestApp};

const SPA: &str = "https://spa.example.com";
const EVIL: &str = "https://evil.example.net";

async fn with_origins(origins: &str) -> TestApp {
    spawn_app_with(Options {
        overrides: ServeOverrides {
            cors_origins: Some(origins.split(',').map(str::to_owned).collect()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
}

/// A request from a page of `origin`.
async fn from(
    app: &TestApp,
    method: Method,
    path: &str,
    origin: &str,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app
        .http
        .request(method, app.url(path))
        .header("origin", origin);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request")
}

/// A browser's preflight for a `method` request with `headers` from `origin`.
async fn preflight(
    app: &TestApp,
    path: &str,
    origin: &str,
    method: &str,
    headers: &str,
) -> reqwest::Response {
    let mut extra = vec![("access-control-request-method", method)];
    if !headers.is_empty() {
        extra.push(("access-control-request-headers", headers));
    }
    from(app, Method::OPTIONS, path, origin, &extra).await
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().expect("ASCII header").to_owned())
}

fn allowed_origin(res: &reqwest::Response) -> Option<String> {
    header(res, "access-control-allow-origin")
}

fn no_cors(res: &reqwest::Response, what: &str) {
    for (name, _) in res.headers() {
        assert!(
            !name.as_str().starts_with("access-control-"),
            "{what}: {name} sent"
        );
    }
}

const METADATA: [&str; 3] = [
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
    "/jwks.json",
];

/// Paths that must never get CORS: cookie-authenticated pages and APIs, and what only
/// servers call.
const NEVER: [&str; 9] = [
    "/authorize",
    "/login",
    "/consent",
    "/admin",
    "/admin/api/audit",
    "/bff/session",
    "/app",
    "/introspect",
    "/api/properties",
];

#[tokio::test]
async fn without_configured_origins_no_response_carries_cors_headers() {
    let app = spawn_app().await;
    for path in METADATA {
        let res = from(&app, Method::GET, path, SPA, &[]).await;
        assert_eq!(res.status(), 200, "{path}");
        no_cors(&res, path);
    }
    for path in ["/token", "/revoke", "/userinfo"] {
        let res = preflight(&app, path, SPA, "POST", "content-type").await;
        no_cors(&res, &format!("preflight {path}"));
    }
}

#[tokio::test]
async fn configured_origins_may_call_discovery_jwks_token_revoke_and_userinfo() {
    let app = with_origins(&format!("{SPA},http://localhost:5173")).await;
    for path in METADATA {
        let res = from(&app, Method::GET, path, SPA, &[]).await;
        assert_eq!(res.status(), 200);
        assert_eq!(allowed_origin(&res).as_deref(), Some(SPA), "{path}");
        assert!(
            header(&res, "vary").is_some_and(|v| v.to_ascii_lowercase().contains("origin")),
            "{path}: responses vary by origin, so caches keep them apart"
        );
        let res = from(&app, Method::GET, path, EVIL, &[]).await;
        assert_eq!(res.status(), 200, "the answer itself is public");
        no_cors(&res, &format!("{path} from another origin"));
    }

    // Preflights: answered for the listed origins, never with credentials.
    for (path, method, headers) in [
        ("/token", "POST", "content-type"),
        ("/revoke", "POST", "content-type"),
        ("/userinfo", "GET", "authorization"),
    ] {
        let res = preflight(&app, path, "http://localhost:5173", method, headers).await;
        assert!(res.status().is_success(), "{path}: {}", res.status());
        assert_eq!(
            allowed_origin(&res).as_deref(),
            Some("http://localhost:5173"),
            "{path}"
        );
        let methods = header(&res, "access-control-allow-methods").unwrap_or_default();
        assert!(methods.contains(method), "{path}: {methods}");
        let allowed = header(&res, "access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(allowed.contains(headers), "{path}: {allowed}");
        assert!(header(&res, "access-control-max-age").is_some());
        assert_eq!(header(&res, "access-control-allow-credentials"), None);
        let res = preflight(&app, path, EVIL, method, headers).await;
        assert_eq!(allowed_origin(&res), None, "{path} from another origin");
    }

    // The real requests carry the header too, errors included (an app reads why).
    let creds = app.create_client("property:read");
    let res = from(
        &app,
        Method::POST,
        "/token",
        SPA,
        &[("content-type", "application/x-www-form-urlencoded")],
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(allowed_origin(&res).as_deref(), Some(SPA));
    let token = app.access_token(&creds, None).await;
    let res = app
        .http
        .post(app.url("/revoke"))
        .header("origin", SPA)
        .basic_auth(&creds.id, Some(&creds.secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(allowed_origin(&res).as_deref(), Some(SPA));
    let res = from(&app, Method::GET, "/userinfo", SPA, &[]).await;
    assert_eq!(res.status(), 401);
    assert_eq!(allowed_origin(&res).as_deref(), Some(SPA));
    let exposed = header(&res, "access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("www-authenticate"), "{exposed}");

    // Never on the pages and APIs that use cookies, nor on what only servers call.
    for path in NEVER {
        let res = preflight(&app, path, SPA, "POST", "content-type").await;
        no_cors(&res, &format!("preflight {path}"));
        let res = from(&app, Method::GET, path, SPA, &[]).await;
        no_cors(&res, path);
    }
}

#[tokio::test]
async fn a_star_opens_discovery_and_jwks_only() {
    let app = with_origins("*").await;
    for path in METADATA {
        let res = from(&app, Method::GET, path, EVIL, &[]).await;
        assert_eq!(allowed_origin(&res).as_deref(), Some("*"), "{path}");
        assert_eq!(header(&res, "access-control-allow-credentials"), None);
        let res = preflight(&app, path, EVIL, "GET", "").await;
        assert_eq!(allowed_origin(&res).as_deref(), Some("*"), "{path}");
    }
    for path in ["/token", "/revoke", "/userinfo"].into_iter().chain(NEVER) {
        let res = preflight(&app, path, EVIL, "POST", "content-type").await;
        no_cors(&res, &format!("preflight {path}"));
    }
}

#[tokio::test]
async fn origins_that_are_not_origins_or_insecure_are_refused_at_start() {
    for bad in [
        "https://spa.example.com/app",
        "http://spa.example.com",
        "null",
        "spa.example.com",
    ] {
        let err = try_spawn_app(Options {
            overrides: ServeOverrides {
                cors_origins: Some(vec![bad.into()]),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("{bad} accepted"));
        assert!(format!("{err:#}").contains(bad), "{err:#}");
    }
}
