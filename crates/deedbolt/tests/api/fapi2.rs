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
    fapi2_options, jwt_part, location, pkce_pair, spawn_app_with, unix_now, CodeClient, Jar,
    TestApp,
};
use crate::par::{approve_pushed, callback, open_store, push, Pushed, CB, PASSWORD, TENANT};

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

    // Whatever else is wrong with it (RFC 9126 §4 names invalid_request for any request
    // that was not pushed), once the redirect URI is the client's.
    for (what, req) in [
        (
            "a response type",
            Pushed::new("tenant:read").set("response_type", "token"),
        ),
        ("a scope", Pushed::new("financial:read")),
        ("PKCE", Pushed::new("tenant:read").without("code_challenge")),
    ] {
        let res = app
            .browser_get(&req.authorize_path(&client.id), &Jar::default())
            .await;
        assert_eq!(res.status(), 303, "{what}");
        let params = callback(&location(&res).expect("redirect"));
        assert_eq!(params["error"], "invalid_request", "{what}: {params:?}");
        assert!(
            params["error_description"].contains("pushed authorization requests"),
            "{what}: {params:?}"
        );
        assert_eq!(params["state"], req.state, "{what}");
    }
    // An unregistered redirect URI is still an error page, never a redirect.
    let req = Pushed::new("tenant:read").set("redirect_uri", "https://evil.example/cb");
    let res = app
        .browser_get(&req.authorize_path(&client.id), &Jar::default())
        .await;
    assert_eq!(res.status(), 400);
    assert!(location(&res).is_none());
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
        dpop_jkt: None,
        pushed_until: None,
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
    let params = approve_pushed(&app, &client.id, &uri).await;
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

// ---------------------------------------------------------------------------------------
// With a client the profile allows (private_key_jwt). Ignored until the private_key_jwt
// branch (i13-pkjwt) is merged: the client assertion below is plain RFC 7523, built here
// with jsonwebtoken, so the tests need no code from that branch, only the server side.
// ---------------------------------------------------------------------------------------

/// A P-256 key pair: the signing key for jsonwebtoken and the public JWK.
fn p256_key(kid: &str) -> (jsonwebtoken::EncodingKey, Value) {
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
    use base64::Engine as _;
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key");
    let pkcs8 = pair.to_pkcs8v1().expect("pkcs8");
    let public = pair.public_key().as_ref().to_vec(); // 0x04 || x || y
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": b64(&public[1..33]), "y": b64(&public[33..65]),
    });
    (jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()), jwk)
}

/// A `private_key_jwt` client of `app`, registered through the CLI with its public key.
async fn private_key_jwt_client(
    app: &TestApp,
    grants: &[&str],
) -> (CodeClient, jsonwebtoken::EncodingKey) {
    private_key_jwt_client_with(app, grants, "tenant:read", &[]).await
}

/// [`private_key_jwt_client`] with these scopes and more `client create` arguments.
async fn private_key_jwt_client_with(
    app: &TestApp,
    grants: &[&str],
    scope: &str,
    extra: &[&str],
) -> (CodeClient, jsonwebtoken::EncodingKey) {
    let (key, jwk) = p256_key("k1");
    let jwks_file = app.data_dir.path().join("pkjwt.jwks.json");
    std::fs::write(&jwks_file, serde_json::json!({ "keys": [jwk] }).to_string())
        .expect("write jwks");
    let mut args = vec![
        "client",
        "create",
        "--name",
        "pkjwt-client",
        "--grant",
        "authorization_code",
        "--scope",
        scope,
        "--redirect-uri",
        CB,
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        jwks_file.to_str().expect("path"),
        "--json",
    ];
    for g in grants {
        args.extend(["--grant", *g]);
    }
    args.extend(extra);
    let v = app.cli_json(&args);
    assert!(v.get("client_secret").is_none(), "no secret: {v}");
    let client = CodeClient {
        id: v["client_id"].as_str().expect("client_id").to_owned(),
        secret: None,
    };
    (client, key)
}

/// The RFC 7523 client-authentication parameters: an ES256 assertion with the issuer as
/// its only audience (FAPI 2.0 SP §5.3.2.1).
fn assertion_params(app: &TestApp, client_id: &str, key: &jsonwebtoken::EncodingKey) -> String {
    assertion_params_with(
        client_id,
        key,
        jsonwebtoken::Algorithm::ES256,
        app.base.as_str().into(),
    )
}

/// [`assertion_params`] with this header `alg` (the signature is made with ES256
/// whatever it says) and `aud`.
fn assertion_params_with(
    client_id: &str,
    key: &jsonwebtoken::EncodingKey,
    alg: jsonwebtoken::Algorithm,
    aud: Value,
) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    let now = unix_now();
    let claims = serde_json::json!({
        "iss": client_id, "sub": client_id, "aud": aud,
        "jti": crate::helpers::random_b64url(16), "iat": now, "exp": now + 60,
    });
    let mut jwt = jsonwebtoken::encode(&header, &claims, key).expect("sign");
    if alg != jsonwebtoken::Algorithm::ES256 {
        // Another alg in the header: the profile must refuse it before any key is tried.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(serde_json::json!({"alg": alg, "kid": "k1"}).to_string());
        let rest = jwt.split_once('.').expect("JWS").1.to_owned();
        jwt = format!("{header}.{rest}");
    }
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair(
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        )
        .append_pair("client_assertion", &jwt)
        .finish()
}

/// `POST /par` of `req` for the `private_key_jwt` client `client_id`, with an assertion
/// signed by `key`.
async fn push_signed(
    app: &TestApp,
    req: &Pushed,
    client_id: &str,
    key: &jsonwebtoken::EncodingKey,
) -> reqwest::Response {
    let form = format!(
        "{}&{}",
        req.form(&[]),
        assertion_params(app, client_id, key)
    );
    app.http
        .post(app.url("/par"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("PAR request")
}

/// The form redeeming `code` of the pushed request `req` (its verifier), with the client
/// authentication parameters `client_auth`.
fn code_form(code: &str, req: &Pushed, client_auth: &str) -> String {
    format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={}&{client_auth}",
        url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>(),
        req.verifier,
    )
}

/// `POST /token` with `form` and the DPoP proof `proof`.
async fn token_with_proof(app: &TestApp, form: String, proof: String) -> reqwest::Response {
    app.http
        .post(app.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("DPoP", proof)
        .body(form)
        .send()
        .await
        .expect("token request")
}

#[tokio::test]
async fn an_access_token_without_a_sender_constraint_is_refused() {
    let app = fapi2_app().await;
    let (client, key) = private_key_jwt_client(&app, &["client_credentials"]).await;
    let form = format!(
        "grant_type=client_credentials&{}",
        assertion_params(&app, &client.id, &key)
    );
    let res = app.post_token(None, &form).await;
    assert_eq!(
        res.status(),
        400,
        "authenticated, but no DPoP proof or certificate"
    );
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "invalid_request", "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("sender-constrained"),
        "{v}"
    );
    assert!(v.get("access_token").is_none());
}

#[tokio::test]
async fn a_private_key_jwt_client_pushes_and_gets_a_code_but_no_unbound_token() {
    let app = fapi2_app().await;
    let (client, key) = private_key_jwt_client(&app, &[]).await;
    let req = Pushed::new("tenant:read");
    let res = push_signed(&app, &req, &client.id, &key).await;
    let uri = crate::par::pushed_uri(res).await;
    let params = approve_pushed(&app, &client.id, &uri).await;
    assert_eq!(params["state"], req.state);
    let form = code_form(
        &params["code"],
        &req,
        &assertion_params(&app, &client.id, &key),
    );
    let res = app.post_token(None, &form).await;
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "invalid_request", "{v}");

    // The refusal came before the code was spent: the client adds a DPoP proof (first
    // learning the server nonce the profile requires) and redeems the same code.
    let redeem = || {
        code_form(
            &params["code"],
            &req,
            &assertion_params(&app, &client.id, &key),
        )
    };
    let dpop = crate::dpop::DpopKey::new();
    let res = token_with_proof(&app, redeem(), dpop.token_proof(&app)).await;
    assert_eq!(res.status(), 400);
    let nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "use_dpop_nonce", "{v}");
    let res = token_with_proof(&app, redeem(), dpop.token_proof_with_nonce(&app, &nonce)).await;
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["token_type"], "DPoP", "the code was still good: {v}");
}

#[tokio::test]
async fn client_assertions_name_the_issuer_as_a_string_and_are_never_rs256() {
    let app = fapi2_app().await;
    let (client, key) = private_key_jwt_client(&app, &["client_credentials"]).await;
    let app = &app;
    let grant = |params: String| {
        let form = format!("grant_type=client_credentials&{params}");
        async move {
            let res = app.post_token(None, &form).await;
            assert_eq!(res.status(), 401);
            let v: Value = res.json().await.expect("error JSON");
            assert_eq!(v["error"], "invalid_client", "{v}");
            v["error_description"].as_str().unwrap_or("").to_owned()
        }
    };
    let es256 = jsonwebtoken::Algorithm::ES256;
    // FAPI 2.0 SP §5.3.2.1: "as a string"; the default profile also takes [issuer].
    let d = grant(assertion_params_with(
        &client.id,
        &key,
        es256,
        serde_json::json!([app.base]),
    ))
    .await;
    assert!(d.contains("aud must be the issuer"), "{d}");
    // FAPI 2.0 SP §5.4.1: PS256, ES256 or EdDSA only.
    let d = grant(assertion_params_with(
        &client.id,
        &key,
        jsonwebtoken::Algorithm::RS256,
        app.base.as_str().into(),
    ))
    .await;
    assert!(d.contains("algorithm"), "{d}");
    // The same client with a good assertion passes authentication (and is then refused
    // only for the missing sender constraint).
    let form = format!(
        "grant_type=client_credentials&{}",
        assertion_params(app, &client.id, &key)
    );
    assert_eq!(app.post_token(None, &form).await.status(), 400);
}

#[tokio::test]
async fn a_client_with_rs256_id_tokens_is_refused_before_the_user_sees_anything() {
    let app = fapi2_app().await;
    // Explicitly RS256 (the CLI warns); without --id-token-alg the profile's default is ES256.
    let (client, key) = private_key_jwt_client_with(
        &app,
        &[],
        "openid tenant:read",
        &["--profile", "fapi2", "--id-token-alg", "RS256"],
    )
    .await;
    let req = Pushed::new("openid tenant:read");
    let res = push_signed(&app, &req, &client.id, &key).await;
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "unauthorized_client", "{v}");
    assert!(
        v["error_description"].as_str().unwrap().contains("RS256"),
        "{v}"
    );

    // Mended with the CLI: the same client then pushes.
    let out = app.cli(&["client", "set-id-token-alg", &client.id, "ES256"]);
    assert!(out.status.success(), "{out:?}");
    crate::helpers::eventually("the server sees the new algorithm", || async {
        push_signed(&app, &req, &client.id, &key).await.status() == 201
    })
    .await;

    let (es256_client, key) =
        private_key_jwt_client_with(&app, &[], "openid tenant:read", &["--profile", "fapi2"]).await;
    let res = push_signed(&app, &req, &es256_client.id, &key).await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let shown = app.cli_json(&["client", "show", &es256_client.id, "--json"]);
    assert_eq!(shown["id_token_signed_response_alg"], "ES256", "{shown}");
}

/// Waits until `app` has picked up `alg` as the ID-token algorithm of `client_id` (a
/// pushed `openid` request is accepted exactly when it is ES256).
async fn wait_for_id_token_alg(
    app: &TestApp,
    client_id: &str,
    key: &jsonwebtoken::EncodingKey,
    alg: &str,
) {
    crate::helpers::eventually("the server sees the new algorithm", || async {
        let probe = Pushed::new("openid tenant:read");
        let status = push_signed(app, &probe, client_id, key).await.status();
        (status == 201) == (alg == "ES256")
    })
    .await;
}

/// The ID-token algorithm is checked again wherever a request or a code is used, since it
/// can change after the push (`client set-id-token-alg`): a pushed request taken at
/// `/authorize`, and a code at `/token` (which keeps the code for when the client is
/// mended).
#[tokio::test]
async fn a_client_switched_to_rs256_after_the_push_gets_no_rs256_id_token() {
    let app = fapi2_app().await;
    let (client, key) =
        private_key_jwt_client_with(&app, &[], "openid tenant:read", &["--profile", "fapi2"]).await;
    let set_alg = |alg: &str| {
        let out = app.cli(&["client", "set-id-token-alg", &client.id, alg]);
        assert!(out.status.success(), "{out:?}");
    };
    // 1. Pushed as ES256, switched to RS256 before the browser arrives: refused at
    //    /authorize (a redirect with the error, the request being the client's).
    let req = Pushed::new("openid tenant:read");
    let uri = crate::par::pushed_uri(push_signed(&app, &req, &client.id, &key).await).await;
    set_alg("RS256");
    wait_for_id_token_alg(&app, &client.id, &key, "RS256").await;
    let res = app
        .browser_get(
            &crate::par::authorize_uri(&client.id, &uri),
            &Jar::default(),
        )
        .await;
    let params = callback(&location(&res).expect("redirect"));
    assert_eq!(params["error"], "unauthorized_client", "{params:?}");
    assert_eq!(params["state"], req.state);

    // 2. Authorized as ES256, switched to RS256 before the code is redeemed: refused at
    //    /token, and the code is kept.
    set_alg("ES256");
    wait_for_id_token_alg(&app, &client.id, &key, "ES256").await;
    let req = Pushed::new("openid tenant:read");
    let uri = crate::par::pushed_uri(push_signed(&app, &req, &client.id, &key).await).await;
    let params = approve_pushed(&app, &client.id, &uri).await;
    set_alg("RS256");
    wait_for_id_token_alg(&app, &client.id, &key, "RS256").await;
    let dpop = crate::dpop::DpopKey::new();
    let redeem = |proof: String| {
        let form = code_form(
            &params["code"],
            &req,
            &assertion_params(&app, &client.id, &key),
        );
        token_with_proof(&app, form, proof)
    };
    // The profile requires DPoP nonces: learn one first.
    let res = redeem(dpop.token_proof(&app)).await;
    let nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let res = redeem(dpop.token_proof_with_nonce(&app, &nonce)).await;
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"], "unauthorized_client", "{v}");
    set_alg("ES256");
    wait_for_id_token_alg(&app, &client.id, &key, "ES256").await;
    let res = redeem(dpop.token_proof_with_nonce(&app, &nonce)).await;
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["token_type"], "DPoP", "the code was kept: {v}");
    assert_eq!(jwt_part(v["id_token"].as_str().unwrap(), 0)["alg"], "ES256");
}

/// FAPI 2.0 SP §5.4.1 allows PS256, ES256 and EdDSA only: under `--profile fapi2` a proof
/// signed RS256 is refused, and discovery does not offer RS256.
#[tokio::test]
async fn under_fapi2_rs256_proofs_are_refused_and_not_advertised() {
    let app = spawn_app_with(fapi2_options()).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc: Value = app.get(path, None).await.json().await.unwrap();
        assert_eq!(
            doc["dpop_signing_alg_values_supported"],
            serde_json::json!(["ES256", "EdDSA", "PS256"]),
            "{path}"
        );
    }
    let (client, assertion_key) = private_key_jwt_client(&app, &["client_credentials"]).await;
    let request = |proof: String| {
        let form = format!(
            "grant_type=client_credentials&{}",
            assertion_params(&app, &client.id, &assertion_key)
        );
        token_with_proof(&app, form, proof)
    };
    // The profile requires nonces: learn one first.
    let es256 = crate::dpop::DpopKey::new();
    let res = request(es256.token_proof(&app)).await;
    let headers = crate::dpop::expect_error(res, 400, "use_dpop_nonce").await;
    let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
    let rs256 = crate::dpop::DpopKey::with_alg(deedbolt_core::jose::SigningAlg::RS256);
    let res = request(rs256.token_proof_with_nonce(&app, &nonce)).await;
    let headers = crate::dpop::expect_error(res, 400, "invalid_dpop_proof").await;
    let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
    let res = request(es256.token_proof_with_nonce(&app, &nonce)).await;
    assert_eq!(res.status(), 200, "ES256 is allowed");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    app.stop().await;
}

/// Clients made before the profile refused RS256 ID tokens (or under another profile) are
/// named when a fapi2 server starts (in the background, once it is up), with the command
/// that mends them.
#[test]
fn a_fapi2_server_names_clients_with_rs256_id_tokens_at_start() {
    use std::ffi::OsStr;
    let dir = tempfile::tempdir().unwrap();
    let created = crate::helpers::run_cli(
        dir.path(),
        None,
        &[
            "client",
            "create",
            "--name",
            "older",
            "--grant",
            "authorization_code",
            "--scope",
            "openid tenant:read",
            "--redirect-uri",
            CB,
            "--json",
        ],
    );
    assert!(created.status.success(), "{created:?}");
    let v: Value = serde_json::from_slice(&created.stdout).unwrap();
    let id = v["client_id"].as_str().unwrap().to_owned();
    assert_eq!(v["id_token_signed_response_alg"], "RS256");
    let mut server = crate::helpers::ServeProcess::start(
        &[
            OsStr::new("serve"),
            OsStr::new("--profile"),
            OsStr::new("fapi2"),
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
            OsStr::new("--data-dir"),
            dir.path().as_os_str(),
        ],
        &[],
    );
    server.wait_ready();
    // The check runs in the background once the server is up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let warned = loop {
        let warned = server
            .logs()
            .iter()
            .any(|l| l.contains("WARN") && l.contains(&id) && l.contains("set-id-token-alg"));
        if warned || std::time::Instant::now() > deadline {
            break warned;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    server.terminate();
    server.wait_exit(std::time::Duration::from_secs(10));
    assert!(warned, "{:#?}", server.logs());
}
