//! Clients, signing keys, server secrets, users, health.

use deedbolt_core::client::{
    AuthMethod, Client, ClientKind, ClientMetadata, ClientName, GrantType,
};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::{ClientId, UserId};
use deedbolt_core::jose::{SigningAlg, SigningKey};
use deedbolt_core::ports::{KeyMaterial, StoreError, StoredKey};
use deedbolt_core::secret::{ClientSecret, Pepper, SecretHasher};
use deedbolt_core::user::{Email, Role, User};
use zeroize::Zeroizing;

use crate::Backend;

pub(crate) fn client(name: &str) -> Client {
    let hasher = SecretHasher::new(&Pepper::generate().unwrap());
    Client {
        id: ClientId::generate().unwrap(),
        name: ClientName::parse(name).unwrap(),
        secret_hash: Some(hasher.hash(&ClientSecret::generate().unwrap())),
        grant_types: vec![GrantType::ClientCredentials, GrantType::AuthorizationCode],
        scopes: "property:read financial:read".parse().unwrap(),
        redirect_uris: vec![
            deedbolt_core::redirect::RedirectUri::parse("https://app.example.com/cb").unwrap(),
            deedbolt_core::redirect::RedirectUri::parse("http://127.0.0.1/cb").unwrap(),
        ],
        kind: ClientKind::Confidential,
        allow_introspection: true,
        properties: Some(vec![3, 5]),
        id_token_alg: SigningAlg::EdDSA,
        metadata: ClientMetadata::default(),
        registration_token_hash: None,
        created_at: UnixTime(10),
        updated_at: UnixTime(10),
    }
}

fn key(now: i64) -> StoredKey {
    key_of(SigningAlg::ES256, now)
}

fn key_of(alg: SigningAlg, now: i64) -> StoredKey {
    let (k, der) = SigningKey::generate(alg).unwrap();
    StoredKey {
        kid: k.kid().clone(),
        alg,
        material: KeyMaterial::Plain(Zeroizing::new(der.to_vec())),
        created_at: UnixTime(now),
        retired_at: None,
    }
}

/// A user with this email and role, stored.
pub(crate) async fn user(store: &impl Backend, email: &str, role: Role) -> UserId {
    let u = User {
        id: UserId::generate().unwrap(),
        email: Email::parse(email).unwrap(),
        name: None,
        role,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: UnixTime(1),
    };
    store.insert_user(&u).await.unwrap();
    u.id
}

/// The backend answers a ping.
pub async fn answers_a_ping(store: &impl Backend) {
    store.ping().await.unwrap();
}

/// A client reads back as stored, its secret can be replaced, and it can be deleted once.
pub async fn clients_round_trip_and_delete(store: &impl Backend) {
    let c = client("valuation-bot");
    store.insert_client(&c).await.unwrap();
    let found = store.find_client(&c.id).await.unwrap().unwrap();
    assert_eq!(found.name, c.name);
    assert_eq!(found.secret_hash, c.secret_hash);
    assert_eq!(found.scopes, c.scopes);
    assert_eq!(found.grant_types, c.grant_types);
    assert_eq!(found.redirect_uris, c.redirect_uris);
    assert_eq!(found.kind, c.kind);
    assert_eq!(found.allow_introspection, c.allow_introspection);
    assert_eq!(found.properties, c.properties);
    assert_eq!(found.id_token_alg, SigningAlg::EdDSA);
    assert_eq!(found.created_at, c.created_at);

    let public = Client {
        secret_hash: None,
        kind: ClientKind::Public,
        allow_introspection: false,
        properties: None,
        id_token_alg: SigningAlg::RS256,
        created_at: UnixTime(11),
        ..client("spa")
    };
    store.insert_client(&public).await.unwrap();
    let listed = store.list_clients().await.unwrap();
    assert_eq!(
        listed.iter().map(|c| &c.id).collect::<Vec<_>>(),
        [&c.id, &public.id],
        "oldest first"
    );
    let found = store.find_client(&public.id).await.unwrap().unwrap();
    assert!(found.kind.is_public() && found.secret_hash.is_none() && found.properties.is_none());
    assert_eq!(found.id_token_alg, SigningAlg::RS256);

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

/// An update replaces everything about a client but its id and creation time: metadata and
/// the registration-token hash read back as written, and caches see the change.
pub async fn a_client_update_replaces_everything_but_id_and_creation(store: &impl Backend) {
    let c = client("registered");
    store.insert_client(&c).await.unwrap();
    let found = store.find_client(&c.id).await.unwrap().unwrap();
    assert_eq!(found.metadata, ClientMetadata::default());
    assert!(found.registration_token_hash.is_none());

    let g0 = store.clients_generation().await.unwrap();
    let hasher = SecretHasher::new(&Pepper::generate().unwrap());
    let metadata = ClientMetadata {
        token_endpoint_auth_method: Some(AuthMethod::PrivateKeyJwt),
        jwks_uri: Some("https://rp.example.com/jwks.json".into()),
        jwks: Some(
            serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}),
        ),
        require_pushed_authorization_requests: true,
        dpop_bound_access_tokens: true,
        contacts: vec![
            "ops@rp.example.com".into(),
            "it's; DROP TABLE clients".into(),
        ],
        client_uri: Some("https://rp.example.com/".into()),
        ..ClientMetadata::default()
    };
    let updated = Client {
        name: ClientName::parse("renamed").unwrap(),
        secret_hash: None,
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: "tenant:read".parse().unwrap(),
        redirect_uris: vec![deedbolt_core::redirect::RedirectUri::parse(
            "https://rp.example.com/cb",
        )
        .unwrap()],
        allow_introspection: false,
        properties: None,
        id_token_alg: SigningAlg::ES256,
        metadata: metadata.clone(),
        registration_token_hash: Some(hasher.hash(&ClientSecret::generate().unwrap())),
        created_at: UnixTime(99),
        updated_at: UnixTime(30),
        ..c.clone()
    };
    assert!(store.update_client(&updated).await.unwrap());
    let found = store.find_client(&c.id).await.unwrap().unwrap();
    assert_eq!(found.name.as_str(), "renamed");
    assert!(found.secret_hash.is_none());
    assert_eq!(found.grant_types, updated.grant_types);
    assert_eq!(found.scopes, updated.scopes);
    assert_eq!(found.redirect_uris, updated.redirect_uris);
    assert!(!found.allow_introspection);
    assert_eq!(found.properties, None);
    assert_eq!(found.id_token_alg, SigningAlg::ES256);
    assert_eq!(found.metadata, metadata);
    assert_eq!(found.auth_method(), AuthMethod::PrivateKeyJwt);
    assert_eq!(
        found.registration_token_hash,
        updated.registration_token_hash
    );
    assert_eq!(found.created_at, c.created_at, "the creation time stays");
    assert_eq!(found.updated_at, UnixTime(30));
    assert!(store.clients_generation().await.unwrap() > g0);

    let ghost = Client {
        id: ClientId::generate().unwrap(),
        ..updated
    };
    assert!(!store.update_client(&ghost).await.unwrap());
    assert!(store.find_client(&ghost.id).await.unwrap().is_none());
}

/// Caches see every update and delete of a client through the generation counter.
pub async fn the_clients_generation_moves_on_update_and_delete(store: &impl Backend) {
    let g0 = store.clients_generation().await.unwrap();
    let c = client("a");
    store.insert_client(&c).await.unwrap();
    let hash =
        SecretHasher::new(&Pepper::generate().unwrap()).hash(&ClientSecret::generate().unwrap());
    store
        .replace_secret(&c.id, &hash, UnixTime(2))
        .await
        .unwrap();
    let g1 = store.clients_generation().await.unwrap();
    assert!(g1 > g0, "an update moves the generation");
    store.delete_client(&c.id).await.unwrap();
    assert!(
        store.clients_generation().await.unwrap() > g1,
        "so does a delete"
    );
}

/// Inserting a client id twice fails.
pub async fn a_duplicate_client_id_is_refused(store: &impl Backend) {
    let c = client("a");
    store.insert_client(&c).await.unwrap();
    assert!(store.insert_client(&c).await.is_err());
}

/// Quotes in ids are data, never SQL.
pub async fn sql_injection_in_ids_is_just_data(store: &impl Backend) {
    store.insert_client(&client("a")).await.unwrap();
    let evil = ClientId::parse("x'OR'1'='1").unwrap();
    assert!(store.find_client(&evil).await.unwrap().is_none());
    assert!(!store.delete_client(&evil).await.unwrap());
    assert_eq!(store.list_clients().await.unwrap().len(), 1);
}

/// Rotation leaves one current key per algorithm (current keys listed first) and retires
/// only the key of the rotated algorithm; pruning removes retired keys only.
pub async fn rotation_keeps_exactly_one_current_key(store: &impl Backend) {
    let ed = key_of(SigningAlg::EdDSA, 50);
    store.rotate_in(&ed, UnixTime(50)).await.unwrap();
    let first = key(100);
    store.rotate_in(&first, UnixTime(100)).await.unwrap();
    let second = key(200);
    store.rotate_in(&second, UnixTime(200)).await.unwrap();
    let keys = store.list_keys().await.unwrap();
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0].kid, second.kid);
    assert_eq!(keys[0].retired_at, None);
    assert_eq!(
        keys[1].kid, ed.kid,
        "the other algorithm's key stays current"
    );
    assert_eq!(keys[1].retired_at, None);
    assert_eq!(keys[2].kid, first.kid);
    assert_eq!(keys[2].retired_at, Some(UnixTime(200)));
    match &keys[0].material {
        KeyMaterial::Plain(bytes) => match &second.material {
            KeyMaterial::Plain(expected) => assert_eq!(bytes.as_slice(), expected.as_slice()),
            KeyMaterial::Sealed(_) => unreachable!(),
        },
        other => panic!("plain material came back as {other:?}"),
    }
    // Retired before the cutoff: pruned. The current key never is.
    assert_eq!(store.prune_keys(UnixTime(201)).await.unwrap(), 1);
    assert_eq!(store.prune_keys(UnixTime(i64::MAX)).await.unwrap(), 0);
    assert_eq!(store.list_keys().await.unwrap().len(), 2);
}

/// Concurrent rotations all succeed and leave exactly one current key per algorithm.
pub async fn concurrent_rotations_leave_one_current_key(store: &impl Backend) {
    store.rotate_in(&key(100), UnixTime(100)).await.unwrap();
    crate::race(store, 4, |s| async move {
        s.rotate_in(&key(200), UnixTime(200)).await.unwrap();
    })
    .await;
    let keys = store.list_keys().await.unwrap();
    assert_eq!(keys.len(), 5);
    assert_eq!(
        keys.iter().filter(|k| k.retired_at.is_none()).count(),
        1,
        "{keys:?}"
    );
    assert!(
        keys[0].retired_at.is_none(),
        "the current key is listed first"
    );
}

/// Concurrent first starts agree on one server secret.
pub async fn the_first_secret_wins(store: &impl Backend) {
    let results = crate::race(store, 8, |s| async move {
        let mut mine = [0u8; 8];
        deedbolt_core::rand::fill(&mut mine).unwrap();
        s.secret_or_insert("pepper", &KeyMaterial::Sealed(mine.to_vec()))
            .await
            .unwrap()
    })
    .await;
    let values: Vec<Vec<u8>> = results
        .into_iter()
        .map(|m| match m {
            KeyMaterial::Sealed(v) => v,
            KeyMaterial::Plain(_) => panic!("sealed material came back plain"),
        })
        .collect();
    assert!(values.windows(2).all(|w| w[0] == w[1]), "{values:?}");
}

/// A second user with a taken email is a conflict, not a backend failure.
pub async fn a_duplicate_user_email_is_a_conflict(store: &impl Backend) {
    let first = user(store, "tina@example.com", Role::Tenant).await;
    let again = User {
        id: UserId::generate().unwrap(),
        email: Email::parse("tina@example.com").unwrap(),
        name: Some("Tina".into()),
        role: Role::Tenant,
        password_hash: "x".into(),
        created_at: UnixTime(2),
    };
    assert!(matches!(
        store.insert_user(&again).await,
        Err(StoreError::Conflict(_))
    ));
    let found = store
        .find_user_by_email(&Email::parse("tina@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, first);
    assert_eq!(found.role, Role::Tenant);
    assert_eq!(
        store.find_user(&first).await.unwrap().unwrap().email,
        found.email
    );
}

/// Users are listed oldest first.
pub async fn users_list_oldest_first(store: &impl Backend) {
    let a = user(store, "a@example.com", Role::Manager).await;
    let b = user(store, "b@example.com", Role::Tenant).await;
    let c = user(store, "c@example.com", Role::Tenant).await;
    let ids: Vec<_> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(ids, [a, b, c]);
}

/// A user's role changes; deleting a user takes their sessions and consents, once.
pub async fn a_users_role_changes_and_the_user_can_be_deleted_once(store: &impl Backend) {
    let id = user(store, "role.change@example.com", Role::Manager).await;
    assert!(store.set_role(&id, Role::Tenant).await.unwrap());
    assert_eq!(
        store.find_user(&id).await.unwrap().unwrap().role,
        Role::Tenant
    );

    let session = deedbolt_core::ports::Session {
        user_id: id.clone(),
        auth_time: UnixTime(1),
        csrf: "c".into(),
        expires_at: UnixTime(100),
    };
    store.create_session(&[9; 32], &session).await.unwrap();
    let client = ClientId::parse("dbc_spa").unwrap();
    store
        .save_consent(&id, &client, "tenant:read".parse().unwrap(), UnixTime(1))
        .await
        .unwrap();

    assert!(store.delete_user(&id).await.unwrap());
    assert!(store.find_user(&id).await.unwrap().is_none());
    assert!(store
        .find_session(&[9; 32], UnixTime(2))
        .await
        .unwrap()
        .is_none());
    assert!(store.find_consent(&id, &client).await.unwrap().is_none());
    assert!(!store.delete_user(&id).await.unwrap());
    assert!(!store.set_role(&id, Role::Admin).await.unwrap());
}
