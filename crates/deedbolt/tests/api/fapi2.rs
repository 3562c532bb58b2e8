//! `--profile fapi2` through the real server: what the FAPI 2.0 Security Profile refuses
//! (shared-secret and public clients, authorization requests that were not pushed, access
//! tokens that are not sender-constrained), the code lifetime, and discovery. The positive
//! end-to-end flow (private_key_jwt + DPoP + PAR) needs those features and lives with them.

use deedbolt_core::audit::{AuditFilter, AuditKind};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::flow::{self, AuthorizationRequest, Prompt};
use deedbolt_core::ids::ClientId;
use deedbolt_core::par::RequestUri;
use deedbolt_core::ports::{AuditStore, FlowStore, PushedRequestStore};
use serde_json::Value;

use crate::helpers::{
    fapi2_options, location, pkce_pair, spawn_app_with, unix_now, CodeClient, Jar, TestApp,
};
use crate::par::{authorize_uri, callback, open_store, push, Pushed, CB, PASSWORD, TENANT};

async fn fapi2_app() -> TestApp {
    let app = spawn_app_with(fapi2_options()).await;
    app.create_user(TENANT, "tenant", PASSWORD);
    app
}

async fn expect_invalid_client(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), 401, "{what}");
    let v: Value = res.json().await.expect("error JSON");
    assert_eq!(v["error"], "invalid_client", "{what}: {v}");
}

#[tokio::test]
async fn discovery_reflects_the_profile() {
    let app = fapi2_app().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc: Value = app.get(path, None).await.json().await.expect("JSON");
        assert_eq!(doc["require_pushed_authorization_requests"], true, "{path}");
        assert_eq!(
            doc["pushed_authorization_request_endpoint"],
            format!("{}/par", app.base)
        );
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(
            doc["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        for key in [
            "token_endpoint_auth_methods_supported",
            "revocation_endpoint_auth_methods_supported",
            "introspection_endpoint_auth_methods_supported",
        ] {
            let methods = doc[key].as_array().expect(key);
            assert!(
                methods.iter().all(|m| [
                    "private_key_jwt",
                    "tls_client_auth",
                    "self_signed_tls_client_auth"
                ]
                .contains(&m.as_str().unwrap_or(""))),
                "{path} {key}: {methods:?}"
            );
        }
    }
}

#[tokio::test]
async fn secret_and_public_clients_are_refused_wherever_clients_authenticate() {
    let app = fapi2_app().await;
    let machine = app.create_client("tenant:read");
    let secret = app.create_code_client("tenant:read", &[CB], false, &[]);
    let public = app.create_code_client("tenant:read", &[CB], true, &[]);
    expect_invalid_client(
        app.post_token(Some(&machine), "grant_type=client_credentials")
            .await,
        "client_secret_basic at /token",
    )
    .await;
    expect_invalid_client(
        app.post_token(
            None,
            &format!(
                "grant_type=client_credentials&client_id={}&client_secret={}",
                machine.id, machine.secret
            ),
        )
        .await,
        "client_secret_post at /token",
    )
    .await;
    expect_invalid_client(
        app.post_token(
            None,
            &format!(
                "grant_type=authorization_code&client_id={}&code=x&redirect_uri={CB}&code_verifier={}",
                public.id,
                "v".repeat(43)
            ),
        )
        .await,
        "a public client at /token",
    )
    .await;
    let req = Pushed::new("tenant:read");
    expect_invalid_client(push(&app, &secret, &req).await, "a secret at /par").await;
    expect_invalid_client(push(&app, &public, &req).await, "a public client at /par").await;
    for endpoint in ["/revoke", "/introspect"] {
        let res = app
            .http
            .post(app.url(endpoint))
            .basic_auth(&machine.id, Some(&machine.secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("token=x")
            .send()
            .await
            .unwrap();
        expect_invalid_client(res, endpoint).await;
    }
    // Each refusal is a failed client authentication in the audit log.
    let store = open_store(&app).await;
    let failed = || async {
        store
            .search_audit(&AuditFilter {
                kind: Some(AuditKind::ClientAuthFailed),
                limit: 100,
                ..AuditFilter::default()
            })
            .await
            .unwrap()
    };
    crate::helpers::eventually("seven failed client authentications", || async {
        failed().await.len() >= 7
    })
    .await;
    let failed = failed().await;
    assert_eq!(failed.len(), 7, "{failed:?}");
    assert!(failed
        .iter()
        .all(|r| r.error.as_deref() == Some("invalid_client")));
}

#[tokio::test]
async fn an_authorization_request_that_was_not_pushed_is_refused() {
    let app = fapi2_app().await;
    let client = app.create_code_client("tenant:read", &[CB], false, &[]);
    let req = Pushed::new("tenant:read");
    let res = app
        .browser_get(&req.authorize_path(&client.id), &Jar::default())
        .await;
    assert_eq!(res.status(), 303);
    let params = callback(&location(&res).expect("redirect"));
    assert_eq!(params["error"], "invalid_request");
    assert_eq!(params["state"], req.state);
    assert_eq!(params["iss"], app.base);
}

/// A stored pushed request for `client` (what `/par` keeps after a private_key_jwt or
/// mutual-TLS push), and its reference.
async fn pushed_directly(app: &TestApp, client: &CodeClient) -> (String, String) {
    let (verifier, challenge) = pkce_pair();
    let request = AuthorizationRequest {
        client_id: ClientId::parse(&client.id).unwrap(),
        redirect_uri: CB.into(),
        scope: "tenant:read".parse().unwrap(),
        state: Some("st".into()),
        nonce: None,
        code_challenge: challenge,
        prompt: Prompt::Default,
    };
    let uri = RequestUri::generate().unwrap();
    open_store(app)
        .await
        .put_pushed(&uri.storage_key(), &request, UnixTime(unix_now() + 60))
        .await
        .unwrap();
    (uri.as_str().to_owned(), verifier)
}

#[tokio::test]
async fn codes_live_at_most_sixty_seconds() {
    let app = fapi2_app().await;
    let client = app.create_code_client("tenant:read", &[CB], false, &[]);
    let (uri, _) = pushed_directly(&app, &client).await;
    let before = unix_now();
    let back = app
        .sign_in_through_pages(
            &authorize_uri(&client.id, &uri),
            TENANT,
            PASSWORD,
            "approve",
            &mut Jar::default(),
        )
        .await;
    let params = callback(&back);
    assert_eq!(params["iss"], app.base);
    let grant = open_store(&app)
        .await
        .peek_code(&flow::code_hash(&params["code"]))
        .await
        .unwrap()
        .expect("the code is stored");
    let lifetime = grant.expires_at.0 - before;
    assert!(
        (1..=61).contains(&lifetime),
        "issued for {lifetime} s (at most 60, plus the second the sign-in took)"
    );
}

#[tokio::test]
async fn client_create_warns_about_clients_the_profile_refuses() {
    let app = fapi2_app().await;
    let create = |profile: &str, public: bool| {
        let mut args = vec![
            "--profile",
            profile,
            "client",
            "create",
            "--name",
            "spa",
            "--grant",
            "authorization_code",
            "--scope",
            "tenant:read",
            "--redirect-uri",
            CB,
        ];
        if public {
            args.push("--public");
        }
        let out = app.cli(&args);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for public in [false, true] {
        let stderr = create("fapi2", public);
        assert!(
            stderr.contains("warning: the fapi2 profile refuses"),
            "{stderr}"
        );
    }
    assert!(!create("default", false).contains("refuses"));
}
