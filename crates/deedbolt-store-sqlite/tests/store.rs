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
        public: false,
        allow_introspection: false,
        properties: None,
        id_token_alg: deedbolt_core::jose::SigningAlg::RS256,
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
