//! The alert webhook: a worker that delivers stored alerts to an operator's endpoint.
//!
//! Alerts are written to the [`AlertStore`] outbox when they are raised
//! ([`crate::runtime::security`]); this worker only reads the outbox. An alert raised while the
//! endpoint (or this process) is down is therefore delivered later, after a restart too:
//! delivery is *at least once*, and receivers should de-duplicate by `id`.
//!
//! Each delivery is one `POST` of `{"id": …, "alert": {…}}` (see
//! `deedbolt_core::detect::Alert`) with
//!
//! - `Content-Type: application/json`
//! - `X-Deedbolt-Timestamp: <unix seconds>`
//! - `X-Deedbolt-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`
//!
//! keyed with `DEEDBOLT_ALERT_WEBHOOK_SECRET`. Signing the timestamp with the body lets a
//! receiver refuse replays of old deliveries. A 2xx answer within 5 s is a delivery;
//! anything else is retried after `min(2^attempts, 3600)` seconds.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use bytes::Bytes;
use deedbolt_core::clock::Clock;
use deedbolt_core::ports::{AlertStore, StoredAlert};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The URL type of [`WebhookSettings::url`].
pub use url::Url;

/// The HTTP client of the worker.
type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The shortest accepted HMAC key, in characters.
pub const MIN_SECRET_CHARS: usize = 32;
/// The header carrying the signing time.
pub const TIMESTAMP_HEADER: &str = "x-deedbolt-timestamp";
/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-deedbolt-signature";
/// How long one delivery may take, connecting included.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait between two attempts at one alert.
pub const MAX_BACKOFF_SECS: i64 = 3600;
/// How often the outbox is checked when nothing wakes the worker.
const POLL: Duration = Duration::from_secs(5);
/// The most alerts taken from the outbox at once.
const BATCH: u32 = 50;

/// The webhook's HMAC key. Redacted in `Debug`, so settings can be logged safely.
#[derive(Clone)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// Wraps a key (validated by the configuration: at least [`MIN_SECRET_CHARS`]).
    pub fn new(secret: String) -> Self {
        WebhookSecret(secret)
    }

    /// Its length in characters.
    pub fn chars(&self) -> usize {
        self.0.chars().count()
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// Where alerts go and how they are signed.
#[derive(Clone)]
pub struct WebhookSettings {
    /// The endpoint (https, or http on a loopback host; checked by the configuration).
    pub url: Url,
    /// The HMAC key.
    pub secret: WebhookSecret,
}

impl fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the origin: webhook URLs often carry a token in their path or query.
        f.debug_struct("WebhookSettings")
            .field("origin", &self.url.origin().ascii_serialization())
            .field("secret", &self.secret)
            .finish()
    }
}

/// The webhook client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the alert webhook's HTTP client")]
pub struct WebhookError(#[source] Box<dyn std::error::Error + Send + Sync>);

/// `sha256=<hex>`: the HMAC-SHA256 of `"<timestamp>.<body>"` under `key`.
pub fn signature(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    sign(&hmac::Key::new(hmac::HMAC_SHA256, key), timestamp, body)
}

fn sign(key: &hmac::Key, timestamp: i64, body: &[u8]) -> String {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    let tag = ctx.sign();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in tag.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Seconds to wait after the failed attempt number `attempts + 1`:
/// `min(2^attempts, 3600)`, so 1, 2, 4, … up to an hour.
pub fn backoff_secs(attempts: u32) -> i64 {
    if attempts >= 12 {
        MAX_BACKOFF_SECS
    } else {
        (1i64 << attempts).min(MAX_BACKOFF_SECS)
    }
}

/// The delivery worker.
pub struct Webhook {
    url: Url,
    uri: http::Uri,
    key: hmac::Key,
    http: HttpClient,
    alerts: Arc<dyn AlertStore>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("origin", &self.url.origin().ascii_serialization())
            .finish_non_exhaustive()
    }
}

/// What one pass over the outbox did.
#[derive(Debug, Default)]
struct Pass {
    /// The batch was full: more alerts may be due.
    full: bool,
    /// The shortest backoff scheduled in this pass.
    retry_in: Option<Duration>,
    /// The store failed; wait before trying again.
    store_failed: bool,
}

impl Webhook {
    /// A worker delivering from `alerts` as `settings` say.
    pub fn new(
        settings: &WebhookSettings,
        alerts: Arc<dyn AlertStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, WebhookError> {
        let http = http_client()?;
        let uri = settings
            .url
            .as_str()
            .parse()
            .map_err(|e| WebhookError(Box::new(e)))?;
        Ok(Webhook {
            url: settings.url.clone(),
            uri,
            key: hmac::Key::new(hmac::HMAC_SHA256, settings.secret.as_bytes()),
            http,
            alerts,
            clock,
        })
    }

    /// Delivers due alerts until the task is aborted: at once, then whenever `wake` is
    /// notified (an alert was stored), when a retry falls due, and every 5 s.
    pub async fn run(self, wake: Arc<Notify>) {
        tracing::info!(
            origin = %self.url.origin().ascii_serialization(),
            "alert webhook enabled"
        );
        // The earliest retry this worker scheduled; retries scheduled before a restart
        // are found by the 5 s poll.
        let mut retry_at: Option<Instant> = None;
        loop {
            let pass = self.deliver_due().await;
            if pass.full && !pass.store_failed {
                continue;
            }
            let now = Instant::now();
            if retry_at.is_some_and(|r| r <= now) {
                retry_at = None;
            }
            if let Some(d) = pass.retry_in {
                let at = now + d;
                retry_at = Some(retry_at.map_or(at, |r| r.min(at)));
            }
            let wake_at = retry_at.map_or(now + POLL, |r| r.min(now + POLL));
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    /// Tries every due alert once.
    async fn deliver_due(&self) -> Pass {
        let mut pass = Pass::default();
        let due = match self.alerts.due_alerts(self.clock.now(), BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the alert outbox");
                pass.store_failed = true;
                return pass;
            }
        };
        pass.full = due.len() >= BATCH as usize;
        for alert in &due {
            let outcome = self.deliver(alert).await;
            // The time after the attempt: a retry is due `backoff` after it ended.
            let now = self.clock.now();
            match outcome {
                Ok(()) => {
                    tracing::info!(alert_id = alert.id, "alert delivered to the webhook");
                    if let Err(e) = self.alerts.mark_alert_delivered(alert.id, now).await {
                        // It will be sent again: at least once, never lost.
                        tracing::error!(error = %e, alert_id = alert.id, "cannot mark an alert delivered");
                        pass.store_failed = true;
                    }
                }
                Err(reason) => {
                    let backoff = backoff_secs(alert.attempts);
                    tracing::warn!(
                        alert_id = alert.id,
                        attempt = alert.attempts.saturating_add(1),
                        retry_in_secs = backoff,
                        reason = %reason,
                        "alert webhook delivery failed"
                    );
                    if let Err(e) = self
                        .alerts
                        .mark_alert_failed(alert.id, now.plus_secs(backoff))
                        .await
                    {
                        tracing::error!(error = %e, alert_id = alert.id, "cannot record a failed alert delivery");
                        pass.store_failed = true;
                    }
                    let d = Duration::from_secs(backoff.unsigned_abs());
                    pass.retry_in = Some(pass.retry_in.map_or(d, |r| r.min(d)));
                }
            }
        }
        pass
    }

    /// One signed POST; `Err` says why it did not count as delivered.
    async fn deliver(&self, alert: &StoredAlert) -> Result<(), String> {
        let body = serde_json::to_vec(&serde_json::json!({
            "id": alert.id,
            "alert": alert.alert,
        }))
        .map_err(|e| format!("cannot serialize the alert: {e}"))?;
        let timestamp = self.clock.now().0;
        let signature = sign(&self.key, timestamp, &body);
        let request = http::Request::post(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::USER_AGENT, USER_AGENT)
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        // Connecting, TLS and the response head, all within the timeout. hyper's errors
        // never name the URL (which may hold a token).
        let response = tokio::time::timeout(DELIVERY_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| format!("no answer within {DELIVERY_TIMEOUT:?}"))?
            .map_err(|e| crate::error::error_chain(&e))?;
        // The body is not read: the connection is simply not reused.
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the endpoint answered {status}"))
        }
    }
}

/// The `User-Agent` of deliveries.
const USER_AGENT: &str = concat!("deedbolt/", env!("CARGO_PKG_VERSION"));

/// The HTTP client: rustls with aws-lc-rs and the Mozilla roots, https or plain http (the
/// configuration allows http only on loopback), HTTP/1.1. It follows no redirects: a 3xx
/// could send the signed alert elsewhere, or downgrade it to plain http, so it counts as a
/// failed delivery.
fn http_client() -> Result<HttpClient, WebhookError> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| WebhookError(Box::new(e)))?
    .with_root_certificates(rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    })
    .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(DELIVERY_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_hmac(key: &[u8], msg: &[u8]) -> String {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn hmac_matches_rfc4231_test_case_2() {
        assert_eq!(
            hex_hmac(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signature_covers_timestamp_dot_body() {
        let key = b"0123456789abcdef0123456789abcdef";
        let sig = signature(key, 1_700_000_000, br#"{"id":1}"#);
        assert_eq!(
            sig,
            format!("sha256={}", hex_hmac(key, br#"1700000000.{"id":1}"#))
        );
        assert_ne!(sig, signature(key, 1_700_000_001, br#"{"id":1}"#));
        assert_ne!(sig, signature(key, 1_700_000_000, br#"{"id":2}"#));
    }

    #[test]
    fn the_http_client_builds_with_its_own_crypto_provider() {
        // No process-wide default provider is installed or needed.
        assert!(http_client().is_ok());
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff_secs(0), 1);
        assert_eq!(backoff_secs(1), 2);
        assert_eq!(backoff_secs(5), 32);
        assert_eq!(backoff_secs(11), 2048);
        assert_eq!(backoff_secs(12), 3600);
        assert_eq!(backoff_secs(u32::MAX), 3600);
    }

    #[test]
    fn settings_debug_hides_the_secret_and_the_path() {
        let s = WebhookSettings {
            url: "https://hooks.example.com/T0/secret-path?token=abc"
                .parse()
                .unwrap(),
            secret: WebhookSecret::new("s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t".into()),
        };
        let shown = format!("{s:?}");
        assert!(shown.contains("https://hooks.example.com"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(
            !shown.contains("secret-path") && !shown.contains("abc"),
            "{shown}"
        );
    }
}
