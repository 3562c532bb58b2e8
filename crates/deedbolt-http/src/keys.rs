//! The in-process key ring: the current signing key of each algorithm, the verification
//! keys and the published JWKS, swapped atomically when keys are rotated or reloaded.
//!
//! Readers (every token request and every guarded API call) never lock: they load an
//! `Arc` from an [`ArcSwap`]. Parsed keys stay in memory, so signing costs one signature.
//! Access tokens are signed with the key of the configured algorithm (`--signing-alg`),
//! ID tokens with the key of the algorithm the client registered.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use deedbolt_core::jose::{SigningAlg, SigningKey};
use deedbolt_core::keyring::{LoadedKeys, Signers};
use deedbolt_guard::{BadJwk, StaticKeys};

/// The keys in force in this process.
pub struct KeyRing {
    access_alg: SigningAlg,
    signers: ArcSwap<Signers>,
    verifying: Arc<StaticKeys>,
    jwks: ArcSwap<Bytes>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("access_alg", &self.access_alg)
            .field("current", &self.current().kid())
            .finish_non_exhaustive()
    }
}

fn jwks_bytes(loaded: &LoadedKeys) -> Bytes {
    // Serializing plain strings and enums cannot fail; an empty set is still valid JSON.
    Bytes::from(serde_json::to_vec(&loaded.jwks).unwrap_or_else(|_| b"{\"keys\":[]}".to_vec()))
}

impl KeyRing {
    /// A ring holding `loaded`, signing access tokens with its `access_alg` key.
    pub fn new(loaded: &LoadedKeys, access_alg: SigningAlg) -> Result<Self, BadJwk> {
        Ok(KeyRing {
            access_alg,
            signers: ArcSwap::from_pointee(loaded.signers.clone()),
            verifying: Arc::new(StaticKeys::from_jwks(&loaded.jwks)?),
            jwks: ArcSwap::from_pointee(jwks_bytes(loaded)),
        })
    }

    /// Replaces the keys in force with `loaded`.
    pub fn install(&self, loaded: &LoadedKeys) -> Result<(), BadJwk> {
        self.verifying.replace(&loaded.jwks)?;
        self.jwks.store(Arc::new(jwks_bytes(loaded)));
        self.signers.store(Arc::new(loaded.signers.clone()));
        Ok(())
    }

    /// The key that signs new access tokens.
    pub fn current(&self) -> Arc<SigningKey> {
        self.signer(self.access_alg)
    }

    /// The current key of `alg` (ID tokens use the client's registered algorithm).
    pub fn signer(&self, alg: SigningAlg) -> Arc<SigningKey> {
        Arc::clone(self.signers.load().get(alg))
    }

    /// The algorithm access tokens are signed with.
    pub fn access_alg(&self) -> SigningAlg {
        self.access_alg
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
