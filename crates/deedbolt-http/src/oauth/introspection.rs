//! Token introspection, `POST /introspect` (RFC 7662).

use std::borrow::Cow;
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use deedbolt_core::client::IntrospectedToken;
use deedbolt_core::error::OAuthError;
use deedbolt_core::grant::TokenClient;
use deedbolt_core::refresh::{RefreshToken, TokenState, REFRESH_TOKEN_PREFIX};
use deedbolt_guard::{ClientCertificate, TokenRejection};
use serde_json::json;

use crate::error::ApiError;
use crate::oauth::client_auth::authenticated;
use crate::state::AppState;
use crate::web::form::read_form_params;
use crate::web::no_store::no_store_json;

/// `POST /introspect` (RFC 7662), for confidential clients. A client learns about its own
/// tokens; a resource server (registered with `--allow-introspection`) also about access
/// tokens for the audience it serves, never about other clients' refresh tokens (see
/// [`deedbolt_core::client::Client::may_introspect`]). Expired, revoked, malformed and
/// foreign tokens, and tokens the caller may not see, are all `{"active": false}`.
#[tracing::instrument(skip_all, fields(client_id))]
pub async fn introspect_endpoint(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    tls: Option<Extension<ClientCertificate>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let mut params = read_form_params(&headers, body).await?;
    let auth = authenticated(
        &state,
        peer,
        &headers,
        tls.as_ref().map(|Extension(c)| c),
        &mut params,
        "introspect",
    )
    .await?;
    // A public client proves nothing by presenting its id (RFC 7662 §2.1: the endpoint
    // requires authorization).
    let TokenClient::Confidential(auth) = auth else {
        return Err(OAuthError::UnauthorizedClient(Cow::Borrowed(
            "a public client cannot introspect tokens",
        ))
        .into());
    };
    let caller = auth.client();
    let token = params
        .take("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let s = &state.services;
    let now = s.clock.now();
    let inactive = || Ok(no_store_json(StatusCode::OK, json!({"active": false})));
    if token.starts_with(REFRESH_TOKEN_PREFIX) {
        let hash = RefreshToken::presented(&token).hash();
        let Some(r) = s.refresh.find_refresh(&hash).await? else {
            return inactive();
        };
        let active = r.state == TokenState::Active
            && !r.family_revoked
            && now < r.expires_at
            && now < r.family_expires_at;
        if !active
            || !caller.may_introspect(
                IntrospectedToken::Refresh {
                    client_id: &r.client_id,
                },
                &s.policy.audience,
            )
        {
            return inactive();
        }
        return Ok(no_store_json(
            StatusCode::OK,
            json!({
                "active": true,
                "token_type": "refresh_token",
                "scope": r.scope,
                "client_id": r.client_id,
                "sub": r.user_id,
                "iss": s.policy.issuer,
                "exp": r.expires_at,
                "iat": r.issued_at,
            }),
        ));
    }
    // The guard's verifier with its verified-token cache: a token introspected again
    // costs a hash and a lookup instead of a signature check, and the answer stays exact,
    // since a remembered token is still checked against the clock, the key set and the
    // revocation list on every request.
    let claims = match state.guard.verifier().check(&token) {
        Ok(claims) => claims,
        // Fail closed: "active" cannot be told while revocations made elsewhere may be
        // missing.
        Err(TokenRejection::Unavailable) => {
            return Err(ApiError::Unavailable(Box::new(TokenRejection::Unavailable)))
        }
        Err(_) => return inactive(),
    };
    if !caller.may_introspect(
        IntrospectedToken::Access {
            client_id: &claims.client_id,
            audience: &claims.aud,
        },
        &s.policy.audience,
    ) {
        return inactive();
    }
    // A DPoP-bound token answers as such, with its confirmation (RFC 9449 §6.2).
    let bound = claims.cnf.as_ref().is_some_and(|c| c.jkt.is_some());
    let mut answer = json!({
            "active": true,
            "token_type": if bound { "DPoP" } else { "Bearer" },
            "scope": claims.scope,
            "client_id": claims.client_id,
            "sub": claims.sub,
            "aud": claims.aud,
            "iss": claims.iss,
            "exp": claims.exp,
            "iat": claims.iat,
            "jti": claims.jti,
    });
    // The token's confirmation: `jkt` of a DPoP-bound token (RFC 9449 §6.2), `x5t#S256` of a
    // certificate-bound one (RFC 8705 §3.2), so a resource server that introspects can
    // check the binding.
    if let Some(cnf) = &claims.cnf {
        answer["cnf"] = json!(cnf);
    }
    Ok(no_store_json(StatusCode::OK, answer))
}
