//! Rate limiting at the edge: which limit applies where, the client's IP (with trusted
//! proxies), and the IETF `RateLimit-Policy` / `RateLimit` headers.
//!
//! The limiter logic (GCRA) and its store are in `deedbolt-core`; this module only picks
//! keys and turns outcomes into headers or a 429.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::header::HeaderName;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use deedbolt_core::ratelimit::{Outcome, RateLimit};
use deedbolt_guard::Authorized;

use crate::error::ApiError;
use crate::state::AppState;

/// The configured limits; `None` is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Token requests per client (client credentials and code exchange).
    pub token: Option<RateLimit>,
    /// Refresh requests per client.
    pub refresh: Option<RateLimit>,
    /// API calls per client.
    pub api: Option<RateLimit>,
    /// Failed logins per account and IP (four times as many per IP, ten times as many per
    /// account over all IPs).
    pub login: Option<RateLimit>,
    /// Authorization requests per client IP.
    pub authorize: Option<RateLimit>,
}

/// A limit that let a request through, for the response headers.
#[derive(Clone, Copy, Debug)]
pub struct Allowance {
    policy: &'static str,
    limit: RateLimit,
    remaining: u32,
    reset_secs: u32,
}

fn policy_header(policy: &str, limit: RateLimit) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "\"{policy}\";q={};w={}",
        limit.count, limit.window_secs
    ))
    .ok()
}

impl Allowance {
    /// Adds `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers).
    pub fn apply(&self, headers: &mut HeaderMap) {
        if let Some(v) = policy_header(self.policy, self.limit) {
            headers.insert(HeaderName::from_static("ratelimit-policy"), v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!(
            "\"{}\";r={};t={}",
            self.policy, self.remaining, self.reset_secs
        )) {
            headers.insert(HeaderName::from_static("ratelimit"), v);
        }
    }
}

/// The headers of a 429.
pub fn limited_headers(
    policy: &'static str,
    limit: RateLimit,
    retry_after: u32,
    headers: &mut HeaderMap,
) {
    if let Some(v) = policy_header(policy, limit) {
        headers.insert(HeaderName::from_static("ratelimit-policy"), v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{policy}\";r=0;t={retry_after}")) {
        headers.insert(HeaderName::from_static("ratelimit"), v);
    }
    headers.insert(
        axum::http::header::RETRY_AFTER,
        HeaderValue::from(retry_after),
    );
}

/// Counts one request under `policy` for `key`; `Ok(None)` when the limit is off.
pub async fn check(
    state: &AppState,
    policy: &'static str,
    limit: Option<RateLimit>,
    key: &str,
) -> Result<Option<Allowance>, ApiError> {
    let Some(limit) = limit else { return Ok(None) };
    let now = state.services.clock.now_ms();
    let outcome = state
        .services
        .limiter
        .acquire(&format!("{policy}:{key}"), limit, now)
        .await
        .map_err(ApiError::internal)?;
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
            state.services.metrics.rate_limited();
            tracing::info!(policy, key, retry_after_secs, "rate limited");
            // The token endpoint audits its own refusals (with more context).
            if policy == "api" {
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

/// The client's IP: the peer, or — only when the peer is a trusted proxy — the rightmost
/// address in `X-Forwarded-For` that is not itself a trusted proxy. Never trusted by default.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.ip();
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip,
            Err(_) => return peer,
        }
    }
    peer
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
    match check(&state, "api", state.services.limits.api, &key).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_trusted() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("9.9.9.9, 10.0.0.5"),
        );
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        assert_eq!(client_ip(peer, &h, &[]), peer.ip());
        let trusted = ["10.0.0.1".parse().unwrap()];
        assert_eq!(
            client_ip(peer, &h, &trusted),
            "10.0.0.5".parse::<IpAddr>().unwrap()
        );
        let both = ["10.0.0.1".parse().unwrap(), "10.0.0.5".parse().unwrap()];
        assert_eq!(
            client_ip(peer, &h, &both),
            "9.9.9.9".parse::<IpAddr>().unwrap()
        );
        h.insert("x-forwarded-for", HeaderValue::from_static("junk"));
        assert_eq!(client_ip(peer, &h, &trusted), peer.ip());
    }
}
