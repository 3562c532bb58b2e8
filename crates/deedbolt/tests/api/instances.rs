//! Two deedbolt instances on one PostgreSQL database (issue 12), driven over HTTP as a load
//! balancer would spread a client's requests: what one instance issues, the other accepts,
//! introspects, refreshes and revokes; single-use redemption holds across instances; and an
//! instance killed with SIGKILL under load loses nothing. `DATABASE_URL` gives the server
//! (a fresh database per test): skipped with a warning without it, failing under CI.

use std::ffi::OsStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deedbolt_core::seal::MasterKey;
use serde_json::Value;

use crate::helpers::{
    eventually_within, postgres_options, spawn_app_with, CodeClient, Creds, Options, ServeProcess,
    TestApp, TEST_METRICS_TOKEN,
};
use crate::refresh::{
    authorize_code, code_tokens, confidential, create_introspector, expect_refresh_refused,
    introspect, pair, post_as, post_as_raw, CB, FULL, PASSWORD, RITA, RT,
};

/// The one issuer every instance behind the load balancer is configured with.
const ISSUER: &str = "https://auth.example.com";

/// The limits the in-process test servers get (see `helpers::try_spawn_app`), given to the
/// subprocess instance too so that both are configured alike.
const HIGH_LIMIT: &str = "1000000/1h";

/// Options for instances sharing a fresh PostgreSQL database, one master key (so every
/// instance can open the signing keys) and one issuer; `None` when the PostgreSQL tests
/// are skipped.
async fn shared_options() -> Option<Options> {
    let mut opts = postgres_options().await?;
    let key = MasterKey::generate_encoded().expect("random master key");
    opts.master_key = Some(key.as_str().to_owned());
    opts.overrides.issuer = Some(ISSUER.into());
    Some(opts)
}

/// Two in-process instances A and B on the same database, with tenant RITA registered.
async fn two_instances(opts: Options) -> (TestApp, TestApp) {
    let a = spawn_app_with(opts.clone()).await;
    let b = spawn_app_with(opts).await;
    a.create_user(RITA, "tenant", PASSWORD);
    (a, b)
}

/// The status of `GET path` with `token` at `base`.
async fn api_status(http: &reqwest::Client, base: &str, path: &str, token: &str) -> u16 {
    http.get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET")
        .status()
        .as_u16()
}

/// Waits (at most `limit`) until `token` is refused with 401 at `path` on every instance
/// in `bases`.
async fn refused_everywhere(http: &reqwest::Client, bases: &[&str], path: &str, token: &str) {
    eventually_within(
        &format!("{path} refuses the token at {bases:?}"),
        Duration::from_secs(3),
        || async {
            for base in bases {
                if api_status(http, base, path, token).await != 401 {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

/// Sends the same token request (`pairs`, as `client`) to A and to B at once, from two
/// tasks released together; returns (status, body) from A then from B.
async fn race_at_both(
    a: &TestApp,
    b: &TestApp,
    client: &CodeClient,
    pairs: &[(&str, &str)],
) -> Vec<(u16, Value)> {
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let tasks: Vec<_> = [a, b]
        .into_iter()
        .map(|app| {
            let (http, base) = (app.http.clone(), app.base.clone());
            let (client, pairs, barrier) = (client.clone(), pairs.clone(), barrier.clone());
            tokio::spawn(async move {
                let borrowed: Vec<(&str, &str)> = pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                barrier.wait().await;
                let res = post_as_raw(&http, &base, "/token", Some(&client), &borrowed).await;
                let status = res.status().as_u16();
                (status, res.json::<Value>().await.unwrap_or(Value::Null))
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("racing task"));
    }
    out
}

/// Asserts that every answer of a race is 200 or `invalid_grant` and at most one is 200;
/// returns the (access, refresh) pair of the 200, if any.
fn at_most_one_pair(round: usize, results: &[(u16, Value)]) -> Vec<(String, String)> {
    for (status, body) in results {
        assert!(
            *status == 200 || (*status == 400 && body["error"] == "invalid_grant"),
            "round {round}: 200 or invalid_grant, got {status} {body}"
        );
    }
    let issued: Vec<(String, String)> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, body)| pair(body))
        .collect();
    assert!(
        issued.len() <= 1,
        "round {round}: at most one token response: {results:?}"
    );
    issued
}

#[tokio::test]
async fn a_token_issued_by_one_instance_is_introspected_and_accepted_by_the_other() {
    let Some(opts) = shared_options().await else {
        return;
    };
    let (a, b) = two_instances(opts).await;
    let machine = a.create_client("property:read");
    let introspector = create_introspector(&a);

    let token = a.access_token(&machine, None).await;
    let info = introspect(&b, &introspector, &token).await;
    assert_eq!(info["active"], true, "B introspects A's token: {info}");
    assert_eq!(info["client_id"], machine.id.as_str(), "{info}");
    assert_eq!(b.get("/api/properties", Some(&token)).await.status(), 200);

    // A user's token from the code flow at A works at B too.
    let spa = a.create_code_client(FULL, &[CB], true, RT);
    let (access, _) = pair(&code_tokens(&a, &spa, FULL, RITA).await);
    let info = introspect(&b, &introspector, &access).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(b.get("/userinfo", Some(&access)).await.status(), 200);
    a.stop().await;
    b.stop().await;
}

/// The other instance learns of a revocation from the database on its next sync (every
/// `--key-refresh-interval`, default 1 s). Measured from the revocation's answer, with an
/// allowance of 250 ms for the sync's queries and the polling requests on a shared machine.
#[tokio::test]
async fn a_token_revoked_at_one_instance_is_refused_by_the_other_within_a_second() {
    let Some(mut opts) = shared_options().await else {
        return;
    };
    opts.overrides.key_refresh_interval = Some("1s".into()); // the default, not the tests' 100 ms
    let (a, b) = two_instances(opts).await;
    let creds = a.create_client("property:read");
    for round in 0..3 {
        let token = a.access_token(&creds, None).await;
        assert_eq!(b.get("/api/properties", Some(&token)).await.status(), 200);
        let res = post_as(
            &a,
            "/revoke",
            Some(&confidential(&creds)),
            &[("token", &token)],
        )
        .await;
        assert_eq!(res.status(), 200, "revocation at A");
        // Polled from the revocation's answer: the deadline is the bound being tested.
        eventually_within(
            &format!("round {round}: B refuses the token revoked at A"),
            Duration::from_millis(1250),
            || async { b.get("/api/properties", Some(&token)).await.status() == 401 },
        )
        .await;
    }
    a.stop().await;
    b.stop().await;
}

/// docs/security.md, "Refresh tokens": of two concurrent refreshes exactly one rotates;
/// the other is reuse and revokes the family (without a grace period, and across
/// instances always: the grace answers are per instance). So at most one client sees a new
/// pair: when the loser's revocation lands before the winner has recorded its access
/// token, the winner's answer is `invalid_grant` too (seen on PostgreSQL in some rounds),
/// and whatever it signed is revoked with the family.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_refresh_token_raced_at_two_instances_gives_at_most_one_pair_and_revokes_the_family() {
    let Some(opts) = shared_options().await else {
        return;
    };
    let (a, b) = two_instances(opts).await;
    let spa = a.create_code_client(FULL, &[CB], true, RT);
    for round in 0..3 {
        let (a0, r0) = pair(&code_tokens(&a, &spa, FULL, RITA).await);
        let results = race_at_both(
            &a,
            &b,
            &spa,
            &[("grant_type", "refresh_token"), ("refresh_token", &r0)],
        )
        .await;
        let issued = at_most_one_pair(round, &results);
        // The whole family is revoked, wherever it is presented.
        for app in [&a, &b] {
            expect_refresh_refused(app, &spa, &r0, "the raced refresh token").await;
            for (_, r1) in &issued {
                expect_refresh_refused(app, &spa, r1, "the winner's refresh token").await;
            }
        }
        for access in std::iter::once(&a0).chain(issued.iter().map(|(a1, _)| a1)) {
            refused_everywhere(&a.http, &[&a.base, &b.base], "/userinfo", access).await;
        }
    }
    a.stop().await;
    b.stop().await;
}

/// docs/security.md, "Authorization codes": redemption is one conditional `UPDATE`, and a
/// second redemption by the code's own client is a replay that revokes what the first
/// issued — also when the two race at different instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_code_redeemed_at_two_instances_at_once_leaves_at_most_one_live_token() {
    let Some(opts) = shared_options().await else {
        return;
    };
    let (a, b) = two_instances(opts).await;
    let spa = a.create_code_client(FULL, &[CB], true, RT);
    for round in 0..3 {
        let (code, verifier) = authorize_code(&a, &spa.id, FULL, RITA, PASSWORD).await;
        let results = race_at_both(
            &a,
            &b,
            &spa,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CB),
                ("code_verifier", &verifier),
            ],
        )
        .await;
        let issued = at_most_one_pair(round, &results);
        // Whatever was issued, the replay at the other instance revokes it everywhere.
        for (access, refresh) in &issued {
            refused_everywhere(&a.http, &[&a.base, &b.base], "/userinfo", access).await;
            for app in [&a, &b] {
                expect_refresh_refused(app, &spa, refresh, "the refresh token of a replayed code")
                    .await;
            }
        }
    }
    a.stop().await;
    b.stop().await;
}

/// `deedbolt serve` as a subprocess on `opts`' database, master key and issuer, with
/// `data_dir` as its own data directory; returns it ready, with its base URL.
fn serve_process(opts: &Options, data_dir: &std::path::Path) -> (ServeProcess, String) {
    let url = opts.database_url.as_deref().expect("a PostgreSQL database");
    let key = opts.master_key.as_deref().expect("a master key");
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("serve"),
        OsStr::new("--data-dir"),
        data_dir.as_os_str(),
        OsStr::new("--listen"),
        OsStr::new("127.0.0.1:0"),
        OsStr::new("--issuer"),
        OsStr::new(ISSUER),
    ];
    for flag in [
        "--rate-limit-token",
        "--rate-limit-refresh",
        "--rate-limit-api",
        "--rate-limit-authorize",
    ] {
        args.extend([OsStr::new(flag), OsStr::new(HIGH_LIMIT)]);
    }
    let mut server = ServeProcess::start(
        &args,
        &[
            ("DEEDBOLT_DATABASE_URL", url),
            ("DEEDBOLT_MASTER_KEY", key),
            ("DEEDBOLT_METRICS_TOKEN", TEST_METRICS_TOKEN),
        ],
    );
    let base = server.wait_ready();
    (server, base)
}

/// `grant_type=refresh_token` for `client` at `base`: the status and the body.
async fn refresh_at(
    http: &reqwest::Client,
    base: &str,
    client: &CodeClient,
    token: &str,
) -> (u16, Value) {
    let res = post_as_raw(
        http,
        base,
        "/token",
        Some(client),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
    .await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A client-credentials token for `creds` at `base`, then `GET /api/properties` with it:
/// whether both answered 200 (`false` for any error, including a refused connection).
async fn token_and_api_call(http: &reqwest::Client, base: &str, creds: &Creds) -> bool {
    let Ok(res) = http
        .post(format!("{base}/token"))
        .basic_auth(&creds.id, Some(&creds.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
    else {
        return false;
    };
    if res.status() != 200 {
        return false;
    }
    let Ok(body) = res.json::<Value>().await else {
        return false;
    };
    let Some(token) = body["access_token"].as_str() else {
        return false;
    };
    matches!(
        http.get(format!("{base}/api/properties"))
            .bearer_auth(token)
            .send()
            .await,
        Ok(r) if r.status() == 200
    )
}

/// Token + API rounds against `base` until `stop` is set or `max` rounds are done; counts
/// successes in `ok` and returns the failures.
async fn load_loop(
    http: reqwest::Client,
    base: String,
    creds: Creds,
    stop: Arc<std::sync::atomic::AtomicBool>,
    ok: Arc<AtomicUsize>,
    max: usize,
) -> usize {
    let mut failed = 0;
    for _ in 0..max {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if token_and_api_call(&http, &base, &creds).await {
            ok.fetch_add(1, Ordering::Relaxed);
        } else {
            failed += 1;
        }
    }
    failed
}

/// A (the real binary) is killed with SIGKILL while both instances are under load. B
/// answers every request throughout; the refresh families rotated at A before the kill are
/// intact in the database (the token A handed out works at B; the one it replaced stays
/// spent, and presenting it is reuse); and A restarted on the same database comes up
/// cleanly and serves, that family included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_one_instance_under_load_leaves_the_other_serving_and_every_family_intact() {
    let Some(opts) = shared_options().await else {
        return;
    };
    let b = spawn_app_with(opts.clone()).await;
    b.create_user(RITA, "tenant", PASSWORD);
    let machine = b.create_client("property:read");
    let spa = b.create_code_client(FULL, &[CB], true, RT);
    let a_dir = tempfile::tempdir().expect("tempdir");
    let (mut a, a_base) = serve_process(&opts, a_dir.path());
    let http = b.http.clone();

    // Two families, each rotated once at A just before the kill.
    let (_, kept0) = pair(&code_tokens(&b, &spa, FULL, RITA).await);
    let (_, spent0) = pair(&code_tokens(&b, &spa, FULL, RITA).await);
    let (status, body) = refresh_at(&http, &a_base, &spa, &kept0).await;
    assert_eq!(status, 200, "rotation at A: {body}");
    let (_, kept1) = pair(&body);
    let (status, body) = refresh_at(&http, &a_base, &spa, &spent0).await;
    assert_eq!(status, 200, "rotation at A: {body}");
    let (_, spent1) = pair(&body);

    // Load on both instances: bounded in rounds, stopped about 2 s in.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok_a, ok_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = [(&a_base, &ok_a), (&b.base, &ok_b)]
        .into_iter()
        .flat_map(|(base, ok)| {
            (0..2).map(|_| {
                tokio::spawn(load_loop(
                    http.clone(),
                    String::clone(base),
                    machine.clone(),
                    stop.clone(),
                    ok.clone(),
                    400,
                ))
            })
        })
        .collect();
    let started = Instant::now();
    eventually_within(
        "both instances served some of the load",
        Duration::from_secs(10),
        || async { ok_a.load(Ordering::Relaxed) >= 20 && ok_b.load(Ordering::Relaxed) >= 20 },
    )
    .await;
    a.kill_hard();
    assert!(
        a.wait_exit(Duration::from_secs(5)).is_some(),
        "A is gone after SIGKILL"
    );
    let served_by_b_at_kill = ok_b.load(Ordering::Relaxed);
    eventually_within(
        "B keeps serving after A was killed",
        Duration::from_secs(10),
        || async {
            ok_b.load(Ordering::Relaxed) >= served_by_b_at_kill + 20
                && started.elapsed() >= Duration::from_secs(2)
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for t in load {
        failures.push(t.await.expect("load task"));
    }
    // The first two tasks were A's (failures there are expected after the kill).
    assert_eq!(
        &failures[2..],
        &[0, 0],
        "every request to B succeeded ({} served)",
        ok_b.load(Ordering::Relaxed)
    );

    // Nothing lost: the token A rotated to works at B, once.
    let (status, body) = refresh_at(&http, &b.base, &spa, &kept1).await;
    assert_eq!(status, 200, "the family rotated at A lives on at B: {body}");
    let (_, kept2) = pair(&body);
    // Nothing redeemed twice: the token A replaced stays spent.
    expect_refresh_refused(&b, &spa, &spent0, "the token A rotated away").await;
    expect_refresh_refused(&b, &spa, &spent1, "its family, revoked for the reuse").await;

    // A restarts on the same database and serves, the family included.
    let (a, a_base) = serve_process(&opts, a_dir.path());
    assert_eq!(
        http.get(format!("{a_base}/readyz"))
            .send()
            .await
            .expect("GET /readyz")
            .status(),
        200
    );
    assert!(token_and_api_call(&http, &a_base, &machine).await);
    let (status, body) = refresh_at(&http, &a_base, &spa, &kept2).await;
    assert_eq!(status, 200, "the restarted A rotates the family: {body}");
    let errors: Vec<String> = a
        .logs()
        .into_iter()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(errors.is_empty(), "A restarted cleanly: {errors:?}");
    drop(a);
    b.stop().await;
}
