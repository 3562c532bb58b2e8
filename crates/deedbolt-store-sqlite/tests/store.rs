//! The SQLite backend against the core ports: what every backend must do.

use deedbolt_core::client::{Client, ClientName, GrantType};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::ClientId;
use deedbolt_core::jose::{SigningAlg, SigningKey};
use deedbolt_core::ports::{ClientStore, KeyMaterial, KeyStore, StoredKey};
use deedbolt_core::secret::{ClientSecret, Pepper, SecretHasher};
use deedbolt_store_sqlite::SqliteStore;
use zeroize::Zeroizing;

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
        created_at: UnixTime(10),
        updated_at: UnixTime(10),
    }
}

fn key(now: i64) -> StoredKey {
    let (k, der) = SigningKey::generate(SigningAlg::ES256).unwrap();
    StoredKey {
        kid: k.kid().clone(),
        alg: SigningAlg::ES256,
        material: KeyMaterial::Plain(Zeroizing::new(der.to_vec())),
        created_at: UnixTime(now),
        retired_at: None,
    }
}

#[tokio::test]
async fn clients_round_trip_and_delete() {
    let store = SqliteStore::in_memory().await.unwrap();
    let c = client("valuation-bot");
    store.insert_client(&c).await.unwrap();
    let found = store.find_client(&c.id).await.unwrap().unwrap();
    assert_eq!(found.name, c.name);
    assert_eq!(found.secret_hash, c.secret_hash);
    assert_eq!(found.scopes, c.scopes);
    assert_eq!(found.grant_types, c.grant_types);
    assert_eq!(store.list_clients().await.unwrap().len(), 1);

    let other =
        SecretHasher::new(&Pepper::generate().unwrap()).hash(&ClientSecret::generate().unwrap());
    assert!(store
        .replace_secret(&c.id, &other, UnixTime(20))
        .await
        .unwrap());
    let found = store.find_client(&c.id).await.unwrap().unwrap();
    assert_eq!(found.secret_hash, Some(other));
    assert_eq!(found.updated_at, UnixTime(20));

    assert!(store.delete_client(&c.id).await.unwrap());
    assert!(!store.delete_client(&c.id).await.unwrap());
    assert!(store.find_client(&c.id).await.unwrap().is_none());
}

#[tokio::test]
async fn duplicate_client_id_is_refused() {
    let store = SqliteStore::in_memory().await.unwrap();
    let c = client("a");
    store.insert_client(&c).await.unwrap();
    assert!(store.insert_client(&c).await.is_err());
}

#[tokio::test]
async fn sql_injection_in_ids_is_just_data() {
    let store = SqliteStore::in_memory().await.unwrap();
    store.insert_client(&client("a")).await.unwrap();
    let evil = ClientId::parse("x'OR'1'='1").unwrap();
    assert!(store.find_client(&evil).await.unwrap().is_none());
    assert!(!store.delete_client(&evil).await.unwrap());
    assert_eq!(store.list_clients().await.unwrap().len(), 1);
}

#[tokio::test]
async fn rotation_keeps_exactly_one_current_key() {
    let store = SqliteStore::in_memory().await.unwrap();
    let first = key(100);
    store.rotate_in(&first, UnixTime(100)).await.unwrap();
    let second = key(200);
    store.rotate_in(&second, UnixTime(200)).await.unwrap();
    let keys = store.list_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].kid, second.kid);
    assert_eq!(keys[0].retired_at, None);
    assert_eq!(keys[1].kid, first.kid);
    assert_eq!(keys[1].retired_at, Some(UnixTime(200)));
    // Retired before the cutoff: pruned. The current key never is.
    assert_eq!(store.prune_keys(UnixTime(201)).await.unwrap(), 1);
    assert_eq!(store.prune_keys(UnixTime(i64::MAX)).await.unwrap(), 0);
    assert_eq!(store.list_keys().await.unwrap().len(), 1);
}

#[tokio::test]
async fn first_secret_wins() {
    let store = SqliteStore::in_memory().await.unwrap();
    let a = store
        .secret_or_insert("pepper", &KeyMaterial::Sealed(vec![1, 2, 3]))
        .await
        .unwrap();
    let b = store
        .secret_or_insert("pepper", &KeyMaterial::Sealed(vec![9, 9, 9]))
        .await
        .unwrap();
    match (a, b) {
        (KeyMaterial::Sealed(a), KeyMaterial::Sealed(b)) => {
            assert_eq!(a, vec![1, 2, 3]);
            assert_eq!(b, vec![1, 2, 3]);
        }
        other => panic!("unexpected {other:?}"),
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

#[tokio::test]
async fn a_users_role_changes_and_the_user_can_be_deleted_once() {
    use deedbolt_core::ids::UserId;
    use deedbolt_core::ports::UserStore;
    use deedbolt_core::user::{Email, Role, User};
    let store = SqliteStore::in_memory().await.unwrap();
    let user = User {
        id: UserId::generate().unwrap(),
        email: Email::parse("role.change@example.com").unwrap(),
        name: None,
        role: Role::Manager,
        password_hash: "$argon2id$not-a-real-hash".into(),
        created_at: UnixTime(10),
    };
    store.insert_user(&user).await.unwrap();
    assert!(store.set_role(&user.id, Role::Tenant).await.unwrap());
    let found = store.find_user(&user.id).await.unwrap().unwrap();
    assert_eq!(found.role, Role::Tenant);

    assert!(store.delete_user(&user.id).await.unwrap());
    assert!(store.find_user(&user.id).await.unwrap().is_none());
    assert!(!store.delete_user(&user.id).await.unwrap());
    assert!(!store.set_role(&user.id, Role::Admin).await.unwrap());
}
