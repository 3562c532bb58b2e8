//! Counters in the Prometheus text format at `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

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

    fn render(&self) -> String {
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

/// `GET /metrics`
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.services.metrics.render(),
    )
        .into_response()
}
