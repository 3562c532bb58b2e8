//! OpenID Connect ID-token verification (OIDC Core §3.1.3.7), without network: the
//! caller supplies the issuer's JWKS. [`OAuthClient::verify_id_token`] fetches (and
//! caches) the JWKS and calls [`verify`].
//!
//! What is checked, in order:
//!
//! 1. The JOSE header: `alg` is ES256, RS256 or EdDSA (never `none`, never HMAC, so a
//!    public key cannot be used as an HMAC secret); no `crit`; `typ`, if present, is not
//!    `at+jwt` (an access token is not an ID token); `jku`, `x5u` and an embedded `jwk`
//!    are ignored, never fetched or trusted.
//! 2. The key: a `kid` that names a key of the JWKS whose type (and `alg`/`use`, when the
//!    JWK states them) fits the header's `alg`.
//! 3. The signature.
//! 4. The claims: `iss` equals the issuer exactly; `aud` contains the client id; `azp`, if
//!    present (required when there are several audiences), is the client id; `nonce`
//!    equals the expected one (constant-time); `exp` is after `now` and `iat` not after
//!    it, each with [`LEEWAY`] for clock skew.
//!
//! [`OAuthClient::verify_id_token`]: crate::OAuthClient::verify_id_token

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Deserializer, Serialize};

/// The clock skew allowed on `exp` and `iat`: 30 seconds.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// ID tokens longer than this are refused unparsed.
const MAX_ID_TOKEN_LEN: usize = 16 * 1024;

/// The signing algorithms accepted: the asymmetric ones deedbolt issues.
const ALLOWED: [Algorithm; 3] = [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA];

/// Why an ID token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdTokenError {
    /// Not a well-formed JWS with the required claims.
    #[error("malformed ID token")]
    Malformed,
    /// The header's `alg` is not ES256, RS256 or EdDSA.
    #[error("ID token algorithm {0} is not accepted")]
    UnsupportedAlgorithm(String),
    /// The header has a `crit` parameter, or `typ` says it is another kind of token.
    #[error("ID token header not accepted")]
    Header,
    /// No `kid`, or none of the issuer's keys has it.
    #[error("ID token signed with an unknown key")]
    UnknownKey,
    /// The key named by `kid` does not fit the header's `alg`.
    #[error("ID token key does not match its algorithm")]
    KeyMismatch,
    /// The signature does not verify.
    #[error("ID token signature invalid")]
    BadSignature,
    /// `iss` is not the issuer.
    #[error("ID token issued by another issuer")]
    Issuer,
    /// `aud` does not contain this client.
    #[error("ID token is for another audience")]
    Audience,
    /// `azp` is missing although there are several audiences, or names another client.
    #[error("ID token authorized party is not this client")]
    AuthorizedParty,
    /// `nonce` is missing or not the one this flow sent.
    #[error("ID token nonce does not match")]
    Nonce,
    /// `exp` has passed.
    #[error("ID token expired")]
    Expired,
    /// `iat` is in the future.
    #[error("ID token issued in the future")]
    IssuedInFuture,
}

/// The verified claims of an ID token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// The issuer.
    pub iss: String,
    /// The user's identifier at the issuer: with `iss`, the only stable user key.
    pub sub: String,
    /// The audiences (a single string in the token is read as a one-element list).
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// When the user authenticated, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<u64>,
    /// The nonce of the authorization request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The authorized party (the client the token was issued to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// The access token hash (OIDC Core §3.1.3.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// Every other claim (`email`, `name`, …), as sent.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl IdTokenClaims {
    /// `exp` as a time.
    pub fn expires_at(&self) -> SystemTime {
        unix(self.exp)
    }

    /// `auth_time` as a time.
    pub fn auth_time(&self) -> Option<SystemTime> {
        self.auth_time.map(unix)
    }
}

fn unix(secs: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .unwrap_or(UNIX_EPOCH)
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// The header fields checked before `jsonwebtoken` sees the token.
#[derive(Deserialize)]
struct RawHeader {
    #[serde(default)]
    crit: Option<serde_json::Value>,
    #[serde(default)]
    typ: Option<String>,
}

/// Verifies `id_token` against `jwks` and the expectations (see the [module
/// docs](self) for the checks) and returns its claims.
pub fn verify(
    id_token: &str,
    jwks: &JwkSet,
    issuer: &str,
    client_id: &str,
    expected_nonce: &str,
    now: SystemTime,
) -> Result<IdTokenClaims, IdTokenError> {
    if id_token.len() > MAX_ID_TOKEN_LEN || id_token.split('.').count() != 3 {
        return Err(IdTokenError::Malformed);
    }
    let encoded_header = id_token.split('.').next().ok_or(IdTokenError::Malformed)?;
    let raw: RawHeader = URL_SAFE_NO_PAD
        .decode(encoded_header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(IdTokenError::Malformed)?;
    if raw.crit.is_some()
        || raw.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
        })
    {
        return Err(IdTokenError::Header);
    }
    let header = jsonwebtoken::decode_header(id_token).map_err(|e| match e.kind() {
        // An `alg` jsonwebtoken does not even know (e.g. "none").
        ErrorKind::Json(_) => IdTokenError::UnsupportedAlgorithm("unknown".into()),
        _ => IdTokenError::Malformed,
    })?;
    if !ALLOWED.contains(&header.alg) {
        return Err(IdTokenError::UnsupportedAlgorithm(format!(
            "{:?}",
            header.alg
        )));
    }
    let kid = header.kid.as_deref().ok_or(IdTokenError::UnknownKey)?;
    let jwk = jwks.find(kid).ok_or(IdTokenError::UnknownKey)?;
    check_key_fits(jwk, header.alg)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| IdTokenError::KeyMismatch)?;

    // jsonwebtoken checks the algorithm and the signature only; the claims are checked
    // below against the injected `now`.
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation.leeway = 0;
    let data =
        jsonwebtoken::decode::<IdTokenClaims>(id_token, &key, &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::InvalidSignature => IdTokenError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                IdTokenError::KeyMismatch
            }
            ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => IdTokenError::KeyMismatch,
            _ => IdTokenError::Malformed,
        })?;
    check_claims(data.claims, issuer, client_id, expected_nonce, now)
}

/// The JWK's type, curve and (if stated) `alg` and `use` fit `alg`.
fn check_key_fits(jwk: &Jwk, alg: Algorithm) -> Result<(), IdTokenError> {
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        _ => false,
    };
    let stated_alg_fits = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(KeyAlgorithm::RS256) => alg == Algorithm::RS256,
        Some(KeyAlgorithm::EdDSA) => alg == Algorithm::EdDSA,
        Some(_) => false,
    };
    let use_fits = matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    );
    if fits && stated_alg_fits && use_fits {
        Ok(())
    } else {
        Err(IdTokenError::KeyMismatch)
    }
}

fn check_claims(
    claims: IdTokenClaims,
    issuer: &str,
    client_id: &str,
    expected_nonce: &str,
    now: SystemTime,
) -> Result<IdTokenClaims, IdTokenError> {
    if claims.iss != issuer {
        return Err(IdTokenError::Issuer);
    }
    if !claims.aud.iter().any(|a| a == client_id) {
        return Err(IdTokenError::Audience);
    }
    match &claims.azp {
        Some(azp) if azp != client_id => return Err(IdTokenError::AuthorizedParty),
        None if claims.aud.len() > 1 => return Err(IdTokenError::AuthorizedParty),
        _ => {}
    }
    let nonce_ok = claims.nonce.as_deref().is_some_and(|n| {
        aws_lc_rs::constant_time::verify_slices_are_equal(n.as_bytes(), expected_nonce.as_bytes())
            .is_ok()
    });
    if !nonce_ok || expected_nonce.is_empty() {
        return Err(IdTokenError::Nonce);
    }
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let leeway = LEEWAY.as_secs();
    if claims.exp.saturating_add(leeway) <= now {
        return Err(IdTokenError::Expired);
    }
    if claims.iat > now.saturating_add(leeway) {
        return Err(IdTokenError::IssuedInFuture);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING,
    };
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const ISS: &str = "https://auth.example.com";
    const CLIENT: &str = "dbc_client";
    const NONCE: &str = "n-0S6_WzA2Mj";
    const NOW: u64 = 1_700_000_000;

    fn now() -> SystemTime {
        unix(NOW)
    }

    struct Es256 {
        encoding: EncodingKey,
        jwk: serde_json::Value,
    }

    fn es256(kid: &str) -> Es256 {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        assert_eq!(point.len(), 65);
        Es256 {
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            }),
        }
    }

    fn jwks(keys: &[&serde_json::Value]) -> JwkSet {
        serde_json::from_value(json!({ "keys": keys })).unwrap()
    }

    fn claims() -> serde_json::Value {
        json!({
            "iss": ISS, "sub": "usr_1", "aud": CLIENT, "azp": CLIENT,
            "exp": NOW + 300, "iat": NOW - 5, "auth_time": NOW - 5,
            "nonce": NONCE, "email": "tina@example.com",
        })
    }

    fn sign(key: &Es256, kid: Option<&str>, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
    }

    fn check(token: &str, set: &JwkSet) -> Result<IdTokenClaims, IdTokenError> {
        verify(token, set, ISS, CLIENT, NONCE, now())
    }

    #[test]
    fn valid_token_verifies_and_returns_claims() {
        let k = es256("k1");
        let c = check(&sign(&k, Some("k1"), &claims()), &jwks(&[&k.jwk])).unwrap();
        assert_eq!(c.sub, "usr_1");
        assert_eq!(c.aud, vec![CLIENT.to_owned()]);
        assert_eq!(c.other["email"], "tina@example.com");
        assert_eq!(c.expires_at(), unix(NOW + 300));
    }

    #[test]
    fn key_is_chosen_by_kid() {
        let k1 = es256("k1");
        let k2 = es256("k2");
        let set = jwks(&[&k1.jwk, &k2.jwk]);
        assert!(check(&sign(&k2, Some("k2"), &claims()), &set).is_ok());
        // Signed by k2 but naming k1.
        assert_eq!(
            check(&sign(&k2, Some("k1"), &claims()), &set),
            Err(IdTokenError::BadSignature)
        );
        assert_eq!(
            check(&sign(&k1, None, &claims()), &set),
            Err(IdTokenError::UnknownKey)
        );
        assert_eq!(
            check(&sign(&k1, Some("k9"), &claims()), &set),
            Err(IdTokenError::UnknownKey)
        );
    }

    #[test]
    fn signature_from_another_key_is_refused() {
        let real = es256("k1");
        let forger = es256("k1");
        assert_eq!(
            check(&sign(&forger, Some("k1"), &claims()), &jwks(&[&real.jwk])),
            Err(IdTokenError::BadSignature)
        );
    }

    #[test]
    fn tampered_payload_is_refused() {
        let k = es256("k1");
        let token = sign(&k, Some("k1"), &claims());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut evil = claims();
        evil["sub"] = json!("usr_admin");
        parts[1] = URL_SAFE_NO_PAD.encode(evil.to_string());
        assert_eq!(
            check(&parts.join("."), &jwks(&[&k.jwk])),
            Err(IdTokenError::BadSignature)
        );
    }

    #[test]
    fn hmac_with_the_public_key_and_none_are_refused() {
        let k = es256("k1");
        let set = jwks(&[&k.jwk]);
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let hs = jsonwebtoken::encode(
            &header,
            &claims(),
            &EncodingKey::from_secret(k.jwk["x"].as_str().unwrap().as_bytes()),
        )
        .unwrap();
        assert_eq!(
            check(&hs, &set),
            Err(IdTokenError::UnsupportedAlgorithm("HS256".into()))
        );

        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims().to_string());
        assert!(matches!(
            check(&format!("{none_header}.{body}."), &set),
            Err(IdTokenError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn key_of_the_wrong_type_is_refused() {
        // An Ed25519 JWK under the kid an ES256 token names.
        let k = es256("k1");
        let ed = Ed25519KeyPair::generate().unwrap();
        let ed_jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "kid": "k1",
            "x": URL_SAFE_NO_PAD.encode(ed.public_key().as_ref()),
        });
        assert_eq!(
            check(&sign(&k, Some("k1"), &claims()), &jwks(&[&ed_jwk])),
            Err(IdTokenError::KeyMismatch)
        );
        // The JWK says it is for RS256.
        let mut wrong_alg = k.jwk.clone();
        wrong_alg["alg"] = json!("RS256");
        assert_eq!(
            check(&sign(&k, Some("k1"), &claims()), &jwks(&[&wrong_alg])),
            Err(IdTokenError::KeyMismatch)
        );
        // The JWK is for encryption.
        let mut enc = k.jwk.clone();
        enc["use"] = json!("enc");
        assert_eq!(
            check(&sign(&k, Some("k1"), &claims()), &jwks(&[&enc])),
            Err(IdTokenError::KeyMismatch)
        );
    }

    #[test]
    fn access_tokens_and_crit_headers_are_refused() {
        let k = es256("k1");
        let set = jwks(&[&k.jwk]);
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        header.typ = Some("at+jwt".into());
        let at = jsonwebtoken::encode(&header, &claims(), &k.encoding).unwrap();
        assert_eq!(check(&at, &set), Err(IdTokenError::Header));

        // `crit` is refused before the signature is even looked at.
        let token = sign(&k, Some("k1"), &claims());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[0] = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"k1","crit":["exp"],"exp":1}"#);
        assert_eq!(check(&parts.join("."), &set), Err(IdTokenError::Header));
    }

    #[test]
    fn claims_are_checked() {
        let k = es256("k1");
        let set = jwks(&[&k.jwk]);
        let cases: [(&str, serde_json::Value, IdTokenError); 9] = [
            (
                "iss",
                json!("https://evil.example.com"),
                IdTokenError::Issuer,
            ),
            (
                "iss",
                json!("https://auth.example.com/"),
                IdTokenError::Issuer,
            ),
            ("aud", json!("dbc_other"), IdTokenError::Audience),
            (
                "aud",
                json!(["dbc_other", "dbc_third"]),
                IdTokenError::Audience,
            ),
            ("azp", json!("dbc_other"), IdTokenError::AuthorizedParty),
            ("nonce", json!("n-0S6_WzA2Mk"), IdTokenError::Nonce),
            ("nonce", serde_json::Value::Null, IdTokenError::Nonce),
            ("exp", json!(NOW - 31), IdTokenError::Expired),
            ("iat", json!(NOW + 31), IdTokenError::IssuedInFuture),
        ];
        for (claim, value, expected) in cases {
            let mut c = claims();
            if value.is_null() {
                c.as_object_mut().unwrap().remove(claim);
            } else {
                c[claim] = value.clone();
            }
            assert_eq!(
                check(&sign(&k, Some("k1"), &c), &set),
                Err(expected),
                "{claim} = {value}"
            );
        }
    }

    #[test]
    fn leeway_is_thirty_seconds() {
        let k = es256("k1");
        let set = jwks(&[&k.jwk]);
        let mut c = claims();
        c["exp"] = json!(NOW - 29);
        c["iat"] = json!(NOW + 29);
        assert!(check(&sign(&k, Some("k1"), &c), &set).is_ok());
    }

    #[test]
    fn several_audiences_need_azp() {
        let k = es256("k1");
        let set = jwks(&[&k.jwk]);
        let mut c = claims();
        c["aud"] = json!([CLIENT, "dbc_other"]);
        assert!(check(&sign(&k, Some("k1"), &c), &set).is_ok());
        c.as_object_mut().unwrap().remove("azp");
        assert_eq!(
            check(&sign(&k, Some("k1"), &c), &set),
            Err(IdTokenError::AuthorizedParty)
        );
    }

    #[test]
    fn empty_expected_nonce_never_matches() {
        let k = es256("k1");
        let mut c = claims();
        c["nonce"] = json!("");
        let token = sign(&k, Some("k1"), &c);
        assert_eq!(
            verify(&token, &jwks(&[&k.jwk]), ISS, CLIENT, "", now()),
            Err(IdTokenError::Nonce)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let k = es256("k1");
        let set = jwks(&[&k.jwk]);
        for junk in ["", "a.b", "a.b.c", "a.b.c.d", "....", &"a".repeat(20_000)] {
            assert!(check(junk, &set).is_err(), "{junk:.20}");
        }
        // Signed correctly but without `sub`.
        let mut c = claims();
        c.as_object_mut().unwrap().remove("sub");
        assert_eq!(
            check(&sign(&k, Some("k1"), &c), &set),
            Err(IdTokenError::Malformed)
        );
    }
}
