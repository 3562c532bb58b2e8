//! The token endpoint with client credentials (RFC 6749 §2.3.1, §4.4, §5; RFC 9068).

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::helpers::{jwt_part, spawn_app, Creds};

async fn json(res: reqwest::Response) -> Value {
    res.json().await.expect("JSON body")
}

#[tokio::test]
async fn client_secret_basic_gets_an_rfc9068_access_token() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read financial:read");
    let res = app
        .post_token(Some(&creds), "grant_type=client_credentials")
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let body = json(res).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["scope"], "property:read financial:read");
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token for client credentials"
    );

    let token = body["access_token"].as_str().unwrap();
    let header = jwt_part(token, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");

    // Verify with the published JWKS, independently of deedbolt's own guard.
    let jwks = app.jwks().await;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("token kid is published");
    let key =
        DecodingKey::from_ec_components(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap())
            .unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[&app.base]);
    validation.set_audience(&[format!("{}/api", app.base)]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("token verifies against the JWKS")
        .claims;
    assert_eq!(claims["sub"], creds.id.as_str());
    assert_eq!(claims["client_id"], creds.id.as_str());
    assert_eq!(claims["scope"], "property:read financial:read");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
}

#[tokio::test]
async fn client_secret_post_works_too() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        creds.id, creds.secret
    );
    let res = app.post_token(None, &form).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["scope"], "property:read");
}

#[tokio::test]
async fn each_token_has_a_fresh_jti() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let a = app.access_token(&creds, None).await;
    let b = app.access_token(&creds, None).await;
    assert_ne!(jwt_part(&a, 1)["jti"], jwt_part(&b, 1)["jti"]);
}

#[tokio::test]
async fn requested_scope_may_narrow_but_not_widen() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read financial:read");
    let res = app
        .post_token(
            Some(&creds),
            "grant_type=client_credentials&scope=financial%3Aread",
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["scope"], "financial:read");

    for scope in [
        "property:write",
        "property:read+tenant:read",
        "admin",
        "property:read++financial:read",
    ] {
        let res = app
            .post_token(
                Some(&creds),
                &format!("grant_type=client_credentials&scope={scope}"),
            )
            .await;
        assert_eq!(res.status(), 400, "scope {scope}");
        assert_eq!(json(res).await["error"], "invalid_scope", "scope {scope}");
    }
}

async fn assert_invalid_client(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic realm="));
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_client");
    body
}

#[tokio::test]
async fn wrong_secret_and_unknown_client_look_the_same() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let wrong = Creds {
        id: creds.id.clone(),
        secret: "dbs_wrong".into(),
    };
    let unknown = Creds {
        id: "dbc_nobody".into(),
        secret: creds.secret.clone(),
    };
    let a = assert_invalid_client(
        app.post_token(Some(&wrong), "grant_type=client_credentials")
            .await,
    )
    .await;
    let b = assert_invalid_client(
        app.post_token(Some(&unknown), "grant_type=client_credentials")
            .await,
    )
    .await;
    assert_eq!(a, b);
}

#[tokio::test]
async fn missing_credentials_are_invalid_client() {
    let app = spawn_app().await;
    assert_invalid_client(app.post_token(None, "grant_type=client_credentials").await).await;
    // client_id alone is not authentication for a confidential client.
    assert_invalid_client(
        app.post_token(None, "grant_type=client_credentials&client_id=dbc_x")
            .await,
    )
    .await;
}

#[tokio::test]
async fn bad_base64_in_basic_is_invalid_client() {
    let app = spawn_app().await;
    let res = app
        .http
        .post(format!("{}/token", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", "Basic %%%not-base64%%%")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_invalid_client(res).await;
}

#[tokio::test]
async fn basic_credentials_are_form_url_decoded() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    // RFC 6749 §2.3.1: id and secret are form-url-encoded before Basic encoding. Our ids and
    // secrets only use unreserved characters, so percent-encoding one of them (the `_`)
    // must decode to the same credentials.
    let encoded = Creds {
        id: creds.id.replacen('_', "%5F", 1),
        secret: creds.secret.replacen('_', "%5F", 1),
    };
    let res = app
        .post_token(Some(&encoded), "grant_type=client_credentials")
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn two_authentication_methods_at_once_are_refused() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let form = format!(
        "grant_type=client_credentials&client_secret={}",
        creds.secret
    );
    let res = app.post_token(Some(&creds), &form).await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["error"], "invalid_request");
}

#[tokio::test]
async fn repeated_parameter_is_invalid_request() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let res = app
        .post_token(
            Some(&creds),
            "grant_type=client_credentials&scope=property%3Aread&scope=property%3Aread",
        )
        .await;
    assert_eq!(res.status(), 400);
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_request");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("scope"));
}

#[tokio::test]
async fn grant_type_missing_or_unknown() {
    // (Known grants this client is not registered for are unauthorized_client; see below.)
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let res = app.post_token(Some(&creds), "scope=property%3Aread").await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["error"], "invalid_request");
    for grant in [
        "password",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "implicit",
    ] {
        let res = app
            .post_token(Some(&creds), &format!("grant_type={grant}"))
            .await;
        assert_eq!(res.status(), 400, "{grant}");
        assert_eq!(
            json(res).await["error"],
            "unsupported_grant_type",
            "{grant}"
        );
    }
}

#[tokio::test]
async fn wrong_content_type_is_invalid_request() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let res = app
        .http
        .post(format!("{}/token", app.base))
        .basic_auth(&creds.id, Some(&creds.secret))
        .header("content-type", "application/json")
        .body(r#"{"grant_type":"client_credentials"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["error"], "invalid_request");
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let form = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(70 * 1024)
    );
    let res = app.post_token(Some(&creds), &form).await;
    assert_eq!(res.status(), 413);
    assert_eq!(json(res).await["error"], "invalid_request");
}

#[tokio::test]
async fn unknown_parameters_are_ignored() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let res = app
        .post_token(
            Some(&creds),
            "grant_type=client_credentials&foo=bar&resource_x=1",
        )
        .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn errors_never_echo_the_secret() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope=bogus",
        creds.id, creds.secret
    );
    let res = app.post_token(None, &form).await;
    let text = res.text().await.unwrap();
    assert!(text.contains("invalid_scope"));
    assert!(!text.contains(&creds.secret));
}

#[tokio::test]
async fn get_on_token_endpoint_is_not_allowed() {
    let app = spawn_app().await;
    let res = app.get("/token?grant_type=client_credentials", None).await;
    assert_eq!(res.status(), 405);
}
