//! Rate limits as configured, and their IETF `RateLimit-Policy` / `RateLimit` headers
//! (draft-ietf-httpapi-ratelimit-headers) on answers and on a 429.

use axum::http::header::HeaderName;
use axum::http::{HeaderMap, HeaderValue};
use deedbolt_core::ratelimit::RateLimit;

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
    /// Dynamic-registration requests per client IP.
    pub register: Option<RateLimit>,
}

/// The name of a limit, as it appears in the `RateLimit` headers, the 429's description
/// and the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Token requests (client credentials and code exchange).
    Token,
    /// Refresh requests.
    Refresh,
    /// API calls.
    Api,
    /// Authorization requests per client IP.
    Authorize,
    /// Pushed authorization requests (RFC 9126) per client, with the token limit.
    Par,
    /// Dynamic-registration requests per client IP.
    Register,
}

impl Policy {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Token => "token",
            Policy::Refresh => "refresh",
            Policy::Api => "api",
            Policy::Authorize => "authorize",
            Policy::Par => "par",
            Policy::Register => "register",
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A limit that let a request through, for the response headers.
#[derive(Clone, Copy, Debug)]
pub struct Allowance {
    pub(crate) policy: Policy,
    pub(crate) limit: RateLimit,
    pub(crate) remaining: u32,
    pub(crate) reset_secs: u32,
}

fn policy_header(policy: Policy, limit: RateLimit) -> Option<HeaderValue> {
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
    policy: Policy,
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
    headers.insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after));
}
