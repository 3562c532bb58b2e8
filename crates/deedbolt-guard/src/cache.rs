//! A bounded cache of verified tokens, so that a token presented again skips the
//! signature check (the dominant cost of every guarded request).
//!
//! Entries are keyed by the SHA-256 of the whole token, signature included, so a cached
//! verdict applies only to byte-identical tokens. A hit is still checked against the
//! clock (`exp`), and against the key set: if the signing key is no longer trusted, or was
//! replaced, the entry is ignored and dropped.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_lc_rs::digest;
use deedbolt_core::token::AccessTokenClaims;

use crate::keys::VerifyingKey;

pub(crate) type TokenHash = [u8; 32];

pub(crate) fn token_hash(token: &str) -> TokenHash {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub(crate) struct Entry {
    pub(crate) claims: Arc<AccessTokenClaims>,
    pub(crate) kid: Box<str>,
    pub(crate) key: Arc<VerifyingKey>,
}

pub(crate) struct VerifiedCache {
    entries: RwLock<HashMap<TokenHash, Entry>>,
    capacity: usize,
}

impl VerifiedCache {
    pub(crate) fn new(capacity: usize) -> Self {
        VerifiedCache {
            entries: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Looks up `hash`, returning its claims and the key that verified them.
    pub(crate) fn get(
        &self,
        hash: &TokenHash,
    ) -> Option<(Arc<AccessTokenClaims>, Box<str>, Arc<VerifyingKey>)> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .get(hash)
            .map(|e| (e.claims.clone(), e.kid.clone(), e.key.clone()))
    }

    pub(crate) fn insert(&self, hash: TokenHash, entry: Entry) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            // Dropping everything keeps the bound trivially and costs one re-verification
            // per live token; a finer eviction policy is not worth a lock on every hit.
            entries.clear();
        }
        entries.insert(hash, entry);
    }

    pub(crate) fn remove(&self, hash: &TokenHash) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(hash);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deedbolt_core::jose::{SigningAlg, SigningKey};

    #[test]
    fn never_holds_more_than_its_capacity() {
        let (key, _) = SigningKey::generate(SigningAlg::EdDSA).unwrap();
        let key = Arc::new(VerifyingKey::from_jwk(key.public_jwk()).unwrap());
        let claims: AccessTokenClaims = serde_json::from_value(serde_json::json!({
            "iss": "i", "sub": "s", "aud": "a", "exp": 2, "iat": 1, "jti": "j",
            "client_id": "c", "scope": "property:read"
        }))
        .unwrap();
        let cache = VerifiedCache::new(3);
        for i in 0..10u8 {
            cache.insert(
                [i; 32],
                Entry {
                    claims: Arc::new(claims.clone()),
                    kid: "k".into(),
                    key: key.clone(),
                },
            );
            assert!(cache.len() <= 3);
        }
        assert!(cache.get(&[9; 32]).is_some());
    }
}
