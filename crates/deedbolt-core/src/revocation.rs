//! The in-process revocation list: the `jti`s of access tokens revoked before they expire.
//!
//! Revocations made in this process are seen at once ([`RevocationList::revoke_local`]);
//! revocations made elsewhere (the CLI, another instance) are pulled from the
//! [`FlowStore`] on every sync. Entries are dropped when the token would have expired
//! anyway, so the list stays as small as the set of live revoked tokens.
//!
//! Scaled out, a [`RevocationFeed`] also tells every instance of a revocation at once
//! (Redis pub/sub): each instance applies it to its own list within milliseconds instead of
//! at its next store sync. While the feed is down the list may miss revocations, so it
//! reports itself not current ([`RevocationList::is_current`]) and token checks fail closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::RwLock;

use async_trait::async_trait;

use crate::clock::UnixTime;
use crate::ids::TokenId;
use crate::ports::{CutoffKind, FlowStore, RefreshStore, StoreError};
use crate::token::{AccessTokenClaims, AccessTokenLifetime};

/// The client cutoff that revokes every token of a deleted client.
///
/// Later than "now" on purpose: a running server notices the deletion only at its next
/// client-cache sync, and until then it may still issue tokens to the client (client
/// credentials, a code issued before the deletion). A cutoff one longest token lifetime
/// (plus 5 minutes of skew) ahead covers every token issued in that window, and it stays
/// in the list until all of them have expired.
///
/// ```
/// use deedbolt_core::clock::UnixTime;
/// use deedbolt_core::revocation::deleted_client_cutoff;
/// use deedbolt_core::token::AccessTokenLifetime;
/// let now = UnixTime(1_000_000);
/// assert!(deleted_client_cutoff(now) >= now.plus_secs(AccessTokenLifetime::MAX_SECS));
/// ```
pub fn deleted_client_cutoff(now: UnixTime) -> UnixTime {
    now.plus_secs(AccessTokenLifetime::MAX_SECS + 300)
}

/// What [`delete_client_and_tokens`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedClient {
    /// The cutoff recorded for the client (apply it locally with
    /// [`RevocationList::cut_off_local`] where there is a list).
    pub cutoff: Cutoff,
    /// How many refresh-token families were revoked.
    pub families: u64,
    /// Whether the feed announced the cutoff (when not, every instance still applies it
    /// at its next store sync).
    pub announced: bool,
}

/// Deletes a client the one way every path does (`deedbolt client delete`, RFC 7592
/// `DELETE /register/{client_id}`): a client cutoff ahead of now
/// ([`deleted_client_cutoff`]) recorded in the store and announced on `feed`, which kills
/// its access tokens on every server; its refresh-token families revoked; then the client
/// row deleted (which moves the clients generation, so client caches drop it). The
/// revocations come *before* the deletion, so a failure leaves the client in place with
/// its tokens revoked (the safe side) and the deletion can simply be retried.
///
/// `Ok(None)` when there is no such client.
pub async fn delete_client_and_tokens(
    clients: &dyn crate::ports::ClientStore,
    refresh: &dyn RefreshStore,
    feed: &dyn RevocationFeed,
    id: &crate::ids::ClientId,
    now: UnixTime,
) -> Result<Option<DeletedClient>, StoreError> {
    if clients.find_client(id).await?.is_none() {
        return Ok(None);
    }
    let cutoff = Cutoff {
        kind: CutoffKind::Client,
        subject: id.as_str().to_owned(),
        at: deleted_client_cutoff(now),
    };
    refresh
        .set_cutoff(cutoff.kind, &cutoff.subject, cutoff.at)
        .await?;
    let announced = feed.publish_cutoff(&cutoff).await.is_ok();
    let families = refresh
        .revoke_families_of(CutoffKind::Client, id.as_str(), now)
        .await?;
    if !clients.delete_client(id).await? {
        return Ok(None);
    }
    Ok(Some(DeletedClient {
        cutoff,
        families,
        announced,
    }))
}

/// Revoked token ids with their expiry, and per-client / per-subject cutoffs.
#[derive(Debug, Default)]
pub struct RevocationList {
    entries: RwLock<HashMap<TokenId, UnixTime>>,
    cursor: AtomicI64,
    /// When expired entries were last dropped.
    last_prune: AtomicI64,
    /// Tokens issued to a client at or before the cutoff are revoked.
    client_cutoffs: RwLock<HashMap<String, UnixTime>>,
    /// Tokens whose `sub` is this, issued at or before the cutoff, are revoked.
    subject_cutoffs: RwLock<HashMap<String, UnixTime>>,
    /// The revocation feed is disconnected: revocations made elsewhere may be missing.
    feed_down: AtomicBool,
}

/// A revocation every instance must learn about at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// The revoked access token's id.
    pub jti: TokenId,
    /// When the token expires (after that the entry no longer matters).
    pub expires_at: UnixTime,
}

/// A cutoff every instance must learn about at once: the tokens of `subject` (a client or a
/// `sub`) issued at or before `at` are revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cutoff {
    /// Whose tokens.
    pub kind: CutoffKind,
    /// The client id or subject.
    pub subject: String,
    /// Tokens issued at or before this are revoked.
    pub at: UnixTime,
}

/// Tells the other instances of revocations made here, once the store has recorded them.
#[async_trait]
pub trait RevocationFeed: Send + Sync + 'static {
    /// Announces a revocation; [`StoreError::Unavailable`] when the feed cannot be reached.
    async fn publish(&self, revoked: &Revoked) -> Result<(), StoreError>;
    /// Announces a cutoff (a client deleted, every token of a user or client revoked);
    /// [`StoreError::Unavailable`] when the feed cannot be reached.
    async fn publish_cutoff(&self, cutoff: &Cutoff) -> Result<(), StoreError>;
}

/// No feed: one instance, or instances that learn of each other's revocations only through
/// the store sync (every `--key-refresh-interval`).
#[derive(Debug, Default)]
pub struct StoreSyncOnly;

#[async_trait]
impl RevocationFeed for StoreSyncOnly {
    async fn publish(&self, _revoked: &Revoked) -> Result<(), StoreError> {
        Ok(())
    }

    async fn publish_cutoff(&self, _cutoff: &Cutoff) -> Result<(), StoreError> {
        Ok(())
    }
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

    /// Whether a token with these claims is revoked: by its `jti`, or by a cutoff on its
    /// client or subject that is not earlier than its `iat`.
    pub fn is_claims_revoked(&self, claims: &AccessTokenClaims) -> bool {
        if self.is_revoked(&claims.jti) {
            return true;
        }
        let by = |map: &RwLock<HashMap<String, UnixTime>>, key: &str| {
            map.read()
                .unwrap_or_else(|e| e.into_inner())
                .get(key)
                .is_some_and(|cutoff| claims.iat <= *cutoff)
        };
        by(&self.client_cutoffs, claims.client_id.as_str())
            || by(&self.subject_cutoffs, &claims.sub)
    }

    /// Records a cutoff made in this process (also store it through the [`RefreshStore`]).
    pub fn cut_off_local(&self, kind: CutoffKind, subject: &str, cutoff: UnixTime) {
        let map = match kind {
            CutoffKind::Client => &self.client_cutoffs,
            CutoffKind::Subject => &self.subject_cutoffs,
        };
        let mut map = map.write().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(subject.to_owned()).or_insert(cutoff);
        *entry = (*entry).max(cutoff);
    }

    /// The cutoff in force for this client or subject, if any.
    pub fn cutoff(&self, kind: CutoffKind, subject: &str) -> Option<UnixTime> {
        let map = match kind {
            CutoffKind::Client => &self.client_cutoffs,
            CutoffKind::Subject => &self.subject_cutoffs,
        };
        map.read()
            .unwrap_or_else(|e| e.into_inner())
            .get(subject)
            .copied()
    }

    /// Pulls the cutoffs that can still matter (those within the longest token lifetime).
    pub async fn sync_cutoffs(
        &self,
        store: &dyn RefreshStore,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let since = now.minus_secs(AccessTokenLifetime::MAX_SECS + 300);
        let cutoffs = store.cutoffs_since(since).await?;
        let mut clients = HashMap::new();
        let mut subjects = HashMap::new();
        for (kind, subject, cutoff) in cutoffs {
            match kind {
                CutoffKind::Client => clients.insert(subject, cutoff),
                CutoffKind::Subject => subjects.insert(subject, cutoff),
            };
        }
        // Keep local cutoffs newer than what the store returned (they may not be visible yet).
        for (map, fresh) in [
            (&self.client_cutoffs, clients),
            (&self.subject_cutoffs, subjects),
        ] {
            let mut map = map.write().unwrap_or_else(|e| e.into_inner());
            map.retain(|_, c| *c > since);
            for (k, c) in fresh {
                let entry = map.entry(k).or_insert(c);
                *entry = (*entry).max(c);
            }
        }
        Ok(())
    }

    /// Records a revocation made in this process (also store it through the [`FlowStore`]).
    pub fn revoke_local(&self, jti: TokenId, expires_at: UnixTime) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(jti, expires_at);
    }

    /// Pulls revocations recorded elsewhere and drops entries that have expired.
    ///
    /// Pages until caught up. Expired entries are dropped at most once a minute: a scan of
    /// a large list on every sync would show up in the latency of the requests that share
    /// the runtime with it.
    pub async fn sync(&self, store: &dyn FlowStore, now: UnixTime) -> Result<usize, StoreError> {
        let mut count = 0;
        loop {
            let before = self.cursor.load(Ordering::SeqCst);
            let (new, cursor) = store.revoked_since(before).await?;
            let n = new.len();
            count += n;
            self.entries
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .extend(new);
            self.cursor.store(cursor, Ordering::SeqCst);
            if n == 0 || cursor == before {
                break;
            }
        }
        if now.0 - self.last_prune.load(Ordering::SeqCst) >= 60 {
            self.last_prune.store(now.0, Ordering::SeqCst);
            self.entries
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, exp| *exp > now);
        }
        Ok(count)
    }

    /// Records that the revocation feed is down (`true`) or connected and caught up again
    /// (`false`).
    pub fn set_feed_down(&self, down: bool) {
        self.feed_down.store(down, Ordering::SeqCst);
    }

    /// Whether the list can be trusted to hold every revocation: false while the revocation
    /// feed is down. Callers fail closed (503) rather than accept a token that may have
    /// been revoked on another instance.
    pub fn is_current(&self) -> bool {
        !self.feed_down.load(Ordering::SeqCst)
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
