//! `private_key_jwt` client authentication (RFC 7523 §2.2, RFC 7521 §4.2, OpenID Connect
//! Core §9) at every endpoint that authenticates clients: [`crate::oauth::client_auth`]
//! hands requests carrying `client_assertion` here.
//!
//! The steps, each leaving the next one's input (see `deedbolt_core::assertion`): parse the
//! assertion and read the client it claims ([`presented`]); look the client up and require
//! that it registered `private_key_jwt` (one method per client: a secret client's
//! assertion, or a `private_key_jwt` client's secret, is refused); get its keys, inline or
//! from its `jwks_uri` ([`crate::oauth::client_keys`]); verify signature and claims
//! against the issuer identifier, the only audience accepted (RFC 10070); record the `jti` in the replay cache until
//! the assertion expires (a second use is `invalid_client`); only then is there a
//! `ClientAuthenticated` proof.
//!
//! Every failure is `invalid_client`; failures before the signature is verified share one
//! message. Why a client's keys could not be had (an unreachable `jwks_uri`, an invalid
//! set) is logged, never told to the caller.

use std::borrow::Cow;
use std::sync::Arc;

use deedbolt_core::assertion::{
    self, AssertionError, AssertionRules, PresentedAssertion, CLIENT_ASSERTION_TYPE,
};
use deedbolt_core::client::{AuthMethod, Client};
use deedbolt_core::client_jwks::{AssertionAlg, ClientJwks};
use deedbolt_core::error::OAuthError;
use deedbolt_core::grant::ClientAuthenticated;

use crate::error::ApiError;
use crate::oauth::client_keys::{ClientKeys, KeysError};
use crate::state::AppState;

/// What a request presented besides the assertion, for [`presented`].
#[derive(Debug)]
pub(crate) struct OtherCredentials {
    /// An `Authorization` header was sent.
    pub(crate) header: bool,
    /// The body's `client_id`, if any.
    pub(crate) client_id: Option<String>,
    /// A `client_secret` was sent in the body.
    pub(crate) secret: bool,
}

/// The assertion of a request that sent `client_assertion_type` or `client_assertion`:
/// both required, the type the JWT bearer one, no other authentication method alongside,
/// and a body `client_id`, if sent, naming the assertion's subject (RFC 7521 §4.2).
pub(crate) fn presented(
    assertion_type: Option<&str>,
    assertion: Option<&str>,
    other: &OtherCredentials,
) -> Result<PresentedAssertion, OAuthError> {
    if other.header || other.secret {
        return Err(OAuthError::invalid_request(
            "use one client authentication method, not a client assertion and a secret",
        ));
    }
    let (Some(assertion_type), Some(assertion)) = (assertion_type, assertion) else {
        return Err(OAuthError::invalid_request(
            "client_assertion and client_assertion_type must be sent together",
        ));
    };
    if assertion_type != CLIENT_ASSERTION_TYPE {
        return Err(OAuthError::InvalidClient(Cow::Borrowed(
            "unsupported client_assertion_type (use urn:ietf:params:oauth:client-assertion-type:jwt-bearer)",
        )));
    }
    let presented = PresentedAssertion::parse(assertion)?;
    if other
        .client_id
        .as_deref()
        .is_some_and(|id| id != presented.claimed_client_id().as_str())
    {
        return Err(OAuthError::InvalidClient(Cow::Borrowed(
            "client_id differs from the client_assertion's sub",
        )));
    }
    Ok(presented)
}

/// Authenticates the client of `presented`.
pub(crate) async fn authenticate(
    state: &AppState,
    presented: PresentedAssertion,
) -> Result<ClientAuthenticated, ApiError> {
    let services = &state.services;
    let client_id = presented.claimed_client_id().clone();
    tracing::Span::current().record("client_id", client_id.as_str());
    // FAPI 2.0 SP §5.4.1: no RS256 under the profile.
    if !services.profile.allows_jws_alg(presented.alg().as_str()) {
        return Err(refuse(AssertionError::Algorithm));
    }
    let client = match services.clients.find_client(&client_id).await? {
        Some(c) if c.auth_method() == AuthMethod::PrivateKeyJwt => c,
        _ => return Err(refuse(AssertionError::Failed)),
    };
    let keys = match client_jwks(&services.client_keys, &client, presented.kid()).await {
        Ok(keys) => keys,
        Err(e) => {
            tracing::warn!(
                client_id = %client.id,
                reason = %e,
                "cannot get the client's keys for private_key_jwt"
            );
            return Err(refuse(AssertionError::Failed));
        }
    };
    let required_alg = match client.metadata.token_endpoint_auth_signing_alg.as_deref() {
        None => None,
        Some(alg) => Some(alg.parse::<AssertionAlg>().map_err(|_| {
            tracing::warn!(client_id = %client.id, "the client's registered token_endpoint_auth_signing_alg is not supported");
            refuse(AssertionError::Failed)
        })?),
    };
    let verified = assertion::verify(
        &presented,
        &client.id,
        &keys,
        &AssertionRules {
            issuer: &services.policy.issuer,
            audience_as_string: services.profile.assertion_audience_must_be_a_string(),
            required_alg,
            now: services.clock.now(),
        },
    )
    .map_err(refuse)?;
    let Some(redeemed) = verified.redeem(services.replay.as_ref()).await? else {
        return Err(refuse(AssertionError::Replayed));
    };
    Ok(redeemed.authenticate(client)?)
}

/// An assertion failure as the endpoint's error (`invalid_client`).
fn refuse(e: AssertionError) -> ApiError {
    ApiError::OAuth(e.into())
}

/// The client's registered keys: inline `jwks`, else fetched from `jwks_uri`.
async fn client_jwks(
    fetcher: &ClientKeys,
    client: &Client,
    kid: Option<&str>,
) -> Result<Arc<ClientJwks>, KeysError> {
    if let Some(jwks) = &client.metadata.jwks {
        return Ok(Arc::new(ClientKeys::inline(jwks)?));
    }
    if let Some(uri) = &client.metadata.jwks_uri {
        return fetcher.from_uri(uri, kid).await;
    }
    Err(KeysError::NoKeys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> OtherCredentials {
        OtherCredentials {
            header: false,
            client_id: None,
            secret: false,
        }
    }

    #[test]
    fn type_and_assertion_go_together() {
        let e = presented(Some(CLIENT_ASSERTION_TYPE), None, &none()).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        let e = presented(None, Some("a.b.c"), &none()).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        let e = presented(Some("urn:other"), Some("a.b.c"), &none()).unwrap_err();
        assert_eq!(e.code(), "invalid_client");
    }

    #[test]
    fn a_second_method_is_invalid_request() {
        let other = OtherCredentials {
            secret: true,
            ..none()
        };
        let e = presented(Some(CLIENT_ASSERTION_TYPE), Some("a.b.c"), &other).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
    }
}
