//! The in-process [`ReplayCache`]: single-use values (DPoP proof and client-assertion
//! `jti`s) remembered until they expire, for a server that runs as one instance. Scaled out,
//! the Redis implementation takes its place so every instance sees every use.
//!
//! Memory is bounded: expired entries are swept when the map reaches its capacity, and
//! when every entry is still live the cache refuses new ones
//! ([`StoreError::Unavailable`], a 503) rather than forget a live one — forgetting would
//! let a replay through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::clock::{Clock, UnixTime};
use crate::ports::{ReplayCache, StoreError};

/// A bounded in-process replay cache.
pub struct MemoryReplayCache {
    clock: Arc<dyn Clock>,
    capacity: usize,
    seen: Mutex<HashMap<String, UnixTime>>,
}

impl std::fmt::Debug for MemoryReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReplayCache")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// The cache is full of unexpired entries.
#[derive(Debug, thiserror::Error)]
#[error("the replay cache is full of unexpired entries ({0})")]
pub struct ReplayCacheFull(usize);

impl MemoryReplayCache {
    /// The default capacity: a million entries (about 100 MB at worst), far more than a
    /// minute of proofs at the token endpoint's rate.
    pub const DEFAULT_CAPACITY: usize = 1_000_000;

    /// An empty cache of [`Self::DEFAULT_CAPACITY`] that reads the time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_capacity(clock, Self::DEFAULT_CAPACITY)
    }

    /// An empty cache holding at most `capacity` unexpired entries.
    pub fn with_capacity(clock: Arc<dyn Clock>, capacity: usize) -> Self {
        MemoryReplayCache {
            clock,
            capacity: capacity.max(1),
            seen: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl ReplayCache for MemoryReplayCache {
    async fn first_use(&self, key: &str, until: UnixTime) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&expires) = seen.get(key) {
            if expires > now {
                return Ok(false);
            }
        }
        if seen.len() >= self.capacity && !seen.contains_key(key) {
            seen.retain(|_, expires| *expires > now);
            if seen.len() >= self.capacity {
                return Err(StoreError::Unavailable(Box::new(ReplayCacheFull(
                    self.capacity,
                ))));
            }
        }
        seen.insert(key.to_owned(), until);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn a_value_is_accepted_once_until_it_expires() {
        let clock = Arc::new(ManualClock::new(UnixTime(1_000)));
        let cache = MemoryReplayCache::new(clock.clone());
        assert!(cache.first_use("dpop:a", UnixTime(1_060)).await.unwrap());
        assert!(!cache.first_use("dpop:a", UnixTime(1_060)).await.unwrap());
        assert!(cache
            .first_use("assertion:a", UnixTime(1_060))
            .await
            .unwrap());
        clock.set(UnixTime(1_060));
        assert!(cache.first_use("dpop:a", UnixTime(1_120)).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_cache_sweeps_expired_entries_and_refuses_rather_than_forget() {
        let clock = Arc::new(ManualClock::new(UnixTime(1_000)));
        let cache = MemoryReplayCache::with_capacity(clock.clone(), 2);
        assert!(cache.first_use("a", UnixTime(1_010)).await.unwrap());
        assert!(cache.first_use("b", UnixTime(1_100)).await.unwrap());
        assert!(matches!(
            cache.first_use("c", UnixTime(1_100)).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(!cache.first_use("b", UnixTime(1_100)).await.unwrap());
        clock.set(UnixTime(1_010));
        assert!(cache.first_use("c", UnixTime(1_100)).await.unwrap());
        assert!(!cache.first_use("b", UnixTime(1_100)).await.unwrap());
    }
}
