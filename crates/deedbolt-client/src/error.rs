//! The one error type of the client: what went wrong talking to the authorization server.

use crate::id_token::IdTokenError;

/// What went wrong talking to the authorization server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server refused the request with an RFC 6749 §5.2 (or RFC 7009 §2.2.1) error,
    /// e.g. `invalid_grant` (the code or refresh token is invalid, expired or revoked:
    /// sign in again) or `invalid_client` (wrong credentials).
    #[error("the authorization server refused the request: {error} (HTTP {status})")]
    OAuth {
        /// The `error` code.
        error: String,
        /// The `error_description`, if any (server-chosen text: log it, do not show it).
        description: Option<String>,
        /// The HTTP status.
        status: u16,
    },
    /// The authorization response (the redirect back to the client) is an error (RFC
    /// 6749 §4.1.2.1), e.g. `access_denied` when the user declined.
    #[error("the authorization request failed: {error}")]
    Authorization {
        /// The `error` code.
        error: String,
        /// The `error_description`, if any.
        description: Option<String>,
        /// The `state`, so the pending flow can be taken and discarded.
        state: Option<String>,
    },
    /// The request did not complete (connection, timeout, TLS…).
    #[error("HTTP request to the authorization server failed")]
    Http(#[source] reqwest::Error),
    /// A non-success status without an OAuth error body (e.g. 503).
    #[error("the authorization server answered HTTP {status}")]
    Status {
        /// The HTTP status.
        status: u16,
    },
    /// The server's answer is not what the protocol says (e.g. no `access_token`, a
    /// `token_type` other than Bearer, a callback without `code`).
    #[error("malformed response from the authorization server: {0}")]
    Protocol(String),
    /// The issuer in the metadata or in the authorization response (`iss`) is not the
    /// configured issuer: possibly a mix-up attack. Compared exactly, as strings.
    #[error("issuer mismatch: expected {expected}, got {found:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// What was received (`None`: the `iss` parameter was missing).
        found: Option<String>,
    },
    /// The configuration is unusable (a bad URL, plain HTTP to a remote host, no JWKS
    /// URI for ID-token verification).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// [`crate::OAuthClient::revoke`] without a revocation endpoint.
    #[error("the authorization server has no revocation endpoint")]
    NoRevocationEndpoint,
    /// [`crate::OAuthClient::refresh`] on a token set without a refresh token.
    #[error("no refresh token")]
    NoRefreshToken,
    /// The ID token was refused.
    #[error("ID token rejected: {0}")]
    IdToken(#[from] IdTokenError),
}

impl ClientError {
    /// The OAuth `error` code, for [`ClientError::OAuth`] and
    /// [`ClientError::Authorization`].
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            ClientError::OAuth { error, .. } | ClientError::Authorization { error, .. } => {
                Some(error)
            }
            _ => None,
        }
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> ClientError {
        ClientError::Http(e)
    }
}
