//! The authorization-code flow: sessions, consents, pending requests, codes, and the
//! revocation list.

use deedbolt_core::clock::UnixTime;
use deedbolt_core::flow::{AuthorizationRequest, CodeGrant, Prompt};
use deedbolt_core::ids::{ClientId, TokenId, UserId};
use deedbolt_core::ports::{Redemption, Session};
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::user::Role;

use crate::clients::user;
use crate::Backend;

fn request(scope: ScopeSet) -> AuthorizationRequest {
    AuthorizationRequest {
        client_id: ClientId::parse("dbc_spa").unwrap(),
        redirect_uri: "https://app.example.com/cb".into(),
        scope,
        state: Some("xyz".into()),
        nonce: None,
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        prompt: Prompt::Default,
        dpop_jkt: None,
        pushed_until: None,
    }
}

fn grant(scope: ScopeSet, expires_at: i64) -> CodeGrant {
    CodeGrant {
        client_id: ClientId::parse("dbc_spa").unwrap(),
        redirect_uri: "https://app.example.com/cb".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        user_id: UserId::generate().unwrap(),
        scope,
        nonce: Some("n-0S6_WzA2Mj".into()),
        auth_time: UnixTime(1),
        expires_at: UnixTime(expires_at),
        dpop_jkt: None,
    }
}

/// A code bound to a DPoP key (`dpop_jkt`, RFC 9449 §10) keeps the binding through
/// peeking and redemption.
pub async fn a_codes_dpop_binding_round_trips(store: &impl Backend) {
    let g = CodeGrant {
        dpop_jkt: Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into()),
        ..grant("tenant:read".parse().unwrap(), 600)
    };
    store.insert_code(&[31; 32], &g).await.unwrap();
    assert_eq!(store.peek_code(&[31; 32]).await.unwrap(), Some(g.clone()));
    match store.redeem_code(&[31; 32], UnixTime(2)).await.unwrap() {
        Redemption::Fresh(found) => assert_eq!(found.dpop_jkt, g.dpop_jkt),
        other => panic!("expected the stored grant, got {other:?}"),
    }
}

/// A session is found until it expires or is deleted.
pub async fn sessions_live_until_they_expire_or_end(store: &impl Backend) {
    let u = user(store, "tina@example.com", Role::Tenant).await;
    let session = Session {
        user_id: u,
        auth_time: UnixTime(5),
        csrf: "csrf-token".into(),
        expires_at: UnixTime(100),
    };
    store.create_session(&[1; 32], &session).await.unwrap();
    assert_eq!(
        store.find_session(&[1; 32], UnixTime(99)).await.unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        store.find_session(&[1; 32], UnixTime(100)).await.unwrap(),
        None
    );
    assert_eq!(
        store.find_session(&[2; 32], UnixTime(1)).await.unwrap(),
        None
    );
    store.delete_session(&[1; 32]).await.unwrap();
    assert_eq!(
        store.find_session(&[1; 32], UnixTime(1)).await.unwrap(),
        None
    );
}

/// An empty consent reads back as an empty set and merges with later grants.
pub async fn an_empty_consent_round_trips_and_merges(store: &impl Backend) {
    let user = user(store, "tina@example.com", Role::Tenant).await;
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

/// Consents accumulate per client and are revoked for one client or all.
pub async fn consents_merge_and_are_revoked_per_client_or_all(store: &impl Backend) {
    let user = user(store, "tina@example.com", Role::Tenant).await;
    let spa = ClientId::parse("dbc_spa").unwrap();
    let app = ClientId::parse("dbc_app").unwrap();
    let read: ScopeSet = "tenant:read".parse().unwrap();
    let write: ScopeSet = "maintenance:manage".parse().unwrap();
    store
        .save_consent(&user, &spa, read, UnixTime(1))
        .await
        .unwrap();
    store
        .save_consent(&user, &spa, write, UnixTime(2))
        .await
        .unwrap();
    store
        .save_consent(&user, &app, read, UnixTime(2))
        .await
        .unwrap();
    assert_eq!(
        store.find_consent(&user, &spa).await.unwrap(),
        Some(read.union(&write))
    );
    assert_eq!(store.revoke_consents(&user, Some(&spa)).await.unwrap(), 1);
    assert_eq!(store.find_consent(&user, &spa).await.unwrap(), None);
    assert_eq!(store.find_consent(&user, &app).await.unwrap(), Some(read));
    assert_eq!(store.revoke_consents(&user, None).await.unwrap(), 1);
    assert_eq!(store.find_consent(&user, &app).await.unwrap(), None);
}

/// A client's consents are forgotten for every user at once, and only that client's.
pub async fn a_clients_consents_are_revoked_for_every_user(store: &impl Backend) {
    let tina = user(store, "tina@example.com", Role::Tenant).await;
    let tom = user(store, "tom@example.com", Role::Tenant).await;
    let spa = ClientId::parse("dbc_spa").unwrap();
    let app = ClientId::parse("dbc_app").unwrap();
    let read: ScopeSet = "tenant:read".parse().unwrap();
    for (u, c) in [(&tina, &spa), (&tom, &spa), (&tina, &app)] {
        store.save_consent(u, c, read, UnixTime(1)).await.unwrap();
    }
    assert_eq!(store.revoke_client_consents(&spa).await.unwrap(), 2);
    assert_eq!(store.find_consent(&tina, &spa).await.unwrap(), None);
    assert_eq!(store.find_consent(&tom, &spa).await.unwrap(), None);
    assert_eq!(
        store.find_consent(&tina, &app).await.unwrap(),
        Some(read),
        "another client's consent stays"
    );
    assert_eq!(store.revoke_client_consents(&spa).await.unwrap(), 0);
}

/// Concurrent consents to different scopes all end up granted (none overwrites another).
pub async fn concurrent_consents_are_all_kept(store: &impl Backend) {
    let user = user(store, "tina@example.com", Role::Tenant).await;
    let client = ClientId::parse("dbc_spa").unwrap();
    let scopes = [
        "tenant:read",
        "maintenance:request",
        "maintenance:manage",
        "financial:read",
    ];
    for _ in 0..3 {
        store.revoke_consents(&user, None).await.unwrap();
        let mut tasks = Vec::new();
        for s in scopes {
            let (store, user, client) = (store.clone(), user.clone(), client.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .save_consent(&user, &client, s.parse().unwrap(), UnixTime(1))
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let all: ScopeSet = scopes.join(" ").parse().unwrap();
        assert_eq!(store.find_consent(&user, &client).await.unwrap(), Some(all));
    }
}

/// A pending request with an empty scope reads back as stored.
pub async fn a_pending_request_with_an_empty_scope_reads_back(store: &impl Backend) {
    let r = request(ScopeSet::empty());
    store
        .put_pending("req-empty", &r, UnixTime(600), "192.0.2.1", 10)
        .await
        .unwrap();
    assert_eq!(
        store.get_pending("req-empty", UnixTime(1)).await.unwrap(),
        Some(r)
    );
    assert_eq!(
        store.get_pending("req-empty", UnixTime(600)).await.unwrap(),
        None
    );
    store.delete_pending("req-empty").await.unwrap();
    assert_eq!(
        store.get_pending("req-empty", UnixTime(1)).await.unwrap(),
        None
    );
}

/// A flood from one owner only replaces its own oldest pending requests.
pub async fn one_owner_keeps_only_its_newest_pending_requests(store: &impl Backend) {
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

/// A code with an empty scope redeems as stored.
pub async fn a_code_with_an_empty_scope_redeems_as_stored(store: &impl Backend) {
    let g = grant(ScopeSet::empty(), 61);
    store.insert_code(&[7; 32], &g).await.unwrap();
    match store.redeem_code(&[7; 32], UnixTime(2)).await.unwrap() {
        Redemption::Fresh(found) => assert_eq!(found, g),
        other => panic!("expected the stored grant, got {other:?}"),
    }
    assert!(matches!(
        store.redeem_code(&[8; 32], UnixTime(2)).await.unwrap(),
        Redemption::Unknown
    ));
}

/// Peeking at a code never spends it, before or after redemption.
pub async fn peeking_at_a_code_does_not_spend_it(store: &impl Backend) {
    let g = grant("tenant:read".parse().unwrap(), 600);
    assert_eq!(store.peek_code(&[4; 32]).await.unwrap(), None);
    store.insert_code(&[4; 32], &g).await.unwrap();
    assert_eq!(store.peek_code(&[4; 32]).await.unwrap(), Some(g.clone()));
    assert_eq!(store.peek_code(&[4; 32]).await.unwrap(), Some(g.clone()));
    assert!(matches!(
        store.redeem_code(&[4; 32], UnixTime(2)).await.unwrap(),
        Redemption::Fresh(_)
    ));
    assert_eq!(
        store.peek_code(&[4; 32]).await.unwrap(),
        Some(g),
        "redeemed or not"
    );
}

/// Of many concurrent redemptions of one code exactly one is fresh; the rest are replays.
pub async fn a_code_is_redeemed_once_under_concurrent_redemption(store: &impl Backend) {
    for round in 0..5u8 {
        let hash = [round; 32];
        store
            .insert_code(&hash, &grant("tenant:read".parse().unwrap(), 600))
            .await
            .unwrap();
        let outcomes = crate::race(store, 8, move |s| async move {
            s.redeem_code(&hash, UnixTime(2)).await.unwrap()
        })
        .await;
        let fresh = outcomes
            .iter()
            .filter(|o| matches!(o, Redemption::Fresh(_)))
            .count();
        let replayed = outcomes
            .iter()
            .filter(|o| matches!(o, Redemption::Replayed(None)))
            .count();
        assert_eq!((fresh, replayed), (1, 7), "round {round}: {outcomes:?}");
    }
}

/// A replay after the token was recorded names it; recording after a replay says revoke.
pub async fn a_replay_after_issuance_names_the_token_to_revoke(store: &impl Backend) {
    let jti = TokenId::generate().unwrap();
    store
        .insert_code(&[1; 32], &grant("tenant:read".parse().unwrap(), 600))
        .await
        .unwrap();
    assert!(matches!(
        store.redeem_code(&[1; 32], UnixTime(2)).await.unwrap(),
        Redemption::Fresh(_)
    ));
    assert!(!store
        .record_code_token(&[1; 32], &jti, UnixTime(900))
        .await
        .unwrap());
    match store.redeem_code(&[1; 32], UnixTime(3)).await.unwrap() {
        Redemption::Replayed(Some((found, exp))) => {
            assert_eq!((found, exp), (jti, UnixTime(900)));
        }
        other => panic!("{other:?}"),
    }

    // The replay lands between redemption and recording: the recorder must revoke.
    store
        .insert_code(&[2; 32], &grant("tenant:read".parse().unwrap(), 600))
        .await
        .unwrap();
    store.redeem_code(&[2; 32], UnixTime(2)).await.unwrap();
    assert!(matches!(
        store.redeem_code(&[2; 32], UnixTime(2)).await.unwrap(),
        Redemption::Replayed(None)
    ));
    assert!(store
        .record_code_token(&[2; 32], &TokenId::generate().unwrap(), UnixTime(900))
        .await
        .unwrap());
}

/// Concurrent revocations are all read by a cursor poller, each once, none skipped.
pub async fn the_revocation_list_is_read_by_cursor_without_gaps(store: &impl Backend) {
    let (first, cursor) = store.revoked_since(0).await.unwrap();
    assert!(first.is_empty());
    let mut seen = Vec::new();
    let mut cursor = cursor;
    let writers = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut jtis = Vec::new();
            for batch in 0..5 {
                let mut tasks = Vec::new();
                for i in 0..8 {
                    let store = store.clone();
                    let jti = TokenId::generate().unwrap();
                    jtis.push(jti.clone());
                    tasks.push(tokio::spawn(async move {
                        store
                            .revoke_token(&jti, UnixTime(1000 + batch * 10 + i), UnixTime(1))
                            .await
                            .unwrap();
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            }
            jtis
        })
    };
    // Poll while they write, then once more after.
    while !writers.is_finished() {
        let (rows, next) = store.revoked_since(cursor).await.unwrap();
        seen.extend(rows.into_iter().map(|(j, _)| j));
        cursor = next;
        tokio::task::yield_now().await;
    }
    let written = writers.await.unwrap();
    let (rows, next) = store.revoked_since(cursor).await.unwrap();
    seen.extend(rows.into_iter().map(|(j, _)| j));
    let cursor = next;
    let mut a: Vec<_> = seen.iter().map(|j| j.as_str().to_owned()).collect();
    let mut b: Vec<_> = written.iter().map(|j| j.as_str().to_owned()).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "every revocation once");
    // Revoking again is idempotent.
    store
        .revoke_token(&written[0], UnixTime(5000), UnixTime(2))
        .await
        .unwrap();
    assert!(store.revoked_since(cursor).await.unwrap().0.is_empty());
}

/// Expired sessions, pending requests and revocations are pruned; spent codes linger.
pub async fn expired_flow_state_is_pruned(store: &impl Backend) {
    let u = user(store, "tina@example.com", Role::Tenant).await;
    let session = |exp| Session {
        user_id: u.clone(),
        auth_time: UnixTime(1),
        csrf: "c".into(),
        expires_at: UnixTime(exp),
    };
    store.create_session(&[1; 32], &session(50)).await.unwrap();
    store.create_session(&[2; 32], &session(500)).await.unwrap();
    let r = request("openid".parse().unwrap());
    store
        .put_pending("old", &r, UnixTime(50), "o", 10)
        .await
        .unwrap();
    store
        .put_pending("new", &r, UnixTime(500), "o", 10)
        .await
        .unwrap();
    store
        .revoke_token(&TokenId::generate().unwrap(), UnixTime(50), UnixTime(1))
        .await
        .unwrap();
    let keep = TokenId::generate().unwrap();
    store
        .revoke_token(&keep, UnixTime(500), UnixTime(1))
        .await
        .unwrap();
    store
        .insert_code(&[3; 32], &grant(ScopeSet::empty(), 60))
        .await
        .unwrap();

    store.prune_expired(UnixTime(100)).await.unwrap();
    assert!(store
        .find_session(&[1; 32], UnixTime(0))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .find_session(&[2; 32], UnixTime(0))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .get_pending("old", UnixTime(0))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .get_pending("new", UnixTime(0))
        .await
        .unwrap()
        .is_some());
    let (left, _) = store.revoked_since(0).await.unwrap();
    assert_eq!(left.into_iter().map(|(j, _)| j).collect::<Vec<_>>(), [keep]);
    assert!(
        !matches!(
            store.redeem_code(&[3; 32], UnixTime(100)).await.unwrap(),
            Redemption::Unknown
        ),
        "a code is kept a while past expiry so a late replay is recognised"
    );
    store.prune_expired(UnixTime(60 + 601)).await.unwrap();
    assert!(matches!(
        store.redeem_code(&[3; 32], UnixTime(700)).await.unwrap(),
        Redemption::Unknown
    ));
}
