//! The storage ports: the traits that every backend (SQLite, later PostgreSQL and Redis)
//! implements and the HTTP layer uses as trait objects.
//!
//! Each operation that must be atomic says so in its name and doc, and backends implement
//! it as one statement or one transaction.

use std::fmt;

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::client::Client;
use crate::clock::UnixTime;
use crate::ids::{ClientId, KeyId};
use crate::jose::SigningAlg;
use crate::property::{NewProperty, Property};
use crate::secret::SecretHash;

/// A storage failure. Never shown to clients: the HTTP layer answers 500 and logs it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, connection, constraint).
    #[error("storage backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored row does not parse back into a domain value.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// Registered clients.
#[async_trait]
pub trait ClientStore: Send + Sync + 'static {
    /// Stores a new client.
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    /// The client with this id, if any.
    async fn find_client(&self, id: &ClientId) -> Result<Option<Client>, StoreError>;
    /// Every client, oldest first.
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError>;
    /// Replaces the client's secret hash; `false` if there is no such client.
    async fn replace_secret(
        &self,
        id: &ClientId,
        hash: &SecretHash,
        at: UnixTime,
    ) -> Result<bool, StoreError>;
    /// Deletes the client; `false` if there was no such client.
    async fn delete_client(&self, id: &ClientId) -> Result<bool, StoreError>;
    /// A counter that changes whenever any client is updated or deleted, by any process.
    /// Caches poll it to drop what they remember (see [`crate::cache`]).
    async fn clients_generation(&self) -> Result<i64, StoreError>;
}

/// Private key bytes as stored: sealed under the master key, or plain in development mode.
pub enum KeyMaterial {
    /// AES-256-GCM sealed (see [`crate::seal`]).
    Sealed(Vec<u8>),
    /// Plain bytes (development mode only). Zeroed on drop.
    Plain(Zeroizing<Vec<u8>>),
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyMaterial::Sealed(_) => f.write_str("KeyMaterial::Sealed(..)"),
            KeyMaterial::Plain(_) => f.write_str("KeyMaterial::Plain([redacted])"),
        }
    }
}

/// A signing key as stored.
#[derive(Debug)]
pub struct StoredKey {
    /// Its id (JWK thumbprint).
    pub kid: KeyId,
    /// Its algorithm.
    pub alg: SigningAlg,
    /// Its PKCS#8 private key.
    pub material: KeyMaterial,
    /// When it was made.
    pub created_at: UnixTime,
    /// When it stopped signing; `None` for the current key.
    pub retired_at: Option<UnixTime>,
}

/// Signing keys and other server secrets.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Atomically makes `key` the current signing key and retires the previous one at `now`.
    async fn rotate_in(&self, key: &StoredKey, now: UnixTime) -> Result<(), StoreError>;
    /// Every stored key, newest first.
    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Deletes keys retired before `cutoff`; returns how many.
    async fn prune_keys(&self, cutoff: UnixTime) -> Result<u64, StoreError>;
    /// Atomically stores `value` under `name` unless one is stored already, and returns
    /// the stored value, so concurrent first starts agree on one secret.
    async fn secret_or_insert(
        &self,
        name: &str,
        value: &KeyMaterial,
    ) -> Result<KeyMaterial, StoreError>;
}

/// Properties of the PropTech API.
#[async_trait]
pub trait PropertyStore: Send + Sync + 'static {
    /// Creates a property.
    async fn create_property(
        &self,
        new: &NewProperty,
        created_by: &str,
        at: UnixTime,
    ) -> Result<Property, StoreError>;
    /// The property with this id, if any.
    async fn find_property(&self, id: i64) -> Result<Option<Property>, StoreError>;
    /// Up to `limit` properties with ids greater than `after`, by id.
    async fn list_properties(
        &self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Property>, StoreError>;
}

/// A cheap liveness check of the backend, for `/readyz`.
#[async_trait]
pub trait Health: Send + Sync + 'static {
    /// Succeeds when the backend answers.
    async fn ping(&self) -> Result<(), StoreError>;
}
