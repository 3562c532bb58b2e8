//! The in-process revocation list: the `jti`s of access tokens revoked before they expire.
//!
//! Revocations made in this process are seen at once ([`RevocationList::revoke_local`]);
//! revocations made elsewhere (the CLI, another instance) are pulled from the
//! [`FlowStore`] on every sync. Entries are dropped when the token would have expired
//! anyway, so the list stays as small as the set of live revoked tokens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;

use crate::clock::UnixTime;
use crate::ids::TokenId;
use crate::ports::{FlowStore, StoreError};

/// Revoked token ids with their expiry.
#[derive(Debug, Default)]
pub struct RevocationList {
    entries: RwLock<HashMap<TokenId, UnixTime>>,
    cursor: AtomicI64,
}

impl RevocationList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `jti` is revoked.
    pub fn is_revoked(&self, jti: &TokenId) -> bool {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(jti)
    }

    /// Records a revocation made in this process (also store it through the [`FlowStore`]).
    pub fn revoke_local(&self, jti: TokenId, expires_at: UnixTime) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(jti, expires_at);
    }

    /// Pulls revocations recorded elsewhere and drops entries that have expired.
    pub async fn sync(&self, store: &dyn FlowStore, now: UnixTime) -> Result<usize, StoreError> {
        let (new, cursor) = store
            .revoked_since(self.cursor.load(Ordering::SeqCst))
            .await?;
        let count = new.len();
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.extend(new);
        entries.retain(|_, exp| *exp > now);
        self.cursor.store(cursor, Ordering::SeqCst);
        Ok(count)
    }

    /// How many revoked tokens are live.
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no live token is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
