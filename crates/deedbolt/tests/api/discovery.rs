//! Discovery (RFC 8414 metadata, the JWKS of RFC 7517), health probes and the security
//! headers every response carries.

use serde_json::Value;

use crate::helpers::spawn_app;

const ALL_SCOPES: [&str; 13] = [
    "property:read",
    "property:write",
    "tenant:read",
    "tenant:write",
    "financial:read",
    "financial:write",
    "maintenance:request",
    "maintenance:manage",
    "openid",
    "profile",
    "email",
    "admin:read",
    "admin:write",
];

#[tokio::test]
async fn metadata_describes_this_server() {
    let app = spawn_app().await;
    let res = app
        .get("/.well-known/oauth-authorization-server", None)
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = res.json().await.unwrap();

    assert_eq!(doc["issuer"], app.base.as_str(), "issuer is the base URL");
    let issuer = doc["issuer"].as_str().unwrap();
    assert!(!issuer.ends_with('/'));
    assert_eq!(doc["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(doc["jwks_uri"], format!("{issuer}/jwks.json"));
    assert_eq!(doc["authorization_endpoint"], format!("{issuer}/authorize"));
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!(["authorization_code", "client_credentials", "refresh_token"])
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(doc["revocation_endpoint"], format!("{issuer}/revoke"));
    assert_eq!(
        doc["introspection_endpoint"],
        format!("{issuer}/introspect")
    );
    let mut methods: Vec<&str> = doc["token_endpoint_auth_methods_supported"]
        .as_array()
        .expect("token_endpoint_auth_methods_supported")
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    methods.sort_unstable();
    assert_eq!(
        methods,
        [
            "client_secret_basic",
            "client_secret_post",
            "none",
            "private_key_jwt"
        ]
    );
    let mut scopes: Vec<&str> = doc["scopes_supported"]
        .as_array()
        .expect("scopes_supported")
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    scopes.sort_unstable();
    let mut expected = ALL_SCOPES;
    expected.sort_unstable();
    assert_eq!(scopes, expected);
    // RFC 8414 §2: response_types_supported is REQUIRED.
    assert!(doc["response_types_supported"].is_array());

    // The advertised endpoints are the real ones.
    let jwks_path = doc["jwks_uri"].as_str().unwrap().replace(issuer, "");
    assert_eq!(app.get(&jwks_path, None).await.status(), 200);
    let creds = app.create_client("property:read");
    let res = app
        .http
        .post(doc["token_endpoint"].as_str().unwrap())
        .basic_auth(&creds.id, Some(&creds.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn jwks_publishes_public_keys_only() {
    let app = spawn_app().await;
    let res = app.get("/jwks.json", None).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let jwks: Value = res.json().await.unwrap();
    let keys = jwks["keys"].as_array().expect("keys array");
    assert_eq!(
        keys.len(),
        3,
        "a fresh server has one key per algorithm: {jwks}"
    );
    for key in keys {
        for member in ["kid", "alg", "kty"] {
            assert!(
                key[member].as_str().is_some_and(|s| !s.is_empty()),
                "{member} missing in {key}"
            );
        }
        assert_eq!(key["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
            assert!(
                key.get(private).is_none(),
                "private member `{private}` published in {key}"
            );
        }
    }
    let of = |alg: &str| {
        keys.iter()
            .find(|k| k["alg"] == alg)
            .unwrap_or_else(|| panic!("no {alg} key in {jwks}"))
    };
    assert_eq!(of("ES256")["kty"], "EC");
    assert_eq!(of("ES256")["crv"], "P-256");
    assert_eq!(of("RS256")["kty"], "RSA");
    assert_eq!(of("EdDSA")["kty"], "OKP");
    assert_eq!(of("EdDSA")["crv"], "Ed25519");

    // An access token's kid is the published ES256 key (the default --signing-alg).
    let creds = app.create_client("property:read");
    let token = app.access_token(&creds, None).await;
    assert_eq!(
        crate::helpers::jwt_part(&token, 0)["kid"],
        of("ES256")["kid"]
    );
}

#[tokio::test]
async fn health_and_readiness_probes_answer() {
    let app = spawn_app().await;
    let res = app.get("/healthz", None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "ok");
    let res = app.get("/readyz", None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "ready");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    let mut responses = Vec::new();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/jwks.json",
        "/healthz",
        "/readyz",
        "/api/properties",
        "/no-such-route",
    ] {
        responses.push((path.to_owned(), app.get(path, None).await));
    }
    responses.push((
        "POST /token (error)".to_owned(),
        app.post_token(None, "grant_type=client_credentials").await,
    ));
    for (what, res) in responses {
        let h = res.headers();
        assert_eq!(
            h.get("x-content-type-options").map(|v| v.to_str().unwrap()),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            h.get("x-frame-options").map(|v| v.to_str().unwrap()),
            Some("DENY"),
            "{what}"
        );
        assert_eq!(
            h.get("referrer-policy").map(|v| v.to_str().unwrap()),
            Some("no-referrer"),
            "{what}"
        );
        assert!(
            h.get("content-security-policy")
                .is_some_and(|v| v.to_str().unwrap().contains("default-src 'none'")),
            "{what}"
        );
    }
}
