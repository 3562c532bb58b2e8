//! The shared-state ports, one suite run against the in-process implementations (the
//! default) and against Redis (`REDIS_URL`, each test under its own random key prefix).
//!
//! Without `REDIS_URL` the Redis half is skipped with a warning, except under CI
//! (`CI` set), where it fails.

use std::sync::Arc;

use deedbolt_core::clock::UnixTime;
use deedbolt_core::clock::{Clock, SystemClock};
use deedbolt_core::grace::{GraceStore, MemoryGrace};
use deedbolt_core::ids::TokenId;
use deedbolt_core::ports::{CutoffKind, Health, ReplayCache};
use deedbolt_core::ratelimit::{MemoryRateLimits, Outcome, RateLimit, RateLimitStore};
use deedbolt_core::replay::MemoryReplayCache;
use deedbolt_core::revocation::{Cutoff, RevocationFeed, RevocationList, Revoked, StoreSyncOnly};
use deedbolt_core::throttle::{LoginThrottle, LoginThrottleStore};
use deedbolt_store_redis::RedisStore;

/// The Redis URL for tests, or `None` (after a warning) when it is not set outside CI.
fn redis_url() -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("REDIS_URL is not set, and CI is: the Redis tests must run under CI")
        }
        _ => {
            eprintln!("SKIPPED: REDIS_URL not set");
            None
        }
    }
}

/// A store under a fresh random prefix, so tests never see each other's keys.
async fn redis_store() -> Option<RedisStore> {
    let url = redis_url()?;
    let prefix = format!(
        "deedbolt-test-{}:",
        deedbolt_core::rand::token::<12>().expect("randomness")
    );
    Some(
        RedisStore::connect(&url, prefix)
            .await
            .expect("REDIS_URL should answer"),
    )
}

/// Every backend of a port: the in-process one, and Redis when configured.
async fn rate_limit_backends() -> Vec<(&'static str, Arc<dyn RateLimitStore>)> {
    let mut out: Vec<(&'static str, Arc<dyn RateLimitStore>)> =
        vec![("memory", Arc::new(MemoryRateLimits::new()))];
    if let Some(r) = redis_store().await {
        out.push(("redis", Arc::new(r)));
    }
    out
}

const T0: i64 = 1_800_000_000_000;

fn allowed(o: Outcome) -> bool {
    matches!(o, Outcome::Allowed { .. })
}

#[tokio::test]
async fn a_burst_up_to_the_count_is_allowed_then_one_slot_returns_per_interval() {
    let limit = RateLimit::parse("5/5m").unwrap().unwrap();
    for (name, store) in rate_limit_backends().await {
        for i in 0..5u32 {
            assert_eq!(
                store.acquire("k", limit, T0).await.unwrap(),
                Outcome::Allowed {
                    remaining: 4 - i,
                    reset_secs: 60 * (i + 1)
                },
                "{name}"
            );
        }
        assert_eq!(
            store.acquire("k", limit, T0).await.unwrap(),
            Outcome::Limited {
                retry_after_secs: 60
            },
            "{name}"
        );
        // Sliding, not a fixed window: one slot is back after 60 s.
        assert_eq!(
            store.acquire("k", limit, T0 + 60_000).await.unwrap(),
            Outcome::Allowed {
                remaining: 0,
                reset_secs: 300
            },
            "{name}"
        );
        assert!(
            !allowed(store.acquire("k", limit, T0 + 60_000).await.unwrap()),
            "{name}"
        );
        // Other keys are independent.
        assert!(
            matches!(
                store.acquire("other", limit, T0).await.unwrap(),
                Outcome::Allowed { remaining: 4, .. }
            ),
            "{name}"
        );
    }
}

#[tokio::test]
async fn limited_requests_do_not_extend_the_wait() {
    let limit = RateLimit {
        count: 1,
        window_secs: 10,
    };
    for (name, store) in rate_limit_backends().await {
        assert!(allowed(store.acquire("k", limit, T0).await.unwrap()));
        for t in [1_000, 2_000, 9_000] {
            assert_eq!(
                store.acquire("k", limit, T0 + t).await.unwrap(),
                Outcome::Limited {
                    retry_after_secs: u32::try_from((10_000 - t) / 1000).unwrap()
                },
                "{name} at +{t} ms"
            );
        }
        assert!(
            allowed(store.acquire("k", limit, T0 + 10_000).await.unwrap()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn n_concurrent_requests_against_a_limit_of_k_allow_exactly_k() {
    const N: usize = 64;
    let limit = RateLimit {
        count: 10,
        window_secs: 3600,
    };
    for (name, store) in rate_limit_backends().await {
        let tasks: Vec<_> = (0..N)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.acquire("race", limit, T0).await })
            })
            .collect();
        let mut allowed_count = 0;
        for t in tasks {
            if allowed(t.await.unwrap().unwrap()) {
                allowed_count += 1;
            }
        }
        assert_eq!(allowed_count, 10, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_connections_share_one_quota_and_prefixes_do_not() {
    let Some(a) = redis_store().await else { return };
    let url = redis_url().unwrap();
    let b = RedisStore::connect(&url, a.prefix().to_owned())
        .await
        .unwrap();
    let other = redis_store().await.unwrap();
    let limit = RateLimit {
        count: 3,
        window_secs: 60,
    };
    // Two instances (two connections, one prefix): one quota between them.
    let mut n = 0;
    for i in 0..6 {
        let store = if i % 2 == 0 { &a } else { &b };
        if allowed(store.acquire("shared", limit, T0).await.unwrap()) {
            n += 1;
        }
    }
    assert_eq!(n, 3);
    // Another prefix (another deployment): its own quota.
    assert!(allowed(other.acquire("shared", limit, T0).await.unwrap()));
}

#[tokio::test]
async fn a_single_use_value_is_accepted_once_by_any_number_of_concurrent_instances() {
    let mut backends: Vec<(&str, Vec<Arc<dyn ReplayCache>>)> = vec![(
        "memory",
        vec![Arc::new(MemoryReplayCache::new(Arc::new(SystemClock)))],
    )];
    if let Some(a) = redis_store().await {
        // A second connection under the same prefix: another instance.
        let url = redis_url().expect("set");
        let b = RedisStore::connect(&url, a.prefix().to_owned())
            .await
            .unwrap();
        backends.push(("redis", vec![Arc::new(a), Arc::new(b)]));
    }
    let until = SystemClock.now().plus_secs(60);
    for (name, instances) in backends {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let cache = instances[i % instances.len()].clone();
            tasks.push(tokio::spawn(async move {
                cache.first_use("dpop:jkt:jti-1", until).await.unwrap()
            }));
        }
        let mut firsts = 0;
        for t in tasks {
            firsts += usize::from(t.await.unwrap());
        }
        assert_eq!(firsts, 1, "{name}: exactly one first use");
        assert!(
            instances[0]
                .first_use("assertion:jkt:jti-1", until)
                .await
                .unwrap(),
            "{name}: namespaces do not collide"
        );
        let past = SystemClock.now().plus_secs(-1);
        assert!(instances[0].first_use("dpop:old", past).await.unwrap());
        assert!(
            instances[0].first_use("dpop:old", until).await.unwrap(),
            "{name}: an expired use is forgotten"
        );
    }
}

#[tokio::test]
async fn redis_answers_the_health_check() {
    let Some(r) = redis_store().await else { return };
    r.ping().await.unwrap();
}

/// Polls `cond` every 10 ms until it holds, failing after `within`.
async fn within(what: &str, within: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn revoked_now() -> Revoked {
    Revoked {
        jti: TokenId::generate().unwrap(),
        expires_at: UnixTime(2_000_000_000),
    }
}

#[tokio::test]
async fn the_store_sync_only_feed_accepts_every_announcement() {
    StoreSyncOnly.publish(&revoked_now()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_published_by_one_instance_reaches_another_within_a_second() {
    let Some(a) = redis_store().await else { return };
    let b = RedisStore::connect(&redis_url().unwrap(), a.prefix().to_owned())
        .await
        .unwrap();
    // Announced before B subscribes: B loads it when it subscribes.
    let early = revoked_now();
    a.publish(&early).await.unwrap();
    let list = Arc::new(RevocationList::new());
    let task = tokio::spawn(b.revocation_feed(list.clone()).await.unwrap());
    assert!(list.is_current());
    assert!(list.is_revoked(&early.jti));
    // Announced after: pushed to B.
    let late = revoked_now();
    a.publish(&late).await.unwrap();
    within(
        "the announcement arrives",
        std::time::Duration::from_secs(1),
        || list.is_revoked(&late.jti),
    )
    .await;
    // Another deployment (prefix) hears nothing of it.
    let other = redis_store().await.unwrap();
    let other_list = Arc::new(RevocationList::new());
    let other_task = tokio::spawn(other.revocation_feed(other_list.clone()).await.unwrap());
    assert!(!other_list.is_revoked(&late.jti));
    task.abort();
    other_task.abort();
}

/// Every backend of the login throttle with these limits.
async fn throttle_backends(
    window_secs: i64,
    per_account_ip: usize,
    per_ip: usize,
    per_account: usize,
) -> Vec<(&'static str, Arc<dyn LoginThrottleStore>)> {
    let memory = LoginThrottle::new(window_secs, per_account_ip, per_ip, per_account);
    let limits = memory.limits();
    let mut out: Vec<(&'static str, Arc<dyn LoginThrottleStore>)> =
        vec![("memory", Arc::new(memory))];
    if let Some(r) = redis_store().await {
        out.push(("redis", Arc::new(r.login_throttle(limits))));
    }
    out
}

const S0: i64 = 1_800_000_000;

#[tokio::test]
async fn the_fifth_failure_locks_the_account_from_that_ip_until_the_window_slides() {
    for (name, t) in throttle_backends(900, 5, 20, 50).await {
        for i in 0..5 {
            assert_eq!(
                t.attempt("a@x.io", "1.1.1.1", UnixTime(S0 + i))
                    .await
                    .unwrap(),
                Ok(()),
                "{name}"
            );
        }
        assert_eq!(
            t.attempt("a@x.io", "1.1.1.1", UnixTime(S0 + 10))
                .await
                .unwrap(),
            Err(890),
            "{name}"
        );
        // Not from another IP, and not another account from the same IP.
        assert_eq!(
            t.attempt("a@x.io", "2.2.2.2", UnixTime(S0 + 10))
                .await
                .unwrap(),
            Ok(()),
            "{name}"
        );
        assert_eq!(
            t.attempt("b@x.io", "1.1.1.1", UnixTime(S0 + 10))
                .await
                .unwrap(),
            Ok(()),
            "{name}"
        );
        // The first failure slid out of the window.
        assert_eq!(
            t.attempt("a@x.io", "1.1.1.1", UnixTime(S0 + 900))
                .await
                .unwrap(),
            Ok(()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_success_is_uncounted_but_a_victims_success_keeps_the_attackers_counts() {
    for (name, t) in throttle_backends(900, 2, 20, 20).await {
        let at = UnixTime(S0);
        assert_eq!(t.attempt("a", "1.1.1.1", at).await.unwrap(), Ok(()));
        assert_eq!(t.attempt("a", "1.1.1.1", at).await.unwrap(), Ok(()));
        // Two attempts in flight: a third is refused before any password is checked.
        assert!(
            t.attempt("a", "1.1.1.1", at).await.unwrap().is_err(),
            "{name}"
        );
        t.succeeded("a", "1.1.1.1", at).await.unwrap();
        assert_eq!(
            t.attempt("a", "1.1.1.1", UnixTime(S0 + 1)).await.unwrap(),
            Ok(()),
            "{name}"
        );
        // The attacker at 6.6.6.6 stays locked after the victim signs in elsewhere.
        for _ in 0..2 {
            assert_eq!(t.attempt("v", "6.6.6.6", at).await.unwrap(), Ok(()));
        }
        assert_eq!(t.attempt("v", "1.2.3.4", at).await.unwrap(), Ok(()));
        t.succeeded("v", "1.2.3.4", at).await.unwrap();
        assert!(
            t.attempt("v", "6.6.6.6", UnixTime(S0 + 3))
                .await
                .unwrap()
                .is_err(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_global_account_ceiling_stops_guesses_spread_over_many_ips() {
    for (name, t) in throttle_backends(900, 2, 8, 20).await {
        for i in 0..10 {
            let ip = format!("10.0.0.{i}");
            for _ in 0..2 {
                assert_eq!(
                    t.attempt("victim", &ip, UnixTime(S0 + i)).await.unwrap(),
                    Ok(()),
                    "{name}"
                );
            }
        }
        assert_eq!(
            t.attempt("victim", "192.0.2.1", UnixTime(S0 + 10))
                .await
                .unwrap(),
            Err(890),
            "{name}"
        );
        assert_eq!(
            t.attempt("someone-else", "192.0.2.1", UnixTime(S0 + 10))
                .await
                .unwrap(),
            Ok(()),
            "{name}"
        );
    }
}

#[tokio::test]
async fn n_concurrent_login_attempts_against_a_limit_of_k_pass_exactly_k() {
    for (name, t) in throttle_backends(900, 5, 1000, 1000).await {
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move { t.attempt("a", "9.9.9.9", UnixTime(S0)).await })
            })
            .collect();
        let mut passed = 0;
        for task in tasks {
            if task.await.unwrap().unwrap().is_ok() {
                passed += 1;
            }
        }
        assert_eq!(passed, 5, "{name}");
    }
}

/// Every backend of the grace store.
async fn grace_backends() -> Vec<(&'static str, Arc<dyn GraceStore>)> {
    let mut out: Vec<(&'static str, Arc<dyn GraceStore>)> =
        vec![("memory", Arc::new(MemoryGrace::default()))];
    if let Some(r) = redis_store().await {
        out.push(("redis", Arc::new(r)));
    }
    out
}

#[tokio::test]
async fn a_grace_entry_is_found_until_it_expires_and_keys_are_independent() {
    for (name, g) in grace_backends().await {
        // Real time: Redis expires entries by its own clock.
        let now = UnixTime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64,
        );
        let key = [7u8; 32];
        g.put(&key, b"sealed pair".to_vec(), now, now.plus_secs(1))
            .await
            .unwrap();
        assert_eq!(
            g.get(&key, now).await.unwrap().as_deref(),
            Some(&b"sealed pair"[..]),
            "{name}"
        );
        assert_eq!(g.get(&[8u8; 32], now).await.unwrap(), None, "{name}");
        // Gone once the grace period is over (polled: Redis expires by its own clock).
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
        while g.get(&key, now.plus_secs(2)).await.unwrap().is_some() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: still there 3 s after a 1 s grace period"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cutoff_published_by_the_cli_reaches_every_instance_and_is_only_ever_raised() {
    let Some(cli) = redis_store().await else {
        return;
    };
    let server = RedisStore::connect(&redis_url().unwrap(), cli.prefix().to_owned())
        .await
        .unwrap();
    let cutoff = |kind, subject: &str, at| Cutoff {
        kind,
        subject: subject.to_owned(),
        at: UnixTime(at),
    };
    // Announced before the server subscribes: loaded when it subscribes.
    cli.publish_cutoff(&cutoff(CutoffKind::Client, "svc-early", 1_800_000_000))
        .await
        .unwrap();
    let list = Arc::new(RevocationList::new());
    let task = tokio::spawn(server.revocation_feed(list.clone()).await.unwrap());
    assert_eq!(
        list.cutoff(CutoffKind::Client, "svc-early"),
        Some(UnixTime(1_800_000_000))
    );
    // Announced after: pushed, for users too.
    cli.publish_cutoff(&cutoff(CutoffKind::Subject, "usr-1", 1_800_000_100))
        .await
        .unwrap();
    within(
        "the cutoff arrives",
        std::time::Duration::from_secs(1),
        || list.cutoff(CutoffKind::Subject, "usr-1") == Some(UnixTime(1_800_000_100)),
    )
    .await;
    assert_eq!(
        list.cutoff(CutoffKind::Client, "usr-1"),
        None,
        "kinds apart"
    );
    // An older cutoff announced late lowers nothing, here or for a later subscriber.
    cli.publish_cutoff(&cutoff(CutoffKind::Subject, "usr-1", 1_700_000_000))
        .await
        .unwrap();
    let later = Arc::new(RevocationList::new());
    let later_task = tokio::spawn(server.revocation_feed(later.clone()).await.unwrap());
    assert_eq!(
        later.cutoff(CutoffKind::Subject, "usr-1"),
        Some(UnixTime(1_800_000_100))
    );
    assert_eq!(
        list.cutoff(CutoffKind::Subject, "usr-1"),
        Some(UnixTime(1_800_000_100))
    );
    task.abort();
    later_task.abort();
}
