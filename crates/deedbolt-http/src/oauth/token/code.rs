//! The authorization code grant at the token endpoint (RFC 6749 §4.1.3, RFC 7636 §4.6).

use std::borrow::Cow;

use axum::http::HeaderMap;
use axum::response::Response;
use deedbolt_core::audit::{AuditKind, AuditRecord};
use deedbolt_core::client::ClientKind;
use deedbolt_core::client::GrantType;
use deedbolt_core::error::OAuthError;
use deedbolt_core::flow::{self, CodeExchange};
use deedbolt_core::grant::{AccessToken, TokenClient, TokenResponse};
use deedbolt_core::ports::Redemption;

use super::{refresh, sign_access_token, token_response, TokenAudit};
use crate::error::ApiError;
use crate::oauth::client_auth::authenticate;
use crate::oauth::client_auth_tls;
use crate::oauth::revocation::{announce, revoke};
use crate::state::AppState;
use crate::web::form::FormParams;
use crate::web::rate_limit::Policy;
use deedbolt_guard::ClientCertificate;

/// A code redeemed a second time by its own client, with the right verifier (RFC 6749
/// §4.1.2): revokes the access token issued from the first redemption and the refresh
/// family started with it, and answers `invalid_grant`.
async fn replayed(
    state: &AppState,
    auth: &TokenClient,
    issued: Option<(deedbolt_core::ids::TokenId, deedbolt_core::clock::UnixTime)>,
    now: deedbolt_core::clock::UnixTime,
) -> Result<Response, ApiError> {
    let services = &state.services;
    if let Some((jti, exp)) = issued {
        revoke(state, &jti, exp).await?;
        if let Some(family) = services.refresh.family_of_access(&jti).await? {
            let jtis = services.refresh.revoke_family(&family, now).await?;
            announce(state, jtis).await?;
        }
    }
    services
        .audit
        .record(
            AuditRecord::new(AuditKind::ReuseDetected, false, now)
                .client(&auth.client().id)
                .detail("authorization code replayed"),
        )
        .await;
    tracing::warn!(client_id = %auth.client().id, "authorization code replayed; tokens issued from it revoked");
    Err(OAuthError::InvalidGrant(Cow::Borrowed("the code was already used")).into())
}

pub(super) async fn authorization_code(
    state: &AppState,
    headers: &HeaderMap,
    tls: Option<&ClientCertificate>,
    htu: &str,
    params: &mut FormParams,
    audit: &mut TokenAudit,
) -> Result<Response, ApiError> {
    let services = &state.services;
    let auth = authenticate(state, headers, tls, params).await?;
    audit.client_id = Some(auth.client().id.to_string());
    // Before the code is spent: a client whose tokens must be certificate-bound and that
    // presented no certificate keeps its code.
    let bound = client_auth_tls::certificate_binding(auth.client(), tls)?;
    // A public client proves nothing by presenting its id: it is limited per client and IP
    // before any work. A confidential client is limited per client and user, below.
    let public_allowance = if auth.kind() == ClientKind::Public {
        Some(
            crate::limits::check(
                state,
                Policy::Token,
                services.limits.token,
                &audit.limit_key(&auth),
            )
            .await?,
        )
    } else {
        None
    };
    if !auth.client().allows_grant(GrantType::AuthorizationCode) {
        return Err(OAuthError::UnauthorizedClient(Cow::Borrowed(
            "this client is not registered for the authorization_code grant",
        ))
        .into());
    }
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let code_hash = flow::code_hash(code);
    let now = services.clock.now();
    // Check the client binding, redirect URI and PKCE against the stored grant *before*
    // spending the code (RFC 9700 §4.5, RFC 7636 §4.6): a request that fails here changes
    // nothing, so a stolen code presented by another client, or without the verifier,
    // neither burns it nor revokes the user's tokens as a "replay".
    let Some(stored) = services.flow.peek_code(&code_hash).await? else {
        return Err(OAuthError::InvalidGrant(Cow::Borrowed("unknown or expired code")).into());
    };
    let exchange = CodeExchange {
        redirect_uri: params.get("redirect_uri"),
        code_verifier: params.get("code_verifier"),
    };
    let pkce = flow::check_exchange(&auth, &stored, &exchange)?;
    // The proof, and the key the code is bound to (`dpop_jkt`, RFC 9449 §10), before the
    // code is spent.
    let proof = super::dpop::token_proof(state, headers, htu, auth.client()).await?;
    super::require_sender_constraint(state, &proof, bound.as_ref())?;
    proof.require_key(
        state,
        stored.dpop_jkt.as_deref(),
        "the code is bound to another DPoP key",
    )?;
    if stored.scope.is_empty() {
        // No code is issued for nothing (the consent refuses it), but one stored by an
        // older version must not turn into a token that grants nothing.
        return Err(OAuthError::InvalidGrant(Cow::Borrowed("the code grants no scope")).into());
    }
    // FAPI 2.0 SP §5.4.1 at issuance too: the client's ID-token algorithm may have changed
    // since the request was authorized. The code is kept for when it is mended.
    if flow::wants_id_token(&stored)
        && !services
            .profile
            .allows_jws_alg(auth.client().id_token_alg.as_str())
    {
        return Err(OAuthError::UnauthorizedClient(Cow::Borrowed(
            crate::oauth::request::ID_TOKEN_ALG_REFUSED,
        ))
        .into());
    }
    // A confidential client: per client *and user*, since each code stands for one
    // user's fresh login and a client serving many users (a backend-for-frontend) must not
    // share one quota among them. Checked before redemption, so a code refused for the
    // limit is not spent.
    let allowance = match public_allowance {
        Some(a) => a,
        None => {
            crate::limits::check(
                state,
                Policy::Token,
                services.limits.token,
                &audit.user_limit_key(&auth, stored.user_id.as_str()),
            )
            .await?
        }
    };
    // Redemption itself stays one conditional update: of concurrent requests that all
    // passed the checks, exactly one gets the code; the others are genuine replays.
    let grant = match services.flow.redeem_code(&code_hash, now).await? {
        Redemption::Fresh(grant) => grant,
        Redemption::Unknown => {
            return Err(OAuthError::InvalidGrant(Cow::Borrowed("unknown or expired code")).into())
        }
        Redemption::Replayed(issued) => {
            // RFC 6749 §4.1.2: a code used twice revokes what was issued from it. Only a
            // replay by the code's own client with the right verifier gets here.
            return replayed(state, &auth, issued, now).await;
        }
    };
    flow::check_unexpired(&grant, now)?;
    if services.users.find_user(&grant.user_id).await?.is_none() {
        return Err(OAuthError::InvalidGrant(Cow::Borrowed("the user no longer exists")).into());
    }
    let policy = &services.policy;
    let mut claims = policy
        .code_claims(&auth, &grant, pkce, now)
        .map_err(ApiError::internal)?;
    proof.bind(&mut claims);
    client_auth_tls::bind(&mut claims, bound);
    let access = sign_access_token(state, &claims)?;
    // The family exists, with this access token in it, before the token is recorded on the
    // code: a replay that finds the token recorded then finds the family too and revokes it
    // (another instance's replay may land at any point in between).
    let family = if auth.client().allows_grant(GrantType::RefreshToken) {
        // A public client's family is bound to the proof key (RFC 9449 §5); a
        // confidential client's is bound by its authentication.
        let family_key = match auth.kind() {
            ClientKind::Public => proof.jkt(),
            ClientKind::Confidential => None,
        };
        Some(refresh::start_family(state, &grant, &claims, family_key, now).await?)
    } else {
        None
    };
    if services
        .flow
        .record_code_token(&code_hash, &claims.jti, claims.exp)
        .await?
    {
        // A replay arrived between redemption and now: nothing issued here may live.
        revoke(state, &claims.jti, claims.exp).await?;
        if let Some((family_id, _)) = &family {
            refresh::revoke_family(state, family_id, now).await?;
        }
        return Err(OAuthError::InvalidGrant(Cow::Borrowed("the code was already used")).into());
    }
    let id_token = if flow::wants_id_token(&grant) {
        // Signed with the algorithm the client registered (OpenID Connect Core §3.1.3.7:
        // RS256 unless it asked otherwise), which need not be the access tokens' one; the
        // at_hash follows the ID token's algorithm (§3.1.3.6).
        let id_key = services.keys.signer(auth.client().id_token_alg);
        let id = policy.id_token_claims(&grant, &access, id_key.alg(), now);
        Some(AccessToken(
            id_key.sign_jwt("JWT", &id).map_err(ApiError::internal)?,
        ))
    } else {
        None
    };
    let refresh_token = family.map(|(_, token)| AccessToken(token.expose().to_owned()));
    tracing::info!(jti = %claims.jti, user_id = %grant.user_id, scope = %grant.scope, "access token issued for a code");
    services.metrics.token_issued(GrantType::AuthorizationCode);
    audit.user_id = Some(grant.user_id.to_string());
    audit.scope = Some(grant.scope.to_string());
    audit.jti = Some(claims.jti.to_string());
    services
        .security
        .scopes_issued(grant.client_id.as_str(), grant.scope, now)
        .await;
    let mut response = token_response(TokenResponse {
        access_token: AccessToken(access),
        token_type: proof.token_type(),
        expires_in: policy.lifetime.as_secs(),
        scope: grant.scope,
        refresh_token,
        id_token,
    });
    if let Some(a) = allowance {
        a.apply(response.headers_mut());
    }
    Ok(response)
}
