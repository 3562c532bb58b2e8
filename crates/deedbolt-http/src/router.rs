//! The router: every route, with its guard layers and the cross-cutting middleware.

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::header::{CONTENT_TYPE, STRICT_TRANSPORT_SECURITY};
use axum::http::{HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use deedbolt_core::scope::{Scope, ScopeSet};

use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::api::userinfo;
use crate::oauth::{
    authorize, consent, introspection, login, metadata, par, registration, revocation, token,
};
use crate::state::AppState;
use crate::web::cookies::CookiePolicy;
use crate::web::form::MAX_BODY_BYTES;
use crate::web::pages;
use crate::{admin, ops};

/// How long a request may take, including reading a slow client's body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// HSTS on an https issuer: one year, subdomains included (RFC 6797; RFC 9700 §4.1.3
/// relies on TLS for every request). Never sent on plain http, where browsers ignore it.
const HSTS: &str = "max-age=31536000; includeSubDomains";

/// The whole application.
pub fn router(state: AppState) -> Router {
    let guard = state.guard.clone();
    // The PropTech API: each operation behind its guard and the per-client API limit,
    // mounted and documented from one table.
    let (api, openapi) = crate::api::crm::routes(state.clone());
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
    // crate::web::cors); nothing else gets CORS headers.
    let mut metadata = metadata::routes(&state.services);
    if let Some(cors) = state.services.cors.metadata_layer() {
        metadata = metadata.layer(cors);
    }
    let mut endpoints = Router::new()
        .route("/token", post(token::token))
        .route("/revoke", post(revocation::revoke_endpoint))
        .route(
            "/userinfo",
            get(userinfo::userinfo.layer(openid.clone())).post(userinfo::userinfo.layer(openid)),
        );
    if let Some(cors) = state.services.cors.endpoint_layer() {
        endpoints = endpoints.layer(cors);
    }
    let browser = Router::new()
        .route(
            "/authorize",
            get(authorize::authorize).post(authorize::authorize_post),
        )
        .route("/login", get(login::login_page).post(login::login_submit))
        .route(
            "/consent",
            get(consent::consent_page).post(consent::consent_submit),
        )
        .route("/logout", post(login::logout))
        .route("/static/deedbolt.css", get(pages::stylesheet));
    // The admin console: its API is behind the guard like /api (admin:read), and its
    // extractor then admits only administrators (the guard's scopes cannot express "a
    // user whose role is admin"); the pages use the session.
    let admin_read = admin::AdminToken::layer(&state);
    let admin = Router::new()
        .route("/admin", get(admin::dashboard))
        .route("/admin/login", post(admin::login_submit))
        .route(
            "/admin/api/audit",
            get(admin::api_audit.layer(admin_read.clone())),
        )
        .route(
            "/admin/api/alerts",
            get(admin::api_alerts.layer(admin_read.clone())),
        )
        .route(
            "/admin/api/registration-tokens",
            get(admin::api_registration_tokens.layer(admin_read)),
        )
        .route("/static/admin.css", get(admin::stylesheet));

    let cookies = state.cookies;
    let app = Router::new()
        .route("/", get(crate::landing::landing))
        .merge(metadata)
        .merge(endpoints)
        .route("/introspect", post(introspection::introspect_endpoint))
        // Server to server (RFC 9126): no CORS.
        .route("/par", post(par::par_endpoint))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/readyz", get(ops::readyz))
        .merge(api)
        .merge(browser)
        .merge(admin)
        .merge(crate::bff::routes())
        .merge(registration::routes(state.services.registration.mode))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        // Forwarded-for check, no-store, security headers and request metrics, in one
        // layer outside the timeout (so a 408 carries them and is counted).
        .layer(crate::web::edge::EdgeLayer::new(state.clone()))
        .layer(crate::web::access_log::AccessLogLayer)
        .with_state(state);
    if cookies == CookiePolicy::Secure {
        app.layer(SetResponseHeaderLayer::overriding(
            STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        ))
    } else {
        app
    }
}
