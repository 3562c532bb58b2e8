//! Sealing small blobs (a token set in a cookie) with AES-256-GCM, with a key ring so keys
//! can be rotated without logging everyone out.
//!
//! # Format
//!
//! `v1.<key id>.<base64url(nonce || ciphertext || tag)>`, base64url without padding; the
//! nonce is 12 bytes and the tag 16.
//!
//! - **Nonce**: 96 fresh random bits for every seal, drawn by aws-lc-rs
//!   (`RandomizedNonceKey`). With random nonces one key should seal fewer than 2^32
//!   blobs (NIST SP 800-38D §8.3); rotate well before that.
//! - **Associated data**: the header `v1.<key id>.` followed by the caller's context
//!   bytes (e.g. the cookie name). A key id cannot contain `.`, so the header ends
//!   unambiguously. A blob opened under another context, or with its header rewritten
//!   to name another key or version, fails authentication.
//! - **Keys**: 32 random bytes each ([`SealKey::generate`], or from configuration with
//!   [`SealKey::parse_list`]); never derived from a password. The first key of the ring
//!   seals; every key opens.
//!
//! Opening answers one [`SealError::Invalid`] for every kind of bad input (garbage,
//! tampering, an unknown key, the wrong context), so the answer is no oracle.

use std::collections::HashSet;
use std::fmt;

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::random::{self, RandomError};
use crate::token::Secret;

/// The version prefix of the format.
const VERSION: &str = "v1";
/// The AES-GCM tag length.
const TAG_LEN: usize = 16;
/// Sealed blobs longer than this are refused unread (cookies are at most ~4 KiB).
const MAX_SEALED_LEN: usize = 64 * 1024;
/// Key length (AES-256).
pub const KEY_LEN: usize = 32;

/// base64url that accepts keys with or without `=` padding (configuration is hand-edited);
/// sealed blobs are always decoded strictly.
const LENIENT_B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A bad key or key ring. Messages name key ids and positions, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealKeyError {
    /// A ring needs at least one key.
    #[error("no sealing key configured")]
    Empty,
    /// Key ids are 1 to 16 characters of `[A-Za-z0-9_-]`.
    #[error("sealing key id `{0}` is not 1-16 characters of [A-Za-z0-9_-]")]
    BadId(String),
    /// A list entry is not `id:key`.
    #[error("sealing key entry {0} (counting from 1) is not `id:BASE64URL`")]
    Malformed(usize),
    /// The key is not base64url for exactly 32 bytes.
    #[error("sealing key `{0}` is not base64url for exactly 32 bytes")]
    BadKey(String),
    /// Two keys share an id, so a blob could not say which key sealed it.
    #[error("sealing key id `{0}` appears twice")]
    Duplicate(String),
    /// No randomness for a new key.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Sealing failed, or a sealed blob did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The blob is not one this ring sealed for this context: malformed, tampered with,
    /// sealed by a key that is not in the ring, or sealed for another context. Which one
    /// is deliberately not said.
    #[error("invalid sealed value")]
    Invalid,
    /// Sealing failed (the random nonce or the cipher).
    #[error("sealing failed")]
    Seal,
    /// The value to seal did not serialize to JSON.
    #[error("the value to seal does not serialize to JSON")]
    Serialize,
}

/// A sealing key: an id (1 to 16 characters of `[A-Za-z0-9_-]`, written into every blob
/// it seals) and 32 secret bytes, zeroed on drop and redacted in `Debug`.
#[derive(Clone)]
pub struct SealKey {
    id: String,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl SealKey {
    /// A key from its parts.
    pub fn new(id: &str, key: [u8; KEY_LEN]) -> Result<SealKey, SealKeyError> {
        let key = Zeroizing::new(key);
        check_id(id)?;
        Ok(SealKey {
            id: id.to_owned(),
            key,
        })
    }

    /// A fresh random key named `id`.
    pub fn generate(id: &str) -> Result<SealKey, SealKeyError> {
        check_id(id)?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        random::fill(key.as_mut())?;
        Ok(SealKey {
            id: id.to_owned(),
            key,
        })
    }

    /// Parses a key ring from configuration: `id1:BASE64URL,id2:BASE64URL`, each key 32
    /// bytes in base64url (padding optional), whitespace around entries ignored. The
    /// first key is the one that seals.
    ///
    /// ```
    /// use deedbolt_client::{SealKey, SealKeyError};
    ///
    /// let a = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    /// let b = "__________________________________________8";
    /// let ring = SealKey::parse_list(&format!("new:{a}, old:{b}")).unwrap();
    /// assert_eq!(ring[0].id(), "new");
    /// assert_eq!(ring[1].id(), "old");
    ///
    /// assert_eq!(SealKey::parse_list("").err(), Some(SealKeyError::Empty));
    /// assert!(matches!(SealKey::parse_list(&format!("k:{a},k:{b}")), Err(SealKeyError::Duplicate(_))));
    /// assert!(matches!(SealKey::parse_list("k:c2hvcnQ"), Err(SealKeyError::BadKey(_))));
    /// ```
    pub fn parse_list(config: &str) -> Result<Vec<SealKey>, SealKeyError> {
        let mut keys = Vec::new();
        for (i, entry) in config.split(',').enumerate() {
            let entry = entry.trim();
            if entry.is_empty() {
                if config.trim().is_empty() {
                    return Err(SealKeyError::Empty);
                }
                return Err(SealKeyError::Malformed(i + 1));
            }
            let (id, encoded) = entry
                .split_once(':')
                .ok_or(SealKeyError::Malformed(i + 1))?;
            let (id, encoded) = (id.trim(), encoded.trim());
            check_id(id)?;
            let decoded = Zeroizing::new(
                LENIENT_B64URL
                    .decode(encoded)
                    .map_err(|_| SealKeyError::BadKey(id.to_owned()))?,
            );
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            if decoded.len() != KEY_LEN {
                return Err(SealKeyError::BadKey(id.to_owned()));
            }
            key.copy_from_slice(&decoded);
            keys.push(SealKey {
                id: id.to_owned(),
                key,
            });
        }
        check_ring(&keys)?;
        Ok(keys)
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as one `id:BASE64URL` entry of [`SealKey::parse_list`]'s format (for a
    /// tool that prints a freshly generated key once).
    pub fn to_config_entry(&self) -> Secret {
        Secret::new(format!("{}:{}", self.id, URL_SAFE_NO_PAD.encode(*self.key)))
    }
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealKey")
            .field("id", &self.id)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

fn check_id(id: &str) -> Result<(), SealKeyError> {
    let ok = (1..=16).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(SealKeyError::BadId(id.to_owned()))
    }
}

fn check_ring(keys: &[SealKey]) -> Result<(), SealKeyError> {
    if keys.is_empty() {
        return Err(SealKeyError::Empty);
    }
    let mut seen = HashSet::new();
    for k in keys {
        if !seen.insert(k.id.as_str()) {
            return Err(SealKeyError::Duplicate(k.id.clone()));
        }
    }
    Ok(())
}

/// Seals with the first key of its ring and opens with any of them.
///
/// ```
/// use deedbolt_client::{SealKey, Sealer};
///
/// let sealer = Sealer::new(vec![SealKey::generate("k1").unwrap()]).unwrap();
/// let blob = sealer.seal(b"session", b"hello").unwrap();
/// assert!(blob.starts_with("v1.k1."));
/// assert_eq!(&sealer.open(b"session", &blob).unwrap()[..], b"hello");
/// assert!(sealer.open(b"other-cookie", &blob).is_err());
/// ```
pub struct Sealer {
    /// `(id, key)`; the first seals. aws-lc holds (and on drop clears) the expanded key.
    keys: Vec<(String, RandomizedNonceKey)>,
}

impl Sealer {
    /// A sealer for the ring `keys` (first seals, all open). Refuses an empty ring and
    /// duplicate ids.
    pub fn new(keys: Vec<SealKey>) -> Result<Sealer, SealKeyError> {
        check_ring(&keys)?;
        let mut ring = Vec::with_capacity(keys.len());
        for k in keys {
            let key = RandomizedNonceKey::new(&AES_256_GCM, k.key.as_ref())
                .map_err(|_| SealKeyError::BadKey(k.id.clone()))?;
            ring.push((k.id.clone(), key));
        }
        Ok(Sealer { keys: ring })
    }

    /// The id of the key that seals.
    pub fn current_key_id(&self) -> &str {
        self.keys.first().map_or("", |(id, _)| id.as_str())
    }

    /// Seals `plaintext` for `context` (e.g. the cookie name): it only opens with the
    /// same context.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<String, SealError> {
        let (id, key) = self.keys.first().ok_or(SealError::Seal)?;
        let header = format!("{VERSION}.{id}.");
        let mut in_out = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
        in_out.extend_from_slice(plaintext);
        let nonce = key
            .seal_in_place_append_tag(Aad::from(aad(&header, context)), &mut *in_out)
            .map_err(|_| SealError::Seal)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + in_out.len());
        blob.extend_from_slice(nonce.as_ref());
        blob.extend_from_slice(&in_out);
        Ok(format!("{header}{}", URL_SAFE_NO_PAD.encode(blob)))
    }

    /// Opens a blob sealed by a key of the ring for `context`.
    pub fn open(&self, context: &[u8], sealed: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() > MAX_SEALED_LEN {
            return Err(SealError::Invalid);
        }
        let mut parts = sealed.splitn(3, '.');
        let (Some(version), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SealError::Invalid);
        };
        if version != VERSION {
            return Err(SealError::Invalid);
        }
        let (_, key) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or(SealError::Invalid)?;
        let mut blob = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(body)
                .map_err(|_| SealError::Invalid)?,
        );
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Invalid);
        }
        let nonce =
            Nonce::try_assume_unique_for_key(&blob[..NONCE_LEN]).map_err(|_| SealError::Invalid)?;
        let header = format!("{VERSION}.{id}.");
        let plaintext = key
            .open_in_place(
                nonce,
                Aad::from(aad(&header, context)),
                &mut blob[NONCE_LEN..],
            )
            .map_err(|_| SealError::Invalid)?;
        Ok(Zeroizing::new(plaintext.to_vec()))
    }

    /// Serializes `value` to JSON and seals it (e.g. a [`TokenSet`](crate::TokenSet)).
    pub fn seal_json<T: Serialize>(&self, context: &[u8], value: &T) -> Result<String, SealError> {
        let json = Zeroizing::new(serde_json::to_vec(value).map_err(|_| SealError::Serialize)?);
        self.seal(context, &json)
    }

    /// Opens a blob from [`Sealer::seal_json`]. A blob that opens but does not parse as a
    /// `T` (say, sealed by an older version of the application) is also
    /// [`SealError::Invalid`].
    pub fn open_json<T: DeserializeOwned>(
        &self,
        context: &[u8],
        sealed: &str,
    ) -> Result<T, SealError> {
        let json = self.open(context, sealed)?;
        serde_json::from_slice(&json).map_err(|_| SealError::Invalid)
    }
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Sealer").field("key_ids", &ids).finish()
    }
}

fn aad(header: &str, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + context.len());
    aad.extend_from_slice(header.as_bytes());
    aad.extend_from_slice(context);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: &[u8] = b"deedbolt_bff_tokens";

    fn ring(ids: &[&str]) -> Vec<SealKey> {
        ids.iter()
            .map(|id| SealKey::generate(id).unwrap())
            .collect()
    }

    fn parts(blob: &str) -> (String, String, Vec<u8>) {
        let mut p = blob.splitn(3, '.');
        let v = p.next().unwrap().to_owned();
        let id = p.next().unwrap().to_owned();
        let body = URL_SAFE_NO_PAD.decode(p.next().unwrap()).unwrap();
        (v, id, body)
    }

    fn join(v: &str, id: &str, body: &[u8]) -> String {
        format!("{v}.{id}.{}", URL_SAFE_NO_PAD.encode(body))
    }

    #[test]
    fn round_trip() {
        let sealer = Sealer::new(ring(&["k1"])).unwrap();
        for plaintext in [&b""[..], b"x", &[0u8; 3000]] {
            let blob = sealer.seal(CTX, plaintext).unwrap();
            assert_eq!(&sealer.open(CTX, &blob).unwrap()[..], plaintext);
        }
    }

    #[test]
    fn format_is_version_key_id_and_nonce_ciphertext_tag() {
        let sealer = Sealer::new(ring(&["key_2024-01"])).unwrap();
        let blob = sealer.seal(CTX, b"hello").unwrap();
        let (v, id, body) = parts(&blob);
        assert_eq!(v, "v1");
        assert_eq!(id, "key_2024-01");
        assert_eq!(body.len(), NONCE_LEN + 5 + TAG_LEN);
        assert!(!blob.contains('='), "no padding");
    }

    #[test]
    fn two_seals_of_the_same_plaintext_differ() {
        let sealer = Sealer::new(ring(&["k1"])).unwrap();
        let a = sealer.seal(CTX, b"same").unwrap();
        let b = sealer.seal(CTX, b"same").unwrap();
        assert_ne!(a, b);
        assert_ne!(
            parts(&a).2[..NONCE_LEN],
            parts(&b).2[..NONCE_LEN],
            "fresh nonce"
        );
    }

    #[test]
    fn rotation_old_blobs_open_after_a_new_key_is_prepended() {
        let old = SealKey::generate("old").unwrap();
        let before = Sealer::new(vec![old.clone()]).unwrap();
        let blob = before.seal(CTX, b"session").unwrap();

        let after = Sealer::new(vec![SealKey::generate("new").unwrap(), old]).unwrap();
        assert_eq!(after.current_key_id(), "new");
        assert_eq!(&after.open(CTX, &blob).unwrap()[..], b"session");
        let fresh = after.seal(CTX, b"session").unwrap();
        assert!(fresh.starts_with("v1.new."));

        // Once "old" is dropped from the ring its blobs no longer open.
        let retired = Sealer::new(vec![SealKey::generate("new").unwrap()]).unwrap();
        assert_eq!(retired.open(CTX, &blob), Err(SealError::Invalid));
    }

    #[test]
    fn unknown_key_id_fails() {
        let a = Sealer::new(ring(&["a"])).unwrap();
        let b = Sealer::new(ring(&["b"])).unwrap();
        let blob = a.seal(CTX, b"x").unwrap();
        assert_eq!(b.open(CTX, &blob), Err(SealError::Invalid));
    }

    #[test]
    fn same_id_different_key_fails() {
        let a = Sealer::new(ring(&["k"])).unwrap();
        let b = Sealer::new(ring(&["k"])).unwrap();
        let blob = a.seal(CTX, b"x").unwrap();
        assert_eq!(b.open(CTX, &blob), Err(SealError::Invalid));
    }

    #[test]
    fn wrong_context_fails() {
        let sealer = Sealer::new(ring(&["k1"])).unwrap();
        let blob = sealer.seal(b"cookie_a", b"x").unwrap();
        assert_eq!(sealer.open(b"cookie_b", &blob), Err(SealError::Invalid));
        assert_eq!(sealer.open(b"", &blob), Err(SealError::Invalid));
        assert_eq!(sealer.open(b"cookie_a.", &blob), Err(SealError::Invalid));
    }

    #[test]
    fn tampering_with_any_part_fails() {
        let sealer = Sealer::new(ring(&["k1", "k2"])).unwrap();
        let blob = sealer.seal(CTX, b"tokens").unwrap();
        let (v, id, body) = parts(&blob);

        // The version and the key id are authenticated (k2 is in the ring).
        assert_eq!(
            sealer.open(CTX, &join("v2", &id, &body)),
            Err(SealError::Invalid)
        );
        assert_eq!(
            sealer.open(CTX, &join(&v, "k2", &body)),
            Err(SealError::Invalid)
        );
        // Every byte of nonce, ciphertext and tag.
        for i in 0..body.len() {
            let mut t = body.clone();
            t[i] ^= 0x01;
            assert_eq!(
                sealer.open(CTX, &join(&v, &id, &t)),
                Err(SealError::Invalid),
                "flipped byte {i}"
            );
        }
        // Truncated and extended.
        assert_eq!(
            sealer.open(CTX, &join(&v, &id, &body[..body.len() - 1])),
            Err(SealError::Invalid)
        );
        let mut longer = body.clone();
        longer.push(0);
        assert_eq!(
            sealer.open(CTX, &join(&v, &id, &longer)),
            Err(SealError::Invalid)
        );
        // The untouched blob still opens.
        assert!(sealer.open(CTX, &join(&v, &id, &body)).is_ok());
    }

    #[test]
    fn garbage_fails_with_the_same_error() {
        let sealer = Sealer::new(ring(&["k1"])).unwrap();
        let long = "v1.k1.".to_owned() + &"A".repeat(MAX_SEALED_LEN);
        for junk in [
            "",
            "v1",
            "v1.k1",
            "v1.k1.",
            "v1.k1.!!!",
            "v1.k1.AAAA",
            "v1.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "v1..AAAA",
            "...",
            long.as_str(),
        ] {
            assert_eq!(
                sealer.open(CTX, junk),
                Err(SealError::Invalid),
                "{junk:.20}"
            );
        }
    }

    #[test]
    fn json_round_trip_and_schema_mismatch() {
        #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
        struct S {
            a: u32,
        }
        let sealer = Sealer::new(ring(&["k1"])).unwrap();
        let blob = sealer.seal_json(CTX, &S { a: 7 }).unwrap();
        assert_eq!(sealer.open_json::<S>(CTX, &blob).unwrap(), S { a: 7 });
        let other = sealer.seal(CTX, b"not json").unwrap();
        assert_eq!(sealer.open_json::<S>(CTX, &other), Err(SealError::Invalid));
    }

    #[test]
    fn parse_list_reads_ids_and_keys() {
        let a = SealKey::generate("a").unwrap();
        let b = SealKey::generate("b-2_X").unwrap();
        let config = format!(
            " {} ,{}",
            a.to_config_entry().expose(),
            b.to_config_entry().expose()
        );
        let ring = SealKey::parse_list(&config).unwrap();
        assert_eq!(ring.len(), 2);
        assert_eq!(ring[0].id(), "a");
        assert_eq!(ring[1].id(), "b-2_X");
        // The parsed keys are the same keys.
        let blob = Sealer::new(vec![b]).unwrap().seal(CTX, b"x").unwrap();
        assert!(Sealer::new(ring).unwrap().open(CTX, &blob).is_ok());
    }

    #[test]
    fn parse_list_accepts_padding() {
        let padded = format!("k:{}=", URL_SAFE_NO_PAD.encode([7u8; 32]));
        assert_eq!(SealKey::parse_list(&padded).unwrap().len(), 1);
    }

    #[test]
    fn parse_list_errors() {
        let k = URL_SAFE_NO_PAD.encode([1u8; 32]);
        assert_eq!(SealKey::parse_list("").err(), Some(SealKeyError::Empty));
        assert_eq!(SealKey::parse_list("  ").err(), Some(SealKeyError::Empty));
        assert_eq!(
            SealKey::parse_list(&format!("a:{k},")).err(),
            Some(SealKeyError::Malformed(2))
        );
        assert_eq!(
            SealKey::parse_list(&k).err(),
            Some(SealKeyError::Malformed(1))
        );
        assert_eq!(
            SealKey::parse_list(&format!("a:{k},a:{k}")).err(),
            Some(SealKeyError::Duplicate("a".into()))
        );
        assert_eq!(
            SealKey::parse_list(&format!("a:{}", URL_SAFE_NO_PAD.encode([1u8; 31]))).err(),
            Some(SealKeyError::BadKey("a".into()))
        );
        assert_eq!(
            SealKey::parse_list(&format!("a:{}", URL_SAFE_NO_PAD.encode([1u8; 33]))).err(),
            Some(SealKeyError::BadKey("a".into()))
        );
        assert_eq!(
            SealKey::parse_list("a:not base64!").err(),
            Some(SealKeyError::BadKey("a".into()))
        );
        for bad_id in ["", "has.dot", "has space", "seventeen-chars-x", "é"] {
            assert!(
                matches!(
                    SealKey::parse_list(&format!("{bad_id}:{k}")).err(),
                    Some(SealKeyError::BadId(_))
                ),
                "{bad_id:?}"
            );
        }
    }

    #[test]
    fn sealer_refuses_empty_and_duplicate_rings() {
        assert_eq!(Sealer::new(vec![]).unwrap_err(), SealKeyError::Empty);
        let k = SealKey::generate("k").unwrap();
        assert_eq!(
            Sealer::new(vec![k.clone(), k]).unwrap_err(),
            SealKeyError::Duplicate("k".into())
        );
    }

    #[test]
    fn debug_never_shows_key_material() {
        let k = SealKey::new("k", [0xAB; 32]).unwrap();
        let entry = k.to_config_entry();
        let encoded = entry.expose().split_once(':').unwrap().1.to_owned();
        let dbg = format!("{k:?} {:?}", Sealer::new(vec![k.clone()]).unwrap());
        assert!(!dbg.contains(&encoded), "{dbg}");
        assert!(!dbg.to_lowercase().contains("abab"), "{dbg}");
        assert!(dbg.contains("\"k\""), "{dbg}");
    }
}
