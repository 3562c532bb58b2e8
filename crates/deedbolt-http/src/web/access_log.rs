//! The access log: one `info` line per request with its method, its route, its status
//! and how long it took, and the span every handler's logs run in.
//!
//! The route is the *matched route template* (`/api/properties/{id}`), never the request
//! URI: query strings carry authorization codes, `state` and PKCE values on `/authorize`
//! and the redirect back, and a log is the last place they should end up. A request no
//! route matched is logged with the route `unmatched`, for the same reason (its path is
//! whatever the client sent).
//!
//! A tower [`Layer`] applied with `Router::layer`, so axum has already put the
//! [`MatchedPath`] into the request when it runs. The lines go to the target
//! [`TARGET`], which a log filter can raise or silence on its own
//! (`DEEDBOLT_LOG=info,deedbolt::access=warn`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use tower::{Layer, Service};
use tracing::Instrument as _;

/// The `tracing` target of access-log lines.
pub const TARGET: &str = "deedbolt::access";

/// The route logged for a request that matched no route.
const UNMATCHED: &str = "unmatched";

/// Wraps every route: see the [module documentation](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct AccessLogLayer;

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog { inner }
    }
}

/// The service [`AccessLogLayer`] makes.
#[derive(Clone, Debug)]
pub struct AccessLog<S> {
    inner: S,
}

impl<S> Service<Request> for AccessLog<S>
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
        let method = request.method().clone();
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
        // The span every log line of this request carries: method and route only.
        let span = tracing::info_span!("request", method = %method, route = %route);
        let started = Instant::now();
        let response = self.inner.call(request).instrument(span);
        Box::pin(async move {
            let result = response.await;
            if let Ok(response) = &result {
                let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
                // Outside the request span: the line carries its fields itself.
                tracing::info!(
                    target: TARGET,
                    parent: None,
                    method = %method,
                    route = %route,
                    status = response.status().as_u16(),
                    latency_ms,
                    "request"
                );
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;
    use std::sync::{Arc, Mutex};
    use tower::ServiceExt as _;

    /// Collects formatted log lines.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn logs_the_route_template_and_status_but_never_the_query() {
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber_for_test(move || writer.clone());
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = Router::new()
            .route("/api/properties/{id}", get(|| async { "ok" }))
            .layer(AccessLogLayer);
        for uri in [
            "/api/properties/42?code=SECRETCODE&state=S1",
            "/nowhere?code=X2",
        ] {
            let request = Request::builder()
                .uri(uri)
                .body(axum::body::Body::empty())
                .expect("request");
            app.clone().oneshot(request).await.expect("infallible");
        }
        let text = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf-8");
        assert!(text.contains("route=/api/properties/{id}"), "{text}");
        assert!(text.contains("status=200"), "{text}");
        assert!(text.contains("route=unmatched status=404"), "{text}");
        assert!(text.contains("latency_ms="), "{text}");
        for secret in ["SECRETCODE", "S1", "X2", "/api/properties/42", "nowhere"] {
            assert!(!text.contains(secret), "{secret} logged: {text}");
        }
    }

    fn tracing_subscriber_for_test<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
    where
        W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
    {
        tracing_subscriber::fmt()
            .with_writer(writer)
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish()
    }
}
