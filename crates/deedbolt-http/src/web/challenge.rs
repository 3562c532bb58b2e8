//! The RFC 6750 `WWW-Authenticate: Bearer` challenge of the refusals of a bearer credential
//! here outside the guard: the `invalid_token` answers of [`crate::error::ApiError`]. (The
//! API routes, `/userinfo` and the admin API answer through the guard,
//! `deedbolt_guard::RequireScopes`, which has its own for `Bearer` and `DPoP`.)

use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderMap, HeaderValue};

/// The realm of every challenge.
pub const REALM: &str = "deedbolt";

/// A `Bearer` challenge: bare (no credential was presented, RFC 6750 §3.1: "the resource
/// server SHOULD NOT include an error code"), or `invalid_token` ("The access token
/// provided is expired, revoked, malformed, or invalid for other reasons.") with its
/// description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    invalid_token: Option<String>,
}

/// Keeps the characters RFC 6750 §3 allows in a quoted `error_description` (printable
/// ASCII except `"` and `\`), so no value can break out of its quotes.
fn quotable(s: &str) -> String {
    s.chars()
        .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
        .collect()
}

impl Challenge {
    /// `Bearer realm="deedbolt"`: no credential was presented.
    pub fn bare() -> Self {
        Challenge {
            invalid_token: None,
        }
    }

    /// A challenge with `error="invalid_token"` and this `error_description`.
    pub fn invalid_token(description: &str) -> Self {
        Challenge {
            invalid_token: Some(quotable(description)),
        }
    }

    /// The header's value.
    pub fn to_header_value(&self) -> HeaderValue {
        let mut out = format!("Bearer realm=\"{REALM}\"");
        if let Some(description) = &self.invalid_token {
            out.push_str(&format!(
                ", error=\"invalid_token\", error_description=\"{description}\""
            ));
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
            Challenge::invalid_token("expired").to_header_value(),
            "Bearer realm=\"deedbolt\", error=\"invalid_token\", error_description=\"expired\""
        );
    }

    #[test]
    fn a_description_cannot_break_out_of_its_quotes() {
        let v = Challenge::invalid_token("a\"b\\c\nd").to_header_value();
        assert_eq!(
            v,
            "Bearer realm=\"deedbolt\", error=\"invalid_token\", error_description=\"abcd\""
        );
    }
}
