//! The answers to recent refresh-token rotations, kept for the reuse grace period.

use std::sync::Arc;

use deedbolt_core::clock::UnixTime;
use deedbolt_core::grace::GraceStore;
use deedbolt_core::refresh::RefreshToken;
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::seal::MasterKey;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The responses to recent rotations, by the hash of the rotated token, kept for the
/// grace period so that a client's retry gets the same pair. The store is the
/// [`GraceStore`] port (in process, or shared by every instance); what it holds is sealed
/// (AES-256-GCM) under a key derived from the rotated token itself, so the store never
/// holds a usable token: only the client presenting the old token again can open it.
pub struct GraceCache {
    store: Arc<dyn GraceStore>,
}

impl std::fmt::Debug for GraceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraceCache").finish_non_exhaustive()
    }
}

/// A pair issued at a rotation.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct CachedPair {
    pub(crate) access: String,
    pub(crate) refresh: String,
    pub(crate) scope: ScopeSet,
    pub(crate) expires_in: i64,
    /// Whether the access token is DPoP-bound (`token_type: DPoP`).
    #[serde(default)]
    pub(crate) dpop: bool,
}

/// The domain label of the key a cached pair is sealed under.
const GRACE_KEY_DOMAIN: &[u8] = b"deedbolt refresh grace v1";

impl GraceCache {
    /// A cache on `store`.
    pub fn new(store: Arc<dyn GraceStore>) -> Self {
        GraceCache { store }
    }

    pub(crate) async fn get(
        &self,
        presented: &RefreshToken,
        now: UnixTime,
    ) -> Result<Option<CachedPair>, ApiError> {
        let Some(sealed) = self.store.get(&presented.hash(), now).await? else {
            return Ok(None);
        };
        let key = MasterKey::derive_from_secret(GRACE_KEY_DOMAIN, presented.expose().as_bytes())
            .map_err(ApiError::internal)?;
        let plain = key
            .open(&presented.hash(), &sealed)
            .map_err(ApiError::internal)?;
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(ApiError::internal)
    }

    pub(crate) async fn put(
        &self,
        presented: &RefreshToken,
        pair: &CachedPair,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), ApiError> {
        let plain = zeroize::Zeroizing::new(serde_json::to_vec(pair).map_err(ApiError::internal)?);
        let key = MasterKey::derive_from_secret(GRACE_KEY_DOMAIN, presented.expose().as_bytes())
            .map_err(ApiError::internal)?;
        let sealed = key
            .seal(&presented.hash(), &plain)
            .map_err(ApiError::internal)?;
        self.store
            .put(&presented.hash(), sealed, now, until)
            .await
            .map_err(ApiError::internal)
    }
}
