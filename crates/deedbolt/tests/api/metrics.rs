//! `/metrics` is not public: on the main listener it needs the metrics token and is not
//! served without one; `--metrics-listen` serves it, and only it, on a separate address.

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
    assert!(text.contains(&format!("{COUNTER} 1")), "{text}");
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
