//! Signing keys: rotation with the CLI while the server runs, the other algorithms, and
//! proof that the API checks claims (not just signatures) and only trusts stored keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use deedbolt::config::ServeOverrides;
use deedbolt_core::jose::{SigningAlg, SigningKey};
use serde_json::{json, Value};

use crate::helpers::{
    current_signing_key, eventually, jwt_part, spawn_app, spawn_app_with, unix_now,
    www_authenticate, Options, TestApp,
};

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    app.jwks().await["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// GET /api/properties with `token`: the status and the `WWW-Authenticate` challenge.
async fn api_with(app: &TestApp, token: &str) -> (u16, String) {
    let res = app.get("/api/properties", Some(token)).await;
    (res.status().as_u16(), www_authenticate(&res))
}

/// Asserts a 401 `invalid_token` whose description contains `reason`.
async fn assert_rejected(app: &TestApp, token: &str, reason: &str, what: &str) {
    let (status, challenge) = api_with(app, token).await;
    assert_eq!(status, 401, "{what}: expected 401, challenge {challenge}");
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge}"
    );
    assert!(
        challenge.contains(reason),
        "{what}: expected the reason to mention `{reason}`, got {challenge}"
    );
}

/// A JWS over `header` and `claims`, signed with `key` (whatever the header says).
fn sign_raw(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let mut out = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap());
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap()));
    let sig = key.sign_bytes(out.as_bytes()).unwrap();
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(sig));
    out
}

/// `keys rotate --json` with `extra` arguments: the `(alg, kid)` of each new key.
fn rotate(app: &TestApp, extra: &[&str]) -> Vec<(String, String)> {
    let mut args = vec!["keys", "rotate", "--json"];
    args.extend(extra);
    app.cli_json(&args)
        .as_array()
        .expect("rotate prints an array")
        .iter()
        .map(|k| {
            (
                k["alg"].as_str().expect("alg").to_owned(),
                k["kid"].as_str().expect("kid").to_owned(),
            )
        })
        .collect()
}

fn keys_list(app: &TestApp) -> Vec<Value> {
    app.cli_json(&["keys", "list", "--json"])
        .as_array()
        .expect("keys list prints an array")
        .clone()
}

#[tokio::test]
async fn rotation_while_running_publishes_the_new_key_and_keeps_old_tokens_valid() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let token_a = app.access_token(&creds, None).await;
    let kid_a = jwt_part(&token_a, 0)["kid"].as_str().unwrap().to_owned();
    let before = jwks_kids(&app).await;
    assert_eq!(before.len(), 3, "a key per algorithm: {before:?}");
    assert!(before.contains(&kid_a));

    // Without --alg every algorithm's key is rotated.
    let rotated = rotate(&app, &[]);
    let algs: Vec<&str> = rotated.iter().map(|(alg, _)| alg.as_str()).collect();
    assert_eq!(algs, ["ES256", "RS256", "EdDSA"]);
    let kid_b = rotated[0].1.clone();
    assert_ne!(kid_a, kid_b);
    let new_kids: Vec<String> = rotated.iter().map(|(_, kid)| kid.clone()).collect();

    let (app_ref, before_ref, new_ref, b) = (&app, &before, &new_kids, &kid_b);
    eventually(
        "the JWKS publishes the old and the new keys",
        || async move {
            let kids = jwks_kids(app_ref).await;
            kids.len() == 6
                && before_ref.iter().all(|k| kids.contains(k))
                && new_ref.iter().all(|k| kids.contains(k))
        },
    )
    .await;
    let creds_ref = &creds;
    eventually("new tokens are signed with the new key", || async move {
        let t = app_ref.access_token(creds_ref, None).await;
        jwt_part(&t, 0)["kid"] == b.as_str()
    })
    .await;

    let token_b = app.access_token(&creds, None).await;
    assert_eq!(jwt_part(&token_b, 0)["kid"], kid_b.as_str());
    assert_eq!(api_with(&app, &token_b).await.0, 200, "new token works");
    assert_eq!(
        api_with(&app, &token_a).await.0,
        200,
        "a token signed before the rotation keeps working until it expires"
    );

    let listed = keys_list(&app);
    assert_eq!(listed.len(), 6, "{listed:?}");
    let current: Vec<&Value> = listed.iter().filter(|k| k["status"] == "current").collect();
    assert_eq!(
        current.len(),
        3,
        "one current key per algorithm: {listed:?}"
    );
    for (alg, kid) in &rotated {
        assert!(
            current
                .iter()
                .any(|k| k["kid"] == kid.as_str() && k["alg"] == alg.as_str()),
            "{alg} {kid} is current: {listed:?}"
        );
    }
    let old = listed
        .iter()
        .find(|k| k["kid"] == kid_a.as_str())
        .expect("old key listed");
    assert_eq!(old["status"], "retired");
    assert!(old["retired_at"].is_i64(), "{old}");
    assert!(current.iter().all(|k| k["retired_at"].is_null()));
    for k in &listed {
        assert_eq!(k["sealed"], false, "development mode: {k}");
        let text = k.to_string();
        assert!(
            !text.contains("private"),
            "no private material listed: {text}"
        );
    }
}

#[tokio::test]
async fn tokens_signed_by_a_key_not_in_the_store_are_rejected() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let real = app.access_token(&creds, None).await;
    let claims = jwt_part(&real, 1);
    let real_kid = jwt_part(&real, 0)["kid"].clone();

    for alg in SigningAlg::ALL {
        let (foreign, _der) = SigningKey::generate(alg).unwrap();
        // Honest about its own kid: not a known key.
        let forged = foreign.sign_jwt("at+jwt", &claims).unwrap();
        assert_rejected(&app, &forged, "known key", &format!("foreign {alg} key")).await;
        // Claiming the real key's kid: the signature does not verify (or, for another
        // algorithm, the algorithm does not match the pinned key).
        let forged = sign_raw(
            &foreign,
            &json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": real_kid}),
            &claims,
        );
        let reason = if alg == SigningAlg::ES256 {
            "signature"
        } else {
            "algorithm"
        };
        assert_rejected(
            &app,
            &forged,
            reason,
            &format!("foreign {alg} key posing as the real kid"),
        )
        .await;
    }
    assert_eq!(api_with(&app, &real).await.0, 200);
}

#[tokio::test]
async fn the_api_checks_claims_not_just_signatures() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let real = app.access_token(&creds, None).await;
    let claims = jwt_part(&real, 1);
    let key = current_signing_key(app.data_dir.path(), None).await;
    assert_eq!(jwt_part(&real, 0)["kid"], key.kid().as_str());

    // Control: the same claims re-signed with the real key are accepted, so every
    // rejection below is due to the one claim or header that was changed.
    let resigned = key.sign_jwt("at+jwt", &claims).unwrap();
    assert_eq!(api_with(&app, &resigned).await.0, 200, "control");

    let now = unix_now();
    let with = |k: &str, v: Value| {
        let mut c = claims.clone();
        c[k] = v;
        c
    };
    let with2 = |(k1, v1): (&str, i64), (k2, v2): (&str, i64)| {
        let mut c = claims.clone();
        c[k1] = json!(v1);
        c[k2] = json!(v2);
        c
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired an hour ago",
            key.sign_jwt("at+jwt", &with2(("exp", now - 3600), ("iat", now - 4500)))
                .unwrap(),
            "expired",
        ),
        (
            "wrong audience",
            key.sign_jwt("at+jwt", &with("aud", json!("https://other.example/api")))
                .unwrap(),
            "audience",
        ),
        (
            "wrong issuer",
            key.sign_jwt("at+jwt", &with("iss", json!("https://evil.example")))
                .unwrap(),
            "issuer",
        ),
        (
            "typ JWT (an ID token or other JWT, not an access token)",
            key.sign_jwt("JWT", &claims).unwrap(),
            "typ",
        ),
        (
            "issued an hour in the future",
            key.sign_jwt("at+jwt", &with2(("iat", now + 3600), ("exp", now + 4500)))
                .unwrap(),
            "not valid yet",
        ),
        (
            "not before an hour from now",
            key.sign_jwt("at+jwt", &with("nbf", json!(now + 3600)))
                .unwrap(),
            "not valid yet",
        ),
        (
            "no exp claim",
            key.sign_jwt("at+jwt", &{
                let mut c = claims.clone();
                c.as_object_mut().unwrap().remove("exp");
                c
            })
            .unwrap(),
            "claims",
        ),
    ];
    for (what, token, reason) in cases {
        assert_rejected(&app, &token, reason, what).await;
    }
}

#[tokio::test]
async fn rotating_one_algorithm_retires_only_its_key() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let first = app.access_token(&creds, None).await;
    assert_eq!(jwt_part(&first, 0)["alg"], "ES256");
    let first_kid = jwt_part(&first, 0)["kid"].as_str().unwrap().to_owned();
    let mut kids = jwks_kids(&app).await;

    // EdDSA and RS256 only sign ID tokens here: access tokens keep the ES256 key.
    for (alg, kty) in [("EdDSA", "OKP"), ("RS256", "RSA")] {
        let rotated = rotate(&app, &["--alg", alg]);
        assert_eq!(rotated.len(), 1, "{rotated:?}");
        assert_eq!(rotated[0].0, alg);
        let kid = rotated[0].1.clone();
        let (app_ref, kid_ref) = (&app, &kid);
        eventually(&format!("the new {alg} key is published"), || async move {
            jwks_kids(app_ref).await.contains(kid_ref)
        })
        .await;
        let jwks = app.jwks().await;
        let jwk = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .expect("new key published")
            .clone();
        assert_eq!(jwk["alg"], alg);
        assert_eq!(jwk["kty"], kty);
        let token = app.access_token(&creds, None).await;
        assert_eq!(jwt_part(&token, 0)["kid"], first_kid.as_str());
        kids.push(kid);
    }

    let rotated = rotate(&app, &["--alg", "ES256"]);
    let es_kid = rotated[0].1.clone();
    let (app_ref, creds_ref, kid_ref) = (&app, &creds, &es_kid);
    eventually(
        "access tokens signed with the new ES256 key",
        || async move {
            let t = app_ref.access_token(creds_ref, None).await;
            jwt_part(&t, 0)["kid"] == kid_ref.as_str()
        },
    )
    .await;
    kids.push(es_kid.clone());
    let token = app.access_token(&creds, None).await;
    assert_eq!(jwt_part(&token, 0)["typ"], "at+jwt");
    assert_eq!(api_with(&app, &token).await.0, 200);
    // Every earlier token still verifies: all retired keys stay published.
    assert_eq!(api_with(&app, &first).await.0, 200);
    let published = jwks_kids(&app).await;
    for kid in &kids {
        assert!(published.contains(kid), "{kid} missing from {published:?}");
    }

    let listed = keys_list(&app);
    assert_eq!(listed.len(), kids.len());
    let current: Vec<&Value> = listed.iter().filter(|k| k["status"] == "current").collect();
    assert_eq!(current.len(), 3, "{listed:?}");
    for alg in ["ES256", "RS256", "EdDSA"] {
        assert_eq!(
            current.iter().filter(|k| k["alg"] == alg).count(),
            1,
            "one current {alg} key: {listed:?}"
        );
    }
    assert!(current.iter().any(|k| k["kid"] == es_kid.as_str()));
    assert_eq!(
        listed.iter().filter(|k| k["status"] == "retired").count(),
        3
    );
}

#[tokio::test]
async fn rotate_with_an_unknown_algorithm_is_refused() {
    let app = spawn_app().await;
    for alg in ["HS256", "none", "es256"] {
        let out = app.cli(&["keys", "rotate", "--alg", alg, "--json"]);
        assert!(!out.status.success(), "--alg {alg} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(alg), "stderr names the value: {stderr}");
    }
    assert_eq!(keys_list(&app).len(), 3, "no key was made");
}

#[tokio::test]
async fn servers_configured_for_eddsa_or_rs256_issue_such_access_tokens() {
    for (alg, algorithm) in [
        ("EdDSA", jsonwebtoken::Algorithm::EdDSA),
        ("RS256", jsonwebtoken::Algorithm::RS256),
    ] {
        let app = spawn_app_with(Options {
            overrides: ServeOverrides {
                signing_alg: Some(alg.into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .await;
        let creds = app.create_client("property:read");
        let token = app.access_token(&creds, None).await;
        let header = jwt_part(&token, 0);
        assert_eq!(header["alg"], alg);

        // Verify independently with the published key of that kid.
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(app.jwks().await).unwrap();
        let jwk = jwks
            .find(header["kid"].as_str().unwrap())
            .expect("the token's key is published");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(algorithm);
        validation.set_issuer(&[&app.base]);
        validation.set_audience(&[format!("{}/api", app.base)]);
        jsonwebtoken::decode::<Value>(&token, &key, &validation).expect("verifies with the JWKS");

        assert_eq!(api_with(&app, &token).await.0, 200);
        app.stop().await;
    }
}
