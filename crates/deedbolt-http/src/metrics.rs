//! Counters and histograms in the Prometheus text format at `/metrics`: requests and
//! their latency by route template and status ([`crate::request_metrics`]), access tokens
//! issued by grant type, requests refused by each rate limit, audit and alert counters.
//!
//! They tell an outsider how busy the server is and when alerts fire, so they are not
//! public: on the public listener `/metrics` needs the metrics token
//! (`Authorization: Bearer <DEEDBOLT_METRICS_TOKEN>`, compared in constant time) and is
//! not served at all (404) when no token is configured. A separate listener
//! (`--metrics-listen`, for a private network) serves `/metrics` and nothing else; it
//! too asks for the token when one is configured.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use deedbolt_core::client::GrantType;

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

/// The rate limits as `/metrics` labels them; a hit of any other name counts as `other`.
const LIMITS: [&str; 6] = ["token", "refresh", "api", "authorize", "register", "login"];

/// The counter of `grant` in [`Metrics`]'s `tokens_issued`.
const fn grant_slot(grant: GrantType) -> usize {
    match grant {
        GrantType::ClientCredentials => 0,
        GrantType::AuthorizationCode => 1,
        GrantType::RefreshToken => 2,
    }
}

/// Process-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests by route template and status, with latency histograms.
    pub requests: crate::request_metrics::RequestMetrics,
    /// Access tokens issued, by [`grant_slot`].
    tokens_issued: [AtomicU64; 3],
    /// Rate-limit refusals, indexed like [`LIMITS`], then `other`.
    rate_limited: [AtomicU64; LIMITS.len() + 1],
    audit_written: AtomicU64,
    audit_backpressure: AtomicU64,
    alerts: AtomicU64,
}

impl Metrics {
    /// An access token was issued with `grant`.
    pub fn token_issued(&self, grant: GrantType) {
        self.tokens_issued[grant_slot(grant)].fetch_add(1, Ordering::Relaxed);
    }
    /// A request was refused by the rate limit `limit` (`token`, `refresh`, `api`,
    /// `authorize`, `register` or `login`).
    pub fn rate_limited(&self, limit: &str) {
        let i = LIMITS
            .iter()
            .position(|l| *l == limit)
            .unwrap_or(LIMITS.len());
        self.rate_limited[i].fetch_add(1, Ordering::Relaxed);
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
        let mut out = String::new();
        out.push_str(
            "# HELP deedbolt_tokens_issued_total Access tokens issued, by grant type.\n\
             # TYPE deedbolt_tokens_issued_total counter\n",
        );
        for grant in GrantType::ALL {
            out.push_str(&format!(
                "deedbolt_tokens_issued_total{{grant_type=\"{grant}\"}} {}\n",
                self.tokens_issued[grant_slot(grant)].load(Ordering::Relaxed)
            ));
        }
        out.push_str(
            "# HELP deedbolt_rate_limited_total Requests refused by a rate limit, by limit.\n\
             # TYPE deedbolt_rate_limited_total counter\n",
        );
        for (limit, value) in LIMITS.iter().chain(&["other"]).zip(&self.rate_limited) {
            out.push_str(&format!(
                "deedbolt_rate_limited_total{{limit=\"{limit}\"}} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        let rows = [
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
        for (name, help, value) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        self.requests.render(&mut out);
        out
    }
}
