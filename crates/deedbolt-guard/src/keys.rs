//! Verification keys, looked up by `kid`.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use deedbolt_core::jose::{Jwk, JwkParams, JwkSet, SigningAlg};
use jsonwebtoken::{Algorithm, DecodingKey};

/// A public key pinned to one algorithm.
pub struct VerifyingKey {
    alg: SigningAlg,
    key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A JWK that does not describe a usable public key.
#[derive(Debug, thiserror::Error)]
#[error("unusable JWK `{kid}`: {reason}")]
pub struct BadJwk {
    kid: String,
    reason: String,
}

impl VerifyingKey {
    /// Builds a key from a public JWK; the JWK's `alg` must match its key type.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, BadJwk> {
        let bad = |reason: String| BadJwk {
            kid: jwk.kid.to_string(),
            reason,
        };
        let key = match (&jwk.params, jwk.alg) {
            (JwkParams::Ec { crv, x, y }, SigningAlg::ES256) if crv == "P-256" => {
                DecodingKey::from_ec_components(x, y).map_err(|e| bad(e.to_string()))?
            }
            (JwkParams::Rsa { n, e }, SigningAlg::RS256) => {
                DecodingKey::from_rsa_components(n, e).map_err(|e| bad(e.to_string()))?
            }
            (JwkParams::Okp { crv, x }, SigningAlg::EdDSA) if crv == "Ed25519" => {
                DecodingKey::from_ed_components(x).map_err(|e| bad(e.to_string()))?
            }
            _ => return Err(bad("key type does not match alg".into())),
        };
        Ok(VerifyingKey { alg: jwk.alg, key })
    }

    /// The one algorithm this key verifies.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    pub(crate) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    pub(crate) fn jwt_alg(&self) -> Algorithm {
        match self.alg {
            SigningAlg::ES256 => Algorithm::ES256,
            SigningAlg::RS256 => Algorithm::RS256,
            SigningAlg::EdDSA => Algorithm::EdDSA,
        }
    }
}

/// Where the verifier finds the key for a `kid`.
pub trait KeyResolver: Send + Sync + 'static {
    /// The key with this id, if known.
    fn resolve(&self, kid: &str) -> Option<Arc<VerifyingKey>>;
}

/// An in-memory key set that can be swapped atomically (e.g. after fetching a new JWKS or
/// a key rotation), without locking readers.
#[derive(Default)]
pub struct StaticKeys {
    keys: ArcSwap<HashMap<String, Arc<VerifyingKey>>>,
}

impl std::fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticKeys")
            .field("kids", &self.keys.load().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl StaticKeys {
    /// A key set built from a JWKS document.
    pub fn from_jwks(set: &JwkSet) -> Result<Self, BadJwk> {
        let keys = StaticKeys::default();
        keys.replace(set)?;
        Ok(keys)
    }

    /// Replaces every key with those in `set`; on error the old set stays in force.
    pub fn replace(&self, set: &JwkSet) -> Result<(), BadJwk> {
        let mut map = HashMap::with_capacity(set.keys.len());
        for jwk in &set.keys {
            map.insert(
                jwk.kid.as_str().to_owned(),
                Arc::new(VerifyingKey::from_jwk(jwk)?),
            );
        }
        self.keys.store(Arc::new(map));
        Ok(())
    }

    /// The ids of the keys in force.
    pub fn kids(&self) -> Vec<String> {
        self.keys.load().keys().cloned().collect()
    }
}

impl KeyResolver for StaticKeys {
    fn resolve(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.keys.load().get(kid).cloned()
    }
}
