//! The token endpoint, `POST /token` (RFC 6749 §3.2, §4.4, §5).

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, PRAGMA};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use deedbolt_core::client::GrantType;
use deedbolt_core::error::OAuthError;
use deedbolt_core::grant::{self, AccessToken, TokenResponse};
use deedbolt_core::token::ACCESS_TOKEN_TYP;

use crate::client_auth;
use crate::error::ApiError;
use crate::form::FormParams;
use crate::state::AppState;

/// The largest request body any endpoint reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Whether the request's content type is `expected` (parameters such as charset allowed).
pub(crate) fn has_content_type(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .is_some_and(|media| media.eq_ignore_ascii_case(expected))
}

/// Reads the body, refusing more than [`MAX_BODY_BYTES`] (early, from Content-Length, when
/// the client declares it).
pub(crate) async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)
}

/// `POST /token`
#[tracing::instrument(name = "token", skip_all, fields(grant_type, client_id))]
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !has_content_type(&headers, "application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the token request must be application/x-www-form-urlencoded",
        )
        .into());
    }
    let body = read_body(&headers, body).await?;
    let mut params = FormParams::parse(&body)?;
    let grant_type = params
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let grant_type: GrantType = grant_type
        .parse()
        .map_err(|_| OAuthError::UnsupportedGrantType(Cow::Borrowed("unknown grant_type")))?;
    tracing::Span::current().record("grant_type", grant_type.as_str());
    match grant_type {
        GrantType::ClientCredentials => client_credentials(&state, &headers, &mut params).await,
        GrantType::AuthorizationCode | GrantType::RefreshToken => {
            Err(OAuthError::UnsupportedGrantType(Cow::Borrowed(
                "this server does not offer that grant type yet",
            ))
            .into())
        }
    }
}

async fn client_credentials(
    state: &AppState,
    headers: &HeaderMap,
    params: &mut FormParams,
) -> Result<Response, ApiError> {
    let services = &state.services;
    let presented = client_auth::extract(headers, params)?;
    tracing::Span::current().record("client_id", presented.client_id.as_str());
    let found = services
        .clients
        .find_client(&presented.client_id)
        .await
        .map_err(ApiError::internal)?;
    let auth = grant::authenticate_client(found, &presented.secret, &services.hasher)?;
    let scope = grant::client_credentials_scope(&auth, params.get("scope"))?;
    let claims = services
        .policy
        .client_credentials_claims(&auth, scope, services.clock.now())
        .map_err(ApiError::internal)?;
    let jwt = services
        .keys
        .current()
        .sign_jwt(ACCESS_TOKEN_TYP, &claims)
        .map_err(ApiError::internal)?;
    tracing::debug!(jti = %claims.jti, scope = %scope, "access token issued");
    Ok(token_response(TokenResponse {
        access_token: AccessToken(jwt),
        token_type: "Bearer",
        expires_in: services.policy.lifetime.as_secs(),
        scope,
    }))
}

/// A 200 token response with the caching headers RFC 6749 §5.1 requires.
fn token_response(body: TokenResponse) -> Response {
    (
        [
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        Json(body),
    )
        .into_response()
}
