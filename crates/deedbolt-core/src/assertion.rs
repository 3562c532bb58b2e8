//! `private_key_jwt` client assertions (RFC 7523 §2.2 and §3, RFC 7521 §4.2, OpenID
//! Connect Core §9): a client authenticates by signing a short-lived JWT with a key whose
//! public half it registered.
//!
//! The request carries `client_assertion_type` =
//! [`CLIENT_ASSERTION_TYPE`] and `client_assertion` = the JWT. Checking it is three steps,
//! and each step's output is the next one's input, so none can be skipped:
//!
//! 1. [`PresentedAssertion::parse`]: the compact JWS shape, the header (`alg` one of
//!    [`AssertionAlg`] — never `none` or `HS*` —, no `crit`, a `typ`, if any, that is
//!    [`CLIENT_AUTHENTICATION_TYP`] or `JWT`) and the *claimed* client (`sub`),
//!    read before any verification and used only to look the client and its keys up;
//! 2. [`verify`]: the signature with the client's registered key (the `kid`'s key, or
//!    each key allowing the `alg` when there is no `kid`; the client's registered
//!    `token_endpoint_auth_signing_alg` when it has one) and the claims:
//!    `iss` = `sub` = client id; `aud` is the issuer identifier and nothing else (RFC 10070,
//!    which updates RFC 7523 and RFC 9126 against audience injection: an assertion made
//!    for a token endpoint URL that another server advertised could be replayed here); `exp`
//!    present, not passed and at most [`MAX_LIFETIME_SECS`] away (so assertions cannot be
//!    minted for long replay windows); `nbf` and `iat` not in the future; a `jti` present.
//!    Times are JSON numbers, fractions allowed (RFC 7519 §2 NumericDate), and allow
//!    [`LEEWAY_SECS`] of clock skew. The result is a [`VerifiedAssertion`];
//! 3. its single use, through the replay cache port ([`VerifiedAssertion::replay_key`],
//!    kept until the assertion expires), whose [`RedeemedAssertion`] becomes the
//!    [`ClientAuthenticated`] proof.
//!
//! Every failure is `invalid_client` (RFC 6749 §5.2). Failures before the signature is
//! verified (unknown client, unknown key, bad signature) share one message, so the answer
//! does not tell which client ids exist; the claim checks after it name what was wrong,
//! which only the key holder can learn.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::Validation;
use serde::Deserialize;
use serde_json::Value;

use crate::client::{AuthMethod, Client};
use crate::client_jwks::{AssertionAlg, ClientJwks};
use crate::clock::UnixTime;
use crate::error::OAuthError;
use crate::grant::ClientAuthenticated;
use crate::ids::ClientId;
use crate::ports::{ReplayCache, StoreError};

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The explicit `typ` of a client authentication JWT (RFC 10070 §4, which says clients
/// SHOULD send it). `JWT` or no `typ` are accepted too; any other type, e.g. `dpop+jwt`
/// or `at+jwt`, names a different kind of token and is refused (RFC 8725 §3.11).
pub const CLIENT_AUTHENTICATION_TYP: &str = "client-authentication+jwt";
/// The longest an assertion may be valid for, counted from now (and from its `iat`):
/// five minutes.
pub const MAX_LIFETIME_SECS: i64 = 300;
/// Allowed clock skew between client and server, in seconds.
pub const LEEWAY_SECS: i64 = 30;
/// Assertions longer than this are refused before any parsing.
pub const MAX_ASSERTION_LEN: usize = 16 * 1024;
/// The longest accepted `jti`.
pub const MAX_JTI_LEN: usize = 256;
/// The prefix of replay-cache keys of client assertions.
pub const REPLAY_PREFIX: &str = "assertion:";

/// Why a client assertion was refused. Every variant is `invalid_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Not a compact JWS with a JSON header and JSON claims, or too long.
    #[error("client_assertion is not a well-formed JWT")]
    Malformed,
    /// `alg` is not ES256, PS256, RS256 or EdDSA (this includes `none` and HS*), or not the
    /// client's registered `token_endpoint_auth_signing_alg`.
    #[error("client_assertion signing algorithm is not accepted")]
    Algorithm,
    /// The header's `typ` names another kind of JWT.
    #[error("client_assertion typ must be client-authentication+jwt or JWT")]
    Type,
    /// The header has a `crit` member; no JWS extension is understood here.
    #[error("client_assertion uses critical header extensions that are not understood")]
    Critical,
    /// No `sub` to name the client.
    #[error("client_assertion has no sub naming the client")]
    NoSubject,
    /// The client is unknown, has no usable keys, no key fits, or the signature does not
    /// verify: one answer for all (RFC 6749 §5.2 `invalid_client`).
    #[error("client authentication failed")]
    Failed,
    /// `iss` and `sub` are not both the client id (RFC 7523 §3 items 1 and 2).
    #[error("client_assertion iss and sub must both be the client_id")]
    Issuer,
    /// `aud` is not this server's issuer identifier alone (RFC 7523 §3 item 3 as updated
    /// by RFC 10070).
    #[error("client_assertion aud must be the issuer identifier, and only it")]
    Audience,
    /// No `exp` (RFC 7523 §3 item 4).
    #[error("client_assertion must have an exp claim")]
    NoExpiry,
    /// `exp` has passed.
    #[error("client_assertion has expired")]
    Expired,
    /// `exp` is more than [`MAX_LIFETIME_SECS`] after now or after `iat`.
    #[error("client_assertion lifetime exceeds 5 minutes")]
    TooLongLived,
    /// `nbf` or `iat` is in the future.
    #[error("client_assertion is not valid yet")]
    NotYetValid,
    /// No `jti`, or an empty one (RFC 7523 §3 item 7; OpenID Connect Core §9).
    #[error("client_assertion must have a jti claim")]
    NoJti,
    /// A `jti` longer than [`MAX_JTI_LEN`].
    #[error("client_assertion jti is longer than 256 bytes")]
    LongJti,
    /// The `jti` was used before (RFC 7523 §3 item 7: single use).
    #[error("client_assertion has been used before")]
    Replayed,
    /// A claim has the wrong JSON type.
    #[error("client_assertion claims are malformed")]
    Claims,
}

impl From<AssertionError> for OAuthError {
    fn from(e: AssertionError) -> Self {
        OAuthError::InvalidClient(Cow::Owned(e.to_string()))
    }
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// A client assertion as presented: shape and header checked, signature not yet.
pub struct PresentedAssertion {
    raw: String,
    alg: AssertionAlg,
    kid: Option<String>,
    subject: ClientId,
}

impl fmt::Debug for PresentedAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The JWT itself is a bearer credential until it expires: never shown.
        f.debug_struct("PresentedAssertion")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

fn b64_json(part: &str) -> Result<Value, AssertionError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AssertionError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AssertionError::Malformed)
}

impl PresentedAssertion {
    /// Parses a `client_assertion` value: a compact JWS whose header names an accepted
    /// `alg` and no `crit`, and whose (unverified) claims name the client in `sub`.
    pub fn parse(raw: &str) -> Result<Self, AssertionError> {
        if raw.len() > MAX_ASSERTION_LEN {
            return Err(AssertionError::Malformed);
        }
        let mut parts = raw.split('.');
        let (Some(header), Some(claims), Some(_sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AssertionError::Malformed);
        };
        let header: RawHeader =
            serde_json::from_value(b64_json(header)?).map_err(|_| AssertionError::Malformed)?;
        if header.crit.is_some() {
            return Err(AssertionError::Critical);
        }
        if let Some(typ) = header.typ.as_deref() {
            // RFC 7515 §4.1.9: a media type, the `application/` prefix optional.
            let typ = typ
                .get(..12)
                .filter(|p| p.eq_ignore_ascii_case("application/"))
                .map_or(typ, |_| &typ[12..]);
            if !typ.eq_ignore_ascii_case(CLIENT_AUTHENTICATION_TYP)
                && !typ.eq_ignore_ascii_case("JWT")
            {
                return Err(AssertionError::Type);
            }
        }
        let alg: AssertionAlg = header.alg.parse().map_err(|_| AssertionError::Algorithm)?;
        let claims = b64_json(claims)?;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or(AssertionError::NoSubject)?;
        // An id that cannot exist is the same failure as an unknown one.
        let subject = ClientId::parse(subject).map_err(|_| AssertionError::Failed)?;
        Ok(PresentedAssertion {
            raw: raw.to_owned(),
            alg,
            kid: header.kid,
            subject,
        })
    }

    /// The client the assertion *claims* to come from (unverified: for looking it up and
    /// for audit records of failures, nothing else).
    pub fn claimed_client_id(&self) -> &ClientId {
        &self.subject
    }

    /// The header's `kid`, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The header's `alg`.
    pub fn alg(&self) -> AssertionAlg {
        self.alg
    }
}

/// The client an assertion's `sub` names, read without any check but the JWT shape: only
/// for audit records of failed attempts (which should name the client attacked, even by
/// an assertion refused for its `alg`). Never for authentication.
pub fn claimed_subject(raw: &str) -> Option<ClientId> {
    if raw.len() > MAX_ASSERTION_LEN {
        return None;
    }
    let claims = b64_json(raw.split('.').nth(1)?).ok()?;
    ClientId::parse(claims.get("sub")?.as_str()?).ok()
}

/// What the assertion must match besides the client's keys.
#[derive(Debug, Clone, Copy)]
pub struct AssertionRules<'a> {
    /// The issuer identifier: the one `aud` value accepted, at every endpoint (RFC 10070
    /// §3 and §5, updating RFC 7523 §3 and RFC 9126 §2).
    pub issuer: &'a str,
    /// Whether `aud` must be the issuer as a JSON string, not a one-element array (FAPI
    /// 2.0 SP §5.3.2.1).
    pub audience_as_string: bool,
    /// The client's registered `token_endpoint_auth_signing_alg`, if any.
    pub required_alg: Option<AssertionAlg>,
    /// Now.
    pub now: UnixTime,
}

/// A string or an array of strings (the `aud` claim, RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// Whether `issuer` is the sole audience: the string, or (unless `string_only`) an
    /// array of just it.
    fn is_only(&self, issuer: &str, string_only: bool) -> bool {
        match self {
            Audience::One(a) => a == issuer,
            Audience::Many(all) => !string_only && matches!(all.as_slice(), [a] if a == issuer),
        }
    }
}

/// A NumericDate (RFC 7519 §2): seconds, possibly with a fraction.
#[derive(Deserialize, Clone, Copy)]
struct NumericDate(f64);

impl NumericDate {
    /// Rounded towards the past: for an expiry, the stricter reading.
    fn floor(self) -> i64 {
        // `as` saturates; JSON numbers are finite.
        self.0.floor() as i64
    }

    /// Rounded towards the future: for a start time, the stricter reading.
    fn ceil(self) -> i64 {
        self.0.ceil() as i64
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    exp: Option<NumericDate>,
    #[serde(default)]
    nbf: Option<NumericDate>,
    #[serde(default)]
    iat: Option<NumericDate>,
    #[serde(default)]
    jti: Option<String>,
}

/// An assertion whose signature and claims are verified, not yet known to be unused.
#[derive(Debug)]
#[must_use = "an assertion authenticates only once its single use is recorded"]
pub struct VerifiedAssertion {
    client_id: ClientId,
    jti: String,
    expires: UnixTime,
}

impl VerifiedAssertion {
    /// The replay-cache key: `assertion:` + client id + `:` + `jti` (a `jti` need only be
    /// unique per issuer, RFC 7519 §4.1.7).
    pub fn replay_key(&self) -> String {
        format!("{REPLAY_PREFIX}{}:{}", self.client_id, self.jti)
    }

    /// Until when the `jti` must be remembered: the assertion's `exp` plus the leeway
    /// (after that the assertion is refused as expired anyway).
    pub fn remember_until(&self) -> UnixTime {
        self.expires.plus_secs(LEEWAY_SECS)
    }

    /// The authenticated client's id.
    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }
}

/// Proof that a verified assertion was presented for the first time (its `jti` is now
/// remembered until it expires). Only [`VerifiedAssertion::redeem`] makes one, and only
/// [`RedeemedAssertion::authenticate`] consumes it.
#[derive(Debug)]
pub struct RedeemedAssertion {
    client_id: ClientId,
}

impl RedeemedAssertion {
    /// The authenticated client's id.
    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }

    /// The [`ClientAuthenticated`] proof for `client` (looked up by the assertion's
    /// subject): it must be the assertion's client and registered for `private_key_jwt`
    /// (one method per client).
    pub fn authenticate(self, client: Client) -> Result<ClientAuthenticated, OAuthError> {
        if self.client_id != client.id || client.auth_method() != AuthMethod::PrivateKeyJwt {
            return Err(OAuthError::client_authentication_failed());
        }
        Ok(ClientAuthenticated::new(client))
    }
}

impl VerifiedAssertion {
    /// Records the single use of this assertion (RFC 7523 §3 item 7): `None` when its
    /// `jti` was seen before and is still remembered, a replay.
    pub async fn redeem(
        self,
        replay: &dyn ReplayCache,
    ) -> Result<Option<RedeemedAssertion>, StoreError> {
        let first = replay
            .first_use(&self.replay_key(), self.remember_until())
            .await?;
        Ok(first.then_some(RedeemedAssertion {
            client_id: self.client_id,
        }))
    }
}

/// Verifies the signature of `presented` with `keys` and its claims with `rules`, for the
/// client `client_id` (the one its `sub` named, looked up).
pub fn verify(
    presented: &PresentedAssertion,
    client_id: &ClientId,
    keys: &ClientJwks,
    rules: &AssertionRules<'_>,
) -> Result<VerifiedAssertion, AssertionError> {
    if rules.required_alg.is_some_and(|r| r != presented.alg) {
        return Err(AssertionError::Algorithm);
    }
    // Signature only: every claim is checked below against the injected clock.
    let mut validation = Validation::new(presented.alg.jwt());
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = keys
        .candidates(presented.kid(), presented.alg)
        .find_map(|key| {
            jsonwebtoken::decode::<Value>(&presented.raw, key.decoding_key(), &validation).ok()
        })
        .ok_or(AssertionError::Failed)?
        .claims;
    let claims: Claims = serde_json::from_value(claims).map_err(|_| AssertionError::Claims)?;
    check_claims(claims, client_id, rules)
}

fn check_claims(
    claims: Claims,
    client_id: &ClientId,
    rules: &AssertionRules<'_>,
) -> Result<VerifiedAssertion, AssertionError> {
    let id = client_id.as_str();
    if claims.iss.as_deref() != Some(id) || claims.sub.as_deref() != Some(id) {
        return Err(AssertionError::Issuer);
    }
    if !claims
        .aud
        .as_ref()
        .is_some_and(|aud| aud.is_only(rules.issuer, rules.audience_as_string))
    {
        return Err(AssertionError::Audience);
    }
    let now = rules.now.0;
    let exp = claims.exp.ok_or(AssertionError::NoExpiry)?.floor();
    if exp.saturating_add(LEEWAY_SECS) <= now {
        return Err(AssertionError::Expired);
    }
    if exp > now.saturating_add(MAX_LIFETIME_SECS + LEEWAY_SECS) {
        return Err(AssertionError::TooLongLived);
    }
    if let Some(iat) = claims.iat.map(NumericDate::ceil) {
        if iat > now.saturating_add(LEEWAY_SECS) {
            return Err(AssertionError::NotYetValid);
        }
        if exp.saturating_sub(iat) > MAX_LIFETIME_SECS + LEEWAY_SECS {
            return Err(AssertionError::TooLongLived);
        }
    }
    if claims
        .nbf
        .map(NumericDate::ceil)
        .is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECS))
    {
        return Err(AssertionError::NotYetValid);
    }
    let jti = match claims.jti {
        Some(jti) if jti.len() > MAX_JTI_LEN => return Err(AssertionError::LongJti),
        Some(jti) if !jti.is_empty() => jti,
        _ => return Err(AssertionError::NoJti),
    };
    Ok(VerifiedAssertion {
        client_id: client_id.clone(),
        jti,
        expires: UnixTime(exp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const ISSUER: &str = "https://as.example";
    const TOKEN: &str = "https://as.example/token";
    const NOW: i64 = 1_800_000_000;

    struct Signer {
        key: EncodingKey,
        jwks: ClientJwks,
    }

    fn signer(kid: &str) -> Signer {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        let public = pair.public_key().as_ref().to_vec();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
        });
        Signer {
            key: EncodingKey::from_ec_der(der.as_ref()),
            jwks: ClientJwks::parse(&json!({ "keys": [jwk] })).unwrap(),
        }
    }

    fn claims() -> Value {
        json!({
            "iss": "dbc_a", "sub": "dbc_a", "aud": ISSUER,
            "exp": NOW + 60, "iat": NOW, "jti": "j1"
        })
    }

    fn sign(s: &Signer, kid: Option<&str>, claims: &Value) -> String {
        let mut h = Header::new(jsonwebtoken::Algorithm::ES256);
        h.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&h, claims, &s.key).unwrap()
    }

    fn check(s: &Signer, token: &str) -> Result<VerifiedAssertion, AssertionError> {
        let presented = PresentedAssertion::parse(token)?;
        let id = ClientId::parse("dbc_a").unwrap();
        verify(
            &presented,
            &id,
            &s.jwks,
            &AssertionRules {
                issuer: ISSUER,
                audience_as_string: false,
                required_alg: None,
                now: UnixTime(NOW),
            },
        )
    }

    fn with(f: impl FnOnce(&mut Value)) -> Value {
        let mut c = claims();
        f(&mut c);
        c
    }

    #[test]
    fn a_well_formed_assertion_verifies_with_or_without_kid() {
        let s = signer("k1");
        let v = check(&s, &sign(&s, Some("k1"), &claims())).unwrap();
        assert_eq!(v.replay_key(), "assertion:dbc_a:j1");
        assert_eq!(v.remember_until(), UnixTime(NOW + 60 + LEEWAY_SECS));
        assert!(check(&s, &sign(&s, None, &claims())).is_ok());
        let one_element = with(|c| c["aud"] = json!([ISSUER]));
        assert!(check(&s, &sign(&s, None, &one_element)).is_ok());
        let fractions = with(|c| {
            c["exp"] = json!(NOW as f64 + 60.5);
            c["iat"] = json!(NOW as f64 - 0.25)
        });
        assert!(check(&s, &sign(&s, None, &fractions)).is_ok());
    }

    #[test]
    fn another_key_or_unknown_kid_fails_alike() {
        let s = signer("k1");
        let other = signer("k1");
        assert_eq!(
            check(&s, &sign(&other, Some("k1"), &claims())).unwrap_err(),
            AssertionError::Failed
        );
        assert_eq!(
            check(&s, &sign(&s, Some("k9"), &claims())).unwrap_err(),
            AssertionError::Failed
        );
    }

    #[test]
    fn claim_rules() {
        let s = signer("k1");
        let cases: Vec<(Value, AssertionError)> = vec![
            (with(|c| c["iss"] = json!("dbc_b")), AssertionError::Issuer),
            (
                with(|c| c["aud"] = json!("https://other")),
                AssertionError::Audience,
            ),
            // RFC 10070: never the token endpoint URL, never beside other audiences.
            (with(|c| c["aud"] = json!(TOKEN)), AssertionError::Audience),
            (
                with(|c| c["aud"] = json!([ISSUER, TOKEN])),
                AssertionError::Audience,
            ),
            (
                with(|c| c["aud"] = json!(["x", ISSUER])),
                AssertionError::Audience,
            ),
            (
                with(|c| c["iat"] = json!(NOW as f64 + LEEWAY_SECS as f64 + 0.5)),
                AssertionError::NotYetValid,
            ),
            (
                with(|c| {
                    c.as_object_mut()
                        .unwrap()
                        .remove("aud")
                        .map(drop)
                        .unwrap_or(())
                }),
                AssertionError::Audience,
            ),
            (
                with(|c| {
                    c.as_object_mut()
                        .unwrap()
                        .remove("exp")
                        .map(drop)
                        .unwrap_or(())
                }),
                AssertionError::NoExpiry,
            ),
            (
                with(|c| c["exp"] = json!(NOW - LEEWAY_SECS)),
                AssertionError::Expired,
            ),
            (
                with(|c| c["exp"] = json!(NOW + 600)),
                AssertionError::TooLongLived,
            ),
            (
                with(|c| {
                    c["iat"] = json!(NOW - 400);
                    c["exp"] = json!(NOW + 60)
                }),
                AssertionError::TooLongLived,
            ),
            (
                with(|c| c["iat"] = json!(NOW + 120)),
                AssertionError::NotYetValid,
            ),
            (
                with(|c| c["nbf"] = json!(NOW + 120)),
                AssertionError::NotYetValid,
            ),
            (
                with(|c| {
                    c.as_object_mut()
                        .unwrap()
                        .remove("jti")
                        .map(drop)
                        .unwrap_or(())
                }),
                AssertionError::NoJti,
            ),
            (with(|c| c["jti"] = json!("")), AssertionError::NoJti),
            (
                with(|c| c["jti"] = json!("j".repeat(MAX_JTI_LEN + 1))),
                AssertionError::LongJti,
            ),
            (with(|c| c["exp"] = json!("soon")), AssertionError::Claims),
        ];
        for (claims, want) in cases {
            assert_eq!(
                check(&s, &sign(&s, None, &claims)).unwrap_err(),
                want,
                "{claims}"
            );
        }
        // Within the leeway.
        assert!(check(&s, &sign(&s, None, &with(|c| c["iat"] = json!(NOW + 20)))).is_ok());
    }

    #[test]
    fn none_hmac_and_crit_are_refused_before_any_key_is_used() {
        let enc = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let body = enc(claims());
        for alg in ["none", "HS256", "ES384", "RS512"] {
            let t = format!("{}.{body}.", enc(json!({ "alg": alg })));
            assert_eq!(
                PresentedAssertion::parse(&t).unwrap_err(),
                AssertionError::Algorithm,
                "{alg}"
            );
        }
        let t = format!(
            "{}.{body}.c2ln",
            enc(json!({"alg": "ES256", "crit": ["b64"]}))
        );
        assert_eq!(
            PresentedAssertion::parse(&t).unwrap_err(),
            AssertionError::Critical
        );
        assert_eq!(
            PresentedAssertion::parse("a.b").unwrap_err(),
            AssertionError::Malformed
        );
        let long = "a".repeat(MAX_ASSERTION_LEN + 1);
        assert_eq!(
            PresentedAssertion::parse(&long).unwrap_err(),
            AssertionError::Malformed
        );
    }

    #[test]
    fn a_string_audience_can_be_required() {
        let s = signer("k1");
        let rules = |audience_as_string| AssertionRules {
            issuer: ISSUER,
            audience_as_string,
            required_alg: None,
            now: UnixTime(NOW),
        };
        let id = ClientId::parse("dbc_a").unwrap();
        let array =
            PresentedAssertion::parse(&sign(&s, None, &with(|c| c["aud"] = json!([ISSUER]))))
                .unwrap();
        assert!(verify(&array, &id, &s.jwks, &rules(false)).is_ok());
        assert_eq!(
            verify(&array, &id, &s.jwks, &rules(true)).unwrap_err(),
            AssertionError::Audience
        );
        let string = PresentedAssertion::parse(&sign(&s, None, &claims())).unwrap();
        assert!(verify(&string, &id, &s.jwks, &rules(true)).is_ok());
    }

    #[test]
    fn a_typ_must_name_a_client_authentication_jwt() {
        let s = signer("k1");
        for (typ, ok) in [
            (Some("client-authentication+jwt"), true),
            (Some("application/client-authentication+JWT"), true),
            (Some("JWT"), true),
            (None, true),
            (Some("dpop+jwt"), false),
            (Some("at+jwt"), false),
            (Some("application/"), false),
        ] {
            let mut h = Header::new(jsonwebtoken::Algorithm::ES256);
            h.typ = typ.map(str::to_owned);
            let token = jsonwebtoken::encode(&h, &claims(), &s.key).unwrap();
            match PresentedAssertion::parse(&token) {
                Ok(_) => assert!(ok, "{typ:?} was accepted"),
                Err(e) => {
                    assert!(!ok, "{typ:?} was refused");
                    assert_eq!(e, AssertionError::Type);
                }
            }
        }
    }

    #[test]
    fn the_registered_alg_is_enforced() {
        let s = signer("k1");
        let presented = PresentedAssertion::parse(&sign(&s, None, &claims())).unwrap();
        let err = verify(
            &presented,
            &ClientId::parse("dbc_a").unwrap(),
            &s.jwks,
            &AssertionRules {
                issuer: ISSUER,
                audience_as_string: false,
                required_alg: Some(AssertionAlg::PS256),
                now: UnixTime(NOW),
            },
        )
        .unwrap_err();
        assert_eq!(err, AssertionError::Algorithm);
    }

    #[tokio::test]
    async fn an_assertion_authenticates_once_and_only_its_pkjwt_client() {
        use crate::client::ClientKind;
        use crate::client::ClientName;
        use crate::clock::ManualClock;
        use crate::replay::MemoryReplayCache;
        use std::sync::Arc;

        let s = signer("k1");
        let replay = MemoryReplayCache::new(Arc::new(ManualClock::new(UnixTime(NOW))));
        let token = sign(&s, None, &claims());
        let redeemed = check(&s, &token).unwrap().redeem(&replay).await.unwrap();
        let redeemed = redeemed.expect("the first use");
        let replayed = check(&s, &token).unwrap().redeem(&replay).await.unwrap();
        assert!(replayed.is_none(), "the same jti again is a replay");

        let client = |method: AuthMethod| Client {
            id: ClientId::parse("dbc_a").unwrap(),
            name: ClientName::parse("bot").unwrap(),
            secret_hash: None,
            grant_types: vec![],
            scopes: "property:read".parse().unwrap(),
            redirect_uris: vec![],
            kind: ClientKind::Confidential,
            allow_introspection: false,
            properties: None,
            id_token_alg: crate::jose::SigningAlg::RS256,
            metadata: crate::client::ClientMetadata {
                token_endpoint_auth_method: Some(method),
                ..Default::default()
            },
            registration_token_hash: None,
            created_at: UnixTime(0),
            updated_at: UnixTime(0),
        };
        // A secret client is not authenticated by an assertion, even a valid one.
        assert!(redeemed
            .authenticate(client(AuthMethod::ClientSecretBasic))
            .is_err());
        let again = check(&s, &sign(&s, None, &with(|c| c["jti"] = json!("j2"))))
            .unwrap()
            .redeem(&replay)
            .await
            .unwrap()
            .unwrap();
        let auth = again
            .authenticate(client(AuthMethod::PrivateKeyJwt))
            .unwrap();
        assert_eq!(auth.client().id.as_str(), "dbc_a");
    }

    /// A signer of another algorithm (RSA for PS256/RS256, Ed25519 for EdDSA), signing
    /// with aws-lc-rs directly (a JWS by hand, so the test does not depend on key import
    /// formats), and the matching public key set.
    type SignFn = Box<dyn Fn(&Value) -> String>;

    fn signer_for(alg: AssertionAlg) -> (SignFn, ClientJwks) {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::rsa::KeySize;
        use aws_lc_rs::signature::{
            Ed25519KeyPair, RsaKeyPair, RsaPublicKeyComponents, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
        };
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let input = move |claims: &Value| {
            format!(
                "{}.{}",
                b64(json!({ "alg": alg.as_str() }).to_string().as_bytes()),
                b64(claims.to_string().as_bytes())
            )
        };
        match alg {
            AssertionAlg::PS256 | AssertionAlg::RS256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
                let parts = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                let jwk = json!({"kty": "RSA", "kid": "r", "n": b64(&parts.n), "e": b64(&parts.e)});
                let padding = if alg == AssertionAlg::PS256 {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                let sign = move |claims: &Value| {
                    let msg = input(claims);
                    let mut sig = vec![0; pair.public_modulus_len()];
                    pair.sign(padding, &SystemRandom::new(), msg.as_bytes(), &mut sig)
                        .unwrap();
                    format!("{msg}.{}", b64(&sig))
                };
                (
                    Box::new(sign),
                    ClientJwks::parse(&json!({ "keys": [jwk] })).unwrap(),
                )
            }
            AssertionAlg::EdDSA => {
                let pair = Ed25519KeyPair::generate().unwrap();
                let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "e", "x": b64(pair.public_key().as_ref())});
                let sign = move |claims: &Value| {
                    let msg = input(claims);
                    format!("{msg}.{}", b64(pair.sign(msg.as_bytes()).as_ref()))
                };
                (
                    Box::new(sign),
                    ClientJwks::parse(&json!({ "keys": [jwk] })).unwrap(),
                )
            }
            AssertionAlg::ES256 => unreachable!("see signer()"),
        }
    }

    #[test]
    fn ps256_rs256_and_eddsa_verify_with_their_keys_only() {
        for alg in [
            AssertionAlg::PS256,
            AssertionAlg::RS256,
            AssertionAlg::EdDSA,
        ] {
            let (sign, jwks) = signer_for(alg);
            let token = sign(&claims());
            let s = Signer {
                key: EncodingKey::from_secret(b"unused"),
                jwks,
            };
            assert!(check(&s, &token).is_ok(), "{alg}");
            // A signature that does not verify.
            let forged = sign(&with(|c| c["jti"] = json!("other")));
            let (head, _) = token.rsplit_once('.').unwrap();
            let (_, sig) = forged.rsplit_once('.').unwrap();
            let forged = format!("{head}.{sig}");
            assert_eq!(
                check(&s, &forged).unwrap_err(),
                AssertionError::Failed,
                "{alg}"
            );
            // The other key families do not verify it.
            let (_, other) = signer_for(if alg == AssertionAlg::EdDSA {
                AssertionAlg::PS256
            } else {
                AssertionAlg::EdDSA
            });
            let s = Signer {
                key: EncodingKey::from_secret(b"unused"),
                jwks: other,
            };
            assert_eq!(
                check(&s, &token).unwrap_err(),
                AssertionError::Failed,
                "{alg}"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_jwt() {
        let s = signer("k1");
        let t = sign(&s, None, &claims());
        let shown = format!("{:?}", PresentedAssertion::parse(&t).unwrap());
        assert!(!shown.contains(&t[..20]), "{shown}");
    }
}
