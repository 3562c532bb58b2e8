//! Token verification: from an `Authorization` header to verified RFC 9068 claims.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use deedbolt_core::clock::Clock;
use deedbolt_core::jose::SigningAlg;
use deedbolt_core::token::AccessTokenClaims;
use serde::Deserialize;

use crate::cache::{token_hash, Entry, VerifiedCache};
use crate::keys::KeyResolver;

/// Tokens longer than this are refused before any parsing.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why an `Authorization` header carried no usable bearer token (RFC 6750 §2.1, §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    /// No `Authorization` header, or one for another scheme: answered with a bare challenge.
    #[error("no bearer token")]
    Missing,
    /// More than one `Authorization` header, or a `Bearer` header that is not
    /// `Bearer <b64token>`: `invalid_request`.
    #[error("malformed Authorization header")]
    Malformed,
}

/// Extracts the token from the `Authorization` header values of a request.
///
/// ```
/// use deedbolt_guard::{parse_bearer, BearerError};
/// use http::HeaderValue;
/// let ok = [HeaderValue::from_static("Bearer abc.def-ghi_")];
/// assert_eq!(parse_bearer(ok.iter()), Ok("abc.def-ghi_"));
/// let lower = [HeaderValue::from_static("bearer abc")];
/// assert_eq!(parse_bearer(lower.iter()), Ok("abc"));
/// assert_eq!(parse_bearer([].iter()), Err(BearerError::Missing));
/// let basic = [HeaderValue::from_static("Basic Zm9vOmJhcg==")];
/// assert_eq!(parse_bearer(basic.iter()), Err(BearerError::Missing));
/// let empty = [HeaderValue::from_static("Bearer ")];
/// assert_eq!(parse_bearer(empty.iter()), Err(BearerError::Malformed));
/// let spaced = [HeaderValue::from_static("Bearer a b")];
/// assert_eq!(parse_bearer(spaced.iter()), Err(BearerError::Malformed));
/// ```
pub fn parse_bearer<'a>(
    values: impl Iterator<Item = &'a http::HeaderValue>,
) -> Result<&'a str, BearerError> {
    match parse_authorization(values)? {
        (Scheme::Bearer, token) => Ok(token),
        (Scheme::Dpop, _) => Err(BearerError::Missing),
    }
}

/// The authorization scheme an access token was presented with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer` (RFC 6750 §2.1).
    Bearer,
    /// `Authorization: DPoP` (RFC 9449 §7.1), with a `DPoP` proof header.
    Dpop,
}

/// Extracts the scheme and token from the `Authorization` header values of a request:
/// `Bearer <token>` or `DPoP <token>` (the same `b64token` syntax, RFC 9449 §7.1).
///
/// ```
/// use deedbolt_guard::{parse_authorization, BearerError, Scheme};
/// use http::HeaderValue;
/// let dpop = [HeaderValue::from_static("DPoP abc.def")];
/// assert_eq!(parse_authorization(dpop.iter()), Ok((Scheme::Dpop, "abc.def")));
/// let bearer = [HeaderValue::from_static("Bearer abc")];
/// assert_eq!(parse_authorization(bearer.iter()), Ok((Scheme::Bearer, "abc")));
/// let basic = [HeaderValue::from_static("Basic Zm9vOmJhcg==")];
/// assert_eq!(parse_authorization(basic.iter()), Err(BearerError::Missing));
/// ```
pub fn parse_authorization<'a>(
    mut values: impl Iterator<Item = &'a http::HeaderValue>,
) -> Result<(Scheme, &'a str), BearerError> {
    let Some(value) = values.next() else {
        return Err(BearerError::Missing);
    };
    if values.next().is_some() {
        return Err(BearerError::Malformed);
    }
    let value = value.to_str().map_err(|_| BearerError::Malformed)?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else {
        return Err(BearerError::Missing);
    };
    let token = rest.trim_start_matches(' ');
    if !is_b64token(token) {
        return Err(BearerError::Malformed);
    }
    Ok((scheme, token))
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="` (RFC 6750 §2.1).
fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    // No length limit here: an overlong token is syntactically fine and is refused by the
    // verifier as an invalid token (401), not as a malformed request.
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// Why a token was not accepted. Every variant is `invalid_token` on the wire; the
/// message is a fixed, safe description that never echoes the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// Not three base64url parts with JSON header and claims.
    Malformed,
    /// `alg` is not ES256, RS256 or EdDSA (this includes `none` and HS*).
    Algorithm,
    /// `typ` is not `at+jwt`.
    Type,
    /// The header has a `crit` member; no JWS extension is understood here.
    Critical,
    /// No `kid`, or a `kid` of no known key.
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// A required claim is missing or has the wrong type.
    Claims,
    /// `exp` has passed.
    Expired,
    /// `nbf` or `iat` is in the future.
    NotYetValid,
    /// `iss` is not this issuer.
    Issuer,
    /// `aud` is not this resource server.
    Audience,
    /// The token was revoked.
    Revoked,
    /// Whether the token was revoked cannot be told right now (the shared revocation feed
    /// is down): refused, fail closed, with 503 rather than 401 so clients retry.
    Unavailable,
}

impl TokenRejection {
    /// The fixed `error_description`: no quotes or backslashes, so it is safe inside an
    /// RFC 6750 auth-param, and it never echoes the token.
    pub const fn description(self) -> &'static str {
        match self {
            TokenRejection::Malformed => "the token is not a well-formed JWT",
            TokenRejection::Algorithm => "the token signing algorithm is not accepted",
            TokenRejection::Type => "the token is not an access token (typ must be at+jwt)",
            TokenRejection::Critical => {
                "the token uses critical header extensions that are not understood"
            }
            TokenRejection::UnknownKey => "the token was not signed by a known key",
            TokenRejection::Signature => "the token signature is invalid",
            TokenRejection::Claims => "the token lacks required claims",
            TokenRejection::Expired => "the token has expired",
            TokenRejection::NotYetValid => "the token is not valid yet",
            TokenRejection::Issuer => "the token was issued by another issuer",
            TokenRejection::Audience => "the token is meant for another audience",
            TokenRejection::Revoked => "the token has been revoked",
            TokenRejection::Unavailable => {
                "the revocation list cannot be checked right now; retry shortly"
            }
        }
    }
}

impl std::fmt::Display for TokenRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for TokenRejection {}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Tells whether a token has been revoked; checked on every request, cached or not.
pub trait RevocationCheck: Send + Sync + 'static {
    /// Whether the token with these (verified) claims is revoked.
    fn is_revoked(&self, claims: &AccessTokenClaims) -> bool;

    /// Whether the answers of [`RevocationCheck::is_revoked`] can be trusted right now;
    /// when not, every token is refused with [`TokenRejection::Unavailable`].
    fn is_current(&self) -> bool {
        true
    }
}

impl RevocationCheck for deedbolt_core::revocation::RevocationList {
    fn is_revoked(&self, claims: &AccessTokenClaims) -> bool {
        self.is_claims_revoked(claims)
    }

    fn is_current(&self) -> bool {
        deedbolt_core::revocation::RevocationList::is_current(self)
    }
}

/// Verifies access tokens for one issuer and audience.
pub struct Verifier {
    issuer: String,
    audience: String,
    leeway_secs: i64,
    keys: Arc<dyn KeyResolver>,
    clock: Arc<dyn Clock>,
    cache: VerifiedCache,
    revocations: Option<Arc<dyn RevocationCheck>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_secs", &self.leeway_secs)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// The default clock-skew allowance for `exp`, `nbf` and `iat`.
    pub const DEFAULT_LEEWAY_SECS: i64 = 30;

    /// A verifier accepting tokens from `issuer` for `audience`, signed by a key from `keys`.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        keys: Arc<dyn KeyResolver>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Verifier {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs: Self::DEFAULT_LEEWAY_SECS,
            keys,
            clock,
            cache: VerifiedCache::new(Self::DEFAULT_CACHE_CAPACITY),
            revocations: None,
        }
    }

    /// How many verified tokens [`Verifier::check`] remembers by default.
    pub const DEFAULT_CACHE_CAPACITY: usize = 4096;

    /// Changes how many verified tokens [`Verifier::check`] remembers; 0 disables the cache.
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache = VerifiedCache::new(capacity);
        self
    }

    /// Rejects tokens whose `jti` `revocations` reports as revoked ([`Verifier::check`]).
    pub fn with_revocations(mut self, revocations: Arc<dyn RevocationCheck>) -> Self {
        self.revocations = Some(revocations);
        self
    }

    fn check_revoked(&self, claims: &AccessTokenClaims) -> Result<(), TokenRejection> {
        match &self.revocations {
            Some(r) if !r.is_current() => Err(TokenRejection::Unavailable),
            Some(r) if r.is_revoked(claims) => Err(TokenRejection::Revoked),
            _ => Ok(()),
        }
    }

    /// Changes the clock-skew allowance (0–300 s).
    pub fn with_leeway_secs(mut self, secs: i64) -> Self {
        self.leeway_secs = secs.clamp(0, 300);
        self
    }

    /// Verifies `token` like [`Verifier::verify`], then checks the revocation list (if
    /// any), remembering the verdict so that the same
    /// token presented again costs a hash and a map lookup instead of a signature check.
    ///
    /// A remembered token is still rejected once it expires, and forgotten when its signing
    /// key leaves (or changes in) the key set.
    pub fn check(&self, token: &str) -> Result<Arc<AccessTokenClaims>, TokenRejection> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenRejection::Malformed);
        }
        if self.cache.capacity() == 0 {
            let claims = self.verify(token)?;
            self.check_revoked(&claims)?;
            return Ok(Arc::new(claims));
        }
        let hash = token_hash(token);
        if let Some((claims, kid, key)) = self.cache.get(&hash) {
            let still_trusted = self
                .keys
                .resolve(&kid)
                .is_some_and(|current| Arc::ptr_eq(&current, &key));
            if still_trusted {
                self.check_time(&claims)?;
                self.check_revoked(&claims)?;
                return Ok(claims);
            }
            self.cache.remove(&hash);
        }
        let (claims, kid, key) = self.verify_with_key(token)?;
        self.check_revoked(&claims)?;
        let claims = Arc::new(claims);
        self.cache.insert(
            hash,
            Entry {
                claims: claims.clone(),
                kid: kid.into_boxed_str(),
                key,
            },
        );
        Ok(claims)
    }

    /// Verifies `token` and returns its claims; the full check, every time.
    pub fn verify(&self, token: &str) -> Result<AccessTokenClaims, TokenRejection> {
        self.verify_with_key(token).map(|(claims, _, _)| claims)
    }

    fn check_time(&self, claims: &AccessTokenClaims) -> Result<(), TokenRejection> {
        let now = self.clock.now();
        if now >= claims.exp.plus_secs(self.leeway_secs) {
            return Err(TokenRejection::Expired);
        }
        let skewed = now.plus_secs(self.leeway_secs);
        if claims.iat > skewed || claims.nbf.is_some_and(|nbf| nbf > skewed) {
            return Err(TokenRejection::NotYetValid);
        }
        Ok(())
    }

    fn verify_with_key(
        &self,
        token: &str,
    ) -> Result<(AccessTokenClaims, String, Arc<crate::keys::VerifyingKey>), TokenRejection> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenRejection::Malformed);
        }
        let header_b64 = token.split('.').next().ok_or(TokenRejection::Malformed)?;
        if token.split('.').count() != 3 {
            return Err(TokenRejection::Malformed);
        }
        let header_json = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|_| TokenRejection::Malformed)?;
        let header: RawHeader =
            serde_json::from_slice(&header_json).map_err(|_| TokenRejection::Malformed)?;
        let alg: SigningAlg = header.alg.parse().map_err(|_| TokenRejection::Algorithm)?;
        if header.crit.is_some() {
            return Err(TokenRejection::Critical);
        }
        match header.typ.as_deref() {
            Some(t)
                if t.eq_ignore_ascii_case("at+jwt")
                    || t.eq_ignore_ascii_case("application/at+jwt") => {}
            _ => return Err(TokenRejection::Type),
        }
        let kid = header.kid.ok_or(TokenRejection::UnknownKey)?;
        let key = self.keys.resolve(&kid).ok_or(TokenRejection::UnknownKey)?;
        // The key decides the algorithm, not the token: no alg confusion.
        if key.alg() != alg {
            return Err(TokenRejection::Algorithm);
        }

        // Verify the signature over `header.claims` with the pinned key and algorithm, then
        // parse the claims once. The header was already parsed above; it is not parsed
        // again, so unknown header members of any JSON type are ignored (RFC 7515 §4).
        let (message, signature) = token.rsplit_once('.').ok_or(TokenRejection::Malformed)?;
        let claims_b64 = message
            .split_once('.')
            .map(|(_, c)| c)
            .ok_or(TokenRejection::Malformed)?;
        let verified = jsonwebtoken::crypto::verify(
            signature,
            message.as_bytes(),
            key.decoding_key(),
            key.jwt_alg(),
        )
        .map_err(|_| TokenRejection::Malformed)?;
        if !verified {
            return Err(TokenRejection::Signature);
        }
        let claims_json = URL_SAFE_NO_PAD
            .decode(claims_b64)
            .map_err(|_| TokenRejection::Malformed)?;
        let claims: AccessTokenClaims = serde_json::from_slice(&claims_json).map_err(|e| {
            let is_object = claims_json
                .iter()
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(|b| *b == b'{');
            if e.classify() == serde_json::error::Category::Data && is_object {
                TokenRejection::Claims
            } else {
                TokenRejection::Malformed
            }
        })?;

        self.check_time(&claims)?;
        if claims.iss != self.issuer {
            return Err(TokenRejection::Issuer);
        }
        if claims.aud != self.audience {
            return Err(TokenRejection::Audience);
        }
        Ok((claims, kid, key))
    }
}
