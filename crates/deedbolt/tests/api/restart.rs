//! Restarting the server on the same data directory: keys, clients and properties persist.

use deedbolt::config::ServeOverrides;
use serde_json::{json, Value};

use crate::helpers::{jwt_part, spawn_app_with, Options, TestApp};

/// A fixed loopback issuer, so tokens stay valid across restarts (the port changes).
const ISSUER: &str = "http://127.0.0.1:1";

fn fixed_issuer() -> ServeOverrides {
    ServeOverrides {
        issuer: Some(ISSUER.into()),
        ..Default::default()
    }
}

async fn kids(app: &TestApp) -> Vec<String> {
    let mut kids: Vec<String> = app.jwks().await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

#[tokio::test]
async fn keys_clients_tokens_and_properties_survive_a_restart() {
    let app = spawn_app_with(Options {
        overrides: fixed_issuer(),
        ..Default::default()
    })
    .await;
    let meta: Value = app
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], ISSUER, "the configured issuer is used");

    let creds = app.create_client("property:read property:write");
    let token = app.access_token(&creds, None).await;
    assert_eq!(jwt_part(&token, 1)["iss"], ISSUER);
    assert_eq!(jwt_part(&token, 1)["aud"], format!("{ISSUER}/api"));
    let res = app
        .http
        .post(format!("{}/api/properties", app.base))
        .bearer_auth(&token)
        .json(&json!({"name": "Before Restart", "address": "2 Dock Rd", "kind": "commercial", "units": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let kids_before = kids(&app).await;
    assert_eq!(kids_before.len(), 3, "a key per algorithm");

    let data_dir = app.data_dir.clone();
    app.stop().await;

    let app = spawn_app_with(Options {
        data_dir: Some(data_dir),
        overrides: fixed_issuer(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        kids(&app).await,
        kids_before,
        "same signing key after restart"
    );

    // The token issued before the restart still verifies.
    let res = app.get("/api/properties", Some(&token)).await;
    assert_eq!(res.status(), 200, "pre-restart token accepted");
    let page: Value = res.json().await.unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["name"], "Before Restart");
    assert_eq!(items[0]["created_by"], creds.id.as_str());

    // The client's secret still works (the pepper persisted), and new tokens use the same key.
    let fresh = app.access_token(&creds, None).await;
    assert_eq!(jwt_part(&fresh, 0)["kid"], jwt_part(&token, 0)["kid"]);
    assert_eq!(app.get("/api/properties", Some(&fresh)).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn restarting_with_another_algorithm_signs_with_its_key_and_old_tokens_keep_working() {
    let app = spawn_app_with(Options {
        overrides: fixed_issuer(),
        ..Default::default()
    })
    .await;
    let creds = app.create_client("property:read");
    let es_token = app.access_token(&creds, None).await;
    assert_eq!(jwt_part(&es_token, 0)["alg"], "ES256");
    let data_dir = app.data_dir.clone();
    app.stop().await;

    let app = spawn_app_with(Options {
        data_dir: Some(data_dir),
        overrides: ServeOverrides {
            signing_alg: Some("EdDSA".into()),
            ..fixed_issuer()
        },
        ..Default::default()
    })
    .await;
    let ed_token = app.access_token(&creds, None).await;
    assert_eq!(jwt_part(&ed_token, 0)["alg"], "EdDSA");
    assert_eq!(
        kids(&app).await.len(),
        3,
        "the EdDSA key existed already: no key was made, none retired"
    );
    assert_eq!(
        app.get("/api/properties", Some(&ed_token)).await.status(),
        200
    );
    assert_eq!(
        app.get("/api/properties", Some(&es_token)).await.status(),
        200,
        "token signed by the ES256 key (still current, no longer signing) still verifies"
    );
    let listed = app.cli_json(&["keys", "list", "--json"]);
    let current: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["status"] == "current")
        .collect();
    assert_eq!(current.len(), 3, "one current key per algorithm");
    assert!(current
        .iter()
        .any(|k| k["alg"] == "EdDSA" && k["kid"] == jwt_part(&ed_token, 0)["kid"]));
    app.stop().await;
}

#[tokio::test]
async fn a_token_is_bound_to_the_issuer_it_was_issued_under() {
    // Same data directory and key, but the operator changes the issuer: old tokens name
    // the old issuer and must be refused.
    let app = spawn_app_with(Options {
        overrides: fixed_issuer(),
        ..Default::default()
    })
    .await;
    let creds = app.create_client("property:read");
    let token = app.access_token(&creds, None).await;
    let data_dir = app.data_dir.clone();
    app.stop().await;

    let app = spawn_app_with(Options {
        data_dir: Some(data_dir),
        overrides: ServeOverrides {
            issuer: Some("http://localhost:2".into()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let res = app.get("/api/properties", Some(&token)).await;
    assert_eq!(res.status(), 401);
    let fresh = app.access_token(&creds, None).await;
    assert_eq!(jwt_part(&fresh, 1)["iss"], "http://localhost:2");
    assert_eq!(app.get("/api/properties", Some(&fresh)).await.status(), 200);
    app.stop().await;
}
