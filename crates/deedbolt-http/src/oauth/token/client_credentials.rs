//! The client credentials grant (RFC 6749 §4.4).

use axum::http::HeaderMap;
use axum::response::Response;
use std::borrow::Cow;

use deedbolt_core::client::GrantType;
use deedbolt_core::error::OAuthError;
use deedbolt_core::grant::{self, AccessToken, TokenClient, TokenResponse};

use super::{sign_access_token, token_response, TokenAudit};
use crate::error::ApiError;
use crate::oauth::client_auth::authenticate;
use crate::oauth::client_auth_tls;
use crate::state::AppState;
use crate::web::form::FormParams;
use crate::web::rate_limit::Policy;
use deedbolt_guard::ClientCertificate;

pub(super) async fn client_credentials(
    state: &AppState,
    headers: &HeaderMap,
    tls: Option<&ClientCertificate>,
    htu: &str,
    params: &mut FormParams,
    audit: &mut TokenAudit,
) -> Result<Response, ApiError> {
    let services = &state.services;
    // A public client cannot be registered for client credentials, so the grant check in
    // `client_credentials_scope` refuses it.
    let auth = authenticate(state, headers, tls, params).await?;
    audit.client_id = Some(auth.client().id.to_string());
    let bound = client_auth_tls::certificate_binding(auth.client(), tls)?;
    // An authenticated request: scopes beyond the registration may alert. (No `scope`
    // means the registered scopes; the first use of privileged ones is judged on issuance.)
    let requested = match params.get("scope") {
        Some(sc) => sc.parse().ok(),
        None => Some(auth.client().scopes),
    };
    if let Some(requested) = requested {
        audit.scope = params.get("scope").map(str::to_owned);
        services
            .security
            .scope_request(
                auth.client().id.as_str(),
                auth.client().scopes,
                requested,
                services.clock.now(),
            )
            .await;
    }
    let allowance = crate::limits::check(
        state,
        Policy::Token,
        services.limits.token,
        &audit.limit_key(&auth),
    )
    .await?;
    // Only a confidential client holds the proof this grant needs (a public client cannot
    // be registered for it: the same answer as for any client without the grant).
    let TokenClient::Confidential(auth) = auth else {
        return Err(OAuthError::UnauthorizedClient(Cow::Borrowed(
            "this client is not registered for the client_credentials grant",
        ))
        .into());
    };
    let scope = grant::client_credentials_scope(&auth, params.get("scope"))?;
    let proof = super::dpop::token_proof(state, headers, htu, auth.client()).await?;
    super::require_sender_constraint(state, &proof, bound.as_ref())?;
    let mut claims = services
        .policy
        .client_credentials_claims(&auth, scope, services.clock.now())
        .map_err(ApiError::internal)?;
    proof.bind(&mut claims);
    client_auth_tls::bind(&mut claims, bound);
    let jwt = sign_access_token(state, &claims)?;
    tracing::debug!(jti = %claims.jti, scope = %scope, "access token issued");
    services.metrics.token_issued(GrantType::ClientCredentials);
    audit.scope = Some(scope.to_string());
    audit.jti = Some(claims.jti.to_string());
    // First use of a privileged scope: judged on what was issued, never on requests.
    services
        .security
        .scopes_issued(auth.client().id.as_str(), scope, services.clock.now())
        .await;
    let mut response = token_response(TokenResponse {
        access_token: AccessToken(jwt),
        token_type: proof.token_type(),
        expires_in: services.policy.lifetime.as_secs(),
        scope,
        refresh_token: None,
        id_token: None,
    });
    if let Some(a) = allowance {
        a.apply(response.headers_mut());
    }
    Ok(response)
}
