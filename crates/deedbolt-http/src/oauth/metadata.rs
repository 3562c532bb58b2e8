//! Discovery: RFC 8414 authorization-server metadata, OpenID Connect Discovery 1.0 and
//! the JWKS (RFC 7517).
//!
//! The two metadata documents depend only on the configuration (the issuer and what is
//! switched on): [`routes`] serializes them once and serves the bytes. The security
//! profile removes what it does not allow ([`crate::oauth::profile::restrict_discovery`]).

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use deedbolt_core::client_jwks::AssertionAlg;
use deedbolt_core::jose::SigningAlg;
use deedbolt_core::scope::Scope;
use serde_json::json;

use deedbolt_core::registration::RegistrationMode;

use crate::state::{AppState, Services};

fn common(services: &Services) -> serde_json::Value {
    let issuer = services.policy.issuer.as_str();
    let scopes: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    let assertion_algs: Vec<&str> = AssertionAlg::ALL.iter().map(|a| a.as_str()).collect();
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks.json"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "introspection_endpoint": format!("{issuer}/introspect"),
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "token_endpoint_auth_methods_supported": services.token_auth_methods()
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>(),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        // The algorithms of private_key_jwt client assertions (RFC 8414 §2).
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": scopes,
        // RFC 9207: every authorization response carries `iss`.
        "authorization_response_iss_parameter_supported": true,
        "dpop_signing_alg_values_supported": services.dpop.algs(),
        // RFC 9126 §5.
        "pushed_authorization_request_endpoint": format!("{issuer}/par"),
        "require_pushed_authorization_requests": services.require_par,
    });
    // RFC 7591 §3 (RFC 8414 §2): only when dynamic registration is on.
    if services.registration.mode != RegistrationMode::Off {
        doc["registration_endpoint"] = json!(format!("{issuer}/register"));
    }
    // RFC 8705 §3.3, §5: the mutual-TLS listener, if one runs.
    if let Some(mtls) = &services.mtls {
        mtls.describe(&mut doc);
    }
    doc
}

/// The RFC 8414 metadata document of this configuration.
pub fn metadata_document(services: &Services) -> Bytes {
    let mut doc = common(services);
    crate::oauth::profile::restrict_discovery(&mut doc, services.profile);
    Bytes::from(doc.to_string())
}

/// The OpenID Connect Discovery 1.0 document of this configuration.
pub fn openid_configuration(services: &Services) -> Bytes {
    let mut doc = common(services);
    doc["subject_types_supported"] = json!(["public"]);
    // Exactly what the key ring signs with: a current key of every algorithm is kept, and
    // each client's ID tokens use its registered `id_token_signed_response_alg`.
    let algs: Vec<&str> = SigningAlg::ALL.iter().map(|a| a.as_str()).collect();
    doc["id_token_signing_alg_values_supported"] = json!(algs);
    doc["claims_supported"] = json!([
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "at_hash",
        "azp",
        "name",
        "email",
        "email_verified"
    ]);
    doc["prompt_values_supported"] = json!(["none", "login", "consent"]);
    crate::oauth::profile::restrict_discovery(&mut doc, services.profile);
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

/// `GET /.well-known/oauth-authorization-server`, `GET /.well-known/openid-configuration`
/// and `GET /jwks.json` of this configuration.
pub fn routes(services: &Services) -> Router<AppState> {
    let metadata = metadata_document(services);
    let openid = openid_configuration(services);
    Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(move || async move { json_response(metadata, "public, max-age=300") }),
        )
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { json_response(openid, "public, max-age=300") }),
        )
        .route("/jwks.json", get(jwks))
}

/// `GET /jwks.json`: public keys only, one `kid` each. A short cache lifetime lets
/// resource servers see a rotated-in key quickly.
#[tracing::instrument(skip_all)]
pub async fn jwks(State(state): State<AppState>) -> Response {
    json_response(state.services.keys.jwks_json(), "public, max-age=60")
}
