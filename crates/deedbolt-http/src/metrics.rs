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

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use deedbolt_core::client::GrantType;
use deedbolt_guard::{parse_bearer, BearerError};

use crate::error::ApiError;
use crate::state::AppState;

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
        crate::authorize::constant_time_eq(presented, &self.0)
    }
}

impl fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MetricsToken([redacted])")
    }
}

/// The rate limits as `/metrics` labels them; a hit of any other name counts as `other`.
const LIMITS: [&str; 5] = ["token", "refresh", "api", "authorize", "login"];

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
    /// `authorize` or `login`).
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

    fn render(&self) -> String {
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

fn render(state: &AppState) -> Response {
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.services.metrics.render(),
    )
        .into_response()
}

/// Lets the request through when it carries `token` as its bearer token.
fn check_token(token: &MetricsToken, headers: &HeaderMap) -> Result<(), ApiError> {
    const NEEDED: &str = "the metrics token is required";
    match parse_bearer(headers.get_all(AUTHORIZATION).iter()) {
        Ok(presented) if token.matches(presented) => Ok(()),
        Ok(_) | Err(BearerError::Malformed) => Err(ApiError::BearerRequired {
            presented: true,
            description: NEEDED,
        }),
        Err(BearerError::Missing) => Err(ApiError::BearerRequired {
            presented: false,
            description: NEEDED,
        }),
    }
}

/// `GET /metrics` on the public listener: only with the metrics token, and not there at
/// all when none is configured.
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(token) = &state.services.metrics_token else {
        return Err(ApiError::NotFound("no such path"));
    };
    check_token(token, &headers)?;
    Ok(render(&state))
}

/// `GET /metrics` on the metrics listener: the token too, if one is configured.
async fn private_metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = &state.services.metrics_token {
        check_token(token, &headers)?;
    }
    Ok(render(&state))
}

/// The metrics listener's whole application: `/metrics` and nothing else.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(private_metrics))
        .with_state(state)
}
