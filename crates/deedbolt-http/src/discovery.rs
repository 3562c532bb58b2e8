//! Discovery: RFC 8414 authorization-server metadata and the JWKS (RFC 7517).

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use deedbolt_core::scope::Scope;
use serde_json::json;

use crate::state::AppState;

/// The metadata document for `issuer` (no trailing slash).
pub fn metadata_document(issuer: &str) -> Bytes {
    let scopes: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    let doc = json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks.json"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": scopes,
        // RFC 8414 §2 requires this member; no response type is served until the
        // authorization endpoint exists.
        "response_types_supported": [],
    });
    Bytes::from(doc.to_string())
}

fn json_response(body: Bytes, cache: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response()
}

/// `GET /.well-known/oauth-authorization-server`
pub async fn metadata(State(state): State<AppState>) -> Response {
    json_response(state.metadata.clone(), "public, max-age=300")
}

/// `GET /jwks.json`: public keys only, one `kid` each. A short cache lifetime lets
/// resource servers see a rotated-in key quickly.
pub async fn jwks(State(state): State<AppState>) -> Response {
    json_response(state.services.keys.jwks_json(), "public, max-age=60")
}
