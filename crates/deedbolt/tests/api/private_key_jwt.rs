//! `private_key_jwt` client authentication (RFC 7523, OpenID Connect Core §9) through the
//! real server: clients registered with the CLI (`--auth-method private_key_jwt` with
//! `--jwks-file` or `--jwks-uri`), assertions signed here with jsonwebtoken, key sets
//! served over https by a local rustls server whose test CA the server trusts through
//! `--outbound-ca-file`, and panva's openid-client 5 signing its own assertions.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use deedbolt::config::ServeOverrides;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const SCOPE: &str = "property:read";

// ---------------------------------------------------------------------------------------
// Client keys and assertions
// ---------------------------------------------------------------------------------------

/// An ES256 key pair of a client: its public JWK and a signer.
struct ClientKey {
    kid: String,
    jwk: Value,
    encoding: EncodingKey,
}

impl ClientKey {
    fn generate(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let der = pair.to_pkcs8v1().unwrap();
        let public = pair.public_key().as_ref().to_vec();
        ClientKey {
            kid: kid.to_owned(),
            jwk: json!({
                "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
            }),
            encoding: EncodingKey::from_ec_der(der.as_ref()),
        }
    }

    fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    /// A correct assertion for `client_id` at `app`, adjusted by `edit`.
    fn assertion(&self, app: &TestApp, client_id: &str, edit: impl FnOnce(&mut Value)) -> String {
        let now = unix_now();
        let mut claims = json!({
            "iss": client_id, "sub": client_id, "aud": app.base,
            "iat": now, "exp": now + 60, "jti": random_b64url(16),
        });
        edit(&mut claims);
        self.sign(&claims)
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// `client_assertion_type=…&client_assertion=…` plus `rest`.
fn with_assertion(assertion: &str, rest: &str) -> String {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_assertion_type", ASSERTION_TYPE)
        .append_pair("client_assertion", assertion)
        .finish();
    if rest.is_empty() {
        form
    } else {
        format!("{rest}&{form}")
    }
}

async fn post_form(app: &TestApp, path: &str, form: String) -> reqwest::Response {
    app.http
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("request")
}

async fn client_credentials(app: &TestApp, assertion: &str) -> reqwest::Response {
    post_form(
        app,
        "/token",
        with_assertion(assertion, "grant_type=client_credentials"),
    )
    .await
}

/// Asserts a 401 `invalid_client`; returns its description.
async fn invalid_client(res: reqwest::Response, what: &str) -> String {
    assert_eq!(res.status(), 401, "{what}");
    let body: Value = res.json().await.expect("error JSON");
    assert_eq!(body["error"], "invalid_client", "{what}: {body}");
    body["error_description"].as_str().unwrap_or("").to_owned()
}

/// Registers a private_key_jwt client with `extra` CLI arguments (the key source).
fn create_pkjwt_client(app: &TestApp, grants: &[&str], extra: &[&str]) -> Value {
    let mut args = vec![
        "client",
        "create",
        "--name",
        "pkjwt-client",
        "--scope",
        SCOPE,
        "--auth-method",
        "private_key_jwt",
        "--json",
    ];
    for g in grants {
        args.extend(["--grant", *g]);
    }
    args.extend(extra);
    app.cli_json(&args)
}

/// Writes `jwks` to a file in the app's data directory.
fn jwks_file(app: &TestApp, name: &str, jwks: &Value) -> PathBuf {
    let path = app.data_dir.path().join(name);
    std::fs::write(&path, jwks.to_string()).unwrap();
    path
}

/// A client-credentials client with `key` registered inline.
fn inline_client(app: &TestApp, key: &ClientKey) -> String {
    let file = jwks_file(app, &format!("{}.jwks.json", key.kid), &key.jwks());
    let v = create_pkjwt_client(
        app,
        &["client_credentials"],
        &["--jwks-file", file.to_str().unwrap()],
    );
    assert_eq!(v["token_endpoint_auth_method"], "private_key_jwt", "{v}");
    assert!(v.get("client_secret").is_none(), "no secret: {v}");
    v["client_id"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------
// Inline jwks
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn client_credentials_with_an_inline_jwks() {
    let app = spawn_app().await;
    let key = ClientKey::generate("k1");
    let id = inline_client(&app, &key);

    // aud = the issuer (FAPI 2.0, openid-client).
    let res = client_credentials(&app, &key.assertion(&app, &id, |_| {})).await;
    assert_eq!(res.status(), 200);
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(jwt_part(&token, 1)["client_id"], id.as_str());
    assert_eq!(jwt_part(&token, 1)["scope"], SCOPE);
    assert_eq!(app.get("/api/properties", Some(&token)).await.status(), 200);

    // aud = the issuer as a one-element array, typ client-authentication+jwt (RFC 10070),
    // with a matching body client_id, no kid.
    let now = unix_now();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = None;
    header.typ = Some("client-authentication+jwt".into());
    let claims = json!({
        "iss": id, "sub": id, "aud": [app.base],
        "exp": now + 120, "jti": random_b64url(16),
    });
    let assertion = jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap();
    let res = post_form(
        &app,
        "/token",
        with_assertion(
            &assertion,
            &format!("grant_type=client_credentials&client_id={id}"),
        ),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    // A body client_id naming another client.
    let res = post_form(
        &app,
        "/token",
        with_assertion(
            &key.assertion(&app, &id, |_| {}),
            "grant_type=client_credentials&client_id=dbc_someone_else",
        ),
    )
    .await;
    invalid_client(res, "client_id differs from the assertion").await;
}

#[tokio::test]
async fn each_bad_assertion_is_invalid_client_and_audited() {
    let app = spawn_app().await;
    let key = ClientKey::generate("k1");
    let id = inline_client(&app, &key);
    let now = unix_now();

    // (what, assertion, a word the error_description must contain)
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong aud",
            key.assertion(&app, &id, |c| c["aud"] = json!("https://other.example")),
            "aud",
        ),
        // RFC 10070 (audience injection): the issuer identifier alone, never an endpoint
        // URL, never beside another audience.
        (
            "token endpoint aud",
            key.assertion(&app, &id, |c| {
                c["aud"] = json!(format!("{}/token", app.base))
            }),
            "aud must be the issuer",
        ),
        (
            "issuer among other audiences",
            key.assertion(&app, &id, |c| {
                c["aud"] = json!(["https://elsewhere.example", app.base])
            }),
            "aud must be the issuer",
        ),
        (
            "another kind of JWT",
            {
                let mut header = Header::new(Algorithm::ES256);
                header.kid = Some("k1".into());
                header.typ = Some("dpop+jwt".into());
                let claims = json!({
                    "iss": id, "sub": id, "aud": app.base,
                    "exp": now + 60, "jti": random_b64url(16),
                });
                jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap()
            },
            "typ",
        ),
        (
            "a key of its own in the header (jwk, jku and x5u are never followed)",
            {
                let attacker = ClientKey::generate("k1");
                let enc = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
                let message = format!(
                    "{}.{}",
                    enc(json!({
                        "alg": "ES256", "jwk": attacker.jwk,
                        "jku": "https://attacker.example/jwks.json",
                        "x5u": "https://attacker.example/cert.pem",
                    })),
                    enc(json!({
                        "iss": id, "sub": id, "aud": app.base,
                        "exp": now + 60, "jti": random_b64url(16),
                    }))
                );
                let signature = jsonwebtoken::crypto::sign(
                    message.as_bytes(),
                    &attacker.encoding,
                    Algorithm::ES256,
                )
                .unwrap();
                format!("{message}.{signature}")
            },
            "authentication failed",
        ),
        (
            "fractional exp",
            key.assertion(&app, &id, |c| c["exp"] = json!(now as f64 - 60.5)),
            "expired",
        ),
        (
            "expired",
            key.assertion(&app, &id, |c| {
                c["iat"] = json!(now - 300);
                c["exp"] = json!(now - 120)
            }),
            "expired",
        ),
        (
            "exp too far",
            key.assertion(&app, &id, |c| c["exp"] = json!(now + 3600)),
            "5 minutes",
        ),
        (
            "no exp",
            key.assertion(&app, &id, |c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            "exp claim",
        ),
        (
            "missing jti",
            key.assertion(&app, &id, |c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            "jti",
        ),
        (
            "iss differs from sub",
            key.assertion(&app, &id, |c| c["iss"] = json!("dbc_other")),
            "iss and sub",
        ),
        (
            "wrong key (same kid)",
            ClientKey::generate("k1").assertion(&app, &id, |_| {}),
            "client authentication failed",
        ),
        (
            "unknown kid",
            ClientKey::generate("k2").assertion(&app, &id, |_| {}),
            "client authentication failed",
        ),
        ("alg none", unsigned(&app, &id, "none"), "algorithm"),
        ("alg HS256", hmac_signed(&app, &id), "algorithm"),
        ("garbage", "not.a.jwt".to_owned(), "well-formed"),
    ];
    for (what, assertion, says) in &cases {
        let description = invalid_client(client_credentials(&app, assertion).await, what).await;
        assert!(description.contains(says), "{what}: {description}");
        assert!(
            !description.contains(assertion.as_str()),
            "{what}: never echoed"
        );
    }

    // Replay: the first use succeeds, the second is refused even though it is still valid.
    let once = key.assertion(&app, &id, |_| {});
    assert_eq!(client_credentials(&app, &once).await.status(), 200);
    let description = invalid_client(client_credentials(&app, &once).await, "replayed").await;
    assert!(description.contains("used before"), "{description}");

    // Every failure is a client_auth_failed record naming the claimed client, and none
    // carries the assertion.
    let want = cases.len() + 1;
    let deadline = Instant::now() + Duration::from_secs(10);
    let records = loop {
        let out = app.cli(&["audit", "search", "--type", "client_auth_failed", "--json"]);
        let records: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if records.len() >= want || Instant::now() > deadline {
            break records;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        records.len() >= want,
        "{} records: {records:#?}",
        records.len()
    );
    let text = serde_json::to_string(&records).unwrap();
    assert!(!text.contains(&once), "no assertion in the audit log");
    assert!(
        records
            .iter()
            .filter(|r| r["client_id"] == id.as_str())
            .count()
            >= want - 1,
        "the claimed client is named: {records:#?}"
    );
}

/// An assertion with `alg` and no signature.
fn unsigned(app: &TestApp, id: &str, alg: &str) -> String {
    let now = unix_now();
    let enc = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        enc(json!({ "alg": alg, "typ": "JWT" })),
        enc(
            json!({"iss": id, "sub": id, "aud": app.base, "exp": now + 60, "jti": random_b64url(8)})
        )
    )
}

/// An HS256 assertion keyed with the client id (an attacker's guess at a shared secret).
fn hmac_signed(app: &TestApp, id: &str) -> String {
    let now = unix_now();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"iss": id, "sub": id, "aud": app.base, "exp": now + 60, "jti": random_b64url(8)}),
        &EncodingKey::from_secret(id.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn concurrent_uses_of_one_assertion_succeed_once() {
    let app = spawn_app().await;
    let key = ClientKey::generate("k1");
    let id = inline_client(&app, &key);
    let form = with_assertion(
        &key.assertion(&app, &id, |_| {}),
        "grant_type=client_credentials",
    );
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let request = app
            .http
            .post(format!("{}/token", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.clone());
        set.spawn(async move { request.send().await.expect("request").status().as_u16() });
    }
    let statuses = set.join_all().await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 401),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn one_method_per_client() {
    let app = spawn_app().await;
    let key = ClientKey::generate("k1");
    let id = inline_client(&app, &key);

    // A secret (any secret) for a private_key_jwt client.
    let res = app
        .post_token(
            Some(&Creds {
                id: id.clone(),
                secret: "guessed-secret".into(),
            }),
            "grant_type=client_credentials",
        )
        .await;
    invalid_client(res, "secret on a private_key_jwt client").await;
    let res = post_form(
        &app,
        "/token",
        format!("grant_type=client_credentials&client_id={id}&client_secret=x"),
    )
    .await;
    invalid_client(res, "client_secret_post on a private_key_jwt client").await;
    // The CLI does not give it a secret either.
    let out = app.cli(&["client", "rotate-secret", &id]);
    assert!(
        !out.status.success(),
        "rotate-secret on a private_key_jwt client"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("private_key_jwt"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Just the id, as a public client would.
    let res = post_form(
        &app,
        "/token",
        format!("grant_type=client_credentials&client_id={id}"),
    )
    .await;
    invalid_client(res, "no authentication").await;

    // An assertion for a secret client, signed with a key it never registered.
    let secret_client = app.create_client(SCOPE);
    let res = client_credentials(&app, &key.assertion(&app, &secret_client.id, |_| {})).await;
    invalid_client(res, "assertion for a client_secret client").await;

    // An assertion and a secret at once.
    let res = app
        .http
        .post(format!("{}/token", app.base))
        .basic_auth(&secret_client.id, Some(&secret_client.secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(with_assertion(
            &key.assertion(&app, &id, |_| {}),
            "grant_type=client_credentials",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "two methods at once is invalid_request");
    let res = post_form(
        &app,
        "/token",
        format!(
            "grant_type=client_credentials&client_assertion_type=urn%3Aexample%3Aother&client_assertion={}",
            key.assertion(&app, &id, |_| {})
        ),
    )
    .await;
    invalid_client(res, "an unknown client_assertion_type").await;
}

#[tokio::test]
async fn revocation_and_introspection_accept_assertions() {
    let app = spawn_app().await;
    let key = ClientKey::generate("k1");
    let id = inline_client(&app, &key);
    let res = client_credentials(&app, &key.assertion(&app, &id, |_| {})).await;
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let introspect = |assertion: String| {
        post_form(
            &app,
            "/introspect",
            with_assertion(&assertion, &format!("token={token}")),
        )
    };
    let res = introspect(key.assertion(&app, &id, |_| {})).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["client_id"], id.as_str(), "{v}");

    let res = introspect(ClientKey::generate("k1").assertion(&app, &id, |_| {})).await;
    invalid_client(res, "introspection with a wrong key").await;

    let res = post_form(
        &app,
        "/revoke",
        with_assertion(&key.assertion(&app, &id, |_| {}), &format!("token={token}")),
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = introspect(key.assertion(&app, &id, |_| {})).await;
    assert_eq!(res.json::<Value>().await.unwrap()["active"], false);

    let res = post_form(
        &app,
        "/revoke",
        with_assertion(
            &key.assertion(&app, &id, |c| c["aud"] = json!("https://other.example")),
            &format!("token={token}"),
        ),
    )
    .await;
    invalid_client(res, "revocation with a wrong aud").await;

    // /par too takes only the issuer (RFC 10070 updates RFC 9126 §2, which had also
    // allowed the token and PAR endpoint URLs).
    let res = post_form(
        &app,
        "/par",
        with_assertion(
            &key.assertion(&app, &id, |c| c["aud"] = json!(format!("{}/par", app.base))),
            "response_type=code",
        ),
    )
    .await;
    let description = invalid_client(res, "a push naming the PAR endpoint as aud").await;
    assert!(
        description.contains("aud must be the issuer"),
        "{description}"
    );

    // The failures at /introspect and /revoke are audited under the client they claimed.
    let records = || {
        let out = app.cli(&["audit", "search", "--type", "client_auth_failed", "--json"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect::<Vec<_>>()
    };
    for endpoint in ["introspect", "revoke"] {
        eventually(
            &format!("the failure at /{endpoint} names the client"),
            || {
                let found = records().iter().any(|r| {
                    r["detail"] == format!("endpoint={endpoint}") && r["client_id"] == id.as_str()
                });
                async move { found }
            },
        )
        .await;
    }
}

#[tokio::test]
async fn the_code_flow_with_private_key_jwt() {
    const CB: &str = "https://app.example.com/cb";
    const EMAIL: &str = "tenant@example.com";
    const PASSWORD: &str = "correct horse battery staple";
    let app = spawn_app().await;
    app.create_user(EMAIL, "tenant", PASSWORD);
    let key = ClientKey::generate("code-key");
    let file = jwks_file(&app, "code.jwks.json", &key.jwks());
    let v = app.cli_json(&[
        "client",
        "create",
        "--name",
        "pkjwt-code",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--scope",
        "openid tenant:read",
        "--redirect-uri",
        CB,
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        file.to_str().unwrap(),
        "--json",
    ]);
    let id = v["client_id"].as_str().unwrap().to_owned();

    let (verifier, challenge) = pkce_pair();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &id)
        .append_pair("redirect_uri", CB)
        .append_pair("scope", "openid tenant:read")
        .append_pair("state", &random_b64url(16))
        .append_pair("nonce", &random_b64url(16))
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let callback = app
        .sign_in_through_pages(
            &format!("/authorize?{query}"),
            EMAIL,
            PASSWORD,
            "approve",
            &mut Jar::default(),
        )
        .await;
    let code = query_params(&callback).remove("code").expect("code");
    let redeem = |assertion: String| {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", &code)
            .append_pair("redirect_uri", CB)
            .append_pair("code_verifier", &verifier)
            .finish();
        post_form(&app, "/token", with_assertion(&assertion, &form))
    };
    // A wrong key cannot redeem the code (and does not burn it).
    let res = redeem(ClientKey::generate("code-key").assertion(&app, &id, |_| {})).await;
    invalid_client(res, "code redemption with a wrong key").await;
    let res = redeem(key.assertion(&app, &id, |_| {})).await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    assert!(tokens["id_token"].is_string(), "{tokens}");
    let refresh = tokens["refresh_token"].as_str().expect("refresh token");

    // The refresh grant authenticates the same way.
    let form = format!("grant_type=refresh_token&refresh_token={refresh}");
    let res = post_form(
        &app,
        "/token",
        with_assertion(&key.assertion(&app, &id, |_| {}), &form),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

// ---------------------------------------------------------------------------------------
// jwks_uri over https
// ---------------------------------------------------------------------------------------

/// What the test https server answers on a path.
#[derive(Clone)]
enum Answer {
    /// 200 with this body.
    Json(String),
    /// Accept, read the request, never answer.
    Hang,
}

/// A local https server (rustls, certificate from a fresh rcgen CA) serving JWK Sets.
struct JwksServer {
    base: String,
    ca_file: tempfile::NamedTempFile,
    routes: Arc<Mutex<HashMap<String, Answer>>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    async fn start() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let mut ca_file = tempfile::NamedTempFile::new().unwrap();
        ca_file.write_all(ca_cert.pem().as_bytes()).unwrap();

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let routes: Arc<Mutex<HashMap<String, Answer>>> = Arc::default();
        let hits = Arc::new(AtomicUsize::new(0));
        let task = {
            let routes = routes.clone();
            let hits = hits.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let acceptor = acceptor.clone();
                    let routes = routes.clone();
                    let hits = hits.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match tls.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        hits.fetch_add(1, Ordering::SeqCst);
                        let head = String::from_utf8_lossy(&head);
                        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                        let answer = routes.lock().unwrap().get(&path).cloned();
                        let response = match answer {
                            Some(Answer::Json(body)) => format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            ),
                            Some(Answer::Hang) => {
                                tokio::time::sleep(Duration::from_secs(60)).await;
                                return;
                            }
                            None => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
                        };
                        let _ = tls.write_all(response.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    });
                }
            })
        };
        JwksServer {
            base,
            ca_file,
            routes,
            hits,
            task,
        }
    }

    fn serve(&self, path: &str, answer: Answer) -> String {
        self.routes.lock().unwrap().insert(path.to_owned(), answer);
        format!("{}{path}", self.base)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A server trusting the test CA of `jwks` for outbound fetches.
async fn app_trusting(jwks: &JwksServer) -> TestApp {
    spawn_app_with(Options {
        overrides: ServeOverrides {
            outbound_ca_file: Some(jwks.ca_file.path().to_path_buf()),
            // The test's key server is on loopback.
            outbound_allow_private_networks: Some(true),
            ..ServeOverrides::default()
        },
        ..Options::default()
    })
    .await
}

fn uri_client(app: &TestApp, uri: &str) -> String {
    let v = create_pkjwt_client(app, &["client_credentials"], &["--jwks-uri", uri]);
    assert_eq!(v["jwks_uri"], uri, "{v}");
    v["client_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn jwks_uri_over_https_is_fetched_cached_and_refetched_for_a_new_kid() {
    let server = JwksServer::start().await;
    let app = app_trusting(&server).await;
    let old = ClientKey::generate("2026-01");
    let uri = server.serve("/client/jwks.json", Answer::Json(old.jwks().to_string()));
    let id = uri_client(&app, &uri);

    let res = client_credentials(&app, &old.assertion(&app, &id, |_| {})).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(server.hits(), 1);
    // Cached: no second fetch.
    let res = client_credentials(&app, &old.assertion(&app, &id, |_| {})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(server.hits(), 1, "served from the cache");

    // The client rotates: an assertion with the new kid triggers one refetch. Its set now
    // also publishes an encryption key (OpenID Connect Registration §2 allows that), which
    // is skipped rather than spoiling the set.
    let new = ClientKey::generate("2026-02");
    let mut enc = ClientKey::generate("enc-1").jwk;
    enc["use"] = json!("enc");
    enc["alg"] = json!("ECDH-ES");
    server.serve(
        "/client/jwks.json",
        Answer::Json(json!({ "keys": [old.jwk, enc, new.jwk] }).to_string()),
    );
    let res = client_credentials(&app, &new.assertion(&app, &id, |_| {})).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(server.hits(), 2, "refetched once for the unknown kid");

    // Made-up kids do not make the server fetch again and again.
    for i in 0..5 {
        let stranger = ClientKey::generate(&format!("sprayed-{i}"));
        invalid_client(
            client_credentials(&app, &stranger.assertion(&app, &id, |_| {})).await,
            "unknown kid",
        )
        .await;
    }
    assert_eq!(
        server.hits(),
        2,
        "unknown kids refetch at most once per interval"
    );
}

/// Server-side request forgery: by default a `jwks_uri` on an internal address (a literal,
/// or a name that resolves to one) is never connected to; the operator's
/// `--outbound-allow-private-networks` lets it through.
#[tokio::test]
async fn a_jwks_uri_on_an_internal_address_is_not_fetched_unless_allowed() {
    let server = JwksServer::start().await;
    let key = ClientKey::generate("k1");
    let literal = server.serve("/jwks.json", Answer::Json(key.jwks().to_string()));
    let by_name = literal.replace("127.0.0.1", "localhost");

    let public_only = spawn_app_with(Options {
        overrides: ServeOverrides {
            outbound_ca_file: Some(server.ca_file.path().to_path_buf()),
            ..ServeOverrides::default()
        },
        ..Options::default()
    })
    .await;
    for uri in [&literal, &by_name] {
        let id = uri_client(&public_only, uri);
        invalid_client(
            client_credentials(&public_only, &key.assertion(&public_only, &id, |_| {})).await,
            "internal jwks_uri",
        )
        .await;
    }
    assert_eq!(
        server.hits(),
        0,
        "nothing was fetched from the internal address"
    );

    let allowed = app_trusting(&server).await;
    let id = uri_client(&allowed, &by_name);
    let res = client_credentials(&allowed, &key.assertion(&allowed, &id, |_| {})).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn jwks_uri_refusals() {
    let server = JwksServer::start().await;
    let app = app_trusting(&server).await;

    // http is refused at registration.
    let out = app.cli(&[
        "client",
        "create",
        "--name",
        "plain",
        "--grant",
        "client_credentials",
        "--scope",
        SCOPE,
        "--auth-method",
        "private_key_jwt",
        "--jwks-uri",
        "http://127.0.0.1:9/jwks.json",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("https"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An oversized set (over 64 KiB) is refused.
    let key = ClientKey::generate("big");
    let padding = "x".repeat(70 * 1024);
    let big = json!({ "keys": [key.jwk], "padding": padding }).to_string();
    let id = uri_client(&app, &server.serve("/big.json", Answer::Json(big)));
    invalid_client(
        client_credentials(&app, &key.assertion(&app, &id, |_| {})).await,
        "oversized jwks",
    )
    .await;

    // A set with a private key is refused after fetching too.
    let mut private = key.jwk.clone();
    private["d"] = json!("c2VjcmV0");
    let id = uri_client(
        &app,
        &server.serve(
            "/private.json",
            Answer::Json(json!({ "keys": [private] }).to_string()),
        ),
    );
    invalid_client(
        client_credentials(&app, &key.assertion(&app, &id, |_| {})).await,
        "private key in the fetched set",
    )
    .await;

    // An endpoint that never answers times out (5 s) and the server stays responsive.
    let id = uri_client(&app, &server.serve("/slow.json", Answer::Hang));
    let started = Instant::now();
    let slow_assertion = key.assertion(&app, &id, |_| {});
    let slow = client_credentials(&app, &slow_assertion);
    let meanwhile = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = Instant::now();
        let res = app
            .get("/.well-known/oauth-authorization-server", None)
            .await;
        assert_eq!(res.status(), 200);
        t.elapsed()
    };
    let (res, other) = tokio::join!(slow, meanwhile);
    let took = started.elapsed();
    invalid_client(res, "slow jwks endpoint").await;
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(9),
        "timed out after {took:?}"
    );
    assert!(
        other < Duration::from_secs(2),
        "others are not blocked: {other:?}"
    );
    eprintln!("slow jwks_uri: invalid_client after {took:?}; a concurrent request took {other:?}");
    // Right after a failure the endpoint is not tried again (no amplification).
    let t = Instant::now();
    invalid_client(
        client_credentials(&app, &key.assertion(&app, &id, |_| {})).await,
        "backing off",
    )
    .await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // Without the operator's CA the test server is not trusted.
    let untrusting = spawn_app().await;
    let good = ClientKey::generate("good");
    let id = uri_client(
        &untrusting,
        &server.serve("/good.json", Answer::Json(good.jwks().to_string())),
    );
    invalid_client(
        client_credentials(&untrusting, &good.assertion(&untrusting, &id, |_| {})).await,
        "untrusted certificate",
    )
    .await;
}

#[tokio::test]
async fn registration_validates_the_key_set() {
    let app = spawn_app().await;
    let key = ClientKey::generate("k");
    let mut private = key.jwk.clone();
    private["d"] = json!("c2VjcmV0");
    let cases = [
        ("private", json!({ "keys": [private] })),
        (
            "symmetric",
            json!({ "keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}] }),
        ),
        ("duplicate kids", json!({ "keys": [key.jwk, key.jwk] })),
        ("empty", json!({ "keys": [] })),
    ];
    for (what, jwks) in cases {
        let file = jwks_file(&app, "bad.json", &jwks);
        let out = app.cli(&[
            "client",
            "create",
            "--name",
            "bad",
            "--grant",
            "client_credentials",
            "--scope",
            SCOPE,
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            file.to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{what} accepted");
    }
    // private_key_jwt needs exactly one key source.
    let out = app.cli(&[
        "client",
        "create",
        "--name",
        "none",
        "--grant",
        "client_credentials",
        "--scope",
        SCOPE,
        "--auth-method",
        "private_key_jwt",
    ]);
    assert!(!out.status.success(), "no keys accepted");
}

#[tokio::test]
async fn discovery_advertises_private_key_jwt() {
    let app = spawn_app().await;
    for doc in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let v: Value = app.get(doc, None).await.json().await.unwrap();
        for endpoint in ["token", "revocation", "introspection"] {
            let methods = &v[format!("{endpoint}_endpoint_auth_methods_supported")];
            assert!(
                methods
                    .as_array()
                    .unwrap()
                    .contains(&json!("private_key_jwt")),
                "{doc} {endpoint}: {methods}"
            );
            let algs = &v[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")];
            assert_eq!(
                algs,
                &json!(["ES256", "PS256", "RS256", "EdDSA"]),
                "{doc} {endpoint}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// openid-client 5 (tests/openid-client/private-key-jwt.mjs)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn openid_client_5_authenticates_with_private_key_jwt() {
    if !openid_client_installed() {
        return;
    }
    let app = spawn_app().await;
    let mut child = Command::new("node")
        .arg("private-key-jwt.mjs")
        .current_dir(openid_client_dir())
        .env("ISSUER", &app.base)
        .env("SCOPE", SCOPE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start node");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let read = |stdout: &mut BufReader<std::process::ChildStdout>| {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read from node");
        serde_json::from_str::<Value>(&line)
            .unwrap_or_else(|e| panic!("node printed {line:?}: {e}"))
    };
    let first = read(&mut stdout);
    let jwk = first["jwk"].clone();
    assert!(jwk.get("d").is_none(), "only the public key is registered");
    let file = jwks_file(&app, "node.jwks.json", &json!({ "keys": [jwk] }));
    let v = create_pkjwt_client(
        &app,
        &["client_credentials"],
        &["--jwks-file", file.to_str().unwrap()],
    );
    let id = v["client_id"].as_str().unwrap().to_owned();
    writeln!(stdin, "{id}").unwrap();
    let done = tokio::task::spawn_blocking(move || {
        let v = read(&mut stdout);
        let _ = child.wait();
        v
    })
    .await
    .unwrap();
    assert!(done.get("error").is_none(), "openid-client: {done}");
    assert_eq!(done["active"], true, "{done}");
    assert_eq!(done["active_after_revoke"], false, "{done}");
    let token = done["token"].as_str().unwrap();
    assert_eq!(jwt_part(token, 1)["client_id"], id.as_str());
}

// ---------------------------------------------------------------------------------------
// Replays across instances (Redis)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_assertion_replayed_at_another_instance_is_refused() {
    let Some(url) = redis_url() else {
        return;
    };
    // Two instances behind one issuer name, sharing the data directory and Redis (every CLI
    // call before the second starts: see shared_state.rs).
    let issuer = "http://127.0.0.1";
    let opts = Options {
        data_dir: Some(Arc::new(tempfile::tempdir().unwrap())),
        overrides: ServeOverrides {
            issuer: Some(issuer.into()),
            ..ServeOverrides::default()
        },
        global: deedbolt::config::GlobalOverrides {
            redis_url: Some(url),
            redis_prefix: Some(format!("deedbolt-test-{}:", random_b64url(9))),
            ..Default::default()
        },
        ..Options::default()
    };
    let a = spawn_app_with(opts.clone()).await;
    let key = ClientKey::generate("k1");
    let id = inline_client(&a, &key);
    let b = spawn_app_with(opts).await;

    let assertion = key.assertion(&a, &id, |c| c["aud"] = json!(issuer));
    assert_eq!(client_credentials(&a, &assertion).await.status(), 200);
    let description =
        invalid_client(client_credentials(&b, &assertion).await, "replayed at B").await;
    assert!(description.contains("used before"), "{description}");
    let fresh = key.assertion(&b, &id, |c| c["aud"] = json!(issuer));
    assert_eq!(client_credentials(&b, &fresh).await.status(), 200);
}

#[tokio::test]
async fn a_bad_outbound_ca_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    for file in [not_pem, dir.path().join("missing.pem")] {
        let err = try_spawn_app(Options {
            overrides: ServeOverrides {
                outbound_ca_file: Some(file.clone()),
                ..ServeOverrides::default()
            },
            ..Options::default()
        })
        .await
        .err()
        .unwrap_or_else(|| panic!("started with {}", file.display()));
        let message = format!("{err:#}");
        assert!(message.contains("outbound CA file"), "{message}");
    }
}
