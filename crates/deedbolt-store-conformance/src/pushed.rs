//! Pushed authorization requests (RFC 9126): single use, bound to the client that pushed
//! them, short-lived, and gone with their client.

use deedbolt_core::clock::UnixTime;
use deedbolt_core::flow::{AuthorizationRequest, Prompt};
use deedbolt_core::ids::ClientId;
use deedbolt_core::par::RequestUri;

use crate::clients::client;
use crate::Backend;

/// A registered client and a request it pushed.
async fn pushed_by_new_client(store: &impl Backend) -> AuthorizationRequest {
    let c = client("pusher");
    store.insert_client(&c).await.unwrap();
    AuthorizationRequest {
        client_id: c.id,
        redirect_uri: "https://app.example.com/cb".into(),
        scope: "property:read".parse().unwrap(),
        state: Some("st".into()),
        nonce: Some("n".into()),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        prompt: Prompt::Consent,
        dpop_jkt: None,
        pushed_until: None,
    }
}

/// A pushed request reads back as stored, once, and only for the client that pushed it:
/// another client's attempt neither gets nor spends it.
pub async fn a_pushed_request_is_taken_once_and_only_by_its_client(store: &impl Backend) {
    let r = pushed_by_new_client(store).await;
    let key = RequestUri::generate().unwrap().storage_key();
    store.put_pushed(&key, &r, UnixTime(60)).await.unwrap();
    let other = ClientId::generate().unwrap();
    assert_eq!(
        store.take_pushed(&key, &other, UnixTime(1)).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .take_pushed(&[0; 32], &r.client_id, UnixTime(1))
            .await
            .unwrap(),
        None,
        "an unknown reference"
    );
    assert_eq!(
        store
            .take_pushed(&key, &r.client_id, UnixTime(1))
            .await
            .unwrap(),
        Some(r.clone())
    );
    assert_eq!(
        store
            .take_pushed(&key, &r.client_id, UnixTime(1))
            .await
            .unwrap(),
        None,
        "single use"
    );
}

/// Of many concurrent takes of one pushed request exactly one gets it.
pub async fn a_pushed_request_is_taken_once_under_concurrent_takes(store: &impl Backend) {
    let r = pushed_by_new_client(store).await;
    for round in 0..5u8 {
        let key = [round; 32];
        store.put_pushed(&key, &r, UnixTime(60)).await.unwrap();
        let id = r.client_id.clone();
        let outcomes = crate::race(store, 8, move |s| {
            let id = id.clone();
            async move { s.take_pushed(&key, &id, UnixTime(2)).await.unwrap() }
        })
        .await;
        let taken = outcomes.iter().filter(|o| o.is_some()).count();
        assert_eq!(taken, 1, "round {round}");
    }
}

/// An expired pushed request is refused, and pruning deletes it; a live one stays.
pub async fn an_expired_pushed_request_is_refused_and_pruned(store: &impl Backend) {
    let r = pushed_by_new_client(store).await;
    store.put_pushed(&[1; 32], &r, UnixTime(60)).await.unwrap();
    store.put_pushed(&[2; 32], &r, UnixTime(60)).await.unwrap();
    store.put_pushed(&[3; 32], &r, UnixTime(500)).await.unwrap();
    assert_eq!(
        store
            .take_pushed(&[1; 32], &r.client_id, UnixTime(60))
            .await
            .unwrap(),
        None,
        "expired at its expiry time"
    );
    store.prune_expired(UnixTime(100)).await.unwrap();
    // Pruned: even a clock going backwards does not find it any more.
    assert_eq!(
        store
            .take_pushed(&[2; 32], &r.client_id, UnixTime(1))
            .await
            .unwrap(),
        None
    );
    assert!(store
        .take_pushed(&[3; 32], &r.client_id, UnixTime(100))
        .await
        .unwrap()
        .is_some());
}

/// Deleting a client deletes the requests it pushed.
pub async fn pushed_requests_go_with_their_client(store: &impl Backend) {
    let r = pushed_by_new_client(store).await;
    store.put_pushed(&[9; 32], &r, UnixTime(60)).await.unwrap();
    assert!(store.delete_client(&r.client_id).await.unwrap());
    assert_eq!(
        store
            .take_pushed(&[9; 32], &r.client_id, UnixTime(1))
            .await
            .unwrap(),
        None
    );
}
