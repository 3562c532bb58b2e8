//! JWT access tokens (RFC 9068) and their lifetimes.

use serde::{Deserialize, Serialize};

use crate::clock::UnixTime;
use crate::ids::{ClientId, TokenId};
use crate::scope::ScopeSet;

/// The `typ` header of every access token (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// An access-token lifetime, bounded to 5–60 minutes.
///
/// ```
/// use deedbolt_core::token::AccessTokenLifetime;
/// assert_eq!(AccessTokenLifetime::default().as_secs(), 900);
/// assert!(AccessTokenLifetime::from_secs(299).is_err());
/// assert!(AccessTokenLifetime::from_secs(300).is_ok());
/// assert!(AccessTokenLifetime::from_secs(3600).is_ok());
/// assert!(AccessTokenLifetime::from_secs(3601).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessTokenLifetime(i64);

impl AccessTokenLifetime {
    /// The shortest allowed lifetime (5 minutes).
    pub const MIN_SECS: i64 = 300;
    /// The longest allowed lifetime (60 minutes); also how long a retired key keeps verifying.
    pub const MAX_SECS: i64 = 3600;

    /// A lifetime of `secs` seconds, if within bounds.
    pub fn from_secs(secs: i64) -> Result<Self, LifetimeError> {
        if (Self::MIN_SECS..=Self::MAX_SECS).contains(&secs) {
            Ok(AccessTokenLifetime(secs))
        } else {
            Err(LifetimeError(secs))
        }
    }

    /// The lifetime in seconds.
    pub const fn as_secs(self) -> i64 {
        self.0
    }
}

impl Default for AccessTokenLifetime {
    /// 15 minutes.
    fn default() -> Self {
        AccessTokenLifetime(900)
    }
}

/// A lifetime outside 5–60 minutes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("access-token lifetime must be between 300 and 3600 seconds (5–60 minutes), got {0}")]
pub struct LifetimeError(pub i64);

/// The claims of a JWT access token, as RFC 9068 §2.2 lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer: this server's issuer identifier.
    pub iss: String,
    /// Subject: the resource owner, or the client itself for client credentials.
    pub sub: String,
    /// Audience: the resource server(s) the token is for.
    pub aud: String,
    /// Expiry.
    pub exp: UnixTime,
    /// Issued at.
    pub iat: UnixTime,
    /// Not before (optional; deedbolt does not set it, but honours it when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<UnixTime>,
    /// Unique token id, for revocation and replay detection.
    pub jti: TokenId,
    /// The client the token was issued to.
    pub client_id: ClientId,
    /// The granted scopes.
    pub scope: ScopeSet,
    /// The key or certificate the token is bound to (sender-constrained tokens); `None`
    /// for a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` (confirmation) claim of a sender-constrained token (RFC 7800 §3.1): the
/// thumbprint of the DPoP key (`jkt`, RFC 9449 §6.1) or of the client certificate
/// (`x5t#S256`, RFC 8705 §3.1) that must accompany every use of the token.
///
/// ```
/// use deedbolt_core::token::Confirmation;
/// let v = serde_json::to_value(Confirmation::dpop("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")).unwrap();
/// assert_eq!(v, serde_json::json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}));
/// let v = serde_json::to_value(Confirmation::certificate("bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2")).unwrap();
/// assert_eq!(v, serde_json::json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// base64url SHA-256 JWK thumbprint (RFC 7638) of the DPoP public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// base64url SHA-256 of the DER client certificate.
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

impl Confirmation {
    /// Bound to a DPoP key by its JWK thumbprint.
    pub fn dpop(jkt: impl Into<String>) -> Self {
        Confirmation {
            jkt: Some(jkt.into()),
            x5t_s256: None,
        }
    }

    /// Bound to a client certificate by its SHA-256 thumbprint.
    pub fn certificate(x5t_s256: impl Into<String>) -> Self {
        Confirmation {
            jkt: None,
            x5t_s256: Some(x5t_s256.into()),
        }
    }
}

impl AccessTokenClaims {
    /// Whether this is the client's own token (client credentials: the subject is the
    /// client), as opposed to a token acting for a user.
    pub fn is_client_token(&self) -> bool {
        self.sub == self.client_id.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_serialize_with_rfc9068_names() {
        let claims = AccessTokenClaims {
            iss: "https://as".into(),
            sub: "dbc_x".into(),
            aud: "https://as/api".into(),
            exp: UnixTime(200),
            iat: UnixTime(100),
            nbf: None,
            jti: TokenId::parse("j1").unwrap(),
            client_id: ClientId::parse("dbc_x").unwrap(),
            scope: "property:read".parse().unwrap(),
            cnf: None,
        };
        let v = serde_json::to_value(&claims).unwrap();
        for k in [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "jti",
            "client_id",
            "scope",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert_eq!(v["exp"], 200);
        assert_eq!(v["scope"], "property:read");
        assert!(v.get("cnf").is_none(), "a bearer token has no cnf");
    }
}
