//! Token revocation (RFC 7009) and introspection (RFC 7662).

use std::borrow::Cow;

use axum::body::Body;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::header::{CACHE_CONTROL, PRAGMA};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use deedbolt_core::client::IntrospectedToken;
use deedbolt_core::error::OAuthError;
use deedbolt_core::refresh::{RefreshToken, TokenState, REFRESH_TOKEN_PREFIX};
use serde_json::json;

use crate::error::ApiError;
use crate::form::FormParams;
use crate::state::AppState;
use crate::token::{authenticate, has_content_type, read_body, revoke};

async fn form(headers: &HeaderMap, body: Body) -> Result<FormParams, ApiError> {
    if !has_content_type(headers, "application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the request must be application/x-www-form-urlencoded",
        )
        .into());
    }
    Ok(FormParams::parse(&read_body(headers, body).await?)?)
}

/// Client authentication for these endpoints; failures are audited like the token
/// endpoint's.
async fn authenticated(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    params: &mut FormParams,
    endpoint: &str,
) -> Result<deedbolt_core::grant::ClientAuthenticated, ApiError> {
    match authenticate(state, headers, params).await {
        Err(e @ ApiError::OAuth(OAuthError::InvalidClient(_))) => {
            crate::token::audit_client_auth_failure(state, peer, headers, endpoint).await;
            Err(e)
        }
        other => other,
    }
}

fn no_store(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        Json(body),
    )
        .into_response()
}

/// `POST /revoke` (RFC 7009). Client-authenticated. A refresh token revokes its whole
/// family; an access token goes on the revocation list until it expires. Unknown tokens,
/// and tokens of other clients, get the same 200 and nothing happens (§2.2: the answer
/// must not tell a client anything about tokens that are not its own).
pub async fn revoke_endpoint(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let mut params = form(&headers, body).await?;
    let auth = authenticated(&state, peer, &headers, &mut params, "revoke").await?;
    let token = params
        .take("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    // token_type_hint is honoured only as the order of the look-ups; both are tried.
    let refresh_first = params.get("token_type_hint") == Some("refresh_token")
        || token.starts_with(REFRESH_TOKEN_PREFIX);
    let s = &state.services;
    let now = s.clock.now();
    let me = &auth.client().id;
    let mut done = false;
    for try_refresh in [refresh_first, !refresh_first] {
        if done {
            break;
        }
        if try_refresh {
            let hash = RefreshToken::presented(&token).hash();
            if let Some(record) = s
                .refresh
                .find_refresh(&hash)
                .await
                .map_err(ApiError::internal)?
            {
                done = true;
                if &record.client_id == me {
                    let jtis = s
                        .refresh
                        .revoke_family(&record.family_id, now)
                        .await
                        .map_err(ApiError::internal)?;
                    crate::token::announce(&state, jtis).await?;
                    tracing::info!(client_id = %me, "refresh token family revoked by its client");
                    audit_revocation(&state, me, "refresh token family").await;
                } else {
                    tracing::warn!(client_id = %me, owner = %record.client_id, "client tried to revoke another client's refresh token");
                }
            }
        } else if let Ok(claims) = state.guard.verifier().verify(&token) {
            done = true;
            if &claims.client_id == me {
                revoke(&state, &claims.jti, claims.exp).await?;
                tracing::info!(client_id = %me, jti = %claims.jti, "access token revoked by its client");
                audit_revocation(&state, me, &format!("access token jti={}", claims.jti)).await;
            } else {
                tracing::warn!(client_id = %me, owner = %claims.client_id, "client tried to revoke another client's access token");
            }
        }
    }
    Ok(no_store(StatusCode::OK, json!({})))
}

async fn audit_revocation(state: &AppState, client: &deedbolt_core::ids::ClientId, what: &str) {
    state
        .services
        .audit
        .record(
            deedbolt_core::audit::AuditRecord::new(
                deedbolt_core::audit::AuditKind::TokenRevoked,
                true,
                state.services.clock.now(),
            )
            .client(client)
            .detail(what),
        )
        .await;
}

/// `POST /introspect` (RFC 7662), for confidential clients. A client learns about its own
/// tokens; a resource server (registered with `--allow-introspection`) also about access
/// tokens for the audience it serves, never about other clients' refresh tokens (see
/// [`deedbolt_core::client::Client::may_introspect`]). Expired, revoked, malformed and
/// foreign tokens, and tokens the caller may not see, are all `{"active": false}`.
pub async fn introspect_endpoint(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let mut params = form(&headers, body).await?;
    let auth = authenticated(&state, peer, &headers, &mut params, "introspect").await?;
    // A public client proves nothing by presenting its id (RFC 7662 §2.1: the endpoint
    // requires authorization).
    if auth.client().public {
        return Err(OAuthError::UnauthorizedClient(Cow::Borrowed(
            "a public client cannot introspect tokens",
        ))
        .into());
    }
    let caller = auth.client();
    let token = params
        .take("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let s = &state.services;
    let now = s.clock.now();
    let inactive = || Ok(no_store(StatusCode::OK, json!({"active": false})));
    if token.starts_with(REFRESH_TOKEN_PREFIX) {
        let hash = RefreshToken::presented(&token).hash();
        let Some(r) = s
            .refresh
            .find_refresh(&hash)
            .await
            .map_err(ApiError::internal)?
        else {
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
        return Ok(no_store(
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
    let Ok(claims) = state.guard.verifier().verify(&token) else {
        return inactive();
    };
    // Fail closed: "active" cannot be told while revocations made elsewhere may be missing.
    if !s.revocations.is_current() {
        return Err(ApiError::Unavailable(Box::new(
            deedbolt_guard::TokenRejection::Unavailable,
        )));
    }
    if s.revocations.is_claims_revoked(&claims)
        || !caller.may_introspect(
            IntrospectedToken::Access {
                client_id: &claims.client_id,
                audience: &claims.aud,
            },
            &s.policy.audience,
        )
    {
        return inactive();
    }
    Ok(no_store(
        StatusCode::OK,
        json!({
            "active": true,
            "token_type": "Bearer",
            "scope": claims.scope,
            "client_id": claims.client_id,
            "sub": claims.sub,
            "aud": claims.aud,
            "iss": claims.iss,
            "exp": claims.exp,
            "iat": claims.iat,
            "jti": claims.jti,
        }),
    ))
}
