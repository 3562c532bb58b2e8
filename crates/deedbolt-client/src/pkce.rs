//! PKCE (RFC 7636): the `code_verifier` a client keeps and the S256 `code_challenge` it
//! sends with the authorization request.
//!
//! Only `S256` exists here. `plain` sends the verifier itself through the browser and
//! protects nothing against an attacker who can read the authorization request, so there
//! is no way to ask for it.

use std::fmt;

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::random::{self, RandomError};
use crate::token::Secret;

/// A `code_verifier` that RFC 7636 §4.1 does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    /// "minimum length of 43 characters and a maximum length of 128 characters".
    #[error("a code_verifier has 43 to 128 characters, not {0}")]
    Length(usize),
    /// "[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"" only.
    #[error("a code_verifier uses only the unreserved characters A-Z a-z 0-9 - . _ ~")]
    Charset,
}

/// A PKCE verifier and its S256 challenge.
///
/// The verifier is a [`Secret`] (redacted in `Debug`, zeroed on drop); the challenge is
/// public by design. Serialization writes the verifier only (a JSON string) and
/// deserialization re-derives the challenge through [`PkcePair::from_verifier`], so a
/// pair can be kept in a sealed cookie; like any secret it must only be stored sealed.
///
/// ```
/// use deedbolt_client::PkcePair;
///
/// // RFC 7636 Appendix B.
/// let pair = PkcePair::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
/// assert_eq!(pair.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
/// assert_eq!(pair.method(), "S256");
///
/// // 42 characters is one too few; '+' is not unreserved.
/// assert!(PkcePair::from_verifier(&"a".repeat(42)).is_err());
/// assert!(PkcePair::from_verifier(&"a+".repeat(22)).is_err());
/// assert!(PkcePair::from_verifier(&"a".repeat(128)).is_ok());
/// assert!(PkcePair::from_verifier(&"a".repeat(129)).is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct PkcePair {
    verifier: Secret,
    challenge: String,
}

impl PkcePair {
    /// The `code_challenge_method` (the only one there is).
    pub const METHOD: &'static str = "S256";

    /// A fresh pair: 32 random bytes, base64url without padding (43 characters, 256 bits
    /// of entropy, as RFC 7636 §7.1 recommends) as the verifier.
    pub fn generate() -> Result<PkcePair, RandomError> {
        let verifier = random::token_256()?;
        let challenge = s256(&verifier);
        Ok(PkcePair {
            verifier: Secret::new(verifier),
            challenge,
        })
    }

    /// The pair for an existing verifier, which must be 43 to 128 characters of
    /// `[A-Za-z0-9-._~]` (RFC 7636 §4.1).
    pub fn from_verifier(verifier: &str) -> Result<PkcePair, PkceError> {
        let unreserved =
            |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        if !verifier.bytes().all(unreserved) {
            return Err(PkceError::Charset);
        }
        // All ASCII now, so bytes are characters.
        if !(43..=128).contains(&verifier.len()) {
            return Err(PkceError::Length(verifier.len()));
        }
        Ok(PkcePair {
            verifier: Secret::new(verifier),
            challenge: s256(verifier),
        })
    }

    /// The `code_verifier`, sent with the code exchange.
    pub fn verifier(&self) -> &Secret {
        &self.verifier
    }

    /// The `code_challenge`: BASE64URL(SHA-256(ASCII(code_verifier))), RFC 7636 §4.2.
    pub fn challenge(&self) -> &str {
        &self.challenge
    }

    /// The `code_challenge_method`: always `S256`.
    pub fn method(&self) -> &'static str {
        Self::METHOD
    }
}

impl fmt::Debug for PkcePair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PkcePair")
            .field("verifier", &self.verifier)
            .field("challenge", &self.challenge)
            .finish()
    }
}

impl Serialize for PkcePair {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.verifier.expose())
    }
}

impl<'de> Deserialize<'de> for PkcePair {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PkcePair, D::Error> {
        let verifier = Secret::deserialize(deserializer)?;
        PkcePair::from_verifier(verifier.expose()).map_err(serde::de::Error::custom)
    }
}

fn s256(verifier: &str) -> String {
    let d = digest::digest(&digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(d.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        let pair = PkcePair::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        assert_eq!(
            pair.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(pair.method(), "S256");
    }

    #[test]
    fn generated_verifier_is_43_unreserved_chars_and_matches_its_challenge() {
        let pair = PkcePair::generate().unwrap();
        let v = pair.verifier().expose();
        assert_eq!(v.len(), 43);
        let again = PkcePair::from_verifier(v).unwrap();
        assert_eq!(again.challenge(), pair.challenge());
        assert_ne!(PkcePair::generate().unwrap(), pair, "fresh each time");
    }

    #[test]
    fn verifier_bounds_and_charset() {
        assert_eq!(
            PkcePair::from_verifier(&"a".repeat(42)),
            Err(PkceError::Length(42))
        );
        assert!(PkcePair::from_verifier(&"a".repeat(43)).is_ok());
        assert!(PkcePair::from_verifier(&"a".repeat(128)).is_ok());
        assert_eq!(
            PkcePair::from_verifier(&"a".repeat(129)),
            Err(PkceError::Length(129))
        );
        assert!(PkcePair::from_verifier(&"-._~AZaz09".repeat(5)).is_ok());
        for bad in ['+', '/', '=', ' ', '%', 'é'] {
            let v = format!("{}{bad}", "a".repeat(44));
            assert!(PkcePair::from_verifier(&v).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn debug_hides_the_verifier() {
        let pair = PkcePair::generate().unwrap();
        let dbg = format!("{pair:?}");
        assert!(!dbg.contains(pair.verifier().expose()), "{dbg}");
        assert!(dbg.contains(pair.challenge()), "{dbg}");
    }

    #[test]
    fn serde_keeps_only_the_verifier_and_revalidates() {
        let pair = PkcePair::generate().unwrap();
        let json = serde_json::to_string(&pair).unwrap();
        assert_eq!(json, format!("\"{}\"", pair.verifier().expose()));
        let back: PkcePair = serde_json::from_str(&json).unwrap();
        assert_eq!(back, pair);
        assert!(serde_json::from_str::<PkcePair>("\"short\"").is_err());
    }
}
