//! Token revocation, `POST /revoke` (RFC 7009), and the revocation of access tokens the
//! other endpoints decide on (a replayed code, a reused refresh token): here at once, in
//! the store for the other instances, and announced on the revocation feed.

use axum::body::Body;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use deedbolt_core::error::OAuthError;
use deedbolt_core::refresh::{RefreshToken, REFRESH_TOKEN_PREFIX};
use deedbolt_guard::ClientCertificate;
use serde_json::json;

use crate::error::ApiError;
use crate::oauth::client_auth::authenticated;
use crate::state::AppState;
use crate::web::form::read_form_params;
use crate::web::no_store::no_store_json;

/// `POST /revoke` (RFC 7009). Client-authenticated. A refresh token revokes its whole
/// family; an access token goes on the revocation list until it expires. Unknown tokens,
/// and tokens of other clients, get the same 200 and nothing happens (§2.2: the answer
/// must not tell a client anything about tokens that are not its own).
#[tracing::instrument(skip_all, fields(client_id))]
pub async fn revoke_endpoint(
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
        "revoke",
    )
    .await?;
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
            if let Some(record) = s.refresh.find_refresh(&hash).await? {
                done = true;
                if &record.client_id == me {
                    let jtis = s.refresh.revoke_family(&record.family_id, now).await?;
                    announce(&state, jtis).await?;
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
    Ok(no_store_json(StatusCode::OK, json!({})))
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

/// Revokes an access token here (at once) and in the store (for other instances), then
/// announces it.
pub(crate) async fn revoke(
    state: &AppState,
    jti: &deedbolt_core::ids::TokenId,
    exp: deedbolt_core::clock::UnixTime,
) -> Result<(), ApiError> {
    let services = &state.services;
    services.revocations.revoke_local(jti.clone(), exp);
    services
        .flow
        .revoke_token(jti, exp, services.clock.now())
        .await?;
    announce(state, [(jti.clone(), exp)]).await
}

/// Applies revocations the store has already recorded to this instance's list and tells
/// the other instances through the revocation feed, so their guards refuse the tokens
/// within a second instead of at their next store sync. A feed that cannot be reached is
/// a 503 (the revocation itself is durable; every instance also picks it up from the
/// store).
pub(crate) async fn announce(
    state: &AppState,
    revoked: impl IntoIterator<Item = (deedbolt_core::ids::TokenId, deedbolt_core::clock::UnixTime)>,
) -> Result<(), ApiError> {
    let services = &state.services;
    let mut failed = None;
    for (jti, expires_at) in revoked {
        services.revocations.revoke_local(jti.clone(), expires_at);
        // Every entry is applied locally even if the feed fails for one.
        if let Err(e) = services
            .revocation_feed
            .publish(&deedbolt_core::revocation::Revoked { jti, expires_at })
            .await
        {
            failed = Some(e);
        }
    }
    match failed {
        Some(e) => Err(ApiError::internal(e)),
        None => Ok(()),
    }
}
