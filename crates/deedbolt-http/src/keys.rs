//! The in-process key ring: the current signing key, the verification keys and the
//! published JWKS, swapped atomically when keys are rotated or reloaded.
//!
//! Readers (every token request and every guarded API call) never lock: they load an
//! `Arc` from an [`ArcSwap`]. Parsed keys stay in memory, so signing costs one signature.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use deedbolt_core::jose::SigningKey;
use deedbolt_core::keyring::LoadedKeys;
use deedbolt_guard::{BadJwk, StaticKeys};

/// The keys in force in this process.
pub struct KeyRing {
    current: ArcSwap<SigningKey>,
    verifying: Arc<StaticKeys>,
    jwks: ArcSwap<Bytes>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current.load().kid())
            .finish_non_exhaustive()
    }
}

fn jwks_bytes(loaded: &LoadedKeys) -> Bytes {
    // Serializing plain strings and enums cannot fail; an empty set is still valid JSON.
    Bytes::from(serde_json::to_vec(&loaded.jwks).unwrap_or_else(|_| b"{\"keys\":[]}".to_vec()))
}

impl KeyRing {
    /// A ring holding `loaded`.
    pub fn new(loaded: &LoadedKeys) -> Result<Self, BadJwk> {
        Ok(KeyRing {
            current: ArcSwap::new(loaded.current.clone()),
            verifying: Arc::new(StaticKeys::from_jwks(&loaded.jwks)?),
            jwks: ArcSwap::from_pointee(jwks_bytes(loaded)),
        })
    }

    /// Replaces the keys in force with `loaded`.
    pub fn install(&self, loaded: &LoadedKeys) -> Result<(), BadJwk> {
        self.verifying.replace(&loaded.jwks)?;
        self.jwks.store(Arc::new(jwks_bytes(loaded)));
        self.current.store(loaded.current.clone());
        Ok(())
    }

    /// The key that signs new tokens.
    pub fn current(&self) -> Arc<SigningKey> {
        self.current.load_full()
    }

    /// The verification keys, for the guard.
    pub fn verifying(&self) -> Arc<StaticKeys> {
        self.verifying.clone()
    }

    /// The JWKS document.
    pub fn jwks_json(&self) -> Bytes {
        Bytes::clone(&self.jwks.load())
    }
}
