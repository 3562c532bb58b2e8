//! Sealing data at rest with AES-256-GCM under the operator's master key.
//!
//! Private signing keys and the client-secret pepper are sealed before they reach storage
//! when `DEEDBOLT_MASTER_KEY` is set. Every seal uses a fresh random 96-bit nonce (never a
//! counter that could repeat after a restore, never derived from a password), and binds
//! the record's identity as associated data, so a sealed blob cannot be moved to another
//! row undetected.

use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::rand;

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The blob was not sealed under this key, or was altered, or belongs to another record.
    #[error("sealed data could not be opened: wrong master key or tampered data")]
    Open,
    /// The random source failed.
    #[error(transparent)]
    Random(#[from] rand::RandomError),
    /// The cipher refused the input (only on absurd sizes).
    #[error("sealing failed")]
    Seal,
}

/// Why a master key was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MasterKeyError {
    /// Not 32 bytes in base64, base64url or hex.
    #[error(
        "DEEDBOLT_MASTER_KEY must be 32 random bytes, encoded as base64 (44 chars) or hex (64 chars); \
         generate one with `deedbolt keys generate-master-key`"
    )]
    Malformed,
    /// All bytes equal (e.g. all zeros): a placeholder, not a key.
    #[error("DEEDBOLT_MASTER_KEY is a placeholder (all bytes equal); generate a real one")]
    Placeholder,
}

/// The operator's 256-bit master key. Zeroed on drop and redacted in `Debug`.
pub struct MasterKey {
    key: LessSafeKey,
}

impl MasterKey {
    /// Parses a key given as base64, base64url or hex.
    pub fn parse(encoded: &str) -> Result<Self, MasterKeyError> {
        let encoded = encoded.trim();
        let bytes: Zeroizing<Vec<u8>> = Zeroizing::new(
            decode_hex(encoded)
                .or_else(|| STANDARD.decode(encoded).ok())
                .or_else(|| URL_SAFE_NO_PAD.decode(encoded).ok())
                .ok_or(MasterKeyError::Malformed)?,
        );
        if bytes.len() != 32 {
            return Err(MasterKeyError::Malformed);
        }
        if bytes.iter().all(|b| *b == bytes[0]) {
            return Err(MasterKeyError::Placeholder);
        }
        Self::from_bytes(&bytes).ok_or(MasterKeyError::Malformed)
    }

    /// A fresh random key, base64-encoded, for `deedbolt keys generate-master-key`.
    pub fn generate_encoded() -> Result<Zeroizing<String>, rand::RandomError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::fill(bytes.as_mut())?;
        Ok(Zeroizing::new(STANDARD.encode(bytes.as_ref())))
    }

    /// A key of the same kind derived from a high-entropy secret (a 256-bit refresh token),
    /// for sealing what only the holder of that secret may read back: SHA-256 over a
    /// domain label and the secret. Never use it with a low-entropy secret (a password).
    pub fn derive_from_secret(domain: &[u8], secret: &[u8]) -> Result<Self, SealError> {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(domain);
        ctx.update(&[0]);
        ctx.update(secret);
        Self::from_bytes(ctx.finish().as_ref()).ok_or(SealError::Seal)
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).ok()?;
        Some(MasterKey {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Seals `plaintext`, bound to `context` (e.g. the key id): `nonce || ciphertext || tag`.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce_bytes = [0u8; NONCE_LEN];
        rand::fill(&mut nonce_bytes)?;
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
        out.extend_from_slice(&nonce_bytes);
        let mut body = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context),
                &mut body,
            )
            .map_err(|_| SealError::Seal)?;
        out.extend_from_slice(&body);
        body.iter_mut().for_each(|b| *b = 0);
        Ok(out)
    }

    /// Opens a blob made by [`MasterKey::seal`] with the same `context`.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(SealError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len = self
            .key
            .open_in_place(nonce, Aad::from(context), buf.as_mut_slice())
            .map_err(|_| SealError::Open)?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::parse(&MasterKey::generate_encoded().unwrap()).unwrap()
    }

    #[test]
    fn seal_then_open_round_trips() {
        let k = key();
        let sealed = k.seal(b"kid-1", b"private key bytes").unwrap();
        assert_eq!(
            &k.open(b"kid-1", &sealed).unwrap()[..],
            b"private key bytes"
        );
    }

    #[test]
    fn nonces_are_fresh() {
        let k = key();
        assert_ne!(
            k.seal(b"c", b"same").unwrap(),
            k.seal(b"c", b"same").unwrap()
        );
    }

    #[test]
    fn wrong_key_context_or_tampering_fail() {
        let k = key();
        let mut sealed = k.seal(b"kid-1", b"secret").unwrap();
        assert!(key().open(b"kid-1", &sealed).is_err());
        assert!(k.open(b"kid-2", &sealed).is_err());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(k.open(b"kid-1", &sealed).is_err());
        assert!(k.open(b"kid-1", &[0u8; 5]).is_err());
    }

    #[test]
    fn parse_accepts_hex_and_base64_and_refuses_placeholders() {
        assert!(MasterKey::parse(&"ab".repeat(32)).is_err()); // all bytes equal
        assert_eq!(
            MasterKey::parse(&"00".repeat(32)).unwrap_err(),
            MasterKeyError::Placeholder
        );
        let hex: String = (0u8..32).map(|b| format!("{b:02x}")).collect();
        assert!(MasterKey::parse(&hex).is_ok());
        assert_eq!(
            MasterKey::parse("too-short").unwrap_err(),
            MasterKeyError::Malformed
        );
        assert!(!format!("{:?}", key()).contains("0x"));
    }
}
