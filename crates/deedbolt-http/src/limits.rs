//! Rate limiting at the edge: counting a request against its limit ([`check`], called by
//! handlers), the per-client API limit and the refusal of malformed `X-Forwarded-For`
//! (middleware). The limits themselves and their headers are in
//! [`crate::web::rate_limit`], the client's IP in [`crate::web::client_ip`].
//!
//! The limiter logic (GCRA) and its store are in `deedbolt-core`; this module only picks
//! keys and turns outcomes into headers or a 429.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use deedbolt_core::ratelimit::{Outcome, RateLimit};
use deedbolt_guard::Authorized;

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::rate_limit::{Allowance, Policy};

/// Counts one request under `policy` for `key`; `Ok(None)` when the limit is off.
pub async fn check(
    state: &AppState,
    policy: Policy,
    limit: Option<RateLimit>,
    key: &str,
) -> Result<Option<Allowance>, ApiError> {
    let Some(limit) = limit else { return Ok(None) };
    let now = state.services.clock.now_ms();
    let outcome = state
        .services
        .limiter
        .acquire(&format!("{policy}:{key}"), limit, now)
        .await?;
    match outcome {
        Outcome::Allowed {
            remaining,
            reset_secs,
        } => Ok(Some(Allowance {
            policy,
            limit,
            remaining,
            reset_secs,
        })),
        Outcome::Limited { retry_after_secs } => {
            state.services.metrics.rate_limited(policy.as_str());
            tracing::info!(
                policy = policy.as_str(),
                key,
                retry_after_secs,
                "rate limited"
            );
            // The token endpoint audits its own refusals (with more context).
            if policy == Policy::Api {
                state
                    .services
                    .audit
                    .record(
                        deedbolt_core::audit::AuditRecord::new(
                            deedbolt_core::audit::AuditKind::RateLimited,
                            false,
                            state.services.clock.now(),
                        )
                        .client(key)
                        .detail(format!("policy={policy}")),
                    )
                    .await;
            }
            Err(ApiError::RateLimited {
                policy,
                limit,
                retry_after: retry_after_secs,
            })
        }
    }
}

/// Middleware for API routes, inside the guard: limits calls per client.
pub async fn api_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(claims) = request
        .extensions()
        .get::<Authorized>()
        .map(|a| a.claims.clone())
    else {
        return next.run(request).await;
    };
    // Per client for the client's own tokens; per client and user for tokens acting for a
    // user, so the users of one app (e.g. behind the backend-for-frontend) do not share a
    // quota.
    let key = if claims.is_client_token() {
        claims.client_id.to_string()
    } else {
        format!("{}/{}", claims.client_id, claims.sub)
    };
    match check(&state, Policy::Api, state.services.limits.api, &key).await {
        Ok(allowance) => {
            state
                .services
                .security
                .api_call(&claims, state.services.clock.now())
                .await;
            let mut response = next.run(request).await;
            if let Some(a) = allowance {
                a.apply(response.headers_mut());
            }
            response
        }
        Err(e) => e.into_response(),
    }
}
