//! Randomness from the operating system, through aws-lc-rs.

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The operating system's random number generator failed.
///
/// This does not happen on a working system; it is an error rather than a panic so that a
/// server can answer 500 instead of dying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError;

/// Fills `buf` with random bytes.
pub(crate) fn fill(buf: &mut [u8]) -> Result<(), RandomError> {
    SystemRandom::new().fill(buf).map_err(|_| RandomError)
}

/// 32 random bytes (256 bits), base64url without padding (43 characters).
pub(crate) fn token_256() -> Result<String, RandomError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    fill(bytes.as_mut())?;
    Ok(URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}
