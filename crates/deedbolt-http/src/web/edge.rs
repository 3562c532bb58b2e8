//! The edge: what every request goes through between the access log and the routes, in
//! one tower layer (one boxed future per request instead of seven nested middlewares,
//! each cloning what it wraps and boxing its own future):
//!
//! - a request from a trusted proxy whose `X-Forwarded-For` does not name the client's
//!   address is refused (400 `invalid_request`) before any handler keys a limit, a
//!   throttle or an audit record on it;
//! - `Cache-Control: no-store` on every `/api` and `/admin` response, errors included (a
//!   408 from the timeout too, as it runs inside): they carry personal and financial data
//!   (tenancies, ledgers) and the audit log, which no browser or shared cache should keep;
//! - the security headers on every response: `X-Content-Type-Options: nosniff`,
//!   `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, and a
//!   `Content-Security-Policy` of `default-src 'none'` unless the page set its own;
//! - the request metrics: every request timed and counted under its route template and
//!   status.
//!
//! Applied with `Router::layer`, so axum has already put the [`MatchedPath`] into the
//! request when it runs.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::client_ip::forwarded_client_ip;

/// The policy for responses that set none: nothing may load, nothing may frame them.
const CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Wraps every route: see the [module documentation](self).
#[derive(Clone, Debug)]
pub struct EdgeLayer {
    state: AppState,
}

impl EdgeLayer {
    /// The layer for the application with `state`.
    pub fn new(state: AppState) -> Self {
        EdgeLayer { state }
    }
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Edge {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service [`EdgeLayer`] makes.
#[derive(Clone, Debug)]
pub struct Edge<S> {
    inner: S,
    state: AppState,
}

/// Whether `path` is under `/api` or `/admin`.
fn is_private(path: &str) -> bool {
    ["/api", "/admin"].iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The answer to a request from a trusted proxy with a malformed `X-Forwarded-For`.
fn refusal(state: &AppState, request: &Request) -> Option<Response> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)?;
    let trusted = &state.services.trusted_proxies;
    match forwarded_client_ip(peer, request.headers(), trusted) {
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(proxy = %peer.ip(), "{e}; request refused");
            Some(ApiError::BadRequest(format!("{e}")).into_response())
        }
    }
}

impl<S> Service<Request> for Edge<S>
where
    S: Service<Request, Response = Response> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        // An `Arc` clone, no allocation.
        let route = request.extensions().get::<MatchedPath>().cloned();
        let private = is_private(request.uri().path());
        let answer = match refusal(&self.state, &request) {
            Some(refused) => Err(refused),
            None => Ok(self.inner.call(request)),
        };
        let state = self.state.clone();
        Box::pin(async move {
            let mut response = match answer {
                Err(refused) => refused,
                Ok(served) => served.await?,
            };
            let headers = response.headers_mut();
            headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            if !headers.contains_key(CONTENT_SECURITY_POLICY) {
                headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
            }
            if private {
                headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let route = route
                .as_ref()
                .map_or(crate::request_metrics::UNMATCHED, MatchedPath::as_str);
            state
                .services
                .metrics
                .requests
                .observe(route, response.status().as_u16(), micros);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_paths_are_the_api_and_the_admin_console() {
        for p in [
            "/api",
            "/api/",
            "/api/properties",
            "/admin",
            "/admin/api/audit",
        ] {
            assert!(is_private(p), "{p}");
        }
        for p in [
            "/",
            "/apis",
            "/token",
            "/administrator",
            "/static/admin.css",
        ] {
            assert!(!is_private(p), "{p}");
        }
    }
}
