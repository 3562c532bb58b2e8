//! The router: every route, with its guard layers and the cross-cutting middleware.

use std::time::Duration;

use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, State};
use axum::handler::Handler;
use axum::http::header::{
    HeaderName, CACHE_CONTROL, CONTENT_TYPE, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use deedbolt_core::scope::{Scope, ScopeSet};

use serde_json::json;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::state::AppState;
use crate::token::MAX_BODY_BYTES;
use crate::{admin, api, authorize, discovery, pages, revoke, token};

/// How long a request may take, including reading a slow client's body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// HSTS on an https issuer: one year, subdomains included (RFC 6797; RFC 9700 §4.1.3
/// relies on TLS for every request). Never sent on plain http, where browsers ignore it.
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// `Cache-Control: no-store` on every `/api` and `/admin` response, errors included:
/// they carry personal and financial data (tenancies, ledgers) and the audit log, which
/// no browser or shared cache should keep.
async fn no_store_for_private_data(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let private = ["/api", "/admin"]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")));
    let mut response = next.run(request).await;
    if private {
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let guard = state.guard.clone();
    // The PropTech API: each operation behind its guard and the per-client API limit,
    // mounted and documented from one table.
    let (api, openapi) = crate::crm::routes(state.clone());
    let openapi = bytes::Bytes::from(openapi.to_string());
    let api = api.route(
        "/api/openapi.json",
        get(move || {
            let body = openapi.clone();
            async move {
                (
                    [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                    body,
                )
            }
        }),
    );
    let openid = guard.require(ScopeSet::empty().with(Scope::Openid));
    // What a browser app calls itself, with CORS for the configured origins (see
    // crate::cors); nothing else gets CORS headers.
    let mut metadata = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration_handler),
        )
        .route("/jwks.json", get(discovery::jwks));
    if let Some(cors) = state.services.cors.metadata_layer() {
        metadata = metadata.layer(cors);
    }
    let mut endpoints = Router::new()
        .route("/token", post(token::token))
        .route("/revoke", post(revoke::revoke_endpoint))
        .route(
            "/userinfo",
            get(api::userinfo.layer(openid.clone())).post(api::userinfo.layer(openid)),
        );
    if let Some(cors) = state.services.cors.endpoint_layer() {
        endpoints = endpoints.layer(cors);
    }
    let browser = Router::new()
        .route(
            "/authorize",
            get(authorize::authorize).post(authorize::authorize_post),
        )
        .route(
            "/login",
            get(authorize::login_page).post(authorize::login_submit),
        )
        .route(
            "/consent",
            get(authorize::consent_page).post(authorize::consent_submit),
        )
        .route("/logout", post(authorize::logout))
        .route("/static/deedbolt.css", get(pages::stylesheet));
    // The admin console: its API checks the administrator's token itself (the guard's
    // scopes cannot express "a user whose role is admin"); the pages use the session.
    let admin = Router::new()
        .route("/admin", get(admin::dashboard))
        .route("/admin/login", post(admin::login_submit))
        .route("/admin/api/audit", get(admin::api_audit))
        .route("/admin/api/alerts", get(admin::api_alerts))
        .route("/static/admin.css", get(admin::stylesheet));

    let secure = state.secure_cookies;
    let app = Router::new()
        .route("/", get(crate::landing::landing))
        .merge(metadata)
        .merge(endpoints)
        .route("/introspect", post(revoke::introspect_endpoint))
        .route("/healthz", get(healthz))
        .route("/metrics", get(crate::metrics::metrics))
        .route("/readyz", get(readyz))
        .merge(api)
        .merge(browser)
        .merge(admin)
        .merge(crate::bff::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("content-security-policy"),
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::refuse_malformed_forwarded_for,
        ))
        // Outside the timeout, so a 408 on /api carries it too.
        .layer(axum::middleware::from_fn(no_store_for_private_data))
        .layer(crate::access_log::AccessLogLayer)
        // Outermost: the latency includes every layer, and a 408 is counted as one.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::request_metrics::track,
        ))
        .with_state(state);
    if secure {
        app.layer(SetResponseHeaderLayer::overriding(
            STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        ))
    } else {
        app
    }
}

/// `GET /healthz`: the process is up.
async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// How long `/readyz` waits for the backends: a load balancer's probe gets its answer well
/// within its own timeout, even while a database is unreachable (a pool would otherwise
/// keep retrying its connection for seconds).
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// `GET /readyz`: the store (and Redis, when configured) answers within [`READY_TIMEOUT`].
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
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
