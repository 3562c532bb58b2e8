//! Refresh-token families and revocation cutoffs.

use deedbolt_core::clock::UnixTime;
use deedbolt_core::ids::{ClientId, TokenId, UserId};
use deedbolt_core::ports::{CutoffKind, NewFamily};
use deedbolt_core::refresh::TokenState;

use crate::Backend;

fn family(id: &str, client: &str, user: &UserId) -> NewFamily {
    NewFamily {
        family_id: id.into(),
        client_id: ClientId::parse(client).unwrap(),
        user_id: user.clone(),
        scope: "openid tenant:read".parse().unwrap(),
        auth_time: UnixTime(1),
        expires_at: UnixTime(10_000),
        dpop_jkt: None,
    }
}

/// A family's DPoP key binding (RFC 9449 §5) is stored and read back with every token of
/// the family, rotated ones included; an unbound family reads back unbound.
pub async fn a_familys_dpop_binding_round_trips(store: &impl Backend) {
    let user = UserId::generate().unwrap();
    let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".to_owned();
    let bound = NewFamily {
        dpop_jkt: Some(jkt.clone()),
        ..family("fam-dpop", "dbc_spa", &user)
    };
    store
        .create_family(&bound, &[21; 32], UnixTime(1), UnixTime(100))
        .await
        .unwrap();
    store
        .create_family(
            &family("fam-plain", "dbc_spa", &user),
            &[22; 32],
            UnixTime(1),
            UnixTime(100),
        )
        .await
        .unwrap();
    let found = store.find_refresh(&[21; 32]).await.unwrap().unwrap();
    assert_eq!(found.dpop_jkt.as_deref(), Some(jkt.as_str()));
    assert!(store
        .rotate_refresh(&[21; 32], &[23; 32], UnixTime(5), UnixTime(200))
        .await
        .unwrap());
    let rotated = store.find_refresh(&[23; 32]).await.unwrap().unwrap();
    assert_eq!(
        rotated.dpop_jkt.as_deref(),
        Some(jkt.as_str()),
        "the new token inherits it"
    );
    let plain = store.find_refresh(&[22; 32]).await.unwrap().unwrap();
    assert_eq!(plain.dpop_jkt, None);
}

/// An unbound family takes the DPoP key of the first bind and keeps it (RFC 9449 §5): a
/// second bind with another key fails, one with the same key succeeds, its tokens read
/// the key back, and of concurrent binds with different keys exactly one wins. A bound
/// family never changes its key, and an unknown family binds nothing.
pub async fn an_unbound_family_is_bound_to_the_first_key_only(store: &impl Backend) {
    let user = UserId::generate().unwrap();
    let first = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    let other = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
    store
        .create_family(
            &family("fam-late", "dbc_spa", &user),
            &[31; 32],
            UnixTime(1),
            UnixTime(100),
        )
        .await
        .unwrap();
    assert!(store.bind_family_key("fam-late", first).await.unwrap());
    assert!(
        !store.bind_family_key("fam-late", other).await.unwrap(),
        "a bound family keeps its key"
    );
    assert!(
        store.bind_family_key("fam-late", first).await.unwrap(),
        "binding again to the same key is no change"
    );
    let found = store.find_refresh(&[31; 32]).await.unwrap().unwrap();
    assert_eq!(found.dpop_jkt.as_deref(), Some(first));
    assert!(!store.bind_family_key("fam-none", first).await.unwrap());

    // Concurrent binds of one unbound family, each with its own key: one key wins.
    store
        .create_family(
            &family("fam-race", "dbc_spa", &user),
            &[32; 32],
            UnixTime(1),
            UnixTime(100),
        )
        .await
        .unwrap();
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let won = crate::race(store, 8, |s| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            let key = format!("{n:0>43}");
            s.bind_family_key("fam-race", &key)
                .await
                .unwrap()
                .then_some(key)
        }
    })
    .await
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    assert_eq!(won.len(), 1, "{won:?}");
    let found = store.find_refresh(&[32; 32]).await.unwrap().unwrap();
    assert_eq!(found.dpop_jkt.as_deref(), Some(won[0].as_str()));
}

/// Of many concurrent rotations of one refresh token exactly one succeeds, and the
/// family then has the old token rotated and one new active token.
pub async fn a_refresh_token_rotates_once_under_concurrent_rotation(store: &impl Backend) {
    let user = UserId::generate().unwrap();
    store
        .create_family(
            &family("fam-1", "dbc_app", &user),
            &[1; 32],
            UnixTime(1),
            UnixTime(100),
        )
        .await
        .unwrap();
    let found = store.find_refresh(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(found.state, TokenState::Active);
    assert_eq!(found.family_id, "fam-1");
    assert_eq!(found.user_id, user);
    assert_eq!(found.scope, "openid tenant:read".parse().unwrap());
    assert_eq!(found.family_expires_at, UnixTime(10_000));
    assert!(!found.family_revoked);

    let wins = crate::race(store, 8, |s| async move {
        let mut new = [0u8; 32];
        deedbolt_core::rand::fill(&mut new).unwrap();
        s.rotate_refresh(&[1; 32], &new, UnixTime(5), UnixTime(200))
            .await
            .unwrap()
            .then_some(new)
    })
    .await
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    assert_eq!(wins.len(), 1, "exactly one rotation wins");
    let old = store.find_refresh(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(old.state, TokenState::Rotated);
    assert_eq!(old.rotated_at, Some(UnixTime(5)));
    let new = store.find_refresh(&wins[0]).await.unwrap().unwrap();
    assert_eq!(
        (new.state, new.family_id.as_str()),
        (TokenState::Active, "fam-1")
    );
    assert_eq!(new.expires_at, UnixTime(200));
}

/// Revoking a family revokes every refresh token and returns its live access tokens,
/// which land on the revocation list.
pub async fn revoking_a_family_revokes_its_tokens_and_access_tokens(store: &impl Backend) {
    let user = UserId::generate().unwrap();
    store
        .create_family(
            &family("fam-1", "dbc_app", &user),
            &[1; 32],
            UnixTime(1),
            UnixTime(100),
        )
        .await
        .unwrap();
    store
        .rotate_refresh(&[1; 32], &[2; 32], UnixTime(2), UnixTime(100))
        .await
        .unwrap();
    let live = TokenId::generate().unwrap();
    let expired = TokenId::generate().unwrap();
    assert!(!store
        .record_family_access("fam-1", &live, UnixTime(900))
        .await
        .unwrap());
    store
        .record_family_access("fam-1", &expired, UnixTime(5))
        .await
        .unwrap();
    assert_eq!(
        store.family_of_access(&live).await.unwrap().as_deref(),
        Some("fam-1")
    );
    let revoked = store.revoke_family("fam-1", UnixTime(10)).await.unwrap();
    assert_eq!(revoked, [(live.clone(), UnixTime(900))]);
    for hash in [[1; 32], [2; 32]] {
        let t = store.find_refresh(&hash).await.unwrap().unwrap();
        assert_eq!(t.state, TokenState::Revoked);
        assert!(t.family_revoked);
    }
    let (list, _) = store.revoked_since(0).await.unwrap();
    assert_eq!(list, [(live, UnixTime(900))]);
    assert!(
        !store
            .rotate_refresh(&[2; 32], &[3; 32], UnixTime(11), UnixTime(100))
            .await
            .unwrap(),
        "a revoked token never rotates"
    );
    // Revoking twice changes nothing and fails nothing.
    store.revoke_family("fam-1", UnixTime(12)).await.unwrap();
}

/// An access token recorded in a revoked family (a race with reuse detection) must be
/// revoked by the caller, and a concurrent revocation never misses one.
pub async fn an_access_token_recorded_in_a_revoked_family_must_be_revoked(store: &impl Backend) {
    let user = UserId::generate().unwrap();
    store
        .create_family(
            &family("fam-1", "dbc_app", &user),
            &[1; 32],
            UnixTime(1),
            UnixTime(100),
        )
        .await
        .unwrap();
    store.revoke_family("fam-1", UnixTime(2)).await.unwrap();
    assert!(store
        .record_family_access("fam-1", &TokenId::generate().unwrap(), UnixTime(900))
        .await
        .unwrap());

    // Racing: every token is either returned by the revocation or told to revoke itself.
    for round in 0..5 {
        let id = format!("race-{round}");
        store
            .create_family(
                &family(&id, "dbc_app", &user),
                &[round + 10; 32],
                UnixTime(1),
                UnixTime(100),
            )
            .await
            .unwrap();
        let recorders: Vec<_> = (0..6)
            .map(|_| {
                let (store, id) = (store.clone(), id.clone());
                tokio::spawn(async move {
                    let jti = TokenId::generate().unwrap();
                    let must_revoke = store
                        .record_family_access(&id, &jti, UnixTime(900))
                        .await
                        .unwrap();
                    (jti, must_revoke)
                })
            })
            .collect();
        let revoked = store.revoke_family(&id, UnixTime(3)).await.unwrap();
        for r in recorders {
            let (jti, must_revoke) = r.await.unwrap();
            let by_family = revoked.iter().any(|(j, _)| *j == jti);
            assert!(
                must_revoke || by_family,
                "round {round}: {jti:?} escaped revocation"
            );
        }
    }
}

/// Revoking by client or by user revokes every live family of it, and only those.
pub async fn families_of_a_client_or_user_are_revoked_together(store: &impl Backend) {
    let tina = UserId::generate().unwrap();
    let omar = UserId::generate().unwrap();
    for (id, client, user, hash) in [
        ("f1", "dbc_app", &tina, 1u8),
        ("f2", "dbc_app", &omar, 2),
        ("f3", "dbc_other", &tina, 3),
    ] {
        store
            .create_family(
                &family(id, client, user),
                &[hash; 32],
                UnixTime(1),
                UnixTime(100),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .revoke_families_of(CutoffKind::Subject, tina.as_str(), UnixTime(5))
            .await
            .unwrap(),
        2
    );
    assert!(
        !store
            .find_refresh(&[2; 32])
            .await
            .unwrap()
            .unwrap()
            .family_revoked
    );
    assert_eq!(
        store
            .revoke_families_of(CutoffKind::Client, "dbc_app", UnixTime(6))
            .await
            .unwrap(),
        1,
        "already revoked families are not counted again"
    );
    assert!(
        store
            .find_refresh(&[2; 32])
            .await
            .unwrap()
            .unwrap()
            .family_revoked
    );
}

/// A cutoff only ever moves later, and old cutoffs are not returned.
pub async fn cutoffs_only_move_forward(store: &impl Backend) {
    store
        .set_cutoff(CutoffKind::Client, "dbc_app", UnixTime(100))
        .await
        .unwrap();
    store
        .set_cutoff(CutoffKind::Client, "dbc_app", UnixTime(50))
        .await
        .unwrap();
    store
        .set_cutoff(CutoffKind::Subject, "usr_x", UnixTime(10))
        .await
        .unwrap();
    let mut all = store.cutoffs_since(UnixTime(0)).await.unwrap();
    all.sort_by_key(|c| c.2);
    assert_eq!(
        all,
        [
            (CutoffKind::Subject, "usr_x".to_owned(), UnixTime(10)),
            (CutoffKind::Client, "dbc_app".to_owned(), UnixTime(100)),
        ]
    );
    assert_eq!(store.cutoffs_since(UnixTime(10)).await.unwrap().len(), 1);
    store
        .set_cutoff(CutoffKind::Client, "dbc_app", UnixTime(150))
        .await
        .unwrap();
    assert_eq!(
        store.cutoffs_since(UnixTime(100)).await.unwrap(),
        [(CutoffKind::Client, "dbc_app".to_owned(), UnixTime(150))]
    );
}
