//! The SQLite backend's code-flow state: pending requests (bounded per owner), consents and
//! codes, including the empty scope set, which must read back as what was stored.

use deedbolt_core::clock::UnixTime;
use deedbolt_core::flow::{AuthorizationRequest, CodeGrant, Prompt};
use deedbolt_core::ids::{ClientId, UserId};
use deedbolt_core::ports::{FlowStore, Redemption, UserStore};
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::user::{Email, Role, User};
use deedbolt_store_sqlite::SqliteStore;

fn request(scope: ScopeSet) -> AuthorizationRequest {
    AuthorizationRequest {
        client_id: ClientId::parse("dbc_spa").unwrap(),
        redirect_uri: "https://app.example.com/cb".into(),
        scope,
        state: None,
        nonce: None,
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        prompt: Prompt::Default,
    }
}

async fn user(store: &SqliteStore) -> UserId {
    let user = User {
        id: UserId::generate().unwrap(),
        email: Email::parse("tina@example.com").unwrap(),
        name: None,
        role: Role::Tenant,
        password_hash: "$argon2id$not-checked-here".into(),
        created_at: UnixTime(0),
    };
    store.insert_user(&user).await.unwrap();
    user.id
}

#[tokio::test]
async fn an_empty_consent_round_trips_and_merges() {
    let store = SqliteStore::in_memory().await.unwrap();
    let user = user(&store).await;
    let client = ClientId::parse("dbc_spa").unwrap();
    store
        .save_consent(&user, &client, ScopeSet::empty(), UnixTime(1))
        .await
        .unwrap();
    assert_eq!(
        store.find_consent(&user, &client).await.unwrap(),
        Some(ScopeSet::empty()),
        "an empty stored consent is an empty set, not corrupt data"
    );
    let read: ScopeSet = "tenant:read".parse().unwrap();
    store
        .save_consent(&user, &client, read, UnixTime(2))
        .await
        .unwrap();
    assert_eq!(
        store.find_consent(&user, &client).await.unwrap(),
        Some(read)
    );
}

#[tokio::test]
async fn a_code_with_an_empty_scope_redeems_as_stored() {
    let store = SqliteStore::in_memory().await.unwrap();
    let grant = CodeGrant {
        client_id: ClientId::parse("dbc_spa").unwrap(),
        redirect_uri: "https://app.example.com/cb".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        user_id: UserId::generate().unwrap(),
        scope: ScopeSet::empty(),
        nonce: None,
        auth_time: UnixTime(1),
        expires_at: UnixTime(61),
    };
    store.insert_code(&[7; 32], &grant).await.unwrap();
    match store.redeem_code(&[7; 32], UnixTime(2)).await.unwrap() {
        Redemption::Fresh(g) => assert_eq!(g, grant),
        other => panic!("expected the stored grant, got {other:?}"),
    }
}

#[tokio::test]
async fn a_pending_request_with_an_empty_scope_reads_back() {
    let store = SqliteStore::in_memory().await.unwrap();
    let r = request(ScopeSet::empty());
    store
        .put_pending("req-empty", &r, UnixTime(600), "192.0.2.1", 10)
        .await
        .unwrap();
    assert_eq!(
        store.get_pending("req-empty", UnixTime(1)).await.unwrap(),
        Some(r)
    );
}

#[tokio::test]
async fn one_owner_keeps_only_its_newest_pending_requests() {
    let store = SqliteStore::in_memory().await.unwrap();
    let r = request("openid".parse().unwrap());
    for i in 0..10 {
        store
            .put_pending(&format!("flood-{i}"), &r, UnixTime(600), "203.0.113.9", 3)
            .await
            .unwrap();
    }
    store
        .put_pending("neighbour", &r, UnixTime(600), "198.51.100.7", 3)
        .await
        .unwrap();
    let live = |id: String| {
        let store = &store;
        async move { store.get_pending(&id, UnixTime(1)).await.unwrap().is_some() }
    };
    for i in 0..7 {
        assert!(!live(format!("flood-{i}")).await, "flood-{i} was trimmed");
    }
    for i in 7..10 {
        assert!(
            live(format!("flood-{i}")).await,
            "flood-{i} is among the newest"
        );
    }
    assert!(live("neighbour".into()).await, "another owner is untouched");
}
