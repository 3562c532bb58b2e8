//! SHIM (foundation): in-process replay cache.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::clock::UnixTime;
use crate::ports::{ReplayCache, StoreError};

/// SHIM.
#[derive(Debug, Default)]
pub struct MemoryReplayCache(Mutex<HashMap<String, UnixTime>>);

#[async_trait]
impl ReplayCache for MemoryReplayCache {
    async fn first_use(&self, key: &str, until: UnixTime) -> Result<bool, StoreError> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = UnixTime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        );
        m.retain(|_, u| *u > now);
        if m.contains_key(key) {
            return Ok(false);
        }
        m.insert(key.to_owned(), until);
        Ok(true)
    }
}
