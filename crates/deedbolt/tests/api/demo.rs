//! `deedbolt seed-demo`: the demo portfolio, its users and clients, used end to end.

use std::sync::Arc;

use deedbolt::config::ServeOverrides;
use serde_json::Value;

use crate::bff::bff_sign_in;
use crate::helpers::*;

fn seed(dir: &std::path::Path) -> std::process::Output {
    run_cli(dir, None, &["seed-demo", "--json"])
}

#[tokio::test]
async fn seed_demo_fills_a_portfolio_that_its_users_and_clients_can_use() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let out = seed(dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let demo: Value = serde_json::from_slice(&out.stdout).expect("seed-demo JSON");
    let user = |email: &str| {
        demo["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == email)
            .unwrap_or_else(|| panic!("{email} in {demo}"))
            .clone()
    };
    let tom = user("tom.tenant@example.com");
    assert_eq!(tom["role"], "tenant");

    // Run the server with the printed BFF settings (the client's redirect URI is on
    // loopback, so it matches this test's port too, RFC 8252 §7.3).
    let app = spawn_app_with(Options {
        data_dir: Some(dir.clone()),
        overrides: ServeOverrides {
            bff_client_id: Some(demo["bff"]["client_id"].as_str().unwrap().to_owned()),
            bff_client_secret: Some(demo["bff"]["client_secret"].as_str().unwrap().to_owned()),
            bff_cookie_keys: Some(demo["bff"]["cookie_keys"].as_str().unwrap().to_owned()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;

    // The machine client sees the whole portfolio.
    let machine = Creds {
        id: demo["machine_client"]["client_id"]
            .as_str()
            .unwrap()
            .to_owned(),
        secret: demo["machine_client"]["client_secret"]
            .as_str()
            .unwrap()
            .to_owned(),
    };
    let token = app.access_token(&machine, None).await;
    let count = |v: Value| v["items"].as_array().map(Vec::len).unwrap_or(0);
    let properties: Value = app
        .get("/api/properties", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(count(properties), 3);
    let tenants: Value = app
        .get("/api/tenants", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(count(tenants), 4);

    // Tom signs in to the demo app's BFF with the printed password and sees his own
    // tenancy: three months charged, two paid.
    let jar = bff_sign_in(
        &app,
        "tom.tenant@example.com",
        tom["password"].as_str().unwrap(),
    )
    .await;
    let mine: Value = app
        .browser_get("/bff/api/tenants", &jar)
        .await
        .json()
        .await
        .unwrap();
    let items = mine["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{mine}");
    assert_eq!(items[0]["name"], "Tom Tenant");
    let id = items[0]["id"].as_i64().unwrap();
    let balance: Value = app
        .browser_get(&format!("/bff/api/tenants/{id}/balance"), &jar)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(balance["balance"], "1250.00");
    assert_eq!(balance["currency"], "GBP");
    let requests: Value = app
        .browser_get("/bff/api/maintenance", &jar)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(count(requests), 2, "Tom's two requests, not the others'");
    app.stop().await;

    // A second run refuses and changes nothing.
    let again = seed(dir.path());
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already has the demo user"));
    let users = run_cli(dir.path(), None, &["user", "list", "--json"]);
    let users: Value = serde_json::from_slice(&users.stdout).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 5);
}
