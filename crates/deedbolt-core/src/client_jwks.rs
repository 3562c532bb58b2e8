//! A client's public keys for `private_key_jwt` (RFC 7523, OpenID Connect Core §9): the
//! JWK Set it registers inline (`jwks`) or publishes at its `jwks_uri` (RFC 7591 §2).
//!
//! [`ClientJwks::parse`] is the one gate every key set passes, at registration and after
//! each fetch, so a set that is accepted once is accepted everywhere:
//!
//! - a JSON object with a non-empty `keys` array of at most [`MAX_KEYS`] keys;
//! - each key public only: no `d`, `p`, `q`, `dp`, `dq`, `qi`, `oth` (private RSA/EC/OKP
//!   members) and no `k` (a symmetric key, `kty=oct`, which would make the "asymmetric only"
//!   rule a lie);
//! - each key of a supported type: `EC` on `P-256` (ES256), `RSA` of at least 2048 bits
//!   (RS256, PS256) or `OKP` on `Ed25519` (EdDSA); an `alg` member, when present, must be one
//!   of those and fit the key type; a `use` member, when present, must be `sig`;
//! - `kid`s unique, so a `kid` in an assertion header names at most one key.
//!
//! A set a client *publishes* at its `jwks_uri` is read by [`ClientJwks::parse_published`],
//! which skips keys that are not for signing with an algorithm accepted here (OpenID
//! Connect Registration §2 lets a published set carry encryption keys, `use: enc`, and a
//! client may also publish keys of other types for other servers); private key material
//! anywhere still refuses the whole set, and at least one usable key must remain.
//!
//! The signing algorithms a client may use are [`AssertionAlg`]: asymmetric only, so `none`
//! and the HMAC family cannot even be named.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// The most keys a client's JWK Set may hold.
pub const MAX_KEYS: usize = 16;
/// The shortest RSA modulus accepted, in bits (RFC 7518 §3.3: 2048 or larger).
pub const MIN_RSA_BITS: usize = 2048;

/// A signing algorithm accepted for client assertions. Asymmetric only: `none` and `HS*`
/// are not representable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AssertionAlg {
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4).
    ES256,
    /// RSASSA-PSS with SHA-256 (RFC 7518 §3.5); the FAPI 2.0 choice for RSA.
    PS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
    RS256,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

impl AssertionAlg {
    /// Every accepted algorithm, in the order discovery lists them.
    pub const ALL: [AssertionAlg; 4] = [
        AssertionAlg::ES256,
        AssertionAlg::PS256,
        AssertionAlg::RS256,
        AssertionAlg::EdDSA,
    ];

    /// The `alg` value on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            AssertionAlg::ES256 => "ES256",
            AssertionAlg::PS256 => "PS256",
            AssertionAlg::RS256 => "RS256",
            AssertionAlg::EdDSA => "EdDSA",
        }
    }

    /// The `jsonwebtoken` algorithm.
    pub(crate) const fn jwt(self) -> Algorithm {
        match self {
            AssertionAlg::ES256 => Algorithm::ES256,
            AssertionAlg::PS256 => Algorithm::PS256,
            AssertionAlg::RS256 => Algorithm::RS256,
            AssertionAlg::EdDSA => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for AssertionAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `alg` that is not accepted for client assertions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported client assertion algorithm (supported: ES256, PS256, RS256, EdDSA)")]
pub struct UnsupportedAssertionAlg;

impl FromStr for AssertionAlg {
    type Err = UnsupportedAssertionAlg;

    /// ```
    /// use deedbolt_core::client_jwks::AssertionAlg;
    /// assert_eq!("PS256".parse::<AssertionAlg>(), Ok(AssertionAlg::PS256));
    /// assert!("none".parse::<AssertionAlg>().is_err());
    /// assert!("HS256".parse::<AssertionAlg>().is_err());
    /// assert!("es256".parse::<AssertionAlg>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AssertionAlg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or(UnsupportedAssertionAlg)
    }
}

/// Why a JWK Set is refused. The messages name the offending key by position (and `kid`),
/// never its contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not a JSON object with a `keys` array.
    #[error("a JWK Set is a JSON object with a \"keys\" array")]
    NotASet,
    /// No keys at all.
    #[error("the JWK Set has no keys")]
    Empty,
    /// More than [`MAX_KEYS`] keys.
    #[error("the JWK Set has more than {MAX_KEYS} keys")]
    TooManyKeys,
    /// A key holds private or symmetric key material.
    #[error("key {0}: holds private key material (\"{1}\"); register public keys only")]
    PrivateMember(String, &'static str),
    /// A key type or curve that is not supported.
    #[error("key {0}: unsupported key type or curve (supported: EC P-256, RSA >= 2048 bits, OKP Ed25519)")]
    UnsupportedKey(String),
    /// An `alg` member that is not accepted or does not fit the key type.
    #[error("key {0}: alg must be one of ES256, PS256, RS256, EdDSA and fit the key type")]
    Algorithm(String),
    /// A `use` other than `sig`.
    #[error("key {0}: use must be \"sig\"")]
    Use(String),
    /// An RSA modulus shorter than [`MIN_RSA_BITS`].
    #[error("key {0}: RSA keys must have at least {MIN_RSA_BITS} bits")]
    WeakRsa(String),
    /// The key parameters do not decode.
    #[error("key {0}: malformed key parameters")]
    Malformed(String),
    /// Two keys share a `kid`.
    #[error("key {0}: duplicate kid")]
    DuplicateKid(String),
}

/// One verified public key of a client, with the algorithms it may verify.
pub struct ClientKey {
    kid: Option<String>,
    algs: Vec<AssertionAlg>,
    key: DecodingKey,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("kid", &self.kid)
            .field("algs", &self.algs)
            .finish_non_exhaustive()
    }
}

impl ClientKey {
    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether this key may verify `alg`.
    pub fn allows(&self, alg: AssertionAlg) -> bool {
        self.algs.contains(&alg)
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }
}

/// A client's validated public keys.
#[derive(Debug)]
pub struct ClientJwks {
    keys: Vec<ClientKey>,
}

/// Members that only private (or symmetric) keys have (RFC 7518 §6.2.2, §6.3.2, §6.4;
/// RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

impl ClientJwks {
    /// Validates a JWK Set (see the module documentation for the rules).
    pub fn parse(set: &Value) -> Result<Self, JwksError> {
        Self::parse_with(set, false)
    }

    /// Validates a JWK Set a client publishes at its `jwks_uri`: like [`ClientJwks::parse`],
    /// but keys that cannot verify an assertion here (another `use`, key type, curve or
    /// `alg`, a short RSA modulus, malformed parameters) are skipped instead of refusing
    /// the set. Private key material still refuses it, and so does a set with no usable
    /// key (with the first skipped key's reason).
    pub fn parse_published(set: &Value) -> Result<Self, JwksError> {
        Self::parse_with(set, true)
    }

    fn parse_with(set: &Value, skip_unusable: bool) -> Result<Self, JwksError> {
        let keys = bounded_keys(set)?;
        if keys.is_empty() {
            return Err(JwksError::Empty);
        }
        let mut kids = HashSet::new();
        let mut parsed = Vec::with_capacity(keys.len());
        let mut first_skipped = None;
        for (i, jwk) in keys.iter().enumerate() {
            let key = match parse_key(i, jwk) {
                Ok(key) => key,
                Err(e @ JwksError::PrivateMember(..)) => return Err(e),
                Err(e) if skip_unusable => {
                    first_skipped.get_or_insert(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(kid) = &key.kid {
                if !kids.insert(kid.clone()) {
                    return Err(JwksError::DuplicateKid(name(i, jwk)));
                }
            }
            parsed.push(key);
        }
        if parsed.is_empty() {
            return Err(first_skipped.unwrap_or(JwksError::Empty));
        }
        Ok(ClientJwks { keys: parsed })
    }

    /// Parses JWK Set text (a file) with [`ClientJwks::parse`].
    pub fn parse_json(text: &[u8]) -> Result<(Self, Value), JwksError> {
        let value: Value = serde_json::from_slice(text).map_err(|_| JwksError::NotASet)?;
        Ok((ClientJwks::parse(&value)?, value))
    }

    /// Parses a fetched JWK Set document with [`ClientJwks::parse_published`].
    pub fn parse_published_json(text: &[u8]) -> Result<Self, JwksError> {
        let value: Value = serde_json::from_slice(text).map_err(|_| JwksError::NotASet)?;
        ClientJwks::parse_published(&value)
    }

    /// The keys.
    pub fn keys(&self) -> &[ClientKey] {
        &self.keys
    }

    /// Whether a key has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid() == Some(kid))
    }

    /// The keys that may verify an assertion with this header: the one with the `kid`
    /// (if it allows `alg`), or every key that allows `alg` when there is no `kid`.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: AssertionAlg,
    ) -> impl Iterator<Item = &'a ClientKey> + 'a {
        self.keys
            .iter()
            .filter(move |k| kid.is_none_or(|kid| k.kid() == Some(kid)) && k.allows(alg))
    }
}

/// Refuses a JWK Set holding private or symmetric key material in any key, whatever else
/// the keys are, or more than [`MAX_KEYS`] keys: for sets that carry certificates rather
/// than signing keys
/// (`self_signed_tls_client_auth`, RFC 8705 §2.2), so a pasted private key is never stored.
pub fn refuse_private_keys(set: &Value) -> Result<(), JwksError> {
    for (i, jwk) in bounded_keys(set)?.iter().enumerate() {
        refuse_private(i, jwk)?;
    }
    Ok(())
}

/// The `keys` array of a JWK Set, of at most [`MAX_KEYS`] keys.
fn bounded_keys(set: &Value) -> Result<&[Value], JwksError> {
    let keys = set
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(JwksError::NotASet)?;
    if keys.len() > MAX_KEYS {
        return Err(JwksError::TooManyKeys);
    }
    Ok(keys)
}

/// Refuses key `i` if it holds private or symmetric key material.
fn refuse_private(i: usize, jwk: &Value) -> Result<(), JwksError> {
    match PRIVATE_MEMBERS.iter().find(|m| jwk.get(**m).is_some()) {
        Some(m) => Err(JwksError::PrivateMember(name(i, jwk), m)),
        None => Ok(()),
    }
}

/// How a key is named in an error message: its position, and its `kid` if short and plain.
fn name(i: usize, jwk: &Value) -> String {
    match jwk.get("kid").and_then(Value::as_str) {
        Some(kid)
            if kid.len() <= 64
                && kid
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) =>
        {
            format!("#{i} (kid {kid})")
        }
        _ => format!("#{i}"),
    }
}

fn str_member<'a>(jwk: &'a Value, member: &str, who: &str) -> Result<&'a str, JwksError> {
    jwk.get(member)
        .and_then(Value::as_str)
        .ok_or_else(|| JwksError::Malformed(who.to_owned()))
}

fn parse_key(i: usize, jwk: &Value) -> Result<ClientKey, JwksError> {
    let who = name(i, jwk);
    let obj = jwk
        .as_object()
        .ok_or_else(|| JwksError::Malformed(who.clone()))?;
    refuse_private(i, jwk)?;
    if let Some(u) = obj.get("use") {
        if u.as_str() != Some("sig") {
            return Err(JwksError::Use(who));
        }
    }
    let kid = match obj.get("kid") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        Some(_) => return Err(JwksError::Malformed(who)),
    };
    let kty = str_member(jwk, "kty", &who)?;
    let crv = jwk.get("crv").and_then(Value::as_str);
    let b64 = |member: &str| -> Result<Vec<u8>, JwksError> {
        URL_SAFE_NO_PAD
            .decode(str_member(jwk, member, &who)?)
            .map_err(|_| JwksError::Malformed(who.clone()))
    };
    let (fits, key): (&[AssertionAlg], DecodingKey) = match (kty, crv) {
        ("EC", Some("P-256")) => {
            if b64("x")?.len() != 32 || b64("y")?.len() != 32 {
                return Err(JwksError::Malformed(who));
            }
            let key = DecodingKey::from_ec_components(
                str_member(jwk, "x", &who)?,
                str_member(jwk, "y", &who)?,
            )
            .map_err(|_| JwksError::Malformed(who.clone()))?;
            (&[AssertionAlg::ES256], key)
        }
        ("RSA", None) => {
            let n = b64("n")?;
            let e = b64("e")?;
            let bits = significant_bits(&n);
            if bits < MIN_RSA_BITS {
                return Err(JwksError::WeakRsa(who));
            }
            if e.is_empty() || e.len() > 8 {
                return Err(JwksError::Malformed(who));
            }
            let key = DecodingKey::from_rsa_components(
                str_member(jwk, "n", &who)?,
                str_member(jwk, "e", &who)?,
            )
            .map_err(|_| JwksError::Malformed(who.clone()))?;
            (&[AssertionAlg::PS256, AssertionAlg::RS256], key)
        }
        ("OKP", Some("Ed25519")) => {
            if b64("x")?.len() != 32 {
                return Err(JwksError::Malformed(who));
            }
            let key = DecodingKey::from_ed_components(str_member(jwk, "x", &who)?)
                .map_err(|_| JwksError::Malformed(who.clone()))?;
            (&[AssertionAlg::EdDSA], key)
        }
        _ => return Err(JwksError::UnsupportedKey(who)),
    };
    let algs = match obj.get("alg") {
        None => fits.to_vec(),
        Some(Value::String(a)) => match a.parse::<AssertionAlg>() {
            Ok(alg) if fits.contains(&alg) => vec![alg],
            _ => return Err(JwksError::Algorithm(who)),
        },
        Some(_) => return Err(JwksError::Algorithm(who)),
    };
    Ok(ClientKey { kid, algs, key })
}

/// The length in bits of a big-endian unsigned integer.
fn significant_bits(bytes: &[u8]) -> usize {
    match bytes.iter().position(|b| *b != 0) {
        None => 0,
        Some(first) => (bytes.len() - first - 1) * 8 + (8 - bytes[first].leading_zeros() as usize),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A real P-256 public key (the x/y of RFC 7515 appendix A.3).
    pub(crate) fn ec_jwk(kid: &str) -> Value {
        json!({
            "kty": "EC", "crv": "P-256", "kid": kid,
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
        })
    }

    #[test]
    fn a_public_ec_key_set_is_accepted() {
        let set = ClientJwks::parse(&json!({"keys": [ec_jwk("k1")]})).unwrap();
        assert!(set.has_kid("k1"));
        assert_eq!(set.candidates(Some("k1"), AssertionAlg::ES256).count(), 1);
        assert_eq!(set.candidates(None, AssertionAlg::ES256).count(), 1);
        assert_eq!(set.candidates(Some("k2"), AssertionAlg::ES256).count(), 0);
        assert_eq!(set.candidates(None, AssertionAlg::RS256).count(), 0);
    }

    #[test]
    fn private_members_are_refused() {
        for member in PRIVATE_MEMBERS {
            let mut k = ec_jwk("k1");
            k[member] = json!("AAAA");
            let err = ClientJwks::parse(&json!({"keys": [k]})).unwrap_err();
            assert!(matches!(err, JwksError::PrivateMember(_, m) if m == member));
        }
    }

    #[test]
    fn symmetric_and_unknown_key_types_are_refused() {
        let oct = json!({"kty": "oct", "kid": "h"});
        assert!(matches!(
            ClientJwks::parse(&json!({"keys": [oct]})),
            Err(JwksError::UnsupportedKey(_))
        ));
        let mut p384 = ec_jwk("k");
        p384["crv"] = json!("P-384");
        assert!(matches!(
            ClientJwks::parse(&json!({"keys": [p384]})),
            Err(JwksError::UnsupportedKey(_))
        ));
    }

    #[test]
    fn kids_must_be_unique_and_sets_bounded() {
        assert!(matches!(
            ClientJwks::parse(&json!({"keys": [ec_jwk("a"), ec_jwk("a")]})),
            Err(JwksError::DuplicateKid(_))
        ));
        assert_eq!(
            ClientJwks::parse(&json!({"keys": []})).unwrap_err(),
            JwksError::Empty
        );
        assert_eq!(
            ClientJwks::parse(&json!([ec_jwk("a")])).unwrap_err(),
            JwksError::NotASet
        );
        let many: Vec<Value> = (0..=MAX_KEYS).map(|i| ec_jwk(&format!("k{i}"))).collect();
        assert_eq!(
            ClientJwks::parse(&json!({ "keys": many })).unwrap_err(),
            JwksError::TooManyKeys
        );
    }

    #[test]
    fn alg_and_use_must_fit() {
        let mut k = ec_jwk("a");
        k["alg"] = json!("RS256");
        assert!(matches!(
            ClientJwks::parse(&json!({"keys": [k]})),
            Err(JwksError::Algorithm(_))
        ));
        let mut k = ec_jwk("a");
        k["alg"] = json!("HS256");
        assert!(matches!(
            ClientJwks::parse(&json!({"keys": [k]})),
            Err(JwksError::Algorithm(_))
        ));
        let mut k = ec_jwk("a");
        k["use"] = json!("enc");
        assert!(matches!(
            ClientJwks::parse(&json!({"keys": [k]})),
            Err(JwksError::Use(_))
        ));
    }

    #[test]
    fn a_published_set_may_carry_keys_for_other_uses() {
        let mut enc = ec_jwk("enc");
        enc["use"] = json!("enc");
        let p384 = json!({"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA"});
        let mut rsa_oaep = ec_jwk("oaep");
        rsa_oaep["alg"] = json!("RSA-OAEP");
        let set = json!({"keys": [enc, ec_jwk("sig"), p384, rsa_oaep]});
        assert!(matches!(ClientJwks::parse(&set), Err(JwksError::Use(_))));
        let keys = ClientJwks::parse_published(&set).unwrap();
        assert_eq!(keys.keys().len(), 1);
        assert!(keys.has_kid("sig"));
        // Nothing usable: the first reason.
        let mut only_enc = ec_jwk("enc");
        only_enc["use"] = json!("enc");
        assert!(matches!(
            ClientJwks::parse_published(&json!({"keys": [only_enc]})),
            Err(JwksError::Use(_))
        ));
        // Private material anywhere refuses the set.
        let mut private = ec_jwk("priv");
        private["use"] = json!("enc");
        private["d"] = json!("AA");
        assert!(matches!(
            ClientJwks::parse_published(&json!({"keys": [ec_jwk("sig"), private]})),
            Err(JwksError::PrivateMember(..))
        ));
    }

    #[test]
    fn short_rsa_keys_are_refused() {
        let n = URL_SAFE_NO_PAD.encode([0xffu8; 128]); // 1024 bits
        let k = json!({"kty": "RSA", "kid": "r", "n": n, "e": "AQAB"});
        assert!(matches!(
            ClientJwks::parse(&json!({"keys": [k]})),
            Err(JwksError::WeakRsa(_))
        ));
        let n = URL_SAFE_NO_PAD.encode([0xffu8; 256]); // 2048 bits
        let k = json!({"kty": "RSA", "kid": "r", "n": n, "e": "AQAB"});
        let set = ClientJwks::parse(&json!({"keys": [k]})).unwrap();
        assert_eq!(set.candidates(None, AssertionAlg::PS256).count(), 1);
        assert_eq!(set.candidates(None, AssertionAlg::RS256).count(), 1);
    }

    #[test]
    fn bit_length() {
        assert_eq!(significant_bits(&[0, 0, 1]), 1);
        assert_eq!(significant_bits(&[0x80, 0]), 16);
        assert_eq!(significant_bits(&[]), 0);
    }
}
