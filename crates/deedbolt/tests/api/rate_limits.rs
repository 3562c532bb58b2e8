//! Rate limits at their boundaries, with the IETF headers (issue: rate limiting).

use deedbolt::config::ServeOverrides;
use serde_json::Value;

use crate::helpers::{spawn_app_with, Options, TestApp};

async fn app_with(overrides: ServeOverrides) -> TestApp {
    spawn_app_with(Options {
        overrides,
        ..Default::default()
    })
    .await
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_tenth_token_request_passes_and_the_eleventh_is_429() {
    let app = app_with(ServeOverrides {
        rate_limit_token: Some("10/1h".into()),
        ..Default::default()
    })
    .await;
    let creds = app.create_client("property:read");
    for i in 0..10 {
        let res = app
            .post_token(Some(&creds), "grant_type=client_credentials")
            .await;
        assert_eq!(res.status(), 200, "request {}", i + 1);
        assert_eq!(header(&res, "ratelimit-policy"), "\"token\";q=10;w=3600");
        assert!(header(&res, "ratelimit").starts_with(&format!("\"token\";r={};t=", 9 - i)));
    }
    let res = app
        .post_token(Some(&creds), "grant_type=client_credentials")
        .await;
    assert_eq!(res.status(), 429);
    // GCRA: one slot every 6 minutes, so the wait is about 360 s, not the full hour.
    let retry: u32 = header(&res, "retry-after").parse().unwrap();
    assert!((355..=360).contains(&retry), "{retry}");
    assert_eq!(header(&res, "ratelimit-policy"), "\"token\";q=10;w=3600");
    assert!(header(&res, "ratelimit").starts_with("\"token\";r=0;t="));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "rate_limit_exceeded");

    // Limits are per client.
    let other = app.create_client("property:read");
    let res = app
        .post_token(Some(&other), "grant_type=client_credentials")
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn failed_authentication_does_not_spend_a_clients_quota() {
    let app = app_with(ServeOverrides {
        rate_limit_token: Some("2/1h".into()),
        ..Default::default()
    })
    .await;
    let creds = app.create_client("property:read");
    let wrong = crate::helpers::Creds {
        id: creds.id.clone(),
        secret: "dbs_wrong".into(),
    };
    for _ in 0..5 {
        let res = app
            .post_token(Some(&wrong), "grant_type=client_credentials")
            .await;
        assert_eq!(res.status(), 401);
    }
    for _ in 0..2 {
        let res = app
            .post_token(Some(&creds), "grant_type=client_credentials")
            .await;
        assert_eq!(res.status(), 200);
    }
}

#[tokio::test]
async fn api_calls_are_limited_per_client() {
    let app = app_with(ServeOverrides {
        rate_limit_api: Some("3/1h".into()),
        ..Default::default()
    })
    .await;
    let creds = app.create_client("property:read");
    let token = app.access_token(&creds, None).await;
    for i in 0..3 {
        let res = app.get("/api/properties", Some(&token)).await;
        assert_eq!(res.status(), 200, "call {}", i + 1);
        assert_eq!(header(&res, "ratelimit-policy"), "\"api\";q=3;w=3600");
    }
    let res = app.get("/api/properties", Some(&token)).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    // Unauthenticated calls are refused by the guard before they count.
    assert_eq!(app.get("/api/properties", None).await.status(), 401);
}

#[tokio::test]
async fn a_limit_can_be_switched_off() {
    let app = app_with(ServeOverrides {
        rate_limit_token: Some("off".into()),
        ..Default::default()
    })
    .await;
    let creds = app.create_client("property:read");
    for _ in 0..15 {
        let res = app
            .post_token(Some(&creds), "grant_type=client_credentials")
            .await;
        assert_eq!(res.status(), 200);
        assert!(!res.headers().contains_key("ratelimit"));
    }
}

#[tokio::test]
async fn malformed_limits_are_refused_at_start() {
    let err = crate::helpers::try_spawn_app(Options {
        overrides: ServeOverrides {
            rate_limit_refresh: Some("5 per minute".into()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .err()
    .expect("start must fail");
    assert!(format!("{err:#}").contains("refresh rate limit"), "{err:#}");
}

/// A server behind a trusted proxy (127.0.0.1) with a token limit of one per hour, and a
/// public client registered there.
async fn behind_a_proxy_with_a_public_client() -> (TestApp, String) {
    let app = app_with(ServeOverrides {
        rate_limit_token: Some("1/1h".into()),
        trusted_proxies: Some(vec!["127.0.0.1".into()]),
        ..Default::default()
    })
    .await;
    let client = app.create_code_client("openid", &["http://127.0.0.1/cb"], true, &[]);
    (app, client.id)
}

/// A public client's (bogus) code exchange through the proxy, which says the browser is
/// at `forwarded_for`: the status and the `error` code.
async fn exchange_via_proxy(app: &TestApp, client_id: &str, forwarded_for: &str) -> (u16, String) {
    let res = app
        .http
        .post(format!("{}/token", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", forwarded_for)
        .body(format!(
            "grant_type=authorization_code&client_id={client_id}&code=bogus&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcb&code_verifier={}",
            "v".repeat(43)
        ))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn a_public_clients_quota_is_kept_per_ip() {
    // A public client proves nothing by presenting its id, so its token limit is keyed by
    // client and IP: a stranger cannot spend the app's quota for everyone.
    let (app, id) = behind_a_proxy_with_a_public_client().await;
    let exchange = |ip: &'static str| {
        let (app, id) = (&app, id.clone());
        async move { exchange_via_proxy(app, &id, ip).await.0 }
    };
    assert_eq!(
        exchange("203.0.113.1").await,
        400,
        "first: counted, invalid_grant"
    );
    assert_eq!(
        exchange("203.0.113.1").await,
        429,
        "second from the same IP: limited"
    );
    assert_eq!(
        exchange("203.0.113.2").await,
        400,
        "another IP has its own quota"
    );
}

#[tokio::test]
async fn forwarded_addresses_with_ports_or_brackets_are_keyed_by_their_ip() {
    // Some proxies write `ip:port`, `[v6]` or `[v6]:port`: the limit is keyed by the
    // address in it, not by the proxy's (which would put every client in one bucket).
    let (app, id) = behind_a_proxy_with_a_public_client().await;
    let invalid_grant = (400, "invalid_grant".to_owned());
    let limited = (429, "rate_limit_exceeded".to_owned());
    for (forwarded, expected, what) in [
        ("203.0.113.1:5000", &invalid_grant, "first from 203.0.113.1"),
        (
            "203.0.113.1:6000",
            &limited,
            "the same IP from another port",
        ),
        ("203.0.113.1", &limited, "the same IP without a port"),
        (
            "[2001:db8::1]:443",
            &invalid_grant,
            "first from 2001:db8::1",
        ),
        (
            "[2001:db8::1]",
            &limited,
            "the same IPv6 address in brackets",
        ),
        ("2001:db8::1", &limited, "the same IPv6 address bare"),
        (
            "203.0.113.2:5000",
            &invalid_grant,
            "another client has its own quota",
        ),
    ] {
        assert_eq!(
            &exchange_via_proxy(&app, &id, forwarded).await,
            expected,
            "{what} ({forwarded})"
        );
    }
    // An entry that is no address is refused, not counted against the proxy.
    for junk in ["junk", "203.0.113.3:port", "[203.0.113.3]"] {
        assert_eq!(
            exchange_via_proxy(&app, &id, junk).await,
            (400, "invalid_request".to_owned()),
            "{junk}"
        );
    }
    assert_eq!(
        exchange_via_proxy(&app, &id, "203.0.113.4").await,
        invalid_grant,
        "the proxy's bucket was not spent by the refused requests"
    );
}

#[tokio::test]
async fn the_users_of_one_confidential_client_have_their_own_quotas() {
    // A client serving many users (a backend-for-frontend) must not share one quota among
    // them: codes and API calls with user tokens are limited per client and user.
    let app = app_with(ServeOverrides {
        rate_limit_token: Some("1/1h".into()),
        rate_limit_api: Some("1/1h".into()),
        ..Default::default()
    })
    .await;
    let redirect = "http://127.0.0.1/cb";
    let client = app.create_code_client("tenant:read", &[redirect], false, &[]);
    let pw = "correct-horse-battery-7";
    app.create_user("ann@example.com", "tenant", pw);
    app.create_user("bob@example.com", "tenant", pw);
    // One code each, although the client's token limit is 1 per hour.
    let ann = app
        .user_access_token(&client, redirect, "tenant:read", "ann@example.com", pw)
        .await;
    let bob = app
        .user_access_token(&client, redirect, "tenant:read", "bob@example.com", pw)
        .await;
    // One API call each; the second of one user is limited, not the other user's first.
    assert_eq!(app.get("/api/tenants", Some(&ann)).await.status(), 200);
    assert_eq!(app.get("/api/tenants", Some(&bob)).await.status(), 200);
    let res = app.get("/api/tenants", Some(&ann)).await;
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "ratelimit-policy"), "\"api\";q=1;w=3600");
}
