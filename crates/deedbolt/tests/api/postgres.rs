//! The real server on PostgreSQL (`DATABASE_URL`; a fresh database per test): skipped
//! with a warning without it, failing under CI.

use std::sync::Arc;

use deedbolt_store_postgres::testing::drop_database;
use serde_json::Value;

use crate::helpers::{eventually, postgres_options, spawn_app_with};

const CB: &str = "https://app.example.com/cb";

// Multi-threaded: the CLI runs as a blocking child process while this server (on
// the test's runtime) may hold PostgreSQL's audit lock mid-transaction; on one thread
// the two would wait for each other forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_postgres_issues_tokens_and_serves_the_api() {
    let Some(opts) = postgres_options().await else {
        return;
    };
    let app = spawn_app_with(opts).await;
    let res = app.get("/readyz", None).await;
    assert_eq!(res.status(), 200, "/readyz pings PostgreSQL");

    // The CLI works on the same database: clients and users made there are the server's.
    let machine = app.create_client("property:read property:write");
    let token = app.access_token(&machine, None).await;
    let res = app
        .http
        .post(format!("{}/api/properties", app.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "name": "Harbour View", "address": "1 Quay St", "kind": "residential", "units": 4
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let res = app.get("/api/properties", Some(&token)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["items"][0]["name"], "Harbour View", "{body}");

    app.create_user("tina@example.com", "admin", "correct horse battery staple");
    let spa = app.create_code_client("openid property:read", &[CB], false, &[]);
    let user_token = app
        .user_access_token(
            &spa,
            CB,
            "openid property:read",
            "tina@example.com",
            "correct horse battery staple",
        )
        .await;
    let res = app.get("/api/properties", Some(&user_token)).await;
    assert_eq!(res.status(), 200);

    // Nothing went to a SQLite file.
    assert!(
        !app.data_dir.path().join("deedbolt.db").exists(),
        "state lives in PostgreSQL, not the data directory"
    );
    let url = app.database_url.clone().expect("on PostgreSQL");
    app.stop().await;
    drop_database(&url).await.unwrap();
}

// Multi-threaded: the CLI runs as a blocking child process while this server (on
// the test's runtime) may hold PostgreSQL's audit lock mid-transaction; on one thread
// the two would wait for each other forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_share_clients_keys_and_revocations() {
    let Some(mut opts) = postgres_options().await else {
        return;
    };
    // Instances behind one load balancer share one issuer (and with it the audience).
    opts.overrides.issuer = Some("https://auth.example.com".into());
    let a = spawn_app_with(opts.clone()).await;
    let b = spawn_app_with(opts).await;
    let creds = a.create_client("property:read");

    // A token from A is good at B (same keys, same clients).
    let token = a.access_token(&creds, None).await;
    assert_eq!(b.get("/api/properties", Some(&token)).await.status(), 200);
    // And one from B at A.
    let from_b = b.access_token(&creds, None).await;
    assert_eq!(a.get("/api/properties", Some(&from_b)).await.status(), 200);

    // Revoked at A: B refuses it once its revocation list has caught up.
    let res = a
        .http
        .post(format!("{}/revoke", a.base))
        .basic_auth(&creds.id, Some(&creds.secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    eventually("B refuses the token revoked at A", || async {
        b.get("/api/properties", Some(&token)).await.status() == 401
    })
    .await;
    assert_eq!(
        b.get("/api/properties", Some(&from_b)).await.status(),
        200,
        "only the revoked token"
    );
    let url = a.database_url.clone().expect("on PostgreSQL");
    a.stop().await;
    b.stop().await;
    drop_database(&url).await.unwrap();
}

/// A TCP forwarder on loopback between a server and PostgreSQL that a test can cut (every
/// connection dropped, new ones closed at once: PostgreSQL "down") and mend.
struct Link {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Link {
    async fn to(target: std::net::SocketAddr) -> Link {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let (up, conns) = (up.clone(), conns.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(std::sync::atomic::Ordering::SeqCst) {
                        continue; // dropped: the connection is closed at once
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    conns.lock().unwrap().push(task);
                }
            }
        });
        Link {
            port,
            up,
            conns,
            accept,
        }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for task in self.conns.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn mend(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_fails_readyz_promptly_and_ends_by_itself() {
    let Some(mut opts) = postgres_options().await else {
        return;
    };
    let real = opts.database_url.clone().expect("on PostgreSQL");
    let mut url = url::Url::parse(&real).unwrap();
    let target = tokio::net::lookup_host((
        url.host_str().unwrap().to_owned(),
        url.port().unwrap_or(5432),
    ))
    .await
    .unwrap()
    .next()
    .unwrap();
    let link = Link::to(target).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(link.port)).unwrap();
    opts.database_url = Some(url.to_string());
    let app = spawn_app_with(opts).await;
    let machine = app.create_client("property:read");
    let token = app.access_token(&machine, None).await;
    assert_eq!(app.get("/api/properties", Some(&token)).await.status(), 200);

    link.cut();
    // A load balancer's probe gets its answer well within a usual 5 s probe timeout.
    let probe = app
        .http
        .get(format!("{}/readyz", app.base))
        .timeout(std::time::Duration::from_secs(4))
        .send()
        .await
        .expect("/readyz answers while the database is down");
    assert_eq!(probe.status(), 503);
    // Requests that need the database fail closed with a retryable 503, not a 500.
    let res = app
        .http
        .get(format!("{}/api/properties", app.base))
        .bearer_auth(&token)
        .timeout(std::time::Duration::from_secs(4))
        .send()
        .await
        .expect("the API answers while the database is down");
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");

    // Back by itself once the database is: no restart.
    link.mend();
    eventually("ready again", || async {
        app.get("/readyz", None).await.status() == 200
    })
    .await;
    eventually("the API answers again", || async {
        app.get("/api/properties", Some(&token)).await.status() == 200
    })
    .await;
    app.stop().await;
    drop(link);
    drop_database(&real).await.unwrap();
}
