//! The alert webhook against a real receiver: a tiny HTTP server on 127.0.0.1 that
//! records each request and answers with scripted statuses.
//!
//! What is checked: an alert reaches the webhook soon after it is raised, signed with
//! HMAC-SHA256 over `"<timestamp>.<body>"`; failed deliveries are retried with a growing
//! backoff; an alert raised while the receiver is down survives a restart; and a webhook
//! without a proper secret stops the server from starting.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::helpers::{
    eventually_within, run_bin_with_timeout, spawn_app_with, try_spawn_app, unix_now, Options,
};

/// The webhook key the tests configure (at least 32 characters).
const SECRET: &str = "test-webhook-key-0123456789-abcdefghij";
/// How long a delivery may take to arrive: generous, since it can include two retries
/// (1 s, then 2 s) and, after a restart, one 5 s poll.
const DELIVERY_WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// The receiver
// ---------------------------------------------------------------------------------------

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Delivery {
    method: String,
    path: String,
    /// Lower-cased names.
    headers: HashMap<String, String>,
    body: Vec<u8>,
    /// What the receiver answered.
    status: u16,
    at: Instant,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the webhook body is JSON")
    }
}

/// An HTTP/1.1 server on 127.0.0.1 that records every request and answers with the
/// scripted statuses in order, then 200.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Delivery>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(script: &[u16]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let port = listener.local_addr().expect("receiver address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<_>>()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let sink = sink.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let read =
                        tokio::time::timeout(Duration::from_secs(10), read_request(&mut stream));
                    let Ok(Some((method, path, headers, body))) = read.await else {
                        return;
                    };
                    let status = script.lock().unwrap().pop_front().unwrap_or(200);
                    let _ = stream
                        .write_all(
                            format!(
                                "HTTP/1.1 {status} Scripted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            )
                            .as_bytes(),
                        )
                        .await;
                    let _ = stream.shutdown().await;
                    sink.lock().unwrap().push(Delivery {
                        method,
                        path,
                        headers,
                        body,
                        status,
                        at: Instant::now(),
                    });
                });
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks/deedbolt?channel=security"),
            seen,
            task,
        }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until a request was answered 2xx and returns every request so far.
    async fn wait_delivered(&self) -> Vec<Delivery> {
        eventually_within("a successful webhook delivery", DELIVERY_WAIT, || async {
            self.deliveries().iter().any(|d| d.status == 200)
        })
        .await;
        self.deliveries()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request: the request line, the headers and a `Content-Length` body.
async fn read_request(
    stream: &mut tokio::net::TcpStream,
) -> Option<(String, String, HashMap<String, String>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some((method, path, headers, body))
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Options for a server whose webhook is `url`, keyed with [`SECRET`].
fn with_webhook(url: &str) -> Options {
    let mut opts = Options::default();
    opts.overrides.alert_webhook = Some(url.to_owned());
    opts.overrides.alert_webhook_secret = Some(
        deedbolt_http::runtime::webhook::WebhookSecret::new(SECRET.to_owned()),
    );
    opts
}

/// `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`, computed independently of the
/// server's code.
fn expected_signature(key: &str, timestamp: &str, body: &[u8]) -> String {
    let mut msg = format!("{timestamp}.").into_bytes();
    msg.extend_from_slice(body);
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.as_bytes()),
        &msg,
    );
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Asserts `d` is a signed alert delivery and returns its body.
fn assert_signed_delivery(d: &Delivery) -> Value {
    assert_eq!(d.method, "POST");
    assert_eq!(
        d.path, "/hooks/deedbolt?channel=security",
        "the configured URL"
    );
    assert_eq!(
        d.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let ts = d
        .headers
        .get("x-deedbolt-timestamp")
        .expect("X-Deedbolt-Timestamp");
    let ts_num: i64 = ts.parse().expect("the timestamp is Unix seconds");
    assert!(
        (ts_num - unix_now()).abs() < 120,
        "the timestamp is current: {ts}"
    );
    let sig = d
        .headers
        .get("x-deedbolt-signature")
        .expect("X-Deedbolt-Signature");
    assert_eq!(
        sig,
        &expected_signature(SECRET, ts, &d.body),
        "the signature verifies with the secret over <timestamp>.<body>"
    );
    assert_ne!(
        sig,
        &expected_signature("another-key-another-key-another-key", ts, &d.body),
        "and only with it"
    );
    let body_text = String::from_utf8_lossy(&d.body);
    assert!(
        !body_text.contains(SECRET) && !d.headers.values().any(|v| v.contains(SECRET)),
        "the key itself is never sent"
    );
    d.json()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn alert_is_delivered_to_the_webhook_signed() {
    let receiver = Receiver::start(&[]).await;
    let app = spawn_app_with(with_webhook(&receiver.url)).await;
    let creds = app.create_client("property:read");

    app.raise_auth_failure_alert(&creds).await;

    let deliveries = receiver.wait_delivered().await;
    assert_eq!(
        deliveries.len(),
        1,
        "one alert, one delivery: {deliveries:?}"
    );
    let body = assert_signed_delivery(&deliveries[0]);
    assert!(body["id"].as_i64().is_some_and(|id| id > 0), "{body}");
    let alert = &body["alert"];
    assert_eq!(alert["kind"], "multiple_auth_failures", "{body}");
    assert_eq!(alert["subject"], "ip:127.0.0.1", "{body}");
    assert_eq!(alert["ip"], "127.0.0.1", "{body}");
    assert_eq!(alert["recommended_action"], "block_ip", "{body}");
    assert!(alert["at"].as_i64().is_some(), "{body}");
    assert!(
        !String::from_utf8_lossy(&deliveries[0].body).contains("wrong-secret"),
        "the presented client secret is not in the alert"
    );
    app.stop().await;
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_a_growing_backoff() {
    // Two failures (1 s, then 2 s of backoff), then success.
    let receiver = Receiver::start(&[500, 503]).await;
    let app = spawn_app_with(with_webhook(&receiver.url)).await;
    let creds = app.create_client("property:read");

    app.raise_auth_failure_alert(&creds).await;

    let deliveries = receiver.wait_delivered().await;
    let statuses: Vec<u16> = deliveries.iter().map(|d| d.status).collect();
    assert_eq!(
        statuses,
        [500, 503, 200],
        "retried until delivered, then no more"
    );
    let bodies: Vec<Value> = deliveries.iter().map(assert_signed_delivery).collect();
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "each retry sends the same alert (receivers de-duplicate by id): {bodies:?}"
    );
    assert_eq!(bodies[0]["alert"]["kind"], "multiple_auth_failures");
    let first_gap = deliveries[1].at - deliveries[0].at;
    let second_gap = deliveries[2].at - deliveries[1].at;
    assert!(
        first_gap >= Duration::from_millis(900),
        "the first retry waits about 1 s: {first_gap:?}"
    );
    assert!(
        second_gap >= Duration::from_millis(1900),
        "the second retry waits about 2 s: {second_gap:?}"
    );

    // Delivered: nothing more is sent, even after a poll interval has passed.
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    assert_eq!(
        receiver.deliveries().len(),
        3,
        "a delivered alert is not resent"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_alert_raised_while_the_receiver_is_down_is_delivered_after_a_restart() {
    // A loopback port with nothing listening: every delivery is refused.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let app = spawn_app_with(with_webhook(&format!("http://127.0.0.1:{down}/hook"))).await;
    let data_dir = app.data_dir.clone();
    let creds = app.create_client("property:read");
    app.raise_auth_failure_alert(&creds).await;
    // The alert is in the outbox once the fifth refusal is answered; stop at once.
    app.stop().await;

    // The operator brings the receiver up (at a new address) and restarts the server on
    // the same data directory.
    let receiver = Receiver::start(&[]).await;
    let mut opts = with_webhook(&receiver.url);
    opts.data_dir = Some(data_dir);
    let app = spawn_app_with(opts).await;

    let deliveries = receiver.wait_delivered().await;
    let body = assert_signed_delivery(&deliveries[0]);
    assert_eq!(body["alert"]["kind"], "multiple_auth_failures", "{body}");
    assert_eq!(body["alert"]["subject"], "ip:127.0.0.1", "{body}");
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_without_a_good_secret_or_over_plain_http_refuses_to_start() {
    let key = |s: &str| {
        Some(deedbolt_http::runtime::webhook::WebhookSecret::new(
            s.to_owned(),
        ))
    };
    let cases = [
        (
            "https://hooks.example.com/x",
            None,
            "DEEDBOLT_ALERT_WEBHOOK_SECRET",
        ),
        (
            "https://hooks.example.com/x",
            key("too-short"),
            "at least 32",
        ),
        ("http://hooks.example.com/x", key(SECRET), "https"),
        ("hooks.example.com/x", key(SECRET), "not a URL"),
    ];
    for (url, secret, expected) in cases {
        let mut opts = Options::default();
        opts.overrides.alert_webhook = Some(url.to_owned());
        opts.overrides.alert_webhook_secret = secret;
        let err = match try_spawn_app(opts).await {
            Ok(_) => panic!("a server started with webhook {url}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains(expected), "{url}: {err}");
    }
}

#[test]
fn the_binary_refuses_a_webhook_without_a_secret_and_takes_no_secret_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().as_os_str();
    let out = run_bin_with_timeout(
        &[
            "serve".as_ref(),
            "--data-dir".as_ref(),
            data_dir,
            "--listen".as_ref(),
            "127.0.0.1:0".as_ref(),
        ],
        &[(
            "DEEDBOLT_ALERT_WEBHOOK",
            "https://hooks.example.com/T/SECRET-PATH",
        )],
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DEEDBOLT_ALERT_WEBHOOK_SECRET"), "{stderr}");
    assert!(
        !stderr.contains("SECRET-PATH"),
        "the URL is not echoed: {stderr}"
    );

    // The key is never a flag (flags show in `ps` and shell history).
    let out = run_bin_with_timeout(
        &[
            "serve".as_ref(),
            "--data-dir".as_ref(),
            data_dir,
            "--alert-webhook".as_ref(),
            "https://hooks.example.com/x".as_ref(),
            "--alert-webhook-secret".as_ref(),
            SECRET.as_ref(),
        ],
        &[],
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--alert-webhook-secret"), "{stderr}");
}
