//! The signing-key lifecycle: generate, seal, rotate, publish, retire, prune.
//!
//! There is one current key per algorithm ([`SigningAlg::ALL`]): access tokens are signed
//! with the key of the configured algorithm (`--signing-alg`), ID tokens with the key of
//! the algorithm each client registered (`id_token_signed_response_alg`, RS256 unless the
//! client asked otherwise, as OpenID Connect Core §2 defaults it). `rotate` makes a new
//! current key of one algorithm; the previous key of that algorithm is retired but stays
//! published in the JWKS (so resource servers and clients keep verifying the tokens it
//! signed) until every token it could have signed has expired: the longest allowed token
//! lifetime plus a margin for clock skew. After that it is pruned.
//!
//! Private keys are sealed with the master key when one is configured. Without one the
//! server runs in development mode and keys are stored in plain form; a sealed key can
//! never be used without the master key.

use std::sync::Arc;

use crate::clock::UnixTime;
use crate::ids::KeyId;
use crate::jose::{JwkSet, KeyError, SigningAlg, SigningKey};
use crate::ports::{KeyMaterial, KeyStore, StoreError, StoredKey};
use crate::seal::{MasterKey, SealError};
use crate::secret::Pepper;
use crate::token::AccessTokenLifetime;

/// How long a retired key stays published after its retirement.
pub const RETIRED_KEY_GRACE_SECS: i64 = AccessTokenLifetime::MAX_SECS + 300;

/// The name under which the client-secret pepper is stored.
const PEPPER_NAME: &str = "client_secret_pepper";

/// Why the keys could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be made or parsed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Sealed data could not be opened: most often a different master key than the one
    /// the data was sealed with.
    #[error("cannot open sealed data (is DEEDBOLT_MASTER_KEY the key this data directory was sealed with?)")]
    Open(#[source] SealError),
    /// Sealing failed (the random source or the cipher).
    #[error("cannot seal data")]
    Seal(#[source] SealError),
    /// Sealed data exists but no master key is configured.
    #[error("{0} is sealed under a master key, but DEEDBOLT_MASTER_KEY is not set")]
    MasterKeyMissing(&'static str),
    /// No current signing key of an algorithm (only before the first start of a server
    /// of this version: start-up makes the missing ones).
    #[error("no current {0} signing key")]
    NoCurrentKey(SigningAlg),
    /// Stored secret has the wrong size.
    #[error("stored {0} is corrupt")]
    Corrupt(&'static str),
}

impl From<SealError> for KeyringError {
    fn from(e: SealError) -> Self {
        match e {
            SealError::Open => KeyringError::Open(e),
            other => KeyringError::Seal(other),
        }
    }
}

/// The current signing key of every algorithm: complete by construction, so signing with
/// any supported algorithm cannot find its key missing.
#[derive(Clone, Debug)]
pub struct Signers {
    es256: Arc<SigningKey>,
    rs256: Arc<SigningKey>,
    eddsa: Arc<SigningKey>,
}

impl Signers {
    /// The current key of `alg`.
    pub fn get(&self, alg: SigningAlg) -> &Arc<SigningKey> {
        match alg {
            SigningAlg::ES256 => &self.es256,
            SigningAlg::RS256 => &self.rs256,
            SigningAlg::EdDSA => &self.eddsa,
        }
    }

    /// Every current key, in the order of [`SigningAlg::ALL`].
    pub fn iter(&self) -> impl Iterator<Item = &Arc<SigningKey>> {
        SigningAlg::ALL.into_iter().map(|alg| self.get(alg))
    }
}

/// The keys in force: the ones that sign and the set that verifies.
#[derive(Debug)]
pub struct LoadedKeys {
    /// The current signing key of each algorithm.
    pub signers: Signers,
    /// Public keys of the current keys and of retired keys still within their grace
    /// period.
    pub jwks: JwkSet,
    /// How many of the loaded keys are stored unsealed (development mode or data created
    /// before a master key was set).
    pub unsealed: usize,
}

/// Key management over a [`KeyStore`].
pub struct KeyVault {
    store: Arc<dyn KeyStore>,
    master: Option<Arc<MasterKey>>,
}

impl std::fmt::Debug for KeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyVault")
            .field("sealed", &self.master.is_some())
            .finish_non_exhaustive()
    }
}

impl KeyVault {
    /// A vault sealing with `master` (or, without one, in development mode).
    pub fn new(store: Arc<dyn KeyStore>, master: Option<Arc<MasterKey>>) -> Self {
        KeyVault { store, master }
    }

    /// Whether keys are sealed at rest.
    pub fn is_sealing(&self) -> bool {
        self.master.is_some()
    }

    fn seal(&self, context: &[u8], plain: &[u8]) -> Result<KeyMaterial, KeyringError> {
        Ok(match &self.master {
            Some(master) => KeyMaterial::Sealed(master.seal(context, plain)?),
            None => KeyMaterial::Plain(zeroize::Zeroizing::new(plain.to_vec())),
        })
    }

    fn open(
        &self,
        what: &'static str,
        context: &[u8],
        material: &KeyMaterial,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyringError> {
        match material {
            KeyMaterial::Plain(bytes) => Ok(bytes.clone()),
            KeyMaterial::Sealed(blob) => {
                let master = self
                    .master
                    .as_ref()
                    .ok_or(KeyringError::MasterKeyMissing(what))?;
                Ok(master.open(context, blob)?)
            }
        }
    }

    /// Opens every stored key, so that a missing or wrong master key is refused before
    /// anything is changed; returns the stored keys.
    async fn check_access(&self) -> Result<Vec<StoredKey>, KeyringError> {
        let keys = self.store.list_keys().await?;
        for key in &keys {
            self.open("a signing key", key.kid.as_str().as_bytes(), &key.material)?;
        }
        Ok(keys)
    }

    /// Makes a new current key of `alg`, retiring the previous key of `alg` (keys of the
    /// other algorithms stay current); returns its id.
    ///
    /// Refused, with nothing changed, unless every stored key can be opened with this
    /// vault's master key (or lack of one).
    pub async fn rotate(&self, alg: SigningAlg, now: UnixTime) -> Result<KeyId, KeyringError> {
        self.check_access().await?;
        self.rotate_unchecked(alg, now).await
    }

    async fn rotate_unchecked(
        &self,
        alg: SigningAlg,
        now: UnixTime,
    ) -> Result<KeyId, KeyringError> {
        let (key, der) = SigningKey::generate(alg)?;
        let stored = StoredKey {
            kid: key.kid().clone(),
            alg,
            material: self.seal(key.kid().as_str().as_bytes(), &der)?,
            created_at: now,
            retired_at: None,
        };
        self.store.rotate_in(&stored, now).await?;
        Ok(stored.kid)
    }

    /// Ensures there is a current key of every algorithm, making the missing ones (all
    /// three on a fresh data directory; RS256 and EdDSA on one written by a release that
    /// kept a single key). Returns the keys it made. Like [`KeyVault::rotate`], refused
    /// with nothing changed if a stored key cannot be opened.
    pub async fn ensure_current(
        &self,
        now: UnixTime,
    ) -> Result<Vec<(SigningAlg, KeyId)>, KeyringError> {
        let keys = self.check_access().await?;
        let mut made = Vec::new();
        for alg in SigningAlg::ALL {
            if !keys.iter().any(|k| k.alg == alg && k.retired_at.is_none()) {
                made.push((alg, self.rotate_unchecked(alg, now).await?));
            }
        }
        Ok(made)
    }

    /// Loads the keys in force at `now`, pruning keys past their grace period.
    pub async fn load(&self, now: UnixTime) -> Result<LoadedKeys, KeyringError> {
        let cutoff = now.minus_secs(RETIRED_KEY_GRACE_SECS);
        self.store.prune_keys(cutoff).await?;
        let (mut es256, mut rs256, mut eddsa) = (None, None, None);
        let mut jwks = JwkSet::default();
        let mut unsealed = 0;
        for stored in self.store.list_keys().await? {
            if stored.retired_at.is_some_and(|at| at < cutoff) {
                continue;
            }
            if matches!(stored.material, KeyMaterial::Plain(_)) {
                unsealed += 1;
            }
            let der = self.open(
                "a signing key",
                stored.kid.as_str().as_bytes(),
                &stored.material,
            )?;
            let key = SigningKey::from_pkcs8(stored.alg, &der)?;
            if key.kid() != &stored.kid {
                return Err(KeyringError::Corrupt("signing key id"));
            }
            jwks.keys.push(key.public_jwk().clone());
            if stored.retired_at.is_none() {
                let slot = match stored.alg {
                    SigningAlg::ES256 => &mut es256,
                    SigningAlg::RS256 => &mut rs256,
                    SigningAlg::EdDSA => &mut eddsa,
                };
                // Listed newest first: should a store ever hold two current keys of one
                // algorithm, the newest signs.
                slot.get_or_insert_with(|| Arc::new(key));
            }
        }
        let missing = |alg| KeyringError::NoCurrentKey(alg);
        Ok(LoadedKeys {
            signers: Signers {
                es256: es256.ok_or_else(|| missing(SigningAlg::ES256))?,
                rs256: rs256.ok_or_else(|| missing(SigningAlg::RS256))?,
                eddsa: eddsa.ok_or_else(|| missing(SigningAlg::EdDSA))?,
            },
            jwks,
            unsealed,
        })
    }

    /// A named server secret, stored sealed under the master key like the signing keys:
    /// `fresh` is stored under `name` unless a value is stored already, and the stored
    /// value is returned opened, so concurrent first starts agree on one value (the
    /// loser's `fresh` is dropped). `name` must not be the pepper's.
    pub async fn named_secret(
        &self,
        name: &'static str,
        fresh: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyringError> {
        debug_assert_ne!(name, PEPPER_NAME);
        let candidate = self.seal(name.as_bytes(), fresh)?;
        let stored = self.store.secret_or_insert(name, &candidate).await?;
        self.open(name, name.as_bytes(), &stored)
    }

    /// The client-secret pepper, created on first use and the same ever after.
    pub async fn pepper(&self) -> Result<Pepper, KeyringError> {
        let fresh = Pepper::generate().map_err(|e| KeyringError::Seal(SealError::from(e)))?;
        let candidate = self.seal(PEPPER_NAME.as_bytes(), fresh.expose_bytes())?;
        let stored = self.store.secret_or_insert(PEPPER_NAME, &candidate).await?;
        let bytes = self.open("the client-secret pepper", PEPPER_NAME.as_bytes(), &stored)?;
        Pepper::from_bytes(&bytes).ok_or(KeyringError::Corrupt("client-secret pepper"))
    }
}
