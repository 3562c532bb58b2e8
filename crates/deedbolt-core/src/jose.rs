//! Signing keys, JWS compact signing (RFC 7515) and public JWKs (RFC 7517).
//!
//! Only asymmetric algorithms exist here: ES256 (the default), RS256 (which RFC 9068
//! requires servers to support) and EdDSA (Ed25519). `none` and the HMAC family cannot be
//! named, so they can be neither issued nor accepted.
//!
//! A [`SigningKey`] holds the parsed key pair, so a token costs one signature and no key
//! parsing. The cryptography is aws-lc-rs's; this module only lays out the compact
//! serialization `base64url(header) . base64url(claims) . base64url(signature)`.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents,
    ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::ids::KeyId;

/// A JWS signing algorithm deedbolt issues and accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    /// ECDSA with P-256 and SHA-256 (RFC 7518 §3.4): the default.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and a 2048-bit key (RFC 7518 §3.3).
    RS256,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

impl SigningAlg {
    /// Every supported algorithm.
    pub const ALL: [SigningAlg; 3] = [SigningAlg::ES256, SigningAlg::RS256, SigningAlg::EdDSA];

    /// The `alg` header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            SigningAlg::ES256 => "ES256",
            SigningAlg::RS256 => "RS256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `alg` that deedbolt does not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported signing algorithm `{0}` (supported: ES256, RS256, EdDSA)")]
pub struct UnsupportedAlg(pub String);

impl FromStr for SigningAlg {
    type Err = UnsupportedAlg;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SigningAlg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnsupportedAlg(s.chars().take(32).collect()))
    }
}

/// Why a key could not be made, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The stored private key does not parse as PKCS#8 for its algorithm.
    #[error("stored {0} private key is not valid PKCS#8")]
    Rejected(SigningAlg),
    /// Key generation or signing failed inside the crypto library.
    #[error("{0} key operation failed")]
    Crypto(SigningAlg),
    /// The claims could not be serialized.
    #[error("claims could not be serialized: {0}")]
    Serialize(#[from] serde_json::Error),
}

enum Pair {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A parsed private signing key with its `kid` and public JWK.
pub struct SigningKey {
    kid: KeyId,
    alg: SigningAlg,
    pair: Pair,
    jwk: Jwk,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The private part of a newly generated key, PKCS#8 DER, zeroed on drop.
pub type Pkcs8 = Zeroizing<Vec<u8>>;

impl SigningKey {
    /// Generates a new key pair; returns it with its PKCS#8 encoding for storage.
    pub fn generate(alg: SigningAlg) -> Result<(SigningKey, Pkcs8), KeyError> {
        let der: Pkcs8 = match alg {
            SigningAlg::ES256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyError::Crypto(alg))?;
                Zeroizing::new(
                    pair.to_pkcs8v1()
                        .map_err(|_| KeyError::Crypto(alg))?
                        .as_ref()
                        .to_vec(),
                )
            }
            SigningAlg::RS256 => {
                use aws_lc_rs::encoding::AsDer;
                let pair =
                    RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Crypto(alg))?;
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> =
                    pair.as_der().map_err(|_| KeyError::Crypto(alg))?;
                Zeroizing::new(der.as_ref().to_vec())
            }
            SigningAlg::EdDSA => {
                let pair = Ed25519KeyPair::generate().map_err(|_| KeyError::Crypto(alg))?;
                Zeroizing::new(
                    pair.to_pkcs8v1()
                        .map_err(|_| KeyError::Crypto(alg))?
                        .as_ref()
                        .to_vec(),
                )
            }
        };
        let key = SigningKey::from_pkcs8(alg, &der)?;
        Ok((key, der))
    }

    /// Loads a stored PKCS#8 private key.
    pub fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> Result<SigningKey, KeyError> {
        let (pair, params) = match alg {
            SigningAlg::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| KeyError::Rejected(alg))?;
                // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = pair.public_key().as_ref();
                if point.len() != 65 || point[0] != 4 {
                    return Err(KeyError::Rejected(alg));
                }
                let params = JwkParams::Ec {
                    crv: "P-256".into(),
                    x: b64(&point[1..33]),
                    y: b64(&point[33..65]),
                };
                (Pair::Ec(pair), params)
            }
            SigningAlg::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(der).map_err(|_| KeyError::Rejected(alg))?;
                if pair.public_modulus_len() < 256 {
                    return Err(KeyError::Rejected(alg));
                }
                let parts = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                let params = JwkParams::Rsa {
                    n: b64(&parts.n),
                    e: b64(&parts.e),
                };
                (Pair::Rsa(pair), params)
            }
            SigningAlg::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|_| KeyError::Rejected(alg))?;
                let params = JwkParams::Okp {
                    crv: "Ed25519".into(),
                    x: b64(pair.public_key().as_ref()),
                };
                (Pair::Ed(pair), params)
            }
        };
        let kid = KeyId::from_thumbprint(params.thumbprint());
        let jwk = Jwk {
            kid: kid.clone(),
            alg,
            use_: "sig".into(),
            params,
        };
        Ok(SigningKey {
            kid,
            alg,
            pair,
            jwk,
            rng: SystemRandom::new(),
        })
    }

    /// The key's id: its RFC 7638 thumbprint.
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// The key's algorithm.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The public key as a JWK.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Signs raw bytes with the key's algorithm.
    pub fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let crypto = |_| KeyError::Crypto(self.alg);
        Ok(match &self.pair {
            Pair::Ec(p) => p
                .sign(&self.rng, message)
                .map_err(crypto)?
                .as_ref()
                .to_vec(),
            Pair::Ed(p) => p.sign(message).as_ref().to_vec(),
            Pair::Rsa(p) => {
                let mut sig = vec![0u8; p.public_modulus_len()];
                p.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .map_err(crypto)?;
                sig
            }
        })
    }

    /// Signs `claims` as a JWS compact JWT with header `{alg, typ, kid}`.
    pub fn sign_jwt<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        let header = JwsHeader {
            alg: self.alg.as_str(),
            typ,
            kid: self.kid.as_str(),
        };
        let header_json = serde_json::to_vec(&header)?;
        let claims_json = serde_json::to_vec(claims)?;
        let mut out = String::with_capacity(
            (header_json.len() + claims_json.len()) * 4 / 3 + 8 + self.signature_len() * 4 / 3,
        );
        URL_SAFE_NO_PAD.encode_string(&header_json, &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims_json, &mut out);
        let signature = self.sign_bytes(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut out);
        Ok(out)
    }

    fn signature_len(&self) -> usize {
        match &self.pair {
            Pair::Ec(_) | Pair::Ed(_) => 64,
            Pair::Rsa(p) => p.public_modulus_len(),
        }
    }
}

#[derive(Serialize)]
struct JwsHeader<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A public JSON Web Key as published in the JWKS (private parts never exist here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// The key id.
    pub kid: KeyId,
    /// The one algorithm this key may be used with.
    pub alg: SigningAlg,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// The key-type-specific members.
    #[serde(flatten)]
    pub params: JwkParams,
}

/// The key-type-specific members of a public JWK (RFC 7518 §6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kty")]
pub enum JwkParams {
    /// An elliptic-curve public key.
    #[serde(rename = "EC")]
    Ec {
        /// The curve, `P-256`.
        crv: String,
        /// base64url x coordinate.
        x: String,
        /// base64url y coordinate.
        y: String,
    },
    /// An RSA public key.
    #[serde(rename = "RSA")]
    Rsa {
        /// base64url modulus.
        n: String,
        /// base64url public exponent.
        e: String,
    },
    /// An octet key pair (RFC 8037), here Ed25519.
    #[serde(rename = "OKP")]
    Okp {
        /// The curve, `Ed25519`.
        crv: String,
        /// base64url public key.
        x: String,
    },
}

impl JwkParams {
    /// The RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order.
    pub fn thumbprint(&self) -> String {
        // serde_json escapes these base64url/ASCII values exactly as RFC 7638 requires.
        let canonical = match self {
            JwkParams::Ec { crv, x, y } => {
                format!(r#"{{"crv":"{crv}","kty":"EC","x":"{x}","y":"{y}"}}"#)
            }
            JwkParams::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
            JwkParams::Okp { crv, x } => format!(r#"{{"crv":"{crv}","kty":"OKP","x":"{x}"}}"#),
        };
        b64(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    }
}

/// A JWK Set document (RFC 7517 §5).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{
        UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519, RSA_PKCS1_2048_8192_SHA256,
    };
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn verify_with_jwk(jwt: &str, jwk: &Jwk) -> bool {
        let (message, sig) = jwt.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let d = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
        match &jwk.params {
            JwkParams::Ec { x, y, .. } => {
                let mut point = vec![4u8];
                point.extend(d(x));
                point.extend(d(y));
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                    .verify(message.as_bytes(), &sig)
                    .is_ok()
            }
            JwkParams::Okp { x, .. } => UnparsedPublicKey::new(&ED25519, d(x))
                .verify(message.as_bytes(), &sig)
                .is_ok(),
            JwkParams::Rsa { n, e } => RsaPublicKeyComponents { n: d(n), e: d(e) }
                .verify(&RSA_PKCS1_2048_8192_SHA256, message.as_bytes(), &sig)
                .is_ok(),
        }
    }

    #[test]
    fn every_algorithm_signs_verifiably_and_reloads_with_same_kid() {
        for alg in SigningAlg::ALL {
            let (key, der) = SigningKey::generate(alg).unwrap();
            let jwt = key
                .sign_jwt("at+jwt", &serde_json::json!({"sub": "x"}))
                .unwrap();
            assert!(verify_with_jwk(&jwt, key.public_jwk()), "{alg}");
            let header: serde_json::Value = serde_json::from_slice(
                &URL_SAFE_NO_PAD
                    .decode(jwt.split('.').next().unwrap())
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(header["alg"], alg.as_str());
            assert_eq!(header["typ"], "at+jwt");
            assert_eq!(header["kid"], key.kid().as_str());
            let reloaded = SigningKey::from_pkcs8(alg, &der).unwrap();
            assert_eq!(reloaded.kid(), key.kid());
            let mut tampered = jwt.clone();
            tampered.insert(jwt.find('.').unwrap() + 2, 'A');
            assert!(!verify_with_jwk(&tampered, key.public_jwk()));
        }
    }

    #[test]
    fn wrong_algorithm_for_stored_key_is_rejected() {
        let (_, der) = SigningKey::generate(SigningAlg::EdDSA).unwrap();
        assert!(SigningKey::from_pkcs8(SigningAlg::ES256, &der).is_err());
        assert!(SigningKey::from_pkcs8(SigningAlg::ES256, b"garbage").is_err());
    }

    #[test]
    fn rfc7638_thumbprint_example() {
        // The RSA example key of RFC 7638 §3.1.
        let params = JwkParams::Rsa {
            n: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into(),
            e: "AQAB".into(),
        };
        assert_eq!(
            params.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn rfc7638_thumbprints_of_fixed_ec_and_ed25519_keys() {
        // The EC P-256 public key of RFC 7517 Appendix A.1. Its thumbprint was computed
        // independently of this code, with Python's standard library:
        //   m = json.dumps({"crv": "P-256", "kty": "EC", "x": X, "y": Y},
        //                  separators=(",", ":"), sort_keys=True)
        //   base64.urlsafe_b64encode(hashlib.sha256(m.encode()).digest()).rstrip(b"=")
        let ec = JwkParams::Ec {
            crv: "P-256".into(),
            x: "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4".into(),
            y: "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM".into(),
        };
        assert_eq!(
            ec.thumbprint(),
            "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s"
        );
        // The Ed25519 key of RFC 8037 Appendix A.2, whose thumbprint Appendix A.3 gives.
        let okp = JwkParams::Okp {
            crv: "Ed25519".into(),
            x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".into(),
        };
        assert_eq!(
            okp.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn algorithms_parse_and_none_or_hmac_do_not() {
        assert_eq!("ES256".parse::<SigningAlg>(), Ok(SigningAlg::ES256));
        assert!("none".parse::<SigningAlg>().is_err());
        assert!("HS256".parse::<SigningAlg>().is_err());
        assert!("es256".parse::<SigningAlg>().is_err());
    }

    #[test]
    fn jwk_serializes_with_kty_and_use() {
        let (key, _) = SigningKey::generate(SigningAlg::ES256).unwrap();
        let v = serde_json::to_value(key.public_jwk()).unwrap();
        assert_eq!(v["kty"], "EC");
        assert_eq!(v["use"], "sig");
        assert_eq!(v["crv"], "P-256");
        assert!(v.get("d").is_none());
    }
}
