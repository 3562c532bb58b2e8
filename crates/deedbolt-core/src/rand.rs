//! Randomness for identifiers, secrets and nonces, from the operating system's CSPRNG.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The random source failed; the only sane reaction is to refuse the request.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// Fills `dest` with cryptographically secure random bytes.
pub fn fill(dest: &mut [u8]) -> Result<(), RandomError> {
    aws_lc_rs::rand::fill(dest).map_err(|_| RandomError)
}

/// `N` random bytes, base64url-encoded without padding (RFC 4648 §5).
pub fn token<const N: usize>() -> Result<String, RandomError> {
    let mut bytes = [0u8; N];
    fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_unique_and_sized() {
        let a = super::token::<32>().expect("rng");
        let b = super::token::<32>().expect("rng");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }
}
