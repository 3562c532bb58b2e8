//! The real server on PostgreSQL (`DATABASE_URL`; a fresh database per test): skipped
//! with a warning without it, failing under CI.

use deedbolt_store_postgres::testing::drop_database;
use serde_json::Value;

use crate::helpers::{eventually, postgres_options, spawn_app_with};

const CB: &str = "https://app.example.com/cb";

#[tokio::test]
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

#[tokio::test]
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
