//! The operator's endpoints: `/healthz`, `/readyz` and `/metrics` (on the public listener
//! with the metrics token, and alone on the metrics listener), and the middleware that
//! times every request for the metrics ([`crate::web::edge`]).
//!
//! The counters tell an outsider how busy the server is and when alerts fire, so they are
//! not public: on the public listener `/metrics` needs the metrics token
//! (`Authorization: Bearer <DEEDBOLT_METRICS_TOKEN>`, compared in constant time) and is
//! not served at all (404) when no token is configured. A separate listener
//! (`--metrics-listen`, for a private network) serves `/metrics` and nothing else; it
//! too asks for the token when one is configured.

use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use deedbolt_guard::{parse_bearer, BearerError};
use serde_json::json;

use crate::error::ApiError;
use crate::metrics::MetricsToken;
use crate::state::AppState;

/// `GET /healthz`: the process is up.
#[tracing::instrument(skip_all)]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// How long `/readyz` waits for the backends: a load balancer's probe gets its answer well
/// within its own timeout, even while a database is unreachable (a pool would otherwise
/// keep retrying its connection for seconds).
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// `GET /readyz`: the store (and Redis, when configured) answers within [`READY_TIMEOUT`].
#[tracing::instrument(skip_all)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let answer = tokio::time::timeout(READY_TIMEOUT, state.services.health.ping()).await;
    match answer {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(_) => {
            tracing::warn!("readiness check failed: the backends did not answer within 1 s");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
        }
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
#[tracing::instrument(skip_all)]
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
#[tracing::instrument(skip_all)]
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
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(private_metrics))
        .with_state(state)
}
