//! A read-through cache of clients in front of any [`ClientStore`].
//!
//! The token endpoint looks a client up on every request; with the cache that costs a
//! hash-map read instead of a database round trip. Changes made in this process go
//! through the cache and take effect at once. Changes made elsewhere (the CLI, another
//! instance) are noticed by polling [`ClientStore::clients_generation`]: the composition
//! root calls [`CachedClients::sync`] on a short interval, which bounds how long another
//! process's change (a rotated secret, a deleted client) can go unseen here.
//!
//! Only clients that exist are remembered, so unknown ids cannot fill memory, and the
//! cache stops remembering new clients once it holds [`CachedClients::capacity`] entries.
//!
//! A lookup that raced with a change is never cached: every entry is stored under the
//! epoch read before the database read, and [`CachedClients::sync`] advances the epoch
//! when it clears, so a row read before a change cannot be cached after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use crate::client::Client;
use crate::clock::UnixTime;
use crate::ids::ClientId;
use crate::ports::{ClientStore, StoreError};
use crate::secret::SecretHash;

/// A caching decorator over a [`ClientStore`].
pub struct CachedClients {
    inner: Arc<dyn ClientStore>,
    entries: RwLock<HashMap<ClientId, Client>>,
    epoch: AtomicU64,
    generation: AtomicI64,
    capacity: usize,
}

impl std::fmt::Debug for CachedClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedClients")
            .field("epoch", &self.epoch.load(Ordering::Relaxed))
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl CachedClients {
    /// A cache over `inner`, remembering at most `capacity` clients. Reads the current
    /// generation so that the first [`CachedClients::sync`] has a baseline.
    pub async fn new(inner: Arc<dyn ClientStore>, capacity: usize) -> Result<Self, StoreError> {
        let generation = inner.clients_generation().await?;
        Ok(CachedClients {
            inner,
            entries: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            generation: AtomicI64::new(generation),
            capacity,
        })
    }

    /// The most clients remembered at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Drops everything and advances the epoch.
    pub fn clear(&self) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }

    /// Checks the store's generation and clears the cache if another process changed a
    /// client. Returns whether it cleared.
    pub async fn sync(&self) -> Result<bool, StoreError> {
        let now = self.inner.clients_generation().await?;
        if self.generation.swap(now, Ordering::SeqCst) != now {
            self.clear();
            return Ok(true);
        }
        Ok(false)
    }

    fn remember(&self, epoch: u64, client: &Client) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        // Checked under the write lock, which `clear` also takes: no clear can slip in
        // between this check and the insert.
        if self.epoch.load(Ordering::SeqCst) == epoch && entries.len() < self.capacity {
            entries.insert(client.id.clone(), client.clone());
        }
    }

    fn forget(&self, id: &ClientId) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        entries.remove(id);
    }
}

#[async_trait]
impl ClientStore for CachedClients {
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
        self.inner.insert_client(client).await
    }

    async fn find_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
        if let Some(hit) = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            return Ok(Some(hit.clone()));
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let found = self.inner.find_client(id).await?;
        if let Some(client) = &found {
            self.remember(epoch, client);
        }
        Ok(found)
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        self.inner.list_clients().await
    }

    async fn replace_secret(
        &self,
        id: &ClientId,
        hash: &SecretHash,
        at: UnixTime,
    ) -> Result<bool, StoreError> {
        self.forget(id);
        let done = self.inner.replace_secret(id, hash, at).await;
        self.forget(id);
        done
    }

    async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
        self.forget(&client.id);
        let done = self.inner.update_client(client).await;
        self.forget(&client.id);
        done
    }

    async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError> {
        self.forget(id);
        let done = self.inner.delete_client(id).await;
        self.forget(id);
        done
    }

    async fn clients_generation(&self) -> Result<i64, StoreError> {
        self.inner.clients_generation().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    use super::*;
    use crate::client::{ClientName, GrantType};
    use crate::scope::ScopeSet;

    /// A store that counts lookups and lets tests change rows behind the cache's back.
    #[derive(Default)]
    struct Fake {
        rows: Mutex<HashMap<ClientId, Client>>,
        generation: AtomicI64,
        lookups: AtomicUsize,
    }

    impl Fake {
        fn change_behind_the_back(&self, id: &ClientId, scopes: ScopeSet) {
            self.rows.lock().unwrap().get_mut(id).unwrap().scopes = scopes;
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl ClientStore for Fake {
        async fn insert_client(&self, client: &Client) -> Result<(), StoreError> {
            self.rows
                .lock()
                .unwrap()
                .insert(client.id.clone(), client.clone());
            Ok(())
        }
        async fn find_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            Ok(self.rows.lock().unwrap().get(id).cloned())
        }
        async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
            Ok(self.rows.lock().unwrap().values().cloned().collect())
        }
        async fn replace_secret(
            &self,
            id: &ClientId,
            hash: &SecretHash,
            _at: UnixTime,
        ) -> Result<bool, StoreError> {
            let mut rows = self.rows.lock().unwrap();
            let Some(c) = rows.get_mut(id) else {
                return Ok(false);
            };
            c.secret_hash = Some(hash.clone());
            self.generation.fetch_add(1, Ordering::SeqCst);
            Ok(true)
        }
        async fn update_client(&self, client: &Client) -> Result<bool, StoreError> {
            let mut rows = self.rows.lock().unwrap();
            let Some(c) = rows.get_mut(&client.id) else {
                return Ok(false);
            };
            *c = client.clone();
            self.generation.fetch_add(1, Ordering::SeqCst);
            Ok(true)
        }
        async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError> {
            let gone = self.rows.lock().unwrap().remove(id).is_some();
            self.generation.fetch_add(1, Ordering::SeqCst);
            Ok(gone)
        }
        async fn clients_generation(&self) -> Result<i64, StoreError> {
            Ok(self.generation.load(Ordering::SeqCst))
        }
    }

    fn client(id: &str) -> Client {
        Client {
            id: ClientId::parse(id).unwrap(),
            name: ClientName::parse("c").unwrap(),
            secret_hash: None,
            grant_types: vec![GrantType::ClientCredentials],
            scopes: "property:read".parse().unwrap(),
            redirect_uris: vec![],
            kind: crate::client::ClientKind::Confidential,
            allow_introspection: false,
            properties: None,
            id_token_alg: crate::jose::SigningAlg::RS256,
            metadata: Default::default(),
            registration_token_hash: None,
            created_at: UnixTime(0),
            updated_at: UnixTime(0),
        }
    }

    async fn setup(capacity: usize) -> (Arc<Fake>, CachedClients) {
        let fake = Arc::new(Fake::default());
        let cache = CachedClients::new(fake.clone(), capacity).await.unwrap();
        (fake, cache)
    }

    #[tokio::test]
    async fn second_lookup_is_served_from_memory() {
        let (fake, cache) = setup(10).await;
        cache.insert_client(&client("a")).await.unwrap();
        let id = ClientId::parse("a").unwrap();
        assert!(cache.find_client(&id).await.unwrap().is_some());
        assert!(cache.find_client(&id).await.unwrap().is_some());
        assert_eq!(fake.lookups.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn unknown_ids_are_not_remembered() {
        let (fake, cache) = setup(10).await;
        let id = ClientId::parse("ghost").unwrap();
        assert!(cache.find_client(&id).await.unwrap().is_none());
        assert!(cache.find_client(&id).await.unwrap().is_none());
        assert_eq!(fake.lookups.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn another_process_change_is_seen_after_sync() {
        let (fake, cache) = setup(10).await;
        cache.insert_client(&client("a")).await.unwrap();
        let id = ClientId::parse("a").unwrap();
        cache.find_client(&id).await.unwrap();
        let wider: ScopeSet = "property:read property:write".parse().unwrap();
        fake.change_behind_the_back(&id, wider);
        // Until the next sync, the cached row is served...
        assert_ne!(cache.find_client(&id).await.unwrap().unwrap().scopes, wider);
        // ...and after it, the fresh one.
        assert!(cache.sync().await.unwrap());
        assert_eq!(cache.find_client(&id).await.unwrap().unwrap().scopes, wider);
        assert!(!cache.sync().await.unwrap());
    }

    #[tokio::test]
    async fn changes_through_the_cache_take_effect_at_once() {
        let (_fake, cache) = setup(10).await;
        cache.insert_client(&client("a")).await.unwrap();
        let id = ClientId::parse("a").unwrap();
        let mut updated = cache.find_client(&id).await.unwrap().unwrap();
        updated.metadata.require_pushed_authorization_requests = true;
        assert!(cache.update_client(&updated).await.unwrap());
        let found = cache.find_client(&id).await.unwrap().unwrap();
        assert!(found.metadata.require_pushed_authorization_requests);
        assert!(cache.delete_client(&id).await.unwrap());
        assert!(cache.find_client(&id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_row_read_before_a_clear_is_not_cached_after_it() {
        let (fake, cache) = setup(10).await;
        cache.insert_client(&client("a")).await.unwrap();
        let id = ClientId::parse("a").unwrap();
        let epoch = cache.epoch.load(Ordering::SeqCst);
        let stale = fake.rows.lock().unwrap().get(&id).cloned().unwrap();
        cache.clear();
        cache.remember(epoch, &stale);
        assert!(cache.entries.read().unwrap().is_empty());
    }

    #[tokio::test]
    async fn capacity_bounds_memory() {
        let (fake, cache) = setup(2).await;
        for id in ["a", "b", "c"] {
            cache.insert_client(&client(id)).await.unwrap();
            cache
                .find_client(&ClientId::parse(id).unwrap())
                .await
                .unwrap();
        }
        assert_eq!(cache.entries.read().unwrap().len(), 2);
        // The third is still found, just not remembered.
        cache
            .find_client(&ClientId::parse("c").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(fake.lookups.load(Ordering::SeqCst), 4);
    }
}
