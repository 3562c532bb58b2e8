//! `/metrics` is not public: on the main listener it needs the metrics token and is not
//! served without one; `--metrics-listen` serves it, and only it, on a separate address.
//! What it counts: requests and their latency by route template (never a raw path) and
//! status, access tokens by grant type, and rate-limit refusals by limit.

use std::ffi::OsStr;

use deedbolt::config::ServeOverrides;
use serde_json::Value;

use crate::helpers::*;

const COUNTER: &str = "deedbolt_tokens_issued_total";

#[tokio::test]
async fn metrics_on_the_main_listener_need_the_metrics_token() {
    // Test servers are configured with TEST_METRICS_TOKEN.
    let app = spawn_app().await;
    let res = app.get("/metrics", None).await;
    assert_eq!(res.status(), 401, "no token");
    assert_eq!(www_authenticate(&res), "Bearer realm=\"deedbolt\"");
    assert!(!res.text().await.unwrap().contains(COUNTER));

    let wrong = format!("{}x", &TEST_METRICS_TOKEN[..TEST_METRICS_TOKEN.len() - 1]);
    for bad in [wrong.as_str(), "short", &TEST_METRICS_TOKEN[1..]] {
        let res = app.get("/metrics", Some(bad)).await;
        assert_eq!(res.status(), 401, "{bad}");
        assert!(www_authenticate(&res).contains("error=\"invalid_token\""));
        assert!(!res.text().await.unwrap().contains(COUNTER));
    }
    // An access token of this server is not the metrics token either.
    let creds = app.create_client("property:read");
    let token = app.access_token(&creds, None).await;
    assert_eq!(app.get("/metrics", Some(&token)).await.status(), 401);

    let res = app.get("/metrics", Some(TEST_METRICS_TOKEN)).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        text.contains(&format!("{COUNTER}{{grant_type=\"client_credentials\"}} 1")),
        "{text}"
    );
}

#[tokio::test]
async fn a_short_metrics_token_is_refused_at_start() {
    let err = try_spawn_app(Options {
        overrides: ServeOverrides {
            metrics_token: Some("too-short".into()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .err()
    .expect("start must fail");
    let text = format!("{err:#}");
    assert!(
        text.contains("DEEDBOLT_METRICS_TOKEN") && text.contains("at least 32"),
        "{text}"
    );
    assert!(
        !text.contains("too-short"),
        "the token is never echoed: {text}"
    );
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// `deedbolt serve` with `extra` arguments and `envs`; its main and metrics base URLs.
fn serve(
    dir: &std::path::Path,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> (ServeProcess, String, Option<String>) {
    let mut args = vec![
        os("serve"),
        os("--data-dir"),
        dir.as_os_str(),
        os("--listen"),
        os("127.0.0.1:0"),
    ];
    args.extend(extra.iter().map(|a| os(a)));
    let mut server = ServeProcess::start(&args, envs);
    let base = server.wait_ready();
    let metrics = server
        .logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "deedbolt is ready")
        .and_then(|v| v["metrics_addr"].as_str().map(|a| format!("http://{a}")));
    (server, base, metrics)
}

#[tokio::test]
async fn without_a_token_metrics_are_served_only_on_the_metrics_listener() {
    let http = reqwest::Client::new();
    let get = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.expect("GET") }
    };
    let get_with_token = |url: String| {
        let http = http.clone();
        async move {
            let res = http.get(url).bearer_auth(TEST_METRICS_TOKEN).send();
            res.await.expect("GET")
        }
    };

    // Neither a token nor a metrics listener: not served at all.
    let dir = tempfile::tempdir().unwrap();
    let (server, base, metrics) = serve(dir.path(), &[], &[]);
    assert_eq!(metrics, None);
    assert_eq!(get(format!("{base}/metrics")).await.status(), 404);
    let res = get_with_token(format!("{base}/metrics")).await;
    assert_eq!(res.status(), 404, "no token is configured, so none works");
    drop(server);

    // A separate listener: /metrics there (and nothing else); still 404 on the main one.
    let (server, base, metrics) = serve(dir.path(), &["--metrics-listen", "127.0.0.1:0"], &[]);
    let metrics = metrics.expect("the ready line names the metrics address");
    assert_ne!(metrics, base);
    let res = get(format!("{metrics}/metrics")).await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains(COUNTER));
    for path in ["/healthz", "/token", "/jwks.json", "/api/tenants", "/admin"] {
        assert_eq!(
            get(format!("{metrics}{path}")).await.status(),
            404,
            "{path}"
        );
    }
    assert_eq!(get(format!("{base}/metrics")).await.status(), 404);
    drop(server);

    // Both: the token is required on either listener.
    let (_server, base, metrics) = serve(
        dir.path(),
        &["--metrics-listen", "127.0.0.1:0"],
        &[("DEEDBOLT_METRICS_TOKEN", TEST_METRICS_TOKEN)],
    );
    let metrics = metrics.unwrap();
    for url in [&base, &metrics] {
        assert_eq!(get(format!("{url}/metrics")).await.status(), 401, "{url}");
        let res = get_with_token(format!("{url}/metrics")).await;
        assert_eq!(res.status(), 200, "{url}");
    }
}

/// The value of the series `name{labels}` (labels exactly as rendered), if present.
fn series(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().expect("a number"))
}

fn requests(text: &str, route: &str, status: u16) -> Option<f64> {
    series(
        text,
        "deedbolt_http_requests_total",
        &format!("route=\"{route}\",status=\"{status}\""),
    )
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status_with_latency_histograms() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    for _ in 0..3 {
        app.access_token(&creds, None).await;
    }
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth(&creds.id, Some("not-the-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let token = app.access_token(&creds, None).await;
    let res = app.get("/api/properties/987654321", Some(&token)).await;
    assert_eq!(res.status(), 404);
    let res = app.get("/no-such-path/123456789", None).await;
    assert_eq!(res.status(), 404);

    let text = app.metrics_text().await;
    assert_eq!(requests(&text, "/token", 200), Some(4.0), "{text}");
    assert_eq!(requests(&text, "/token", 401), Some(1.0), "{text}");
    assert_eq!(
        requests(&text, "/api/properties/{id}", 404),
        Some(1.0),
        "the route template labels the request: {text}"
    );
    assert_eq!(requests(&text, "unmatched", 404), Some(1.0), "{text}");
    for raw in ["987654321", "123456789", "no-such-path"] {
        assert!(!text.contains(raw), "a raw path reached the metrics: {raw}");
    }

    // The histogram of /token 200: cumulative buckets ending in +Inf = count, a sum.
    let labels = "route=\"/token\",status=\"200\"";
    let buckets: Vec<(String, f64)> = text
        .lines()
        .filter_map(|l| {
            l.strip_prefix(&format!(
                "deedbolt_http_request_duration_seconds_bucket{{{labels},le=\""
            ))
        })
        .map(|rest| {
            let (le, value) = rest.split_once("\"} ").expect("bucket line");
            (le.to_owned(), value.parse().expect("bucket value"))
        })
        .collect();
    assert!(buckets.len() > 5, "{text}");
    assert_eq!(buckets.last().unwrap(), &("+Inf".to_owned(), 4.0));
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "cumulative: {buckets:?}"
    );
    let bounds: Vec<f64> = buckets[..buckets.len() - 1]
        .iter()
        .map(|(le, _)| le.parse().expect("a bound"))
        .collect();
    assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{bounds:?}");
    assert_eq!(
        series(
            &text,
            "deedbolt_http_request_duration_seconds_count",
            labels
        ),
        Some(4.0)
    );
    let sum = series(&text, "deedbolt_http_request_duration_seconds_sum", labels).unwrap();
    assert!(sum > 0.0 && sum < 60.0, "{sum}");
    assert!(text.contains("# TYPE deedbolt_http_request_duration_seconds histogram"));

    // /metrics itself is counted on the next read.
    let text = app.metrics_text().await;
    assert_eq!(requests(&text, "/metrics", 200), Some(1.0), "{text}");
}

#[tokio::test]
async fn tokens_are_counted_by_grant_type_and_refusals_by_rate_limit() {
    let app = spawn_app_with(Options {
        overrides: ServeOverrides {
            rate_limit_token: Some("2/1h".into()),
            rate_limit_api: Some("1/1h".into()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let email = "mia.metrics@example.com";
    app.create_user(email, "tenant", crate::refresh::PASSWORD);
    let client = app.create_code_client(
        "tenant:read property:read",
        &["https://app.example.com/cb"],
        false,
        &["refresh_token", "client_credentials"],
    );
    let body = crate::refresh::code_tokens(&app, &client, "tenant:read", email).await;
    let (_, refresh) = crate::refresh::pair(&body);
    crate::refresh::refresh_ok(&app, &client, &refresh, None).await;
    let creds = client.creds();
    let machine = app.access_token(&creds, None).await;
    // The code used the client's one token request for that user; client credentials
    // have their own key: one more, then refused.
    app.access_token(&creds, None).await;
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth(&creds.id, Some(&creds.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let mut api = Vec::new();
    for _ in 0..2 {
        api.push(
            app.get("/api/properties", Some(&machine))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(api, [200, 429]);

    let text = app.metrics_text().await;
    let issued = |grant: &str| {
        series(
            &text,
            "deedbolt_tokens_issued_total",
            &format!("grant_type=\"{grant}\""),
        )
    };
    assert_eq!(issued("authorization_code"), Some(1.0), "{text}");
    assert_eq!(issued("refresh_token"), Some(1.0), "{text}");
    assert_eq!(issued("client_credentials"), Some(2.0), "{text}");
    let limited = |limit: &str| {
        series(
            &text,
            "deedbolt_rate_limited_total",
            &format!("limit=\"{limit}\""),
        )
    };
    assert_eq!(limited("token"), Some(1.0), "{text}");
    assert_eq!(limited("api"), Some(1.0), "{text}");
    assert_eq!(limited("refresh"), Some(0.0), "{text}");
    assert_eq!(limited("login"), Some(0.0), "{text}");
    assert_eq!(requests(&text, "/token", 429), Some(1.0), "{text}");
    assert_eq!(requests(&text, "/api/properties", 429), Some(1.0), "{text}");
}
