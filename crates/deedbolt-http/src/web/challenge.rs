//! The RFC 6750 `WWW-Authenticate: Bearer` challenge, built in one place for every
//! refusal of a bearer credential here outside the guard: the API's `invalid_token` answers
//! ([`crate::error::ApiError`]) and the metrics token. (The API routes, `/userinfo` and the
//! admin API answer through the guard, `deedbolt_guard::RequireScopes`.)

use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderMap, HeaderValue};

/// The realm of every challenge.
pub const REALM: &str = "deedbolt";

/// The error codes of RFC 6750 §3.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BearerErrorCode {
    /// "The request is missing a required parameter, ... or is otherwise malformed."
    /// (400)
    InvalidRequest,
    /// "The access token provided is expired, revoked, malformed, or invalid for other
    /// reasons." (401)
    InvalidToken,
    /// "The request requires higher privileges than provided by the access token." (403)
    InsufficientScope,
}

impl BearerErrorCode {
    /// The code as it goes on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            BearerErrorCode::InvalidRequest => "invalid_request",
            BearerErrorCode::InvalidToken => "invalid_token",
            BearerErrorCode::InsufficientScope => "insufficient_scope",
        }
    }
}

/// A `Bearer` challenge: bare (no credential was presented, RFC 6750 §3.1: "the resource
/// server SHOULD NOT include an error code"), or with an error, its description and, for
/// `insufficient_scope`, the scope needed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    error: Option<(BearerErrorCode, String)>,
    scope: Option<String>,
}

/// Keeps the characters RFC 6750 §3 allows in a quoted `error_description` or `scope`
/// (printable ASCII except `"` and `\`), so no value can break out of its quotes.
fn quotable(s: &str) -> String {
    s.chars()
        .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
        .collect()
}

impl Challenge {
    /// `Bearer realm="deedbolt"`: no credential was presented.
    pub fn bare() -> Self {
        Challenge {
            error: None,
            scope: None,
        }
    }

    /// A challenge with `error` and `error_description`.
    pub fn error(code: BearerErrorCode, description: &str) -> Self {
        Challenge {
            error: Some((code, quotable(description))),
            scope: None,
        }
    }

    /// Adds the `scope` attribute (the scope the request needs).
    pub fn with_scope(mut self, scope: &str) -> Self {
        self.scope = Some(quotable(scope));
        self
    }

    /// The header's value.
    pub fn to_header_value(&self) -> HeaderValue {
        let mut out = format!("Bearer realm=\"{REALM}\"");
        if let Some((code, description)) = &self.error {
            out.push_str(&format!(
                ", error=\"{}\", error_description=\"{description}\"",
                code.as_str()
            ));
        }
        if let Some(scope) = &self.scope {
            out.push_str(&format!(", scope=\"{scope}\""));
        }
        // Only printable ASCII went in, so this cannot fail; the bare challenge if it did.
        HeaderValue::from_str(&out)
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"deedbolt\""))
    }

    /// Sets `WWW-Authenticate` to this challenge.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(WWW_AUTHENTICATE, self.to_header_value());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_have_the_rfc_6750_shape() {
        assert_eq!(
            Challenge::bare().to_header_value(),
            "Bearer realm=\"deedbolt\""
        );
        assert_eq!(
            Challenge::error(BearerErrorCode::InvalidToken, "expired").to_header_value(),
            "Bearer realm=\"deedbolt\", error=\"invalid_token\", error_description=\"expired\""
        );
        assert_eq!(
            Challenge::error(BearerErrorCode::InsufficientScope, "needs more")
                .with_scope("admin:read")
                .to_header_value(),
            "Bearer realm=\"deedbolt\", error=\"insufficient_scope\", \
             error_description=\"needs more\", scope=\"admin:read\""
        );
    }

    #[test]
    fn a_description_cannot_break_out_of_its_quotes() {
        let v = Challenge::error(BearerErrorCode::InvalidRequest, "a\"b\\c\nd").to_header_value();
        assert_eq!(
            v,
            "Bearer realm=\"deedbolt\", error=\"invalid_request\", error_description=\"abcd\""
        );
    }
}
