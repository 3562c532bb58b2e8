//! Counters in the Prometheus text format at `/metrics`.
//!
//! They tell an outsider how busy the server is and when alerts fire, so they are not
//! public: on the public listener `/metrics` needs the metrics token
//! (`Authorization: Bearer <DEEDBOLT_METRICS_TOKEN>`, compared in constant time) and is
//! not served at all (404) when no token is configured. A separate listener
//! (`--metrics-listen`, for a private network) serves `/metrics` and nothing else; it
//! too asks for the token when one is configured.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The shortest metrics token accepted.
pub const MIN_TOKEN_CHARS: usize = 32;

/// The bearer token that reads `/metrics` (redacted in `Debug`).
#[derive(Clone)]
pub struct MetricsToken(String);

impl MetricsToken {
    /// Wraps a token (validated by the configuration: at least [`MIN_TOKEN_CHARS`]).
    pub fn new(token: String) -> Self {
        MetricsToken(token)
    }

    /// Its length in characters.
    pub fn chars(&self) -> usize {
        self.0.chars().count()
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        crate::web::csrf::constant_time_eq(presented, &self.0)
    }
}

impl fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricsToken([redacted])")
    }
}

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    tokens_issued: AtomicU64,
    rate_limited: AtomicU64,
    audit_written: AtomicU64,
    audit_backpressure: AtomicU64,
    alerts: AtomicU64,
}

impl Metrics {
    /// An access token was issued.
    pub fn token_issued(&self) {
        self.tokens_issued.fetch_add(1, Ordering::Relaxed);
    }
    /// A request was refused by a rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }
    /// Audit records reached storage.
    pub fn audit_written(&self, n: u64) {
        self.audit_written.fetch_add(n, Ordering::Relaxed);
    }
    /// A request waited because the audit buffer was full.
    pub fn audit_backpressure(&self) {
        self.audit_backpressure.fetch_add(1, Ordering::Relaxed);
    }
    /// An alert was raised.
    pub fn alert(&self) {
        self.alerts.fetch_add(1, Ordering::Relaxed);
    }
    /// The number of audit back-pressure waits so far.
    pub fn audit_backpressure_count(&self) -> u64 {
        self.audit_backpressure.load(Ordering::Relaxed)
    }

    /// The counters in the Prometheus text format.
    pub fn render(&self) -> String {
        let rows = [
            (
                "deedbolt_tokens_issued_total",
                "Access tokens issued.",
                &self.tokens_issued,
            ),
            (
                "deedbolt_rate_limited_total",
                "Requests refused by a rate limit.",
                &self.rate_limited,
            ),
            (
                "deedbolt_audit_records_written_total",
                "Audit records written.",
                &self.audit_written,
            ),
            (
                "deedbolt_audit_backpressure_total",
                "Times a request waited for room in the audit buffer.",
                &self.audit_backpressure,
            ),
            (
                "deedbolt_alerts_total",
                "Security alerts raised.",
                &self.alerts,
            ),
        ];
        let mut out = String::new();
        for (name, help, value) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        out
    }
}
