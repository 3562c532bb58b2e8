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
