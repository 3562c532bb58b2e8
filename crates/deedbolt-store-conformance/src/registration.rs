//! Initial access tokens of dynamic client registration.

use deedbolt_core::clock::UnixTime;
use deedbolt_core::ports::StoreError;
use deedbolt_core::registration::IssuedToken;
use deedbolt_core::secret::{Pepper, SecretHasher};

use crate::{race, Backend};

fn hasher() -> SecretHasher {
    SecretHasher::new(&Pepper::generate().unwrap())
}

/// A token reads back as stored by its hash, lists oldest first, and is revoked once.
pub async fn registration_tokens_round_trip_and_revoke(store: &impl Backend) {
    let h = hasher();
    let scoped = IssuedToken::issue(
        &h,
        Some("openid property:read".parse().unwrap()),
        Some(3),
        UnixTime(100),
        600,
    )
    .unwrap()
    .record;
    let open = IssuedToken::issue(&h, None, None, UnixTime(200), 60)
        .unwrap()
        .record;
    store.insert_registration_token(&scoped).await.unwrap();
    store.insert_registration_token(&open).await.unwrap();
    assert_eq!(
        store.find_registration_token(&scoped.hash).await.unwrap(),
        Some(scoped.clone())
    );
    assert_eq!(
        store.find_registration_token(&open.hash).await.unwrap(),
        Some(open.clone())
    );
    let other = IssuedToken::issue(&h, None, None, UnixTime(0), 60)
        .unwrap()
        .record;
    assert_eq!(
        store.find_registration_token(&other.hash).await.unwrap(),
        None
    );
    let listed = store.list_registration_tokens().await.unwrap();
    assert_eq!(listed, vec![scoped.clone(), open.clone()]);
    // The same id again is a conflict.
    let mut dup = other.clone();
    dup.id = scoped.id.clone();
    assert!(matches!(
        store.insert_registration_token(&dup).await,
        Err(StoreError::Conflict(_))
    ));

    assert!(store
        .revoke_registration_token(&scoped.id, UnixTime(150))
        .await
        .unwrap());
    assert!(!store
        .revoke_registration_token(&scoped.id, UnixTime(160))
        .await
        .unwrap());
    assert!(!store
        .revoke_registration_token("iat_nosuchtoken", UnixTime(160))
        .await
        .unwrap());
    let found = store
        .find_registration_token(&scoped.hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.revoked_at, Some(UnixTime(150)));
    // A revoked token cannot be spent.
    assert_eq!(
        store
            .spend_registration_token(&scoped.hash, UnixTime(151))
            .await
            .unwrap(),
        None
    );
}

/// Spending counts uses, stops at the limit and at expiry.
pub async fn registration_tokens_are_spent_until_used_up_or_expired(store: &impl Backend) {
    let h = hasher();
    let t = IssuedToken::issue(&h, None, Some(2), UnixTime(100), 100)
        .unwrap()
        .record;
    store.insert_registration_token(&t).await.unwrap();
    let first = store
        .spend_registration_token(&t.hash, UnixTime(101))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.uses, 1);
    let second = store
        .spend_registration_token(&t.hash, UnixTime(102))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.uses, 2);
    assert_eq!(
        store
            .spend_registration_token(&t.hash, UnixTime(103))
            .await
            .unwrap(),
        None
    );
    let unlimited = IssuedToken::issue(&h, None, None, UnixTime(100), 100)
        .unwrap()
        .record;
    store.insert_registration_token(&unlimited).await.unwrap();
    for _ in 0..3 {
        assert!(store
            .spend_registration_token(&unlimited.hash, UnixTime(199))
            .await
            .unwrap()
            .is_some());
    }
    assert_eq!(
        store
            .spend_registration_token(&unlimited.hash, UnixTime(200))
            .await
            .unwrap(),
        None,
        "expired at expires_at"
    );
}

/// N concurrent registrations with a token of 3 uses spend exactly 3.
pub async fn a_registration_token_is_not_overspent_under_concurrency(store: &impl Backend) {
    let h = hasher();
    let t = IssuedToken::issue(&h, None, Some(3), UnixTime(100), 100)
        .unwrap()
        .record;
    store.insert_registration_token(&t).await.unwrap();
    let hash = t.hash.clone();
    let results = race(store, 8, |s| {
        let hash = hash.clone();
        async move { s.spend_registration_token(&hash, UnixTime(150)).await }
    })
    .await;
    let spent = results
        .into_iter()
        .filter(|r| r.as_ref().unwrap().is_some())
        .count();
    assert_eq!(spent, 3);
    let after = store
        .find_registration_token(&t.hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.uses, 3);
}
