//! Tokens: [`Secret`], the redacting and zeroizing string, and [`TokenSet`], what a token
//! endpoint answered.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// A secret string: a token, a client secret, an authorization code.
///
/// Zeroed on drop and redacted in `Debug`; there is no `Display`, so it cannot end up in a
/// log line by accident. Read it with [`Secret::expose`]. Equality is constant-time in the
/// contents (the length is not hidden).
///
/// `Serialize` writes the plain value: serialize a `Secret` only into something that is
/// itself protected (for example [`Sealer::seal_json`](crate::Sealer::seal_json)).
#[derive(Clone, Default)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(value.into()))
    }

    /// The secret value. Keep what you do with it short-lived.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret::new(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.0.as_bytes(), other.0.as_bytes())
            .is_ok()
    }
}

impl Eq for Secret {}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

/// The tokens of one token response (RFC 6749 §5.1), with the lifetime turned into an
/// absolute time.
///
/// `Debug` redacts the tokens (the ID token is shown only as present or absent).
///
/// The serialized form (serde) necessarily contains the access and refresh tokens in
/// plain text: store it only sealed, e.g. with
/// [`Sealer::seal_json`](crate::Sealer::seal_json) into an `HttpOnly` cookie, never in
/// a log, a URL or browser storage. `expires_at` is serialized as whole Unix seconds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    /// The access token.
    pub access_token: Secret,
    /// The token type as the server sent it; always `Bearer` in any letter case (anything
    /// else is refused when the response is parsed).
    pub token_type: String,
    /// When the access token expires: the time the request was sent plus `expires_in`
    /// (so slightly early rather than late).
    #[serde(with = "unix_seconds")]
    pub expires_at: SystemTime,
    /// The refresh token, if the grant issued one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret>,
    /// The OpenID Connect ID token (a JWT), if the scope included `openid`. Verify it with
    /// [`OAuthClient::verify_id_token`](crate::OAuthClient::verify_id_token) before
    /// trusting anything in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The granted scope, if the server said (or the requested one, where RFC 6749 §5.1
    /// lets the server omit it because it is unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl TokenSet {
    /// Whether the access token should be renewed: it expires within `skew` of `now` (or
    /// has already expired).
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// use deedbolt_client::{Secret, TokenSet};
    ///
    /// let t = TokenSet {
    ///     access_token: Secret::new("at"),
    ///     token_type: "Bearer".into(),
    ///     expires_at: UNIX_EPOCH + Duration::from_secs(1_000),
    ///     refresh_token: None,
    ///     id_token: None,
    ///     scope: None,
    /// };
    /// let skew = Duration::from_secs(60);
    /// assert!(!t.needs_refresh(UNIX_EPOCH + Duration::from_secs(939), skew));
    /// assert!(t.needs_refresh(UNIX_EPOCH + Duration::from_secs(940), skew));
    /// assert!(t.needs_refresh(UNIX_EPOCH + Duration::from_secs(2_000), skew));
    /// ```
    pub fn needs_refresh(&self, now: SystemTime, skew: Duration) -> bool {
        match now.checked_add(skew) {
            Some(deadline) => deadline >= self.expires_at,
            None => true,
        }
    }

    /// Whether the access token has expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires_at
    }
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .field("refresh_token", &self.refresh_token)
            .field("id_token", &self.id_token.as_ref().map(|_| "[ID TOKEN]"))
            .field("scope", &self.scope)
            .finish()
    }
}

/// `SystemTime` as whole seconds since the Unix epoch (earlier times become 0).
mod unix_seconds {
    use super::*;

    pub(super) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        s.serialize_u64(secs)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let secs = u64::deserialize(d)?;
        UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .ok_or_else(|| serde::de::Error::custom("expires_at out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TokenSet {
        TokenSet {
            access_token: Secret::new("access-123"),
            token_type: "Bearer".into(),
            expires_at: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            refresh_token: Some(Secret::new("refresh-456")),
            id_token: Some("header.payload.sig".into()),
            scope: Some("openid tenant:read".into()),
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "Secret([REDACTED])");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn token_set_debug_shows_no_token() {
        let dbg = format!("{:?}", sample());
        assert!(!dbg.contains("access-123"), "{dbg}");
        assert!(!dbg.contains("refresh-456"), "{dbg}");
        assert!(!dbg.contains("payload"), "{dbg}");
        assert!(dbg.contains("openid tenant:read"), "{dbg}");
    }

    #[test]
    fn secrets_compare_by_value() {
        assert_eq!(Secret::new("abc"), Secret::new("abc"));
        assert_ne!(Secret::new("abc"), Secret::new("abd"));
        assert_ne!(Secret::new("abc"), Secret::new("abcd"));
    }

    #[test]
    fn token_set_round_trips_through_json() {
        let t = sample();
        let json = serde_json::to_string(&t).unwrap();
        assert!(json.contains("\"expires_at\":1700000000"), "{json}");
        let back: TokenSet = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);

        let minimal = r#"{"access_token":"a","token_type":"Bearer","expires_at":5}"#;
        let t: TokenSet = serde_json::from_str(minimal).unwrap();
        assert_eq!(t.refresh_token, None);
        assert_eq!(t.expires_at, UNIX_EPOCH + Duration::from_secs(5));
    }

    #[test]
    fn needs_refresh_near_and_after_expiry() {
        let t = sample();
        let skew = Duration::from_secs(60);
        assert!(!t.needs_refresh(t.expires_at - Duration::from_secs(61), skew));
        assert!(t.needs_refresh(t.expires_at - Duration::from_secs(60), skew));
        assert!(t.needs_refresh(t.expires_at + Duration::from_secs(1), skew));
        assert!(!t.is_expired(t.expires_at - Duration::from_secs(1)));
        assert!(t.is_expired(t.expires_at));
    }
}
