//! Shared fast state on Redis (issue 12): several instances share one quota, and a Redis
//! outage fails closed (503 and a failing /readyz) and ends by itself.
//!
//! Tests that share the `REDIS_URL` server use their own random key prefix; the outage
//! test starts (and stops) its own `redis-server` from PATH. Without either, the tests
//! are skipped with a warning, except under CI, where they fail.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use deedbolt::config::{GlobalOverrides, ServeOverrides};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{redis_url, skip_or_fail, spawn_app_with, Options, TestApp};

/// A fresh key prefix, so tests sharing one Redis never see each other's keys.
fn random_prefix() -> String {
    format!("deedbolt-test-{}:", crate::helpers::random_b64url(9))
}

fn redis_overrides(url: &str, prefix: &str) -> GlobalOverrides {
    GlobalOverrides {
        redis_url: Some(url.to_owned()),
        redis_prefix: Some(prefix.to_owned()),
        ..Default::default()
    }
}

/// Whether something answers `PING` with `+PONG` on `127.0.0.1:port`.
async fn pong(port: u16) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if s.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut buf)).await,
        Ok(Ok(_)) if &buf == b"+PONG\r\n"
    )
}

/// A `redis-server` child process of this test, on its own port and data dir.
struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port, or `None` (after a warning; a failure under CI) when
    /// `redis-server` is not on PATH.
    async fn start() -> Option<RedisServer> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            skip_or_fail("redis-server not on PATH");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut server = RedisServer {
            port,
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        server.restart().await;
        Some(server)
    }

    /// Starts the server (again) on the same port and waits until it answers.
    async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !pong(self.port).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not answer within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server (as a crash would) and waits until it is gone.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn a_redis_outage_answers_503_and_fails_readyz_then_recovers_by_itself() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let app = spawn_app_with(Options {
        overrides: ServeOverrides {
            rate_limit_token: Some("1000/1h".into()),
            // No API limit: the API's 503 must come from the revocation check itself.
            rate_limit_api: Some("off".into()),
            ..Default::default()
        },
        global: redis_overrides(&redis.url(), &random_prefix()),
        ..Default::default()
    })
    .await;
    let creds = app.create_client("property:read");
    let token = app.access_token(&creds, None).await;
    assert_eq!(app.get("/readyz", None).await.status(), 200);
    assert_eq!(app.get("/api/properties", Some(&token)).await.status(), 200);

    redis.stop();
    // Fail closed: no token and no API answer without the shared limits, and not ready.
    let res = app
        .post_token(Some(&creds), "grant_type=client_credentials")
        .await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");
    // The API learns of the outage when its revocation feed drops or misses a ping
    // (within about a second); until Redis is back it cannot know what was revoked.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let res = app.get("/api/properties", Some(&token)).await;
        if res.status() == 503 {
            assert_eq!(res.headers()["retry-after"], "1");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"], "temporarily_unavailable");
            break;
        }
        assert_eq!(res.status(), 200);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the API still answers 200 5 s into a Redis outage"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), 503);

    // Redis returns on the same port: the instance recovers without a restart.
    redis.restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let token_ok = app
            .post_token(Some(&creds), "grant_type=client_credentials")
            .await
            .status()
            == 200;
        let api_ok = app.get("/api/properties", Some(&token)).await.status() == 200;
        let ready_ok = app.get("/readyz", None).await.status() == 200;
        if token_ok && api_ok && ready_ok {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not recovered 10 s after Redis returned (token {token_ok}, api {api_ok}, readyz {ready_ok})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Instance A on a fresh data directory and the shared Redis, behind one issuer name (as
/// behind a load balancer), and the options that start instance B beside it.
///
/// Do every CLI call (users, clients) before starting B: both instances run in this one
/// process, and B's start-up opens the database file through a second descriptor (to
/// restrict its permissions), which drops the POSIX locks SQLite holds on it here; a CLI
/// process would then think itself the last user of the database and remove the WAL under
/// A and B. Real instances are separate processes and keep their own locks.
async fn instance_a(overrides: ServeOverrides) -> Option<(TestApp, Options)> {
    let url = redis_url()?;
    let data_dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let opts = Options {
        data_dir: Some(data_dir),
        overrides: ServeOverrides {
            issuer: Some("http://127.0.0.1".into()),
            ..overrides
        },
        global: redis_overrides(&url, &random_prefix()),
        ..Default::default()
    };
    let a = spawn_app_with(opts.clone()).await;
    Some((a, opts))
}

/// Instances A and B sharing Redis and the database, with a client-credentials client
/// registered (before B starts, see [`instance_a`]).
async fn two_instances_with_client(
    overrides: ServeOverrides,
) -> Option<(TestApp, TestApp, crate::helpers::Creds)> {
    let (a, b_opts) = instance_a(overrides).await?;
    let creds = a.create_client("property:read");
    let b = spawn_app_with(b_opts).await;
    Some((a, b, creds))
}

#[tokio::test]
async fn the_token_quota_is_the_same_with_one_or_two_instances() {
    let Some((a, b, creds)) = two_instances_with_client(ServeOverrides {
        rate_limit_token: Some("6/1h".into()),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let mut granted = 0;
    for i in 0..12 {
        let app = if i % 2 == 0 { &a } else { &b };
        let res = app
            .post_token(Some(&creds), "grant_type=client_credentials")
            .await;
        match res.status().as_u16() {
            200 => granted += 1,
            429 => {}
            other => panic!("request {i}: unexpected {other}"),
        }
    }
    assert_eq!(granted, 6, "two instances must share one quota of 6");
}

#[tokio::test]
async fn a_token_revoked_at_one_instance_is_refused_by_the_other_within_a_second() {
    let Some((a, b, creds)) = two_instances_with_client(ServeOverrides {
        // The store sync is slowed to an hour: only the Redis feed can tell B in time.
        key_refresh_interval: Some("1h".into()),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let token = a.access_token(&creds, None).await;
    // Issued at A, accepted at B (and remembered in B's verified-token cache).
    assert_eq!(b.get("/api/properties", Some(&token)).await.status(), 200);

    let res = a
        .http
        .post(format!("{}/revoke", a.base))
        .basic_auth(&creds.id, Some(&creds.secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let revoked_at = tokio::time::Instant::now();
    loop {
        let status = b.get("/api/properties", Some(&token)).await.status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "B still accepts the token 1 s after A revoked it"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A, of course, refuses it at once.
    assert_eq!(a.get("/api/properties", Some(&token)).await.status(), 401);
}

#[tokio::test]
async fn a_refresh_retried_at_the_other_instance_within_the_grace_period_gets_the_same_pair() {
    use crate::refresh::{code_tokens, pair, refresh_ok, FULL, PASSWORD, RITA, RT};
    let Some((a, b_opts)) = instance_a(ServeOverrides {
        refresh_grace: Some("5s".into()),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    a.create_user(RITA, "tenant", PASSWORD);
    let client = a.create_code_client(FULL, &[crate::refresh::CB], true, RT);
    let b = spawn_app_with(b_opts).await;
    let (_, r0) = pair(&code_tokens(&a, &client, FULL, RITA).await);
    let (a1, r1) = pair(&refresh_ok(&a, &client, &r0, None).await);
    // A's answer was lost; the retry lands on B: the very same pair, not reuse.
    let again = refresh_ok(&b, &client, &r0, None).await;
    assert_eq!(pair(&again), (a1.clone(), r1.clone()));
    // Nothing was revoked: the new pair works at both instances.
    assert_eq!(b.get("/userinfo", Some(&a1)).await.status(), 200);
    let (a2, _) = pair(&refresh_ok(&b, &client, &r1, None).await);
    assert_eq!(a.get("/userinfo", Some(&a2)).await.status(), 200);
}

#[tokio::test]
async fn a_server_whose_redis_does_not_answer_refuses_to_start_without_showing_the_password() {
    // A free port with nothing listening on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let err = crate::helpers::try_spawn_app(Options {
        global: redis_overrides(
            &format!("redis://:hunter2-secret@127.0.0.1:{port}"),
            &random_prefix(),
        ),
        ..Default::default()
    })
    .await
    .err()
    .expect("no server without its Redis");
    let chain = format!("{err:#}");
    assert!(
        chain.contains("cannot use Redis at redis://***@127.0.0.1:"),
        "{chain}"
    );
    assert!(!chain.contains("hunter2"), "{chain}");
}

#[tokio::test]
async fn failed_logins_count_once_across_two_instances() {
    use crate::authorize_abuse::{open_login, submit_login, CB, PASSWORD, TENANT, WRONG};
    const IP: &str = "203.0.113.9";
    // The default login limit: 5 failures per account and IP in 15 minutes.
    let Some((a, b_opts)) = instance_a(ServeOverrides::default()).await else {
        return;
    };
    a.create_user(TENANT, "tenant", PASSWORD);
    let client = a.create_code_client("openid tenant:read", &[CB], true, &[]);
    let b = spawn_app_with(b_opts).await;
    let at_a = open_login(&a, &client.id, "openid", IP).await;
    let at_b = open_login(&b, &client.id, "openid", IP).await;
    for i in 0..5 {
        let res = if i % 2 == 0 {
            submit_login(&a, &at_a, TENANT, WRONG, IP).await
        } else {
            submit_login(&b, &at_b, TENANT, WRONG, IP).await
        };
        assert_eq!(res.status(), 401, "failure {}", i + 1);
    }
    // Five failures in all, three at A and two at B: both instances now refuse, even the
    // right password.
    for (name, app, form) in [("A", &a, &at_a), ("B", &b, &at_b)] {
        let res = submit_login(app, form, TENANT, PASSWORD, IP).await;
        assert_eq!(res.status(), 429, "{name}");
    }
}

#[tokio::test]
async fn a_revocation_made_with_the_cli_reaches_a_running_server_at_once_through_redis() {
    let Some((app, opts)) = instance_a(ServeOverrides {
        // The store sync is slowed to an hour: only the Redis feed can tell the server.
        key_refresh_interval: Some("1h".into()),
        ..Default::default()
    })
    .await
    else {
        return;
    };
    let creds = app.create_client("property:read");
    let token = app.access_token(&creds, None).await;
    assert_eq!(app.get("/api/properties", Some(&token)).await.status(), 200);

    let url = opts.global.redis_url.clone().expect("on Redis");
    let prefix = opts.global.redis_prefix.clone().expect("a prefix");
    let out = app.cli(&[
        "--redis-url",
        &url,
        "--redis-prefix",
        &prefix,
        "token",
        "revoke",
        "--client",
        &creds.id,
    ]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("at once"), "{said}");
    let revoked_at = tokio::time::Instant::now();
    loop {
        let status = app.get("/api/properties", Some(&token)).await.status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "the server still accepts the token 1 s after the CLI revoked it"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A new token is unaffected (the cutoff is in the past for it)... once a second has
    // passed: a token issued in the cutoff's own second is revoked too (iat <= cutoff).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = app.access_token(&creds, None).await;
    assert_eq!(app.get("/api/properties", Some(&fresh)).await.status(), 200);
}

#[tokio::test]
async fn the_cli_says_so_when_it_cannot_announce_a_revocation_and_still_stores_it() {
    let app = spawn_app_with(Options::default()).await;
    let creds = app.create_client("property:read");
    let token = app.access_token(&creds, None).await;
    assert_eq!(app.get("/api/properties", Some(&token)).await.status(), 200);
    // Nothing listens on this port: the announcement fails, the revocation stands.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("redis://127.0.0.1:{port}");
    let out = app.cli(&[
        "--redis-url",
        &dead,
        "token",
        "revoke",
        "--client",
        &creds.id,
    ]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("could not announce") && said.contains("next sync"),
        "{said}"
    );
    // The server (syncing every 100 ms in tests) picks the stored revocation up.
    crate::helpers::eventually("the stored revocation is applied", || async {
        app.get("/api/properties", Some(&token)).await.status() == 401
    })
    .await;
}
