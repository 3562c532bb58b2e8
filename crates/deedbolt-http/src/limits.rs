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
            state.services.metrics.rate_limited(policy);
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

/// An `X-Forwarded-For` entry from a trusted proxy that is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an X-Forwarded-For entry from a trusted proxy is not an IP address")]
pub struct MalformedForwardedFor;

/// One `X-Forwarded-For` entry as an IP address. Proxies write `ip`, and some `ip:port`,
/// `[v6]` or `[v6]:port`: the address is taken from each. IPv4-mapped IPv6 addresses
/// count as their IPv4 address. Anything else is `None`.
pub fn parse_forwarded_hop(hop: &str) -> Option<IpAddr> {
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<std::net::Ipv6Addr>()
                .ok()
                .map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

/// The client's IP: the peer, or — only when the peer is a trusted proxy — the rightmost
/// address in `X-Forwarded-For` that is not itself a trusted proxy (the peer when every
/// entry is). An entry that is no address is an error, never a reason to fall back to
/// the proxy's own address (which would put every client behind it in one rate-limit
/// bucket). Never trusted by default.
pub fn forwarded_client_ip(
    peer: SocketAddr,
    headers: &HeaderMap,
    trusted: &[IpAddr],
) -> Result<IpAddr, MalformedForwardedFor> {
    let peer = peer.ip().to_canonical();
    if !trusted.contains(&peer) {
        return Ok(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().map_err(|_| MalformedForwardedFor))
        .collect::<Result<Vec<_>, _>>()?;
    let hops = forwarded
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // Empty list elements are allowed and mean nothing (RFC 9110 §5.6.1).
        .filter(|h| !h.is_empty())
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match parse_forwarded_hop(hop) {
            Some(ip) if trusted.contains(&ip) => continue,
            Some(ip) => return Ok(ip),
            None => return Err(MalformedForwardedFor),
        }
    }
    Ok(peer)
}

/// [`forwarded_client_ip`] for handlers: the router has already refused requests whose
/// `X-Forwarded-For` is malformed ([`refuse_malformed_forwarded_for`]), so the peer
/// fallback here is never reached behind it.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    forwarded_client_ip(peer, headers, trusted).unwrap_or_else(|_| peer.ip())
}

/// Middleware: a request from a trusted proxy whose `X-Forwarded-For` does not name the
/// client's address is refused (400 `invalid_request`) before any handler keys a limit,
/// a throttle or an audit record on it.
pub async fn refuse_malformed_forwarded_for(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Some(peer) = peer {
        let trusted = &state.services.trusted_proxies;
        if let Err(e) = forwarded_client_ip(peer, request.headers(), trusted) {
            tracing::warn!(proxy = %peer.ip(), "{e}; request refused");
            return ApiError::BadRequest(format!("{e}")).into_response();
        }
    }
    next.run(request).await
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
    }

    #[test]
    fn forwarded_entries_with_ports_or_brackets_give_their_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for (hop, expected) in [
            ("203.0.113.7", "203.0.113.7"),
            ("203.0.113.7:51234", "203.0.113.7"),
            ("2001:db8::7", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("[2001:db8::7]:443", "2001:db8::7"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            ("[::ffff:203.0.113.7]:80", "203.0.113.7"),
        ] {
            assert_eq!(parse_forwarded_hop(hop), Some(ip(expected)), "{hop}");
        }
        for bad in [
            "junk",
            "unknown",
            "203.0.113.7:",
            "203.0.113.7:port",
            "[203.0.113.7]",
            "[2001:db8::7",
            "2001:db8::7]:80",
            "fe80::1%eth0",
            "203.0.113.7 , x",
        ] {
            assert_eq!(parse_forwarded_hop(bad), None, "{bad}");
        }
    }

    #[test]
    fn behind_a_trusted_proxy_the_parsed_address_is_taken_or_the_request_refused() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let trusted = ["10.0.0.1".parse().unwrap(), "10.0.0.5".parse().unwrap()];
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", HeaderValue::from_static(v));
            h
        };
        let ip = |s: &str| Ok(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            forwarded_client_ip(peer, &with("9.9.9.9:1234"), &trusted),
            ip("9.9.9.9")
        );
        assert_eq!(
            forwarded_client_ip(peer, &with("9.9.9.9, [2001:db8::1]:80"), &trusted),
            ip("2001:db8::1")
        );
        // A trusted proxy's own entry, with a port, is skipped like a bare one.
        assert_eq!(
            forwarded_client_ip(peer, &with("9.9.9.9, 10.0.0.5:8080"), &trusted),
            ip("9.9.9.9")
        );
        // An empty trailing element is no entry.
        assert_eq!(
            forwarded_client_ip(peer, &with("9.9.9.9, "), &trusted),
            ip("9.9.9.9")
        );
        for bad in ["junk", "9.9.9.9, junk", "[9.9.9.9]"] {
            assert_eq!(
                forwarded_client_ip(peer, &with(bad), &trusted),
                Err(MalformedForwardedFor),
                "{bad}"
            );
        }
        // Junk to the left of the client's address is the client's own claim: not read.
        assert_eq!(
            forwarded_client_ip(peer, &with("junk, 9.9.9.9"), &trusted),
            ip("9.9.9.9")
        );
        // Not from a trusted proxy: the header is never read, malformed or not.
        let stranger: SocketAddr = "192.0.2.9:1".parse().unwrap();
        assert_eq!(
            forwarded_client_ip(stranger, &with("junk"), &trusted),
            ip("192.0.2.9")
        );
        // No header: the proxy itself is the client.
        assert_eq!(
            forwarded_client_ip(peer, &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
    }
}
