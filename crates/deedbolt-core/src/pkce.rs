//! Proof Key for Code Exchange (RFC 7636), `S256` only.
//!
//! deedbolt requires PKCE from every client, public and confidential (RFC 9700 §2.1.1), and
//! accepts only the `S256` method: `plain` protects nothing against an attacker who can read
//! the authorization request, and a missing method means `plain` (RFC 7636 §4.3), so both
//! are refused.

use std::fmt;

use aws_lc_rs::digest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use zeroize::Zeroizing;

/// Why a PKCE parameter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    /// No `code_challenge` in the authorization request.
    #[error("code_challenge is required (PKCE with S256)")]
    MissingChallenge,
    /// A method other than `S256`, or none (which means `plain`).
    #[error("code_challenge_method must be S256")]
    Method,
    /// Not 43 base64url characters (the encoding of a SHA-256 digest).
    #[error("code_challenge must be the base64url SHA-256 of the verifier (43 characters)")]
    MalformedChallenge,
    /// Not 43–128 characters from the unreserved set (RFC 7636 §4.1).
    #[error("code_verifier must be 43 to 128 characters of [A-Z a-z 0-9 - . _ ~]")]
    MalformedVerifier,
    /// The verifier does not hash to the challenge.
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

/// A validated `S256` code challenge.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Validates the challenge and its method from an authorization request.
    ///
    /// ```
    /// use deedbolt_core::pkce::{CodeChallenge, PkceError};
    /// let c = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"; // RFC 7636 Appendix B
    /// assert!(CodeChallenge::parse(Some(c), Some("S256")).is_ok());
    /// assert_eq!(CodeChallenge::parse(Some(c), Some("plain")), Err(PkceError::Method));
    /// assert_eq!(CodeChallenge::parse(Some(c), None), Err(PkceError::Method));
    /// assert_eq!(CodeChallenge::parse(None, Some("S256")), Err(PkceError::MissingChallenge));
    /// ```
    pub fn parse(challenge: Option<&str>, method: Option<&str>) -> Result<Self, PkceError> {
        let challenge = challenge.ok_or(PkceError::MissingChallenge)?;
        if method != Some("S256") {
            return Err(PkceError::Method);
        }
        let decoded = URL_SAFE_NO_PAD
            .decode(challenge)
            .map_err(|_| PkceError::MalformedChallenge)?;
        if challenge.len() != 43 || decoded.len() != 32 {
            return Err(PkceError::MalformedChallenge);
        }
        Ok(CodeChallenge(challenge.to_owned()))
    }

    /// The challenge as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a stored challenge.
    pub fn from_stored(s: &str) -> Result<Self, PkceError> {
        Self::parse(Some(s), Some("S256"))
    }
}

impl fmt::Debug for CodeChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CodeChallenge({})", self.0)
    }
}

/// A code verifier presented at the token endpoint. Zeroed on drop, redacted in `Debug`.
pub struct CodeVerifier(Zeroizing<String>);

impl CodeVerifier {
    /// Validates a presented verifier (RFC 7636 §4.1).
    pub fn parse(s: &str) -> Result<Self, PkceError> {
        let ok = (43..=128).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if !ok {
            return Err(PkceError::MalformedVerifier);
        }
        Ok(CodeVerifier(Zeroizing::new(s.to_owned())))
    }

    /// The `S256` challenge of this verifier.
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, self.0.as_bytes()))
    }
}

impl fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeVerifier([redacted])")
    }
}

/// Proof that the client presented the verifier of the code's challenge.
#[derive(Debug)]
pub struct PkceVerified(());

/// Checks `verifier` against `challenge` in constant time.
///
/// ```
/// use deedbolt_core::pkce::{verify, CodeChallenge, CodeVerifier};
/// // RFC 7636 Appendix B.
/// let v = CodeVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
/// let c = CodeChallenge::parse(Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"), Some("S256")).unwrap();
/// assert!(verify(&v, &c).is_ok());
/// ```
pub fn verify(
    verifier: &CodeVerifier,
    challenge: &CodeChallenge,
) -> Result<PkceVerified, PkceError> {
    let computed = verifier.challenge();
    if constant_time_eq(computed.as_bytes(), challenge.0.as_bytes()) {
        Ok(PkceVerified(()))
    } else {
        Err(PkceError::Mismatch)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Both are 43-byte public encodings of digests; lengths are not secret.
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_verifier_is_a_mismatch() {
        let c = CodeChallenge::parse(
            Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            Some("S256"),
        )
        .unwrap();
        let v = CodeVerifier::parse(&"a".repeat(43)).unwrap();
        assert_eq!(verify(&v, &c).unwrap_err(), PkceError::Mismatch);
    }

    #[test]
    fn verifier_bounds_and_charset() {
        assert!(CodeVerifier::parse(&"a".repeat(42)).is_err());
        assert!(CodeVerifier::parse(&"a".repeat(129)).is_err());
        assert!(CodeVerifier::parse(&"a".repeat(128)).is_ok());
        assert!(CodeVerifier::parse(&format!("{}+", "a".repeat(43))).is_err());
        assert!(!format!("{:?}", CodeVerifier::parse(&"s".repeat(50)).unwrap()).contains("sss"));
    }

    #[test]
    fn malformed_challenges_are_refused() {
        for c in [
            "short",
            &"a".repeat(44),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM",
        ] {
            assert_eq!(
                CodeChallenge::parse(Some(c), Some("S256")),
                Err(PkceError::MalformedChallenge),
                "{c}"
            );
        }
    }
}
