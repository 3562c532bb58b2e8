//! What only the SQLite backend shows: a file database survives reopening. (What every
//! backend must do is the conformance suite, tests/conformance.rs.)

use deedbolt_core::client::{Client, ClientName, GrantType};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::ClientId;
use deedbolt_core::ports::ClientStore;
use deedbolt_core::secret::{ClientSecret, Pepper, SecretHasher};
use deedbolt_store_sqlite::SqliteStore;

fn client(name: &str) -> Client {
    let hasher = SecretHasher::new(&Pepper::generate().unwrap());
    Client {
        id: ClientId::generate().unwrap(),
        name: ClientName::parse(name).unwrap(),
        secret_hash: Some(hasher.hash(&ClientSecret::generate().unwrap())),
        grant_types: vec![GrantType::ClientCredentials],
        scopes: "property:read financial:read".parse().unwrap(),
        redirect_uris: vec![],
        kind: deedbolt_core::client::ClientKind::Confidential,
        allow_introspection: false,
        properties: None,
        id_token_alg: deedbolt_core::jose::SigningAlg::RS256,
        metadata: Default::default(),
        registration_token_hash: None,
        created_at: UnixTime(10),
        updated_at: UnixTime(10),
    }
}

#[tokio::test]
async fn file_database_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deedbolt.db");
    let c = client("persist");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        store.insert_client(&c).await.unwrap();
        store.close().await;
    }
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(store.find_client(&c.id).await.unwrap().is_some());
}

/// A data directory written by a release that kept one signing key (ES256) gets a key of
/// each other algorithm at the next start, and keeps signing with its own ES256 key.
#[tokio::test]
async fn a_single_key_data_directory_gets_a_key_per_algorithm() {
    use std::sync::Arc;

    use deedbolt_core::jose::{SigningAlg, SigningKey};
    use deedbolt_core::keyring::KeyVault;
    use deedbolt_core::ports::{KeyMaterial, KeyStore, StoredKey};

    let store = SqliteStore::in_memory().await.unwrap();
    let (old, der) = SigningKey::generate(SigningAlg::ES256).unwrap();
    store
        .rotate_in(
            &StoredKey {
                kid: old.kid().clone(),
                alg: SigningAlg::ES256,
                material: KeyMaterial::Plain(zeroize::Zeroizing::new(der.to_vec())),
                created_at: UnixTime(100),
                retired_at: None,
            },
            UnixTime(100),
        )
        .await
        .unwrap();
    let vault = KeyVault::new(Arc::new(store.clone()), None);
    assert!(
        vault.load(UnixTime(200)).await.is_err(),
        "incomplete until ensured"
    );

    let made = vault.ensure_current(UnixTime(200)).await.unwrap();
    let algs: Vec<SigningAlg> = made.iter().map(|(alg, _)| *alg).collect();
    assert_eq!(algs, [SigningAlg::RS256, SigningAlg::EdDSA]);
    assert!(vault
        .ensure_current(UnixTime(300))
        .await
        .unwrap()
        .is_empty());

    let loaded = vault.load(UnixTime(300)).await.unwrap();
    assert_eq!(loaded.signers.get(SigningAlg::ES256).kid(), old.kid());
    for (alg, kid) in &made {
        assert_eq!(loaded.signers.get(*alg).kid(), kid);
        assert_eq!(loaded.signers.get(*alg).alg(), *alg);
    }
    assert_eq!(loaded.jwks.keys.len(), 3);
    let keys = store.list_keys().await.unwrap();
    assert!(keys.iter().all(|k| k.retired_at.is_none()), "{keys:?}");
}
