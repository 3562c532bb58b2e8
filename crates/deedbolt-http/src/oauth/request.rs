//! Validating an authorization request: the one rule set of `/authorize`
//! ([`crate::oauth::authorize`]) and of pushed requests at `/par` ([`crate::oauth::par`]),
//! around [`AuthorizationRequest::validate`].

use deedbolt_core::client::Client;
use deedbolt_core::flow::{AuthorizationRequest, AuthorizeError, Params};

use crate::state::AppState;

/// Validates an authorization request's parameters for `client`: the one rule set of
/// `/authorize` and of pushed requests at `/par` ([`crate::oauth::par`]). A request that
/// passed the client, redirect-URI and PKCE checks but names scopes beyond the client's
/// registration feeds the unusual-scope rule here, wherever it arrived.
pub(crate) async fn validate_request(
    state: &AppState,
    params: &(dyn Params + Sync),
    client: Option<&Client>,
    duplicate: Option<&str>,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let result = AuthorizationRequest::validate(params, client, duplicate);
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
