//! The refresh-token grant (RFC 6749 §6) with rotation and reuse detection, and the
//! issuance of a family's first token with an authorization code.

use std::borrow::Cow;

use axum::http::HeaderMap;
use axum::response::Response;
use deedbolt_core::client::{ClientKind, GrantType};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::error::OAuthError;
use deedbolt_core::flow::CodeGrant;
use deedbolt_core::grant::{AccessToken, TokenClient, TokenResponse};
use deedbolt_core::ids::ClientId;
use deedbolt_core::ports::NewFamily;
use deedbolt_core::rand;
use deedbolt_core::refresh::{
    bound_by_client, bound_by_user, decide, ClientBound, Decision, RefreshRecord, RefreshToken,
    UserBound,
};
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::token::AccessTokenClaims;
use deedbolt_guard::dpop::Jkt;

use super::dpop::{self, TokenProof};
use super::grace::CachedPair;
use super::{sign_access_token, token_response, TokenAudit};
use crate::error::ApiError;
use crate::oauth::client_auth::authenticate;
use crate::oauth::client_auth_tls;
use crate::oauth::revocation::{announce, revoke};
use crate::state::AppState;
use crate::web::form::FormParams;
use crate::web::rate_limit::Policy;
use deedbolt_guard::ClientCertificate;

fn invalid_grant(d: &'static str) -> ApiError {
    OAuthError::InvalidGrant(Cow::Borrowed(d)).into()
}

/// Signs an access token for a user of a family and records it in the family.
async fn family_access_token(
    state: &AppState,
    client: &TokenClient,
    record: &RefreshRecord,
    scope: ScopeSet,
    proof: &TokenProof,
    certificate: Option<String>,
    now: UnixTime,
) -> Result<String, ApiError> {
    let s = &state.services;
    let family_id = record.family_id.as_str();
    let mut claims = s
        .policy
        .refresh_claims(client, record, scope, now)
        .map_err(ApiError::internal)?;
    proof.bind(&mut claims);
    client_auth_tls::bind(&mut claims, certificate);
    let jwt = sign_access_token(state, &claims)?;
    if s.refresh
        .record_family_access(family_id, &claims.jti, claims.exp)
        .await?
    {
        // The family was revoked while this token was being made (a concurrent reuse).
        revoke(state, &claims.jti, claims.exp).await?;
        return Err(invalid_grant("the refresh token was already used"));
    }
    Ok(jwt)
}

/// Starts a family for a code redemption, recording the access token issued with it;
/// returns the family's id and its first refresh token.
pub(crate) async fn start_family(
    state: &AppState,
    grant: &CodeGrant,
    access: &AccessTokenClaims,
    dpop_jkt: Option<&Jkt>,
    now: UnixTime,
) -> Result<(String, RefreshToken), ApiError> {
    let s = &state.services;
    let token = RefreshToken::generate().map_err(ApiError::internal)?;
    let family = NewFamily {
        family_id: rand::token::<16>().map_err(ApiError::internal)?,
        client_id: grant.client_id.clone(),
        user_id: grant.user_id.clone(),
        scope: grant.scope,
        auth_time: grant.auth_time,
        expires_at: now.plus_secs(s.refresh_policy.absolute_secs),
        dpop_jkt: dpop_jkt.map(|j| j.to_string()),
    };
    let expires = now
        .plus_secs(s.refresh_policy.idle_secs)
        .min(family.expires_at);
    s.refresh
        .create_family(&family, &token.hash(), now, expires)
        .await?;
    // A family this new cannot have been revoked yet; the flag matters for rotations.
    s.refresh
        .record_family_access(&family.family_id, &access.jti, access.exp)
        .await?;
    Ok((family.family_id, token))
}

/// Revokes a family in the store and puts its live access tokens on this instance's
/// revocation list at once (the other instances pick them up at their next sync).
pub(crate) async fn revoke_family(
    state: &AppState,
    family_id: &str,
    now: UnixTime,
) -> Result<(), ApiError> {
    let jtis = state.services.refresh.revoke_family(family_id, now).await?;
    announce(state, jtis).await
}

fn respond(pair: CachedPair) -> Response {
    token_response(TokenResponse {
        access_token: AccessToken(pair.access),
        token_type: if pair.dpop { "DPoP" } else { "Bearer" },
        expires_in: pair.expires_in,
        scope: pair.scope,
        refresh_token: Some(AccessToken(pair.refresh)),
        id_token: None,
    })
}

/// `grant_type=refresh_token`
pub(crate) async fn refresh_token_grant(
    state: &AppState,
    headers: &HeaderMap,
    tls: Option<&ClientCertificate>,
    htu: &str,
    params: &mut FormParams,
    audit: &mut TokenAudit,
) -> Result<Response, ApiError> {
    let s = &state.services;
    let auth = authenticate(state, headers, tls, params).await?;
    audit.client_id = Some(auth.client().id.to_string());
    let bound = client_auth_tls::certificate_binding(auth.client(), tls)?;
    if !auth.client().allows_grant(GrantType::RefreshToken) {
        return Err(OAuthError::UnauthorizedClient(Cow::Borrowed(
            "this client is not registered for the refresh_token grant",
        ))
        .into());
    }
    // A public client is limited per client and IP before any work (see the code grant).
    let public_allowance = if auth.kind() == ClientKind::Public {
        Some(
            crate::limits::check(
                state,
                Policy::Refresh,
                s.limits.refresh,
                &audit.limit_key(&auth),
            )
            .await?,
        )
    } else {
        None
    };
    let proof = dpop::token_proof(state, headers, htu, auth.client()).await?;
    super::require_sender_constraint(state, &proof, bound.as_ref())?;
    let presented = params
        .take("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let presented = RefreshToken::presented(&presented);
    let requested = match params.get("scope") {
        Some(sc) => Some(
            sc.parse::<ScopeSet>()
                .map_err(|e| OAuthError::InvalidScope(e.to_string().into()))?,
        ),
        None => None,
    };
    let old_hash = presented.hash();
    let now = s.clock.now();
    let Some(record) = s.refresh.find_refresh(&old_hash).await? else {
        return Err(invalid_grant("unknown refresh token"));
    };
    // A family bound to a DPoP key (a public client's, RFC 9449 §5) refreshes only with a
    // proof by that key: checked before anything else, so a stolen bound token neither
    // rotates nor, presented without the key, revokes the owner's family.
    proof.require_key(
        state,
        record.dpop_jkt.as_deref(),
        "the refresh token is bound to another DPoP key",
    )?;
    let client_id = auth.client().id.clone();
    audit.user_id = Some(record.user_id.to_string());
    // A confidential client: per client *and user*, since a refresh token is one user's
    // credential and a client serving many users (a backend-for-frontend) must not share
    // one quota among them.
    let allowance = match public_allowance {
        Some(a) => a,
        None => {
            crate::limits::check(
                state,
                Policy::Refresh,
                s.limits.refresh,
                &audit.user_limit_key(&auth, record.user_id.as_str()),
            )
            .await?
        }
    };
    let decision = decide(&record, &client_id, requested, &s.refresh_policy, now);
    match decision {
        Decision::Rotate(scope) => {
            // The client as it is registered now: a scope removed from it since the
            // family was granted is not issued again.
            let scope = match bound_by_client(scope, auth.client().scopes) {
                ClientBound::Scope(scope) => scope,
                ClientBound::NothingRegistered => {
                    return Err(invalid_grant(
                        "the client is no longer registered for any of the granted scope",
                    ))
                }
            };
            // The user as they are now: deleted users get nothing (and their family is
            // revoked), demoted users only what their current role may delegate.
            let user = s.users.find_user(&record.user_id).await?;
            let scope = match bound_by_user(scope, user.map(|u| u.role)) {
                UserBound::Scope(scope) => scope,
                UserBound::UserGone => {
                    tracing::info!(family_id = %record.family_id, "refresh for a deleted user; family revoked");
                    revoke_family(state, &record.family_id, now).await?;
                    return Err(invalid_grant("the user no longer exists"));
                }
                UserBound::NothingDelegable => {
                    return Err(invalid_grant(
                        "the user's current role allows none of the granted scope",
                    ))
                }
            };
            let new = RefreshToken::generate().map_err(ApiError::internal)?;
            let expires = now
                .plus_secs(s.refresh_policy.idle_secs)
                .min(record.family_expires_at);
            if !s
                .refresh
                .rotate_refresh(&old_hash, &new.hash(), now, expires)
                .await?
            {
                // Another request rotated it between our read and our update.
                return concurrent_use(state, &presented, &record.family_id, now).await;
            }
            // RFC 9449 §5: a public client's refresh token issued in answer to a valid
            // proof MUST be bound to its key. A family started without a proof is bound
            // here, at its first refresh with one, and only by the request that won the
            // rotation above: a request refused before or racing and losing it changes
            // nothing. A confidential client's family is bound by its authentication and
            // stays unbound.
            if auth.kind() == ClientKind::Public && record.dpop_jkt.is_none() {
                if let Some(jkt) = proof.jkt() {
                    if !s
                        .refresh
                        .bind_family_key(&record.family_id, jkt.as_str())
                        .await?
                    {
                        // Only code redemption binds otherwise, when the family is made.
                        return Err(invalid_grant(
                            "the refresh token is bound to another DPoP key",
                        ));
                    }
                    tracing::info!(family_id = %record.family_id, "refresh-token family bound to the DPoP key of its first proof");
                }
            }
            let access =
                family_access_token(state, &auth, &record, scope, &proof, bound, now).await?;
            let pair = CachedPair {
                dpop: proof.jkt().is_some(),
                access,
                refresh: new.expose().to_owned(),
                scope,
                expires_in: s.policy.lifetime.as_secs(),
            };
            if s.refresh_policy.grace_secs > 0 {
                state
                    .grace
                    .put(
                        &presented,
                        &pair,
                        now,
                        now.plus_secs(s.refresh_policy.grace_secs),
                    )
                    .await?;
            }
            tracing::info!(client_id = %client_id, user_id = %record.user_id, "refresh token rotated");
            s.metrics.token_issued(GrantType::RefreshToken);
            let mut response = respond(pair);
            if let Some(a) = allowance {
                a.apply(response.headers_mut());
            }
            Ok(response)
        }
        // The winner may still be signing its answer: wait for it as after a lost race.
        Decision::ReplayWithinGrace => {
            concurrent_use(state, &presented, &record.family_id, now).await
        }
        Decision::Reuse => reuse(state, &record.family_id, &client_id, now).await,
        Decision::WrongClient => {
            tracing::warn!(
                presenter = %client_id,
                owner = %record.client_id,
                "suspicious: refresh token presented by a client it was not issued to"
            );
            Err(invalid_grant(
                "the refresh token was issued to another client",
            ))
        }
        Decision::Dead => Err(invalid_grant(
            "the refresh token has expired or was revoked",
        )),
        Decision::ScopeWidened => Err(OAuthError::InvalidScope(Cow::Borrowed(
            "a refresh may narrow the scope, never widen it",
        ))
        .into()),
    }
}

/// Lost a rotation race: within the grace period wait briefly for the winner's answer;
/// otherwise this is reuse.
async fn concurrent_use(
    state: &AppState,
    presented: &RefreshToken,
    family_id: &str,
    now: UnixTime,
) -> Result<Response, ApiError> {
    let s = &state.services;
    if s.refresh_policy.grace_secs > 0 {
        // The winner is signing its answer right now; it lands in the cache within
        // milliseconds. Bounded: at most ~1 s.
        for _ in 0..100 {
            if let Some(pair) = state.grace.get(presented, now).await? {
                return Ok(respond(pair));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    tracing::warn!(
        family_id,
        "refresh token used concurrently outside the grace period: treated as reuse"
    );
    revoke_family(state, family_id, now).await?;
    Err(invalid_grant("the refresh token was already used"))
}

async fn reuse(
    state: &AppState,
    family_id: &str,
    client_id: &ClientId,
    now: UnixTime,
) -> Result<Response, ApiError> {
    tracing::warn!(%client_id, family_id, "security: refresh token reuse detected; family revoked");
    revoke_family(state, family_id, now).await?;
    state
        .services
        .audit
        .record(
            deedbolt_core::audit::AuditRecord::new(
                deedbolt_core::audit::AuditKind::ReuseDetected,
                false,
                now,
            )
            .client(client_id)
            .detail("refresh token reused; family revoked"),
        )
        .await;
    Err(invalid_grant("the refresh token was already used"))
}
