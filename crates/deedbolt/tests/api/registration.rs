//! Dynamic client registration (RFC 7591) and its management (RFC 7592) through the real
//! server: initial access tokens from the CLI, `POST /register`, the registration access
//! token at `/register/{client_id}` (read, update with rotation, delete), the three
//! `--registration` modes, the redirect-URI and metadata policy, the rate limit, the
//! audit trail, and a registered client then getting tokens (client credentials, the code
//! flow, and openid-client 5's `Issuer.Client.register`).

use std::time::Duration;

use deedbolt::config::ServeOverrides;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    eventually, openid_client_dir, openid_client_installed, spawn_app_with, CodeClient, Creds,
    Options, TestApp,
};

/// A server with registration settings (and a generous registration limit unless set).
async fn app_with(set: impl FnOnce(&mut ServeOverrides)) -> TestApp {
    let mut overrides = ServeOverrides::default();
    set(&mut overrides);
    spawn_app_with(Options {
        overrides,
        ..Options::default()
    })
    .await
}

/// `deedbolt client registration-token create --json ARGS`: (id, token).
fn initial_token(app: &TestApp, args: &[&str]) -> (String, String) {
    let mut all = vec!["client", "registration-token", "create", "--json"];
    all.extend_from_slice(args);
    let v = app.cli_json(&all);
    (
        v["id"].as_str().expect("id").to_owned(),
        v["token"].as_str().expect("token").to_owned(),
    )
}

/// The stored initial access tokens, as `registration-token list --json` prints them.
fn tokens(app: &TestApp) -> Vec<Value> {
    app.cli_json(&["client", "registration-token", "list", "--json"])
        .as_array()
        .expect("a list")
        .clone()
}

/// Every stored client.
fn clients(app: &TestApp) -> Vec<Value> {
    app.cli_json(&["client", "list", "--json"])
        .as_array()
        .expect("a list")
        .clone()
}

/// `POST /register` with a JSON body and an optional bearer token.
async fn register(app: &TestApp, bearer: Option<&str>, body: &Value) -> reqwest::Response {
    let mut req = app
        .http
        .post(format!("{}/register", app.base))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("register")
}

/// A request to a registration client URI with an optional bearer token.
async fn manage(
    app: &TestApp,
    method: reqwest::Method,
    uri: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = app.http.request(method, uri);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    req.send().await.expect("management request")
}

/// Registers and returns the 201 answer.
async fn registered(app: &TestApp, bearer: Option<&str>, body: &Value) -> Value {
    let res = register(app, bearer, body).await;
    let status = res.status();
    let v: Value = res.json().await.expect("JSON");
    assert_eq!(status, StatusCode::CREATED, "registration refused: {v}");
    v
}

fn machine(scope: &str) -> Value {
    json!({
        "client_name": "valuation bot",
        "grant_types": ["client_credentials"],
        "scope": scope,
    })
}

const CB: &str = "https://app.example.com/cb";

/// The audit records of `kind`, newest first (the writer is asynchronous: polled).
async fn audit_records(app: &TestApp, kind: &str, at_least: usize) -> Vec<Value> {
    let mut found = Vec::new();
    eventually(&format!("{at_least} {kind} audit record(s)"), || {
        let out = app.cli(&["audit", "search", "--json", "--type", kind]);
        found = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let n = found.len();
        async move { n >= at_least }
    })
    .await;
    found
}

#[tokio::test]
async fn registration_needs_an_initial_token_by_default_and_is_advertised() {
    let app = app_with(|_| {}).await;
    for doc in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let v: Value = app.get(doc, None).await.json().await.expect("metadata");
        assert_eq!(v["registration_endpoint"], format!("{}/register", app.base));
    }
    // No token: a bare Bearer challenge (RFC 6750 §3.1), nothing stored.
    let res = register(&app, None, &machine("property:read")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        crate::helpers::www_authenticate(&res),
        "Bearer realm=\"deedbolt\""
    );
    // A token that is not one: invalid_token.
    let res = register(&app, Some("dbi_notarealtoken"), &machine("property:read")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(crate::helpers::www_authenticate(&res).contains("error=\"invalid_token\""));
    let res = register(&app, Some("somethingelse"), &machine("property:read")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(clients(&app).is_empty());
    let refusals = audit_records(&app, "registration_refused", 3).await;
    assert!(refusals
        .iter()
        .all(|r| r["ip"] == "127.0.0.1" && r["success"] == false));
}

#[tokio::test]
async fn a_registered_machine_client_gets_tokens_and_reads_its_registration() {
    let app = app_with(|_| {}).await;
    let (token_id, token) = initial_token(
        &app,
        &["--expires-in", "1h", "--scope", "property:read tenant:read"],
    );
    let mut body = machine("property:read");
    body["contacts"] = json!(["ops@example.com"]);
    body["software_id"] = json!("valuation-bot");
    body["client_uri"] = json!("https://bot.example.com");
    body["some_unknown_metadata"] = json!({"ignored": true});
    let res = register(&app, Some(&token), &body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["cache-control"].to_str().unwrap(), "no-store");
    let v: Value = res.json().await.unwrap();
    let id = v["client_id"].as_str().unwrap();
    let secret = v["client_secret"].as_str().unwrap();
    let rat = v["registration_access_token"].as_str().unwrap();
    assert!(id.starts_with("dbc_") && secret.starts_with("dbs_") && rat.starts_with("dbrat_"));
    assert_eq!(v["client_secret_expires_at"], 0);
    assert!(v["client_id_issued_at"].as_i64().unwrap() > 0);
    assert_eq!(v["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(v["grant_types"], json!(["client_credentials"]));
    assert_eq!(v["response_types"], json!([]));
    assert_eq!(v["scope"], "property:read");
    assert_eq!(v["client_name"], "valuation bot");
    assert_eq!(v["contacts"], json!(["ops@example.com"]));
    assert_eq!(v["software_id"], "valuation-bot");
    assert_eq!(v["client_uri"], "https://bot.example.com");
    assert!(
        v.get("some_unknown_metadata").is_none(),
        "unknown metadata is not kept"
    );
    let uri = v["registration_client_uri"].as_str().unwrap();
    assert_eq!(uri, format!("{}/register/{id}", app.base));

    // It works at the token endpoint and the API.
    let creds = Creds {
        id: id.to_owned(),
        secret: secret.to_owned(),
    };
    let access = app.access_token(&creds, Some("property:read")).await;
    assert_eq!(
        app.get("/api/properties", Some(&access)).await.status(),
        200
    );
    // Within its registered scope only.
    let res = app
        .post_token(
            Some(&creds),
            "grant_type=client_credentials&scope=tenant:read",
        )
        .await;
    assert_eq!(res.status(), 400);

    // RFC 7592 read: the registration as stored, with the presented registration access
    // token (RFC 7592 §3) and no client secret.
    let res = manage(&app, reqwest::Method::GET, uri, Some(rat), None).await;
    assert_eq!(res.status(), 200);
    let read: Value = res.json().await.unwrap();
    assert_eq!(read["client_id"], id);
    assert_eq!(read["scope"], "property:read");
    assert_eq!(read["contacts"], json!(["ops@example.com"]));
    assert!(read.get("client_secret").is_none());
    assert_eq!(read["registration_access_token"], rat);
    assert_eq!(read["registration_client_uri"], uri);

    // One use counted; the registration audited with the token's id, never a secret.
    let listed = tokens(&app);
    assert_eq!(listed[0]["id"], token_id);
    assert_eq!(listed[0]["uses"], 1);
    let records = audit_records(&app, "client_registered", 1).await;
    assert_eq!(records[0]["client_id"], id);
    assert_eq!(records[0]["ip"], "127.0.0.1");
    assert!(records[0]["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("initial_token={token_id}")));
    let log = app.cli(&["audit", "search", "--json"]);
    let log = String::from_utf8_lossy(&log.stdout);
    for s in [secret, rat, token.as_str()] {
        assert!(!log.contains(s), "a secret reached the audit log");
    }
}

#[tokio::test]
async fn a_registered_code_client_completes_the_code_flow() {
    let app = app_with(|_| {}).await;
    app.create_user("tess@example.com", "tenant", "correct horse battery");
    let (_, token) = initial_token(&app, &["--expires-in", "10m"]);
    let v = registered(
        &app,
        Some(&token),
        &json!({
            "client_name": "Tenant portal",
            "redirect_uris": [CB],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": "openid tenant:read",
            "id_token_signed_response_alg": "ES256",
        }),
    )
    .await;
    assert_eq!(v["redirect_uris"], json!([CB]));
    assert_eq!(v["id_token_signed_response_alg"], "ES256");
    let client = CodeClient {
        id: v["client_id"].as_str().unwrap().to_owned(),
        secret: Some(v["client_secret"].as_str().unwrap().to_owned()),
    };
    let access = app
        .user_access_token(
            &client,
            CB,
            "openid tenant:read",
            "tess@example.com",
            "correct horse battery",
        )
        .await;
    assert_eq!(crate::helpers::jwt_part(&access, 1)["client_id"], client.id);

    // A public native app: loopback and a private-use scheme, no secret.
    let v = registered(
        &app,
        Some(&token),
        &json!({
            "redirect_uris": ["http://127.0.0.1/callback", "com.example.tenantapp:/cb"],
            "token_endpoint_auth_method": "none",
            "scope": "openid",
        }),
    )
    .await;
    assert!(v.get("client_secret").is_none());
    assert!(v.get("client_secret_expires_at").is_none());
    assert_eq!(v["token_endpoint_auth_method"], "none");
    assert_eq!(v["client_name"], "Dynamically registered client");
}

#[tokio::test]
async fn every_policy_rule_is_refused_with_its_error_and_nothing_is_stored() {
    let app = app_with(|o| {
        o.registration_redirect_hosts =
            Some(vec!["*.tenant.example".into(), "app.example.com".into()]);
    })
    .await;
    let (_, token) = initial_token(
        &app,
        &[
            "--expires-in",
            "1h",
            "--scope",
            "openid tenant:read property:read",
        ],
    );
    let cb = json!([CB]);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "plain http",
            json!({"redirect_uris": ["http://app.example.com/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            "localhost",
            json!({"redirect_uris": ["http://localhost:8080/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            "fragment",
            json!({"redirect_uris": ["https://app.example.com/cb#f"]}),
            "invalid_redirect_uri",
        ),
        (
            "userinfo",
            json!({"redirect_uris": ["https://a@app.example.com/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            "wildcard host",
            json!({"redirect_uris": ["https://*.tenant.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            "wildcard path",
            json!({"redirect_uris": ["https://app.example.com/*"]}),
            "invalid_redirect_uri",
        ),
        (
            "host outside the policy",
            json!({"redirect_uris": ["https://evil.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            "two labels under a wildcard",
            json!({"redirect_uris": ["https://a.b.tenant.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            "relative",
            json!({"redirect_uris": ["/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            "private-use scheme on a confidential client",
            json!({"redirect_uris": ["com.example.app:/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            "no redirect for code",
            json!({"grant_types": ["authorization_code"]}),
            "invalid_redirect_uri",
        ),
        (
            "too many redirects",
            json!({"redirect_uris": (0..11).map(|i| format!("https://app.example.com/{i}")).collect::<Vec<_>>()}),
            "invalid_redirect_uri",
        ),
        (
            "implicit",
            json!({"redirect_uris": cb, "grant_types": ["implicit"]}),
            "invalid_client_metadata",
        ),
        (
            "token response type",
            json!({"redirect_uris": cb, "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            "code grant without code response",
            json!({"redirect_uris": cb, "response_types": []}),
            "invalid_client_metadata",
        ),
        (
            "code response without code grant",
            json!({"grant_types": ["client_credentials"], "response_types": ["code"], "scope": "property:read"}),
            "invalid_client_metadata",
        ),
        (
            "refresh without code",
            json!({"grant_types": ["client_credentials", "refresh_token"], "scope": "property:read"}),
            "invalid_client_metadata",
        ),
        (
            "public client credentials",
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none", "scope": "property:read"}),
            "invalid_client_metadata",
        ),
        (
            "admin scope",
            json!({"redirect_uris": cb, "scope": "admin:read"}),
            "invalid_client_metadata",
        ),
        (
            "scope beyond the token",
            json!({"redirect_uris": cb, "scope": "financial:read"}),
            "invalid_client_metadata",
        ),
        (
            "unknown scope",
            json!({"redirect_uris": cb, "scope": "root"}),
            "invalid_client_metadata",
        ),
        (
            "unknown auth method",
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "client_secret_jwt"}),
            "invalid_client_metadata",
        ),
        (
            "private_key_jwt without keys",
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            "jwks and jwks_uri",
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://app.example.com/jwks", "jwks": {"keys": [{"kty": "EC"}]}}),
            "invalid_client_metadata",
        ),
        (
            "http jwks_uri",
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://app.example.com/jwks"}),
            "invalid_client_metadata",
        ),
        (
            "private key in jwks",
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "EC", "d": "secret"}]}}),
            "invalid_client_metadata",
        ),
        (
            "tls_client_auth without a name",
            json!({"redirect_uris": cb, "token_endpoint_auth_method": "tls_client_auth"}),
            "invalid_client_metadata",
        ),
        (
            "http client_uri",
            json!({"redirect_uris": cb, "client_uri": "http://app.example.com"}),
            "invalid_client_metadata",
        ),
        (
            "http logo_uri",
            json!({"redirect_uris": cb, "logo_uri": "http://app.example.com/logo.png"}),
            "invalid_client_metadata",
        ),
        (
            "too many contacts",
            json!({"redirect_uris": cb, "contacts": ["a@x.example", "b@x.example", "c@x.example", "d@x.example", "e@x.example", "f@x.example"]}),
            "invalid_client_metadata",
        ),
        (
            "empty name",
            json!({"redirect_uris": cb, "client_name": " "}),
            "invalid_client_metadata",
        ),
        (
            "bad id token alg",
            json!({"redirect_uris": cb, "id_token_signed_response_alg": "HS256"}),
            "invalid_client_metadata",
        ),
        (
            "wrong type",
            json!({"redirect_uris": "https://app.example.com/cb"}),
            "invalid_client_metadata",
        ),
        (
            "software statement",
            json!({"redirect_uris": cb, "software_statement": "eyJhbGciOiJub25lIn0.e30."}),
            "invalid_software_statement",
        ),
    ];
    for (what, body, code) in &cases {
        let res = register(&app, Some(&token), body).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{what}");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["error"], *code, "{what}: {v}");
        assert!(v["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()));
    }
    // Malformed JSON, the wrong content type, an oversized body.
    let res = app
        .http
        .post(format!("{}/register", app.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_client_metadata"
    );
    let res = app
        .http
        .post(format!("{}/register", app.base))
        .bearer_auth(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("redirect_uris=https://app.example.com/cb")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let big = json!({"redirect_uris": [CB], "client_name": "x", "pad": "y".repeat(70 * 1024)});
    assert_eq!(register(&app, Some(&token), &big).await.status(), 413);

    assert!(clients(&app).is_empty(), "nothing was stored");
    assert_eq!(
        tokens(&app)[0]["uses"],
        0,
        "a refused registration spends no use"
    );
    audit_records(&app, "registration_refused", cases.len() + 3).await;

    // The same token then registers an allowed client.
    registered(
        &app,
        Some(&token),
        &json!({"redirect_uris": ["https://acme.tenant.example/cb"], "scope": "openid"}),
    )
    .await;
}

#[tokio::test]
async fn initial_tokens_run_out_expire_and_are_revoked() {
    let app = app_with(|_| {}).await;
    let body = machine("property:read");
    // One use.
    let (_, once) = initial_token(&app, &["--expires-in", "1h", "--max-uses", "1"]);
    registered(&app, Some(&once), &body).await;
    let res = register(&app, Some(&once), &body).await;
    assert_eq!(res.status(), 401);
    assert!(crate::helpers::www_authenticate(&res).contains("invalid_token"));
    // Revoked.
    let (id, revoked) = initial_token(&app, &["--expires-in", "1h"]);
    let out = app.cli(&["client", "registration-token", "revoke", &id]);
    assert!(out.status.success());
    assert_eq!(register(&app, Some(&revoked), &body).await.status(), 401);
    let out = app.cli(&["client", "registration-token", "revoke", &id]);
    assert!(!out.status.success(), "revoked once only");
    // Expired.
    let (_, short) = initial_token(&app, &["--expires-in", "1s"]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(register(&app, Some(&short), &body).await.status(), 401);
    // Admin scopes are never in a token.
    let out = app.cli(&[
        "client",
        "registration-token",
        "create",
        "--expires-in",
        "1h",
        "--scope",
        "admin:read",
    ]);
    assert!(!out.status.success());

    let states: Vec<String> = tokens(&app)
        .iter()
        .map(|t| t["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states, ["used up", "revoked", "expired"]);
    assert_eq!(clients(&app).len(), 1);
    audit_records(&app, "registration_token_issued", 3).await;
    audit_records(&app, "registration_token_revoked", 1).await;
}

#[tokio::test]
async fn open_registration_needs_no_token_but_keeps_to_the_open_scopes() {
    let app = app_with(|o| {
        o.registration = Some("open".into());
        o.registration_scope = Some("openid property:read".into());
    })
    .await;
    let v = registered(&app, None, &machine("property:read")).await;
    assert_eq!(v["scope"], "property:read");
    let v = registered(&app, None, &json!({"grant_types": ["client_credentials"]})).await;
    assert_eq!(
        v["scope"], "property:read openid",
        "no scope asked: the open set"
    );
    let res = register(&app, None, &machine("tenant:read")).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_client_metadata"
    );
    // A presented token must still be valid.
    assert_eq!(
        register(&app, Some("dbi_bogus"), &machine("property:read"))
            .await
            .status(),
        401
    );
    let records = audit_records(&app, "client_registered", 2).await;
    assert!(records[0]["detail"]
        .as_str()
        .unwrap()
        .contains("open registration"));
}

#[tokio::test]
async fn registration_off_answers_404_and_is_not_advertised() {
    let app = app_with(|o| o.registration = Some("off".into())).await;
    let (_, token) = initial_token(&app, &["--expires-in", "1h"]);
    assert_eq!(
        register(&app, Some(&token), &machine("property:read"))
            .await
            .status(),
        404
    );
    let uri = format!("{}/register/dbc_anything", app.base);
    assert_eq!(
        manage(&app, reqwest::Method::GET, &uri, Some("dbrat_x"), None)
            .await
            .status(),
        404
    );
    for doc in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let v: Value = app.get(doc, None).await.json().await.unwrap();
        assert!(v.get("registration_endpoint").is_none());
    }
}

#[tokio::test]
async fn an_update_replaces_the_registration_and_rotates_its_token() {
    let app = app_with(|_| {}).await;
    let (_, token) = initial_token(&app, &["--expires-in", "1h"]);
    let v = registered(
        &app,
        Some(&token),
        &json!({"redirect_uris": [CB], "scope": "openid property:read", "client_name": "v1"}),
    )
    .await;
    let id = v["client_id"].as_str().unwrap().to_owned();
    let secret = v["client_secret"].as_str().unwrap().to_owned();
    let old = v["registration_access_token"].as_str().unwrap().to_owned();
    let uri = v["registration_client_uri"].as_str().unwrap().to_owned();
    let put = |body: Value| body;
    let update = put(json!({
        "client_id": id,
        "client_secret": secret,
        "client_name": "v2",
        "redirect_uris": ["https://app.example.com/cb2"],
        "scope": "openid",
    }));

    // Refusals first: no token, a wrong token, a client_id that does not match, a wrong
    // secret, a scope beyond the registration. Nothing changes.
    let res = manage(&app, reqwest::Method::PUT, &uri, None, Some(&update)).await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        crate::helpers::www_authenticate(&res),
        "Bearer realm=\"deedbolt\""
    );
    let res = manage(
        &app,
        reqwest::Method::PUT,
        &uri,
        Some("dbrat_wrong"),
        Some(&update),
    )
    .await;
    assert_eq!(res.status(), 401);
    assert!(crate::helpers::www_authenticate(&res).contains("invalid_token"));
    let mut other_id = update.clone();
    other_id["client_id"] = json!("dbc_someoneelse");
    let res = manage(
        &app,
        reqwest::Method::PUT,
        &uri,
        Some(&old),
        Some(&other_id),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_client_metadata"
    );
    let mut no_id = update.clone();
    no_id.as_object_mut().unwrap().remove("client_id");
    assert_eq!(
        manage(&app, reqwest::Method::PUT, &uri, Some(&old), Some(&no_id))
            .await
            .status(),
        400
    );
    let mut wrong_secret = update.clone();
    wrong_secret["client_secret"] = json!("dbs_wrong");
    assert_eq!(
        manage(
            &app,
            reqwest::Method::PUT,
            &uri,
            Some(&old),
            Some(&wrong_secret)
        )
        .await
        .status(),
        400
    );
    let mut wider = update.clone();
    wider["scope"] = json!("openid tenant:read");
    assert_eq!(
        manage(&app, reqwest::Method::PUT, &uri, Some(&old), Some(&wider))
            .await
            .status(),
        400
    );
    let read: Value = manage(&app, reqwest::Method::GET, &uri, Some(&old), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["client_name"], "v1", "refused updates changed nothing");

    // The update: replaced metadata, a new token; the old token is dead; the secret stays.
    let res = manage(&app, reqwest::Method::PUT, &uri, Some(&old), Some(&update)).await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["client_name"], "v2");
    assert_eq!(
        updated["redirect_uris"],
        json!(["https://app.example.com/cb2"])
    );
    assert_eq!(updated["scope"], "openid");
    assert!(
        updated.get("client_secret").is_none(),
        "the secret is unchanged"
    );
    let new = updated["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new, old);
    assert_eq!(
        manage(&app, reqwest::Method::GET, &uri, Some(&old), None)
            .await
            .status(),
        401,
        "the old registration access token is refused"
    );
    let read: Value = manage(&app, reqwest::Method::GET, &uri, Some(&new), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["client_name"], "v2");
    let shown = app.cli_json(&["client", "show", &id, "--json"]);
    assert_eq!(
        shown["redirect_uris"],
        json!(["https://app.example.com/cb2"])
    );
    audit_records(&app, "client_registration_updated", 1).await;

    // Switching to a public client drops the secret.
    let public = json!({
        "client_id": id,
        "redirect_uris": ["http://127.0.0.1/cb"],
        "token_endpoint_auth_method": "none",
        "scope": "openid",
    });
    let res = manage(&app, reqwest::Method::PUT, &uri, Some(&new), Some(&public)).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["token_endpoint_auth_method"], "none");
    assert!(v.get("client_secret_expires_at").is_none());
}

#[tokio::test]
async fn cli_clients_and_strangers_cannot_be_managed() {
    let app = app_with(|_| {}).await;
    let cli_client = app.create_client("property:read");
    let (_, token) = initial_token(&app, &["--expires-in", "1h"]);
    let v = registered(&app, Some(&token), &machine("property:read")).await;
    let rat = v["registration_access_token"].as_str().unwrap();
    // Another client's registration access token, an unknown client, a malformed id:
    // all the same 401.
    for id in [cli_client.id.as_str(), "dbc_nosuchclient", "not-an-id"] {
        let uri = format!("{}/register/{id}", app.base);
        for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
            let res = manage(&app, method, &uri, Some(rat), None).await;
            assert_eq!(res.status(), 401, "{id}");
            assert!(crate::helpers::www_authenticate(&res).contains("invalid_token"));
        }
    }
    assert_eq!(clients(&app).len(), 2, "nothing deleted");
}

#[tokio::test]
async fn deleting_a_registration_revokes_the_clients_tokens() {
    let app = app_with(|_| {}).await;
    let (_, token) = initial_token(&app, &["--expires-in", "1h"]);
    let v = registered(&app, Some(&token), &machine("property:read")).await;
    let creds = Creds {
        id: v["client_id"].as_str().unwrap().to_owned(),
        secret: v["client_secret"].as_str().unwrap().to_owned(),
    };
    let rat = v["registration_access_token"].as_str().unwrap();
    let uri = v["registration_client_uri"].as_str().unwrap();
    let access = app.access_token(&creds, None).await;
    assert_eq!(
        app.get("/api/properties", Some(&access)).await.status(),
        200
    );

    let res = manage(&app, reqwest::Method::DELETE, uri, Some(rat), None).await;
    assert_eq!(res.status(), 204);
    // Its access token is refused at once, it cannot get another, its registration is
    // gone.
    assert_eq!(
        app.get("/api/properties", Some(&access)).await.status(),
        401
    );
    let res = app
        .post_token(Some(&creds), "grant_type=client_credentials")
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        manage(&app, reqwest::Method::GET, uri, Some(rat), None)
            .await
            .status(),
        401
    );
    assert!(clients(&app).is_empty());
    let records = audit_records(&app, "client_registration_deleted", 1).await;
    assert_eq!(records[0]["client_id"], creds.id);
}

#[tokio::test]
async fn registration_is_rate_limited_per_ip() {
    let app = app_with(|o| o.rate_limit_register = Some("2/1h".into())).await;
    let (_, token) = initial_token(&app, &["--expires-in", "1h"]);
    let body = machine("property:read");
    registered(&app, Some(&token), &body).await;
    assert_eq!(register(&app, None, &body).await.status(), 401);
    let res = register(&app, Some(&token), &body).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "rate_limit_exceeded"
    );
    assert_eq!(clients(&app).len(), 1);
    assert!(app
        .metrics_text()
        .await
        .contains("deedbolt_rate_limited_total{limit=\"register\"} 1"));
}

#[tokio::test]
async fn openid_client_registers_with_an_initial_token_and_uses_the_client() {
    if !openid_client_installed() {
        return;
    }
    let app = app_with(|_| {}).await;
    let (_, token) = initial_token(&app, &["--expires-in", "10m", "--max-uses", "1"]);
    let base = app.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("register.mjs")
            .current_dir(openid_client_dir())
            .env("ISSUER", base)
            .env("INITIAL_ACCESS_TOKEN", token)
            .env("SCOPE", "property:read")
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
        panic!(
            "node printed {line:?} ({e}); stderr {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(v.get("error").is_none(), "openid-client: {v}");
    let access = v["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/properties", Some(access)).await.status(), 200);
    assert_eq!(v["read_back"]["client_id"], v["client_id"]);
    assert_eq!(v["read_back"]["scope"], "property:read");
    assert_eq!(tokens(&app)[0]["state"], "used up");
}

#[tokio::test]
async fn the_registration_lifecycle_works_on_postgres() {
    let Some(opts) = crate::helpers::postgres_options().await else {
        return;
    };
    let app = spawn_app_with(opts).await;
    let (_, token) = initial_token(&app, &["--expires-in", "1h", "--max-uses", "1"]);
    let v = registered(&app, Some(&token), &machine("property:read")).await;
    assert_eq!(
        register(&app, Some(&token), &machine("property:read"))
            .await
            .status(),
        401,
        "used up"
    );
    let id = v["client_id"].as_str().unwrap();
    let uri = v["registration_client_uri"].as_str().unwrap();
    let rat = v["registration_access_token"].as_str().unwrap();
    let res = manage(
        &app,
        reqwest::Method::PUT,
        uri,
        Some(rat),
        Some(&json!({"client_id": id, "grant_types": ["client_credentials"], "scope": "property:read", "client_name": "renamed"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let new: Value = res.json().await.unwrap();
    let rat2 = new["registration_access_token"].as_str().unwrap();
    assert_eq!(
        manage(&app, reqwest::Method::GET, uri, Some(rat), None)
            .await
            .status(),
        401
    );
    assert_eq!(
        manage(&app, reqwest::Method::DELETE, uri, Some(rat2), None)
            .await
            .status(),
        204
    );
    assert!(clients(&app).is_empty());
}

#[tokio::test]
async fn administrators_list_the_initial_tokens_without_the_tokens() {
    let app = app_with(|_| {}).await;
    app.create_user("root@example.com", "admin", "correct horse battery");
    app.create_user("tess@example.com", "tenant", "correct horse battery");
    let console = app.create_code_client("openid admin:read", &[CB], false, &[]);
    let (id, token) = initial_token(&app, &["--expires-in", "1h", "--max-uses", "2"]);
    registered(&app, Some(&token), &machine("property:read")).await;

    let admin = app
        .user_access_token(
            &console,
            CB,
            "openid admin:read",
            "root@example.com",
            "correct horse battery",
        )
        .await;
    let res = app
        .get("/admin/api/registration-tokens", Some(&admin))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let text = res.text().await.unwrap();
    assert!(!text.contains(&token), "the token itself is never shown");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["items"][0]["id"], id);
    assert_eq!(v["items"][0]["uses"], 1);
    assert_eq!(v["items"][0]["max_uses"], 2);
    assert_eq!(v["items"][0]["state"], "active");

    let tenant = app
        .user_access_token(
            &console,
            CB,
            "openid",
            "tess@example.com",
            "correct horse battery",
        )
        .await;
    assert_eq!(
        app.get("/admin/api/registration-tokens", Some(&tenant))
            .await
            .status(),
        403
    );
    assert_eq!(
        app.get("/admin/api/registration-tokens", None)
            .await
            .status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_spend_a_registration_access_token_once() {
    let app = app_with(|_| {}).await;
    let (_, token) = initial_token(&app, &["--expires-in", "1h"]);
    let v = registered(&app, Some(&token), &machine("property:read")).await;
    let id = v["client_id"].as_str().unwrap().to_owned();
    let rat = v["registration_access_token"].as_str().unwrap().to_owned();
    let uri = v["registration_client_uri"].as_str().unwrap().to_owned();
    // Many at once, released together, so several read the client before any writes.
    const RACERS: usize = 32;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..RACERS {
        let body = json!({
            "client_id": id,
            "grant_types": ["client_credentials"],
            "scope": "property:read",
            "client_name": format!("racer {i}"),
        });
        let (http, uri, rat) = (app.http.clone(), uri.clone(), rat.clone());
        let start = start.clone();
        racers.spawn(async move {
            start.wait().await;
            http.put(&uri)
                .bearer_auth(&rat)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .expect("PUT")
                .status()
        });
    }
    let statuses = racers.join_all().await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "exactly one update per token: {statuses:?}");
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn a_registered_private_key_jwt_client_authenticates_with_an_assertion() {
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    let app = app_with(|_| {}).await;
    let (_, token) = initial_token(&app, &["--expires-in", "1h"]);
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let public = pair.public_key().as_ref().to_vec();
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
    }]});
    let v = registered(
        &app,
        Some(&token),
        &json!({
            "grant_types": ["client_credentials"],
            "scope": "property:read",
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "ES256",
            "jwks": jwks,
        }),
    )
    .await;
    assert!(v.get("client_secret").is_none(), "no secret: {v}");
    assert_eq!(v["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(v["jwks"], jwks);
    let id = v["client_id"].as_str().unwrap();

    let now = crate::helpers::unix_now();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    let claims = json!({
        "iss": id, "sub": id, "aud": app.base,
        "iat": now, "exp": now + 60, "jti": crate::helpers::random_b64url(16),
    });
    let der = pair.to_pkcs8v1().unwrap();
    let assertion = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(der.as_ref()),
    )
    .unwrap();
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair(
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        )
        .append_pair("client_assertion", &assertion)
        .finish();
    let res = app.post_token(None, &form).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    // A key set the assertion check would refuse is refused at registration already.
    let res = register(
        &app,
        Some(&token),
        &json!({
            "grant_types": ["client_credentials"],
            "scope": "property:read",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]},
        }),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_client_metadata"
    );
}

/// `grant_type=refresh_token` for a confidential registered client: (status, body).
async fn refresh(app: &TestApp, client: &CodeClient, token: &str) -> (StatusCode, Value) {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", token)
        .finish();
    let res = app.post_token(Some(&client.creds()), &form).await;
    let status = res.status();
    (status, res.json().await.expect("token JSON"))
}

/// Registers a confidential code client with refresh tokens for `scope` at [`CB`]:
/// the registration answer and the client.
async fn code_client(app: &TestApp, bearer: &str, scope: &str) -> (Value, CodeClient) {
    let v = registered(
        app,
        Some(bearer),
        &json!({
            "client_name": "Tenant portal",
            "redirect_uris": [CB],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": scope,
        }),
    )
    .await;
    let client = CodeClient {
        id: v["client_id"].as_str().unwrap().to_owned(),
        secret: Some(v["client_secret"].as_str().unwrap().to_owned()),
    };
    (v, client)
}

#[tokio::test]
async fn a_refresh_after_an_update_narrowed_the_scope_gets_only_the_new_scope() {
    let app = app_with(|_| {}).await;
    app.create_user("tess@example.com", "tenant", "correct horse battery");
    let (_, token) = initial_token(&app, &["--expires-in", "10m"]);
    let (v, client) = code_client(&app, &token, "openid tenant:read").await;
    let tokens = app
        .user_tokens(
            &client,
            CB,
            "openid tenant:read",
            "tess@example.com",
            "correct horse battery",
        )
        .await;
    let rt = tokens["refresh_token"].as_str().expect("a refresh token");
    assert_eq!(
        app.get("/api/tenants", tokens["access_token"].as_str())
            .await
            .status(),
        200
    );

    // The client's own update drops tenant:read.
    let res = manage(
        &app,
        reqwest::Method::PUT,
        v["registration_client_uri"].as_str().unwrap(),
        v["registration_access_token"].as_str(),
        Some(&json!({
            "client_id": client.id,
            "redirect_uris": [CB],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid",
        })),
    )
    .await;
    assert_eq!(res.status(), 200);

    // The refresh yields only what the client is registered for now.
    let (status, body) = refresh(&app, &client, rt).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "openid", "{body}");
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(
        crate::helpers::jwt_part(access, 1)["scope"],
        "openid",
        "the access token carries no removed scope"
    );
    assert_eq!(
        app.get("/api/tenants", Some(access)).await.status(),
        403,
        "the API refuses the removed scope"
    );
}

/// Where a browser with `jar` ends up after `/authorize` for `client_id` at
/// `redirect_uri`: `Ok(callback)` when it is sent back to the client at once (consent
/// remembered), `Err(html)` when a page of this server (the consent page) is shown.
async fn authorize_with_session(
    app: &TestApp,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    jar: &mut crate::helpers::Jar,
) -> Result<String, String> {
    let (_, challenge) = crate::helpers::pkce_pair();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", "st")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let mut next = format!("/authorize?{query}");
    for _ in 0..5 {
        let res = app.browser_get(&next, jar).await;
        jar.store(&res);
        match crate::helpers::location(&res) {
            Some(to) if to.starts_with('/') || to.starts_with(&app.base) => next = to,
            Some(to) => return Ok(to),
            None => return Err(res.text().await.expect("a page")),
        }
    }
    panic!("too many redirects from /authorize");
}

#[tokio::test]
async fn an_update_that_moves_the_redirect_uri_asks_every_user_to_consent_again() {
    let app = app_with(|_| {}).await;
    app.create_user("tess@example.com", "tenant", "correct horse battery");
    let (_, token) = initial_token(&app, &["--expires-in", "10m"]);
    let (v, client) = code_client(&app, &token, "openid tenant:read").await;
    let uri = v["registration_client_uri"].as_str().unwrap().to_owned();
    let scope = "openid tenant:read";

    // The user approves once; the next authorization skips the consent page.
    let mut jar = crate::helpers::Jar::default();
    let (_, challenge) = crate::helpers::pkce_pair();
    let first = format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={CB}&scope=openid%20tenant%3Aread&state=s&code_challenge={challenge}&code_challenge_method=S256",
        client.id
    );
    let back = app
        .sign_in_through_pages(
            &first,
            "tess@example.com",
            "correct horse battery",
            "approve",
            &mut jar,
        )
        .await;
    assert!(back.starts_with(CB), "{back}");
    let again = authorize_with_session(&app, &client.id, CB, scope, &mut jar).await;
    assert!(
        again.is_ok_and(|to| to.starts_with(CB)),
        "consent remembered"
    );

    // An update that changes only informational metadata keeps the consent.
    let mut body = json!({
        "client_id": client.id,
        "client_name": "Tenant portal",
        "redirect_uris": [CB],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": scope,
        "contacts": ["ops@example.com"],
    });
    let res = manage(
        &app,
        reqwest::Method::PUT,
        &uri,
        v["registration_access_token"].as_str(),
        Some(&body),
    )
    .await;
    assert_eq!(res.status(), 200);
    let rat = res.json::<Value>().await.unwrap()["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let again = authorize_with_session(&app, &client.id, CB, scope, &mut jar).await;
    assert!(again.is_ok(), "a contacts change keeps the consent");

    // The registration access token moves the redirect URI to another host: the user
    // sees the consent page again.
    let moved = "https://other.example.com/steal";
    body["redirect_uris"] = json!([moved]);
    let res = manage(&app, reqwest::Method::PUT, &uri, Some(&rat), Some(&body)).await;
    assert_eq!(res.status(), 200);
    let shown = authorize_with_session(&app, &client.id, moved, scope, &mut jar).await;
    let html = shown.expect_err("the consent page is shown again, no code is sent");
    assert!(
        html.contains("name=\"decision\""),
        "the consent form: {html}"
    );
}

/// A public EC P-256 key set, as a `private_key_jwt` client registers it.
fn ec_jwks() -> Value {
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let public = pair.public_key().as_ref().to_vec();
    json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
    }]})
}

/// Registers `body` expecting a 400 `invalid_client_metadata`; returns its description.
async fn refused_metadata(app: &TestApp, bearer: &str, body: &Value) -> String {
    let res = register(app, Some(bearer), body).await;
    let status = res.status();
    let v: Value = res.json().await.expect("JSON");
    assert_eq!(status, 400, "{body} -> {v}");
    assert_eq!(v["error"], "invalid_client_metadata", "{body} -> {v}");
    v["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn under_fapi2_only_clients_the_token_endpoint_accepts_are_registered() {
    let app = spawn_app_with(crate::helpers::fapi2_options()).await;
    let (_, token) = initial_token(&app, &["--expires-in", "1h"]);
    let cc = json!({"grant_types": ["client_credentials"], "scope": "property:read"});

    // No method: the RFC 7591 default, client_secret_basic, is not allowed under FAPI 2.0,
    // so the method must be given (not a client that can never authenticate).
    let why = refused_metadata(&app, &token, &cc).await;
    assert!(
        why.contains("token_endpoint_auth_method is required"),
        "{why}"
    );
    for method in ["client_secret_basic", "client_secret_post", "none"] {
        let mut body = cc.clone();
        body["token_endpoint_auth_method"] = json!(method);
        if method == "none" {
            body = json!({"redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"});
        }
        let why = refused_metadata(&app, &token, &body).await;
        assert!(why.contains("not accepted"), "{method}: {why}");
    }
    // No mutual-TLS listener here: no certificate methods either.
    let mut tls = cc.clone();
    tls["token_endpoint_auth_method"] = json!("tls_client_auth");
    tls["tls_client_auth_subject_dn"] = json!("CN=bot");
    refused_metadata(&app, &token, &tls).await;
    assert!(clients(&app).is_empty(), "nothing was stored");

    // private_key_jwt is accepted, and the answer says PAR is required.
    let mut body = cc.clone();
    body["token_endpoint_auth_method"] = json!("private_key_jwt");
    body["jwks"] = ec_jwks();
    let v = registered(&app, Some(&token), &body).await;
    assert_eq!(v["token_endpoint_auth_method"], "private_key_jwt");
    assert!(v.get("client_secret").is_none());
    assert_eq!(v["require_pushed_authorization_requests"], true, "{v}");
    // FAPI 2.0 SP §5.4.1: no RS256. Without a choice, ID tokens are ES256 (and the answer
    // says so); RS256 for ID tokens or assertions is refused.
    assert_eq!(v["id_token_signed_response_alg"], "ES256", "{v}");
    for (member, alg) in [
        ("id_token_signed_response_alg", "RS256"),
        ("token_endpoint_auth_signing_alg", "RS256"),
    ] {
        let mut rs256 = body.clone();
        rs256[member] = json!(alg);
        let why = refused_metadata(&app, &token, &rs256).await;
        assert!(why.contains(member) && why.contains("fapi2"), "{why}");
    }
}

#[tokio::test]
async fn without_mutual_tls_certificate_methods_and_bound_tokens_are_refused() {
    let app = app_with(|_| {}).await;
    let (_, token) = initial_token(&app, &["--expires-in", "1h"]);
    let cc = json!({"grant_types": ["client_credentials"], "scope": "property:read"});
    let mut tls = cc.clone();
    tls["token_endpoint_auth_method"] = json!("tls_client_auth");
    tls["tls_client_auth_subject_dn"] = json!("CN=bot");
    let why = refused_metadata(&app, &token, &tls).await;
    assert!(why.contains("not accepted"), "{why}");
    let mut bound = cc.clone();
    bound["tls_client_certificate_bound_access_tokens"] = json!(true);
    let why = refused_metadata(&app, &token, &bound).await;
    assert!(why.contains("mutual TLS"), "{why}");
    assert!(clients(&app).is_empty(), "nothing was stored");
    // The default method is fine here, and PAR is not required of this client.
    let v = registered(&app, Some(&token), &cc).await;
    assert_eq!(v["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(v["require_pushed_authorization_requests"], false);
}

#[tokio::test]
async fn invisible_or_bidi_spoofed_names_are_refused_and_consent_shows_the_redirect_host() {
    let app = app_with(|_| {}).await;
    app.create_user("tess@example.com", "tenant", "correct horse battery");
    let (_, token) = initial_token(&app, &["--expires-in", "1h"]);
    for name in [
        "\u{200b}\u{200b}",
        "abc\u{202e}gnp.exe",
        "Portal\u{2066}",
        "\u{feff}Portal",
        "\u{3164}",
    ] {
        let mut body = machine("property:read");
        body["client_name"] = json!(name);
        let why = refused_metadata(&app, &token, &body).await;
        assert!(why.contains("client_name"), "{name:?}: {why}");
    }
    assert!(clients(&app).is_empty(), "nothing was stored");
    // The CLI parses names with the same rule.
    let out = app.cli(&[
        "client",
        "create",
        "--name",
        "abc\u{202e}gnp.exe",
        "--grant",
        "client_credentials",
        "--scope",
        "property:read",
    ]);
    assert!(!out.status.success(), "the CLI refuses it too");
    assert!(clients(&app).is_empty());

    // The consent page names the host the code will be sent to.
    let (_, client) = code_client(&app, &token, "openid tenant:read").await;
    let mut jar = crate::helpers::Jar::default();
    let (_, challenge) = crate::helpers::pkce_pair();
    let authorize = format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={CB}&scope=openid%20tenant%3Aread&state=s&code_challenge={challenge}&code_challenge_method=S256",
        client.id
    );
    let res = app.browser_get(&authorize, &jar).await;
    let login = crate::helpers::location(&res).expect("to the login page");
    let res = app.browser_get(&login, &jar).await;
    jar.store(&res);
    let html = res.text().await.unwrap();
    let csrf = crate::helpers::hidden_input(&html, "csrf").unwrap();
    let req = crate::helpers::hidden_input(&html, "req").unwrap();
    let res = app
        .browser_post(
            "/login",
            &[
                ("csrf", &csrf),
                ("req", &req),
                ("email", "tess@example.com"),
                ("password", "correct horse battery"),
            ],
            &jar,
        )
        .await;
    jar.store(&res);
    let consent = crate::helpers::location(&res).expect("to the consent page");
    let html = app.browser_get(&consent, &jar).await.text().await.unwrap();
    assert!(
        html.contains("id=\"redirect-host\"") && html.contains("<strong>app.example.com</strong>"),
        "the consent page shows where the code goes: {html}"
    );
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_refused() {
    let app = app_with(|_| {}).await;
    let (_, token) = initial_token(&app, &["--expires-in", "1h"]);
    // serde would read an array positionally as the struct (RFC 7591 §3.1 asks for an
    // object): [client_id, client_secret, redirect_uris].
    for body in [
        json!([null, null, [CB]]),
        json!("redirect_uris"),
        json!(null),
        json!(7),
    ] {
        refused_metadata(&app, &token, &body).await;
    }
    assert!(clients(&app).is_empty(), "nothing was stored");
    let v = registered(&app, Some(&token), &machine("property:read")).await;
    let id = v["client_id"].as_str().unwrap();
    let uri = v["registration_client_uri"].as_str().unwrap();
    let rat = v["registration_access_token"].as_str().unwrap();
    let res = manage(
        &app,
        reqwest::Method::PUT,
        uri,
        Some(rat),
        Some(&json!([id])),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_client_metadata"
    );
    // Whitespace before the object is still JSON.
    let res = app
        .http
        .post(format!("{}/register", app.base))
        .header("content-type", "application/json")
        .bearer_auth(&token)
        .body(format!(" \n{}", machine("property:read")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn null_is_treated_as_omitted_for_every_field() {
    let app = app_with(|_| {}).await;
    let (_, token) = initial_token(&app, &["--expires-in", "1h"]);
    let mut body = machine("property:read");
    for field in [
        "redirect_uris",
        "contacts",
        "require_pushed_authorization_requests",
        "dpop_bound_access_tokens",
        "tls_client_certificate_bound_access_tokens",
        "logo_uri",
        "response_types",
    ] {
        body[field] = Value::Null;
    }
    let v = registered(&app, Some(&token), &body).await;
    assert_eq!(v["redirect_uris"], json!([]));
    assert_eq!(v["require_pushed_authorization_requests"], false);
    assert!(v.get("contacts").is_none());
    // The same in an update (RFC 7592 §2.2).
    body["client_id"] = v["client_id"].clone();
    let res = manage(
        &app,
        reqwest::Method::PUT,
        v["registration_client_uri"].as_str().unwrap(),
        v["registration_access_token"].as_str(),
        Some(&body),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

#[tokio::test]
async fn an_http_redirect_uri_is_refused_without_offering_localhost() {
    let app = app_with(|_| {}).await;
    let (_, token) = initial_token(&app, &["--expires-in", "1h"]);
    let res = register(
        &app,
        Some(&token),
        &json!({"redirect_uris": ["http://app.example.com/cb"]}),
    )
    .await;
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "invalid_redirect_uri");
    let why = v["error_description"].as_str().unwrap();
    assert!(
        why.contains("127.0.0.1") && why.contains("not localhost"),
        "{why}"
    );
    assert!(!why.contains("and localhost"), "{why}");
}

#[tokio::test]
async fn a_client_id_that_is_not_utf8_is_the_same_401_as_an_unknown_one() {
    let app = app_with(|_| {}).await;
    let (_, token) = initial_token(&app, &["--expires-in", "1h"]);
    let v = registered(&app, Some(&token), &machine("property:read")).await;
    let rat = v["registration_access_token"].as_str().unwrap();
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let res = manage(
            &app,
            method.clone(),
            &format!("{}/register/%FF", app.base),
            Some(rat),
            (method == reqwest::Method::PUT).then_some(&json!({})),
        )
        .await;
        assert_eq!(res.status(), 401, "{method}");
        assert!(crate::helpers::www_authenticate(&res).contains("invalid_token"));
        assert_eq!(
            res.headers()["content-type"].to_str().unwrap(),
            "application/json",
            "{method}"
        );
        assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_token");
    }
}

/// Runs `sql` on the test server's SQLite database (beside the server's connections).
async fn sqlite_exec(app: &TestApp, sql: &str) {
    let path = app.data_dir.path().join("deedbolt.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
    let pool = sqlx::SqlitePool::connect_with(options)
        .await
        .expect("open the database");
    sqlx::query(sql).execute(&pool).await.expect(sql);
    pool.close().await;
}

#[tokio::test]
async fn a_registration_whose_store_write_fails_spends_no_initial_token_use() {
    let app = app_with(|_| {}).await;
    let (_, token) = initial_token(&app, &["--expires-in", "1h", "--max-uses", "1"]);
    sqlite_exec(
        &app,
        "CREATE TRIGGER fail_clients BEFORE INSERT ON clients \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    )
    .await;
    let res = register(&app, Some(&token), &machine("property:read")).await;
    assert_eq!(res.status(), 500);
    assert!(clients(&app).is_empty());
    assert_eq!(
        tokens(&app)[0]["uses"],
        0,
        "the failed registration spent no use"
    );
    sqlite_exec(&app, "DROP TRIGGER fail_clients").await;
    // The one use is still there.
    registered(&app, Some(&token), &machine("property:read")).await;
    assert_eq!(tokens(&app)[0]["uses"], 1);
    assert_eq!(clients(&app).len(), 1);
}
