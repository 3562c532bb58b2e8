//! The refresh grace store: the port that keeps the answers to recent refresh-token
//! rotations for the reuse grace period (see [`crate::refresh::RefreshPolicy`]), and its
//! in-process implementation.

use crate::clock::UnixTime;
use crate::ports::StoreError;

/// Where the answers to recent rotations are kept for the reuse grace period, keyed by the
/// hash of the rotated token, so that a client's retry gets the same pair from any
/// instance. Values are opaque to the store (the HTTP layer seals them under a key only the
/// rotated token's holder can derive).
#[async_trait::async_trait]
pub trait GraceStore: Send + Sync + 'static {
    /// Keeps `value` under `key` until `until`.
    async fn put(
        &self,
        key: &[u8; 32],
        value: Vec<u8>,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError>;

    /// The value under `key`, if it has not expired by `now`.
    async fn get(&self, key: &[u8; 32], now: UnixTime) -> Result<Option<Vec<u8>>, StoreError>;
}

/// The in-process grace store (one instance: a retry at another instance is treated as
/// reuse, the safe side).
#[derive(Debug, Default)]
pub struct MemoryGrace {
    entries: std::sync::Mutex<GraceEntries>,
}

/// Sealed answers by key, each with the end of its grace period.
type GraceEntries = std::collections::HashMap<[u8; 32], (Vec<u8>, UnixTime)>;

#[async_trait::async_trait]
impl GraceStore for MemoryGrace {
    async fn put(
        &self,
        key: &[u8; 32],
        value: Vec<u8>,
        now: UnixTime,
        until: UnixTime,
    ) -> Result<(), StoreError> {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, (_, u)| *u >= now);
        map.insert(*key, (value, until));
        Ok(())
    }

    async fn get(&self, key: &[u8; 32], now: UnixTime) -> Result<Option<Vec<u8>>, StoreError> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        Ok(map
            .get(key)
            .filter(|(_, until)| *until >= now)
            .map(|(v, _)| v.clone()))
    }
}
