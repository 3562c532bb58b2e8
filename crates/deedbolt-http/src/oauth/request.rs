//! Validating an authorization request: the one rule set of `/authorize`
//! ([`crate::oauth::authorize`]) and of pushed requests at `/par` ([`crate::oauth::par`]),
//! around [`AuthorizationRequest::validate`].

use deedbolt_core::client::Client;
use deedbolt_core::flow::{AuthorizationRequest, AuthorizeError, AuthzErrorCode, Params};
use deedbolt_core::scope::Scope;

use crate::state::AppState;

/// Validates an authorization request's parameters for `client`: the one rule set of
/// `/authorize` and of pushed requests at `/par` ([`crate::oauth::par`]). A request that
/// passed the client, redirect-URI and PKCE checks but names scopes beyond the client's
/// registration feeds the unusual-scope rule here, wherever it arrived. A request for an
/// ID token whose algorithm the security profile forbids (a client registered with RS256
/// under `--profile fapi2`, FAPI 2.0 SP §5.4.1) is refused before the user sees anything,
/// rather than after its code is spent.
pub(crate) async fn validate_request(
    state: &AppState,
    params: &(dyn Params + Sync),
    client: Option<&Client>,
    duplicate: Option<&str>,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let result = AuthorizationRequest::validate(params, client, duplicate);
    if let (Ok(request), Some(c)) = (&result, client) {
        id_token_alg_allowed(state, request, c)?;
    }
    if let (Err(AuthorizeError::ScopeBeyondRegistration { requested, .. }), Some(c)) =
        (&result, client)
    {
        // Only now, with client, redirect URI and PKCE checked, may the request feed
        // the unusual-scope rule (which bounds its own alerts per client).
        state
            .services
            .security
            .scope_request(
                c.id.as_str(),
                c.scopes,
                *requested,
                state.services.clock.now(),
            )
            .await;
    }
    result
}

/// Why an ID token cannot be issued to `client` under the server's security profile.
pub(crate) const ID_TOKEN_ALG_REFUSED: &str =
    "this client's ID tokens are registered as RS256, which the server's fapi2 profile does \
     not allow: register id_token_signed_response_alg ES256 or EdDSA";

/// Refuses `request` if it asks for an ID token (`openid`) that `client` would get signed
/// with an algorithm the security profile forbids (FAPI 2.0 SP §5.4.1: no RS256 under
/// fapi2). Asked wherever a request is (re)validated: at `/authorize`, at `/par`, and when a
/// pushed request is taken, since the client's algorithm may have changed since the push.
pub(crate) fn id_token_alg_allowed(
    state: &AppState,
    request: &AuthorizationRequest,
    client: &Client,
) -> Result<(), AuthorizeError> {
    if request.scope.contains(Scope::Openid)
        && !state
            .services
            .profile
            .allows_jws_alg(client.id_token_alg.as_str())
    {
        return Err(AuthorizeError::Redirect(
            request.error(AuthzErrorCode::UnauthorizedClient, ID_TOKEN_ALG_REFUSED),
        ));
    }
    Ok(())
}
