//! The OAuth 2.0 error codes, one variant per code, as RFC 6749 §5.2 defines them.
//!
//! These are the errors a *client* may see. Internal failures (a database down, a broken
//! random source) are not OAuth errors: the HTTP layer reports them as a generic
//! `server_error` and logs the details, never echoing them to the client.

use std::borrow::Cow;

/// An error answer of the token endpoint (RFC 6749 §5.2).
///
/// The description is for the client developer: it says what was wrong with the request,
/// never anything secret and never whether a particular client exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// "The request is missing a required parameter, includes an unsupported parameter
    /// value (other than grant type), repeats a parameter, includes multiple credentials,
    /// utilizes more than one mechanism for authenticating the client, or is otherwise
    /// malformed."
    #[error("invalid_request: {0}")]
    InvalidRequest(Cow<'static, str>),
    /// "Client authentication failed (e.g., unknown client, no client authentication
    /// included, or unsupported authentication method)." Answered with 401 and a
    /// `WWW-Authenticate` challenge.
    #[error("invalid_client: {0}")]
    InvalidClient(Cow<'static, str>),
    /// "The provided authorization grant (e.g., authorization code, resource owner
    /// credentials) or refresh token is invalid, expired, revoked, does not match the
    /// redirection URI used in the authorization request, or was issued to another client."
    #[error("invalid_grant: {0}")]
    InvalidGrant(Cow<'static, str>),
    /// "The authenticated client is not authorized to use this authorization grant type."
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(Cow<'static, str>),
    /// "The authorization grant type is not supported by the authorization server."
    #[error("unsupported_grant_type: {0}")]
    UnsupportedGrantType(Cow<'static, str>),
    /// "The requested scope is invalid, unknown, malformed, or exceeds the scope granted by
    /// the resource owner."
    #[error("invalid_scope: {0}")]
    InvalidScope(Cow<'static, str>),
    /// "The authorization server does not support obtaining an authorization code using
    /// this method" (RFC 6749 §4.1.2.1): a pushed authorization request (RFC 9126 §2.3
    /// answers with the authorization endpoint's codes) with a `response_type` other than
    /// `code`.
    #[error("unsupported_response_type: {0}")]
    UnsupportedResponseType(Cow<'static, str>),
}

impl OAuthError {
    /// The `error` code on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::UnsupportedResponseType(_) => "unsupported_response_type",
        }
    }

    /// The human-readable `error_description`.
    pub fn description(&self) -> &str {
        match self {
            OAuthError::InvalidRequest(d)
            | OAuthError::InvalidClient(d)
            | OAuthError::InvalidGrant(d)
            | OAuthError::UnauthorizedClient(d)
            | OAuthError::UnsupportedGrantType(d)
            | OAuthError::InvalidScope(d)
            | OAuthError::UnsupportedResponseType(d) => d,
        }
    }

    /// Shorthand for [`OAuthError::InvalidRequest`].
    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        OAuthError::InvalidRequest(d.into())
    }

    /// The one answer for every failed client authentication, so that an unknown client,
    /// a wrong secret and a missing secret are indistinguishable.
    pub fn client_authentication_failed() -> Self {
        OAuthError::InvalidClient(Cow::Borrowed("client authentication failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_rfc_strings() {
        assert_eq!(OAuthError::invalid_request("x").code(), "invalid_request");
        assert_eq!(
            OAuthError::client_authentication_failed().code(),
            "invalid_client"
        );
        assert_eq!(
            OAuthError::UnsupportedGrantType("x".into()).code(),
            "unsupported_grant_type"
        );
        assert_eq!(OAuthError::InvalidScope("y".into()).description(), "y");
    }
}
