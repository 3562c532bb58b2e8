//! DPoP (RFC 9449) through the real server: proofs at `/token` for every grant, bound
//! tokens at the API, `/userinfo` and the admin API, server nonces, `dpop_jkt`, bound
//! refresh tokens of public clients, introspection and discovery. Each MUST of §4.3
//! (proof checks) and §7 (resource access) has a test here; the proofs are signed with
//! aws-lc-rs keys (deedbolt's own signing keys, which produce ordinary JWS).

use std::sync::atomic::{AtomicU64, Ordering};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use deedbolt::config::ServeOverrides;
use deedbolt_core::jose::{SigningAlg, SigningKey};
use serde_json::{json, Value};

use crate::helpers::{
    jwt_part, spawn_app, spawn_app_with, unix_now, www_authenticate, CodeClient, Creds, Options,
    TestApp,
};
use crate::refresh::{
    authorize_code_with, confidential, create_introspector, form, introspect, FULL, PASSWORD, RITA,
    RT,
};

const CB: &str = crate::refresh::CB;

/// A DPoP proof key held by a test client.
pub(crate) struct DpopKey(SigningKey);

static JTI: AtomicU64 = AtomicU64::new(0);

impl DpopKey {
    pub(crate) fn new() -> Self {
        Self::with_alg(SigningAlg::ES256)
    }

    pub(crate) fn with_alg(alg: SigningAlg) -> Self {
        DpopKey(SigningKey::generate(alg).expect("key").0)
    }

    /// The public JWK, as the `jwk` header carries it.
    fn jwk(&self) -> Value {
        serde_json::to_value(&self.0.public_jwk().params).expect("jwk")
    }

    /// The RFC 7638 thumbprint (`cnf.jkt`).
    fn jkt(&self) -> String {
        self.0.public_jwk().params.thumbprint()
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.0.alg().as_str(), "jwk": self.jwk()})
    }

    /// A compact JWS of `header` and `claims`, signed by this key.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let msg = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.0.sign_bytes(msg.as_bytes()).expect("sign");
        format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// Fresh claims for `htm` `htu`: a new `jti`, `iat` now.
    fn claims(htm: &str, htu: &str) -> Value {
        let n = JTI.fetch_add(1, Ordering::Relaxed);
        json!({"jti": format!("jti-{}-{n}", unix_now()), "htm": htm, "htu": htu, "iat": unix_now()})
    }

    /// A proof for `POST {base}/token` carrying the server's `nonce`.
    pub(crate) fn token_proof_with_nonce(&self, app: &TestApp, nonce: &str) -> String {
        let mut c = Self::claims("POST", &format!("{}/token", app.base));
        c["nonce"] = json!(nonce);
        self.sign(&self.header(), &c)
    }

    /// A proof for `POST {base}/token`.
    pub(crate) fn token_proof(&self, app: &TestApp) -> String {
        self.sign(
            &self.header(),
            &Self::claims("POST", &format!("{}/token", app.base)),
        )
    }

    /// A proof for `htm` `htu` (a full URL), with the `ath` of `token` if given.
    pub(crate) fn proof(&self, htm: &str, htu: &str, token: Option<&str>) -> String {
        let mut c = Self::claims(htm, htu);
        if let Some(t) = token {
            c["ath"] = json!(ath(t));
        }
        self.sign(&self.header(), &c)
    }

    /// A proof for `htm` `{base}{path}` presented with `token`.
    fn api_proof(&self, app: &TestApp, htm: &str, path: &str, token: &str) -> String {
        let mut c = Self::claims(htm, &format!("{}{path}", app.base));
        c["ath"] = json!(ath(token));
        self.sign(&self.header(), &c)
    }
}

/// `base64url(SHA-256(token))`, computed here independently of the server.
fn ath(token: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// `POST /token` with `form` as `client` (Basic for a confidential one, `client_id` for a
/// public one) and the given `DPoP` header values.
async fn token_request(
    app: &TestApp,
    client: &CodeClient,
    pairs: &[(&str, &str)],
    proofs: &[&str],
) -> reqwest::Response {
    let mut pairs = pairs.to_vec();
    let mut req = app
        .http
        .post(format!("{}/token", app.base))
        .header("content-type", "application/x-www-form-urlencoded");
    match &client.secret {
        Some(secret) => req = req.basic_auth(&client.id, Some(secret)),
        None => pairs.push(("client_id", &client.id)),
    }
    for p in proofs {
        req = req.header("DPoP", *p);
    }
    req.body(form(&pairs)).send().await.expect("token request")
}

/// A client-credentials token request with `proofs`.
async fn cc(app: &TestApp, creds: &Creds, proofs: &[&str]) -> reqwest::Response {
    token_request(
        app,
        &confidential(creds),
        &[("grant_type", "client_credentials")],
        proofs,
    )
    .await
}

/// Asserts a JSON error answer and returns the response headers.
pub(crate) async fn expect_error(
    res: reqwest::Response,
    status: u16,
    error: &str,
) -> reqwest::header::HeaderMap {
    let got = res.status().as_u16();
    let headers = res.headers().clone();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "expected {status} {error}, got {got}: {body}");
    assert_eq!(body["error"], error, "{body}");
    headers
}

/// `GET path` with `Authorization: DPoP token` and the given proof (if any).
async fn dpop_get(
    app: &TestApp,
    path: &str,
    token: &str,
    proof: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .http
        .get(format!("{}{path}", app.base))
        .header("authorization", format!("DPoP {token}"));
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    req.send().await.expect("GET")
}

/// A DPoP-bound client-credentials token of `key` for `property:read`.
async fn bound_token(app: &TestApp, creds: &Creds, key: &DpopKey) -> String {
    let res = cc(app, creds, &[&key.token_proof(app)]).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["token_type"], "DPoP", "{body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

#[tokio::test]
async fn a_proof_at_the_token_endpoint_binds_the_access_token_to_its_key() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let key = DpopKey::new();
    let token = bound_token(&app, &creds, &key).await;
    let claims = jwt_part(&token, 1);
    assert_eq!(claims["cnf"]["jkt"], key.jkt(), "RFC 9449 §6.1: {claims}");

    // Without a proof: an ordinary bearer token, no confirmation.
    let res = cc(&app, &creds, &[]).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    let plain = body["access_token"].as_str().unwrap();
    assert!(jwt_part(plain, 1).get("cnf").is_none());

    // Every supported algorithm binds.
    for alg in SigningAlg::ALL {
        let k = DpopKey::with_alg(alg);
        let t = bound_token(&app, &creds, &k).await;
        assert_eq!(jwt_part(&t, 1)["cnf"]["jkt"], k.jkt(), "{alg}");
    }

    // Introspection (RFC 7662, RFC 9449 §6.2) tells a DPoP token and its key.
    let rs = create_introspector(&app);
    let found = introspect(&app, &rs, &token).await;
    assert_eq!(found["active"], true, "{found}");
    assert_eq!(found["token_type"], "DPoP", "{found}");
    assert_eq!(found["cnf"]["jkt"], key.jkt(), "{found}");
    let found = introspect(&app, &rs, plain).await;
    assert_eq!(found["token_type"], "Bearer", "{found}");
    assert!(found.get("cnf").is_none(), "{found}");
    app.stop().await;
}

#[tokio::test]
async fn the_token_endpoint_refuses_proofs_that_break_a_rule_of_section_4_3() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let key = DpopKey::new();
    let htu = format!("{}/token", app.base);
    let fresh = || DpopKey::claims("POST", &htu);
    let with = |f: &dyn Fn(&mut Value, &mut Value)| {
        let (mut h, mut c) = (key.header(), fresh());
        f(&mut h, &mut c);
        key.sign(&h, &c)
    };
    let other = DpopKey::new();
    let cases: Vec<(&str, String)> = vec![
        ("typ JWT", with(&|h, _| h["typ"] = json!("JWT"))),
        (
            "no typ",
            with(&|h, _| {
                h.as_object_mut().unwrap().remove("typ");
            }),
        ),
        ("alg HS256", with(&|h, _| h["alg"] = json!("HS256"))),
        ("alg none", {
            let mut h = key.header();
            h["alg"] = json!("none");
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(h.to_string()),
                URL_SAFE_NO_PAD.encode(fresh().to_string())
            )
        }),
        (
            "private jwk",
            with(&|h, _| h["jwk"]["d"] = json!("c2VjcmV0")),
        ),
        (
            "no jwk",
            with(&|h, _| {
                h.as_object_mut().unwrap().remove("jwk");
            }),
        ),
        (
            "another key's signature",
            with(&|h, _| h["jwk"] = other.jwk()),
        ),
        ("htm GET", with(&|_, c| c["htm"] = json!("GET"))),
        (
            "htu of another endpoint",
            with(&|_, c| c["htu"] = json!(format!("{}/revoke", app.base))),
        ),
        (
            "htu of another host",
            with(&|_, c| c["htu"] = json!("https://evil.example/token")),
        ),
        (
            "stale iat",
            with(&|_, c| c["iat"] = json!(unix_now() - 600)),
        ),
        (
            "future iat",
            with(&|_, c| c["iat"] = json!(unix_now() + 600)),
        ),
        (
            "no jti",
            with(&|_, c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        ("not a JWT", "not-a-jwt".to_owned()),
    ];
    for (what, proof) in &cases {
        let res = cc(&app, &creds, &[proof]).await;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"], "invalid_dpop_proof", "{what}: {body}");
    }
    // Two DPoP headers (§4.3 check 1).
    let res = cc(
        &app,
        &creds,
        &[&key.token_proof(&app), &key.token_proof(&app)],
    )
    .await;
    expect_error(res, 400, "invalid_dpop_proof").await;
    // A replayed proof (§11.1): the first use binds, the second is refused.
    let proof = key.token_proof(&app);
    assert_eq!(cc(&app, &creds, &[&proof]).await.status(), 200);
    let res = cc(&app, &creds, &[&proof]).await;
    expect_error(res, 400, "invalid_dpop_proof").await;
    // The default scheme-and-host normalisation accepts an equivalent htu.
    let upper = app.base.replace("http://", "HTTP://");
    let proof = key.sign(
        &key.header(),
        &DpopKey::claims("POST", &format!("{upper}/token?x=1")),
    );
    assert_eq!(cc(&app, &creds, &[&proof]).await.status(), 200);
    // FAPI 2.0 SP §5.3.2.1: an `iat` up to 10 s in the future is accepted (9 s here, so
    // the test's clock running a second behind the server's cannot fail it).
    let mut c = fresh();
    c["iat"] = json!(unix_now() + 9);
    let res = cc(&app, &creds, &[&key.sign(&key.header(), &c)]).await;
    assert_eq!(res.status(), 200, "iat 9 s ahead");
    // Refused proofs are audited as failed token requests.
    app.stop().await;
}

/// RFC 9449 §4.3 asks for RFC 3986 §6.2.2 normalisation before `htu` is compared: in the
/// path, percent-encoding hex digits are case-insensitive and a percent-encoded unreserved
/// character is the character, at `/token` and at the API alike.
#[tokio::test]
async fn htu_is_compared_after_percent_encoding_normalisation() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let key = DpopKey::new();
    let proof = key.sign(
        &key.header(),
        &DpopKey::claims("POST", &format!("{}/%74oken", app.base)),
    );
    let res = cc(&app, &creds, &[&proof]).await;
    assert_eq!(res.status(), 200, "htu /%74oken at /token");
    let token = bound_token(&app, &creds, &key).await;
    for (path, htu_path, same) in [
        ("/api/properties/%41bc", "/api/properties/Abc", true),
        ("/api/properties/a%2fb", "/api/properties/a%2Fb", true),
        ("/api/properties/%41bc", "/api/properties/abc", false),
    ] {
        let mut c = DpopKey::claims("GET", &format!("{}{htu_path}", app.base));
        c["ath"] = json!(ath(&token));
        let res = dpop_get(&app, path, &token, Some(&key.sign(&key.header(), &c))).await;
        let challenge = www_authenticate(&res);
        if same {
            // Past the guard: the handler answers (no such property).
            assert_eq!(res.status(), 404, "{path} with htu {htu_path}: {challenge}");
        } else {
            assert_eq!(res.status(), 401, "{path} with htu {htu_path}");
            assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_api_accepts_a_bound_token_only_with_a_valid_proof_of_its_key() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let key = DpopKey::new();
    let token = bound_token(&app, &creds, &key).await;
    const PATH: &str = "/api/properties";

    let res = dpop_get(
        &app,
        PATH,
        &token,
        Some(&key.api_proof(&app, "GET", PATH, &token)),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", www_authenticate(&res));

    // §7.2: a DPoP-bound token presented as a bearer token is refused.
    let res = app.get(PATH, Some(&token)).await;
    assert_eq!(res.status(), 401);
    let challenge = www_authenticate(&res);
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(
        challenge.contains("algs=\"ES256 EdDSA PS256 RS256\""),
        "{challenge}"
    );

    let check = |what: &'static str, proof: Option<String>| {
        let app = &app;
        let token = token.clone();
        async move {
            let res = dpop_get(app, PATH, &token, proof.as_deref()).await;
            let status = res.status().as_u16();
            let challenge = www_authenticate(&res);
            let body: Value = res.json().await.unwrap_or(Value::Null);
            assert_eq!(status, 401, "{what}: {body}");
            assert_eq!(body["error"], "invalid_dpop_proof", "{what}: {body}");
            assert!(
                challenge.starts_with("DPoP ")
                    && challenge.contains("error=\"invalid_dpop_proof\""),
                "{what}: {challenge}"
            );
        }
    };
    check("no proof", None).await;
    // Another key's proof: the token is bound to `key` (§7.1).
    let other = DpopKey::new();
    check(
        "another key",
        Some(other.api_proof(&app, "GET", PATH, &token)),
    )
    .await;
    // The wrong method, URI, access-token hash, or a stale proof.
    check("htm POST", Some(key.api_proof(&app, "POST", PATH, &token))).await;
    check(
        "htu of another path",
        Some(key.api_proof(&app, "GET", "/api/tenants", &token)),
    )
    .await;
    check(
        "ath of another token",
        Some(key.api_proof(&app, "GET", PATH, "another-token")),
    )
    .await;
    let mut c = DpopKey::claims("GET", &format!("{}{PATH}", app.base));
    check("no ath", Some(key.sign(&key.header(), &c))).await;
    c["ath"] = json!(ath(&token));
    c["iat"] = json!(unix_now() - 3600);
    check("stale", Some(key.sign(&key.header(), &c))).await;
    // A replayed proof.
    let proof = key.api_proof(&app, "GET", PATH, &token);
    assert_eq!(
        dpop_get(&app, PATH, &token, Some(&proof)).await.status(),
        200
    );
    check("replayed", Some(proof)).await;

    // A bearer token presented with the DPoP scheme is not a DPoP token.
    let plain = app.access_token(&creds, None).await;
    let res = dpop_get(
        &app,
        PATH,
        &plain,
        Some(&key.api_proof(&app, "GET", PATH, &plain)),
    )
    .await;
    assert_eq!(res.status(), 401);
    assert!(www_authenticate(&res).contains("invalid_token"));
    // ... and it still works as a bearer token.
    assert_eq!(app.get(PATH, Some(&plain)).await.status(), 200);

    // No token at all: both schemes are offered.
    let res = app.get(PATH, None).await;
    assert_eq!(res.status(), 401);
    let all: Vec<String> = res
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(all.iter().any(|c| c.starts_with("Bearer ")), "{all:?}");
    assert!(
        all.iter()
            .any(|c| c.starts_with("DPoP ") && c.contains("algs=")),
        "{all:?}"
    );
    app.stop().await;
}

/// A server with `--dpop-nonce required`.
async fn app_requiring_nonces() -> TestApp {
    spawn_app_with(Options {
        overrides: ServeOverrides {
            dpop_nonce: Some("required".into()),
            ..ServeOverrides::default()
        },
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn nonces_when_required_are_handed_out_and_demanded_at_the_token_endpoint_and_the_api() {
    let app = app_requiring_nonces().await;
    let creds = app.create_client("property:read");
    let key = DpopKey::new();
    let htu = format!("{}/token", app.base);

    // §8: a proof without a nonce gets use_dpop_nonce and a nonce to use.
    let res = cc(&app, &creds, &[&key.token_proof(&app)]).await;
    let headers = expect_error(res, 400, "use_dpop_nonce").await;
    let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
    assert!(nonce.len() >= 32, "{nonce}");
    // A made-up nonce is refused the same way.
    let mut c = DpopKey::claims("POST", &htu);
    c["nonce"] = json!("made-up-nonce");
    let res = cc(&app, &creds, &[&key.sign(&key.header(), &c)]).await;
    expect_error(res, 400, "use_dpop_nonce").await;
    // With the nonce: a bound token, and a nonce for the next request.
    let mut c = DpopKey::claims("POST", &htu);
    c["nonce"] = json!(nonce);
    let res = cc(&app, &creds, &[&key.sign(&key.header(), &c)]).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("dpop-nonce"));
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // §9: the API demands one too, with 401 and a DPoP challenge.
    const PATH: &str = "/api/properties";
    let res = dpop_get(
        &app,
        PATH,
        &token,
        Some(&key.api_proof(&app, "GET", PATH, &token)),
    )
    .await;
    assert_eq!(res.status(), 401);
    let challenge = www_authenticate(&res);
    assert!(
        challenge.starts_with("DPoP ") && challenge.contains("error=\"use_dpop_nonce\""),
        "{challenge}"
    );
    let nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let mut c = DpopKey::claims("GET", &format!("{}{PATH}", app.base));
    c["ath"] = json!(ath(&token));
    c["nonce"] = json!(nonce);
    let res = dpop_get(&app, PATH, &token, Some(&key.sign(&key.header(), &c))).await;
    assert_eq!(res.status(), 200, "{}", www_authenticate(&res));
    assert!(
        res.headers().contains_key("dpop-nonce"),
        "a fresh nonce with the answer"
    );
    app.stop().await;
}

/// RFC 9449 §8: "If the `nonce` claim in the DPoP proof does not exactly match a nonce
/// recently supplied by the authorization server to the client, the authorization server
/// MUST reject the request" — also with nonces off (the default), where none is required:
/// a made-up nonce is `use_dpop_nonce` with a fresh `DPoP-Nonce`, and that one works.
#[tokio::test]
async fn a_nonce_the_server_did_not_supply_is_refused_also_when_nonces_are_off() {
    let app = spawn_app().await;
    let creds = app.create_client("property:read");
    let key = DpopKey::new();
    let htu = format!("{}/token", app.base);
    let mut c = DpopKey::claims("POST", &htu);
    c["nonce"] = json!("bogus");
    let res = cc(&app, &creds, &[&key.sign(&key.header(), &c)]).await;
    let headers = expect_error(res, 400, "use_dpop_nonce").await;
    let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
    let mut c = DpopKey::claims("POST", &htu);
    c["nonce"] = json!(nonce);
    let res = cc(&app, &creds, &[&key.sign(&key.header(), &c)]).await;
    assert_eq!(res.status(), 200, "the nonce the server supplied");
    assert!(
        !res.headers().contains_key("dpop-nonce"),
        "with nonces off, answers hand out none"
    );
    // Without a nonce, as before.
    let token = bound_token(&app, &creds, &key).await;

    // The same at the API (§9).
    const PATH: &str = "/api/properties";
    let mut c = DpopKey::claims("GET", &format!("{}{PATH}", app.base));
    c["ath"] = json!(ath(&token));
    c["nonce"] = json!("bogus");
    let res = dpop_get(&app, PATH, &token, Some(&key.sign(&key.header(), &c))).await;
    assert_eq!(res.status(), 401);
    let challenge = www_authenticate(&res);
    assert!(
        challenge.contains("error=\"use_dpop_nonce\""),
        "{challenge}"
    );
    let nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let mut c = DpopKey::claims("GET", &format!("{}{PATH}", app.base));
    c["ath"] = json!(ath(&token));
    c["nonce"] = json!(nonce);
    let res = dpop_get(&app, PATH, &token, Some(&key.sign(&key.header(), &c))).await;
    assert_eq!(res.status(), 200, "{}", www_authenticate(&res));
    app.stop().await;
}

/// Logs RITA in through `client` (public, refresh-capable) with `extra` authorization
/// parameters; returns the code and verifier.
async fn code_for(app: &TestApp, client: &CodeClient, extra: &[(&str, &str)]) -> (String, String) {
    authorize_code_with(app, &client.id, FULL, RITA, PASSWORD, extra).await
}

async fn redeem(
    app: &TestApp,
    client: &CodeClient,
    code: &str,
    verifier: &str,
    proofs: &[&str],
) -> reqwest::Response {
    token_request(
        app,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CB),
            ("code_verifier", verifier),
        ],
        proofs,
    )
    .await
}

async fn refresh_with(
    app: &TestApp,
    client: &CodeClient,
    refresh: &str,
    proofs: &[&str],
) -> reqwest::Response {
    token_request(
        app,
        client,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        proofs,
    )
    .await
}

#[tokio::test]
async fn a_public_clients_refresh_tokens_are_bound_to_its_dpop_key() {
    let app = spawn_app().await;
    app.create_user(RITA, "tenant", PASSWORD);
    let spa = app.create_code_client(FULL, &[CB], true, RT);
    let key = DpopKey::new();
    let (code, verifier) = code_for(&app, &spa, &[]).await;
    let res = redeem(&app, &spa, &code, &verifier, &[&key.token_proof(&app)]).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(
        jwt_part(body["access_token"].as_str().unwrap(), 1)["cnf"]["jkt"],
        key.jkt()
    );
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();

    // §5: without a proof, or with another key's, the refresh token is useless — and the
    // failed attempts neither rotate it nor revoke the family.
    let res = refresh_with(&app, &spa, &refresh, &[]).await;
    expect_error(res, 400, "invalid_dpop_proof").await;
    let thief = DpopKey::new();
    let res = refresh_with(&app, &spa, &refresh, &[&thief.token_proof(&app)]).await;
    expect_error(res, 400, "invalid_grant").await;

    // The holder of the key refreshes, and the new access token is bound to it again.
    let res = refresh_with(&app, &spa, &refresh, &[&key.token_proof(&app)]).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    assert_eq!(
        jwt_part(body["access_token"].as_str().unwrap(), 1)["cnf"]["jkt"],
        key.jkt()
    );
    let next = body["refresh_token"].as_str().unwrap().to_owned();
    // The binding carries over to the rotated token.
    let res = refresh_with(&app, &spa, &next, &[&thief.token_proof(&app)]).await;
    expect_error(res, 400, "invalid_grant").await;
    let res = refresh_with(&app, &spa, &next, &[&key.token_proof(&app)]).await;
    assert_eq!(res.status(), 200);
    app.stop().await;
}

/// A server with a 30 s refresh grace period, the user Rita, and a public code client
/// that may refresh.
async fn spa_with_refresh_grace() -> (TestApp, CodeClient) {
    let app = spawn_app_with(Options {
        overrides: ServeOverrides {
            refresh_grace: Some("30s".into()),
            ..ServeOverrides::default()
        },
        ..Options::default()
    })
    .await;
    app.create_user(RITA, "tenant", PASSWORD);
    let spa = app.create_code_client(FULL, &[CB], true, RT);
    (app, spa)
}

/// RFC 9449 §5: "When an authorization server supporting DPoP issues a refresh token to a
/// public client that presents a valid DPoP proof at the token endpoint, the refresh
/// token MUST be bound to the respective public key" — also when the code was redeemed
/// without a proof and the first proof comes with a refresh. The grace-period answer to
/// a retry of the old token is the bound pair, so it too needs the key.
#[tokio::test]
async fn a_public_clients_unbound_family_is_bound_by_its_first_refresh_with_a_proof() {
    let (app, spa) = spa_with_refresh_grace().await;
    let (code, verifier) = code_for(&app, &spa, &[]).await;
    let res = redeem(&app, &spa, &code, &verifier, &[]).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer", "{body}");
    let first = body["refresh_token"].as_str().unwrap().to_owned();

    // The first refresh with a proof binds the family to its key.
    let key = DpopKey::new();
    let res = refresh_with(&app, &spa, &first, &[&key.token_proof(&app)]).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let next = body["refresh_token"].as_str().unwrap().to_owned();

    // The old token retried within the grace period: the bound pair only with the key.
    let res = refresh_with(&app, &spa, &first, &[]).await;
    expect_error(res, 400, "invalid_dpop_proof").await;
    // The new token: useless without a proof or with another key's, and these attempts
    // neither rotate nor revoke it.
    let res = refresh_with(&app, &spa, &next, &[]).await;
    expect_error(res, 400, "invalid_dpop_proof").await;
    let thief = DpopKey::new();
    let res = refresh_with(&app, &spa, &next, &[&thief.token_proof(&app)]).await;
    expect_error(res, 400, "invalid_grant").await;
    let res = refresh_with(&app, &spa, &next, &[&key.token_proof(&app)]).await;
    assert_eq!(res.status(), 200, "the key holder refreshes");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        jwt_part(body["access_token"].as_str().unwrap(), 1)["cnf"]["jkt"],
        key.jkt()
    );
    app.stop().await;
}

/// Only the refresh that wins the rotation binds an unbound family. A thief's refresh with
/// a proof, racing the owner's refresh (without one) and losing, gets the owner's pair
/// from the grace period but binds nothing: the owner's next refresh still needs no proof
/// (had the loser bound the family, the owner would be locked out and the thief hold a
/// family bound to its key). Raced many times on a multi-threaded runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refresh_that_loses_the_rotation_race_binds_nothing() {
    let (app, spa) = spa_with_refresh_grace().await;
    let new_family = || async {
        let (code, verifier) = code_for(&app, &spa, &[]).await;
        let res = redeem(&app, &spa, &code, &verifier, &[]).await;
        let body: Value = res.json().await.unwrap();
        body["refresh_token"].as_str().unwrap().to_owned()
    };
    let mut current = new_family().await;
    let mut owner_won = 0;
    for _ in 0..40 {
        let proof = DpopKey::new().token_proof(&app);
        let proofs = [proof.as_str()];
        let (owner, thief) = tokio::join!(
            refresh_with(&app, &spa, &current, &[]),
            refresh_with(&app, &spa, &current, &proofs),
        );
        let owner_status = owner.status();
        let owner: Value = owner.json().await.unwrap();
        let thief: Value = thief.json().await.unwrap();
        if thief["token_type"] == "DPoP" {
            // The thief won the rotation: the family is its key's now (and the owner's
            // retry without a proof is refused the bound pair). Race again on a new one.
            current = new_family().await;
            continue;
        }
        assert_eq!(owner_status, 200, "the owner won: {owner}");
        owner_won += 1;
        current = owner["refresh_token"].as_str().unwrap().to_owned();
        // The loser bound nothing: the owner's next refresh needs no proof.
        let res = refresh_with(&app, &spa, &current, &[]).await;
        let next: Value = res.json().await.unwrap();
        assert_eq!(
            next["token_type"], "Bearer",
            "the family stayed unbound: {next}"
        );
        current = next["refresh_token"].as_str().unwrap().to_owned();
    }
    assert!(owner_won >= 5, "the owner won {owner_won} of 40 races");
    app.stop().await;
}

#[tokio::test]
async fn a_confidential_clients_refresh_tokens_are_bound_by_its_authentication_not_a_key() {
    let app = spawn_app().await;
    app.create_user(RITA, "tenant", PASSWORD);
    let web = app.create_code_client(FULL, &[CB], false, RT);
    let key = DpopKey::new();
    let (code, verifier) = code_for(&app, &web, &[]).await;
    let res = redeem(&app, &web, &code, &verifier, &[&key.token_proof(&app)]).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    // A refresh with a new key binds the new access token to that key (RFC 9449 §5).
    let other = DpopKey::new();
    let res = refresh_with(&app, &web, &refresh, &[&other.token_proof(&app)]).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        jwt_part(body["access_token"].as_str().unwrap(), 1)["cnf"]["jkt"],
        other.jkt()
    );
    // ... and leaves the family unbound: the next refresh without a proof gets Bearer.
    let next = body["refresh_token"].as_str().unwrap().to_owned();
    let res = refresh_with(&app, &web, &next, &[]).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_code_requested_with_dpop_jkt_is_redeemed_only_with_that_key() {
    let app = spawn_app().await;
    app.create_user(RITA, "tenant", PASSWORD);
    let spa = app.create_code_client(FULL, &[CB], true, RT);
    let key = DpopKey::new();
    let jkt = key.jkt();
    let (code, verifier) = code_for(&app, &spa, &[("dpop_jkt", &jkt)]).await;
    // Without a proof, or with another key: refused, and the code is not spent (§10).
    let res = redeem(&app, &spa, &code, &verifier, &[]).await;
    expect_error(res, 400, "invalid_dpop_proof").await;
    let res = redeem(
        &app,
        &spa,
        &code,
        &verifier,
        &[&DpopKey::new().token_proof(&app)],
    )
    .await;
    expect_error(res, 400, "invalid_grant").await;
    let res = redeem(&app, &spa, &code, &verifier, &[&key.token_proof(&app)]).await;
    assert_eq!(res.status(), 200, "the code is still good for its key");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        jwt_part(body["access_token"].as_str().unwrap(), 1)["cnf"]["jkt"],
        jkt
    );

    // A malformed dpop_jkt is an invalid request, sent back to the client.
    let query = form(&[
        ("response_type", "code"),
        ("client_id", &spa.id),
        ("redirect_uri", CB),
        ("scope", FULL),
        ("state", "s"),
        (
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ),
        ("code_challenge_method", "S256"),
        ("dpop_jkt", "not-a-thumbprint"),
    ]);
    let res = app
        .browser_get(&format!("/authorize?{query}"), &Default::default())
        .await;
    let loc = crate::helpers::location(&res).unwrap_or_default();
    assert!(
        loc.starts_with(CB) && loc.contains("error=invalid_request"),
        "{loc}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_client_registered_for_dpop_bound_tokens_must_send_a_proof() {
    let app = spawn_app_with(Options {
        overrides: ServeOverrides {
            key_refresh_interval: Some("50ms".parse().unwrap()),
            ..ServeOverrides::default()
        },
        ..Options::default()
    })
    .await;
    let creds = app.create_client("property:read");
    // Register `dpop_bound_access_tokens` (RFC 9449 §5.2) in the store, as registration
    // would; the server picks the change up with its client cache.
    {
        use deedbolt_core::ids::ClientId;
        use deedbolt_core::ports::ClientStore;
        let store =
            deedbolt_store_sqlite::SqliteStore::open(&app.data_dir.path().join("deedbolt.db"))
                .await
                .expect("open store");
        let id = ClientId::parse(&creds.id).unwrap();
        let mut client = store.find_client(&id).await.unwrap().unwrap();
        client.metadata.dpop_bound_access_tokens = true;
        assert!(store.update_client(&client).await.unwrap());
        store.close().await;
    }
    // The client cache notices the change at its next sync.
    crate::helpers::eventually("a token request without a proof is refused", || async {
        cc(&app, &creds, &[]).await.status() == 400
    })
    .await;
    let res = cc(&app, &creds, &[]).await;
    expect_error(res, 400, "invalid_dpop_proof").await;
    let key = DpopKey::new();
    bound_token(&app, &creds, &key).await;
    app.stop().await;
}

#[tokio::test]
async fn userinfo_and_the_admin_api_take_dpop_tokens_and_refuse_them_as_bearer() {
    let app = spawn_app().await;
    const ADMIN: &str = "ada.dpop@example.com";
    app.create_user(ADMIN, "admin", PASSWORD);
    let web = app.create_code_client("openid email admin:read", &[CB], false, &[]);
    let key = DpopKey::new();
    let (code, verifier) = authorize_code_with(
        &app,
        &web.id,
        "openid email admin:read",
        ADMIN,
        PASSWORD,
        &[],
    )
    .await;
    let res = redeem(&app, &web, &code, &verifier, &[&key.token_proof(&app)]).await;
    assert_eq!(res.status(), 200);
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in ["/userinfo", "/admin/api/audit"] {
        let res = dpop_get(
            &app,
            path,
            &token,
            Some(&key.api_proof(&app, "GET", path, &token)),
        )
        .await;
        assert_eq!(res.status(), 200, "{path}: {}", www_authenticate(&res));
        let res = app.get(path, Some(&token)).await;
        assert_eq!(res.status(), 401, "{path} as Bearer");
        let res = dpop_get(
            &app,
            path,
            &token,
            Some(&DpopKey::new().api_proof(&app, "GET", path, &token)),
        )
        .await;
        assert_eq!(res.status(), 401, "{path} with another key");
        assert!(
            www_authenticate(&res).contains("invalid_dpop_proof"),
            "{path}"
        );
    }
    app.stop().await;
}

/// The admin API checks tokens with the guard, so it answers DPoP like `/userinfo` and the
/// API: with nonces required, the next `DPoP-Nonce` with every answer; without a token,
/// both the `Bearer` and the `DPoP algs=…` challenge (RFC 9449 §7.1); a DPoP-bound token
/// sent as `Bearer` gets `DPoP error="invalid_token"` (§7.2).
#[tokio::test]
async fn the_admin_api_answers_dpop_requests_as_userinfo_does() {
    let app = app_requiring_nonces().await;
    const ADMIN: &str = "ada.nonce@example.com";
    const SCOPE: &str = "openid email admin:read";
    app.create_user(ADMIN, "admin", PASSWORD);
    let web = app.create_code_client(SCOPE, &[CB], false, &[]);
    let key = DpopKey::new();
    let (code, verifier) = authorize_code_with(&app, &web.id, SCOPE, ADMIN, PASSWORD, &[]).await;
    let res = redeem(&app, &web, &code, &verifier, &[&key.token_proof(&app)]).await;
    let headers = expect_error(res, 400, "use_dpop_nonce").await;
    let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
    let proof = key.token_proof_with_nonce(&app, &nonce);
    let res = redeem(&app, &web, &code, &verifier, &[&proof]).await;
    assert_eq!(res.status(), 200);
    let mut nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let challenges = |res: &reqwest::Response| -> Vec<String> {
        res.headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    for path in ["/userinfo", "/admin/api/audit"] {
        // A proof with the current nonce: 200, and the next nonce with the answer.
        let mut c = DpopKey::claims("GET", &format!("{}{path}", app.base));
        c["ath"] = json!(ath(&token));
        c["nonce"] = json!(nonce);
        let res = dpop_get(&app, path, &token, Some(&key.sign(&key.header(), &c))).await;
        assert_eq!(res.status(), 200, "{path}: {:?}", challenges(&res));
        nonce = res
            .headers()
            .get("dpop-nonce")
            .unwrap_or_else(|| panic!("{path}: no DPoP-Nonce with the answer"))
            .to_str()
            .unwrap()
            .to_owned();

        // No token: the bare Bearer challenge and the DPoP one with its algorithms.
        let res = app.get(path, None).await;
        assert_eq!(res.status(), 401, "{path}");
        let got = challenges(&res);
        assert_eq!(
            got,
            [
                "Bearer realm=\"deedbolt\"",
                "DPoP realm=\"deedbolt\", algs=\"ES256 EdDSA PS256 RS256\""
            ],
            "{path}"
        );

        // The bound token as a bearer token: refused in the DPoP scheme.
        let res = app.get(path, Some(&token)).await;
        assert_eq!(res.status(), 401, "{path}");
        let got = challenges(&res);
        assert_eq!(got.len(), 1, "{path}: {got:?}");
        assert!(
            got[0].starts_with("DPoP ") && got[0].contains("error=\"invalid_token\""),
            "{path}: {got:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn discovery_advertises_the_dpop_algorithms() {
    let app = spawn_app().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc: Value = app.get(path, None).await.json().await.unwrap();
        assert_eq!(
            doc["dpop_signing_alg_values_supported"],
            json!(["ES256", "EdDSA", "PS256", "RS256"]),
            "{path}"
        );
    }
    app.stop().await;
}

/// Runs tests/openid-client/dpop.mjs for `creds` with a key of `key_type`; its JSON line.
async fn openid_client_dpop(app: &TestApp, creds: &Creds, key_type: &str) -> Value {
    let mut cmd = std::process::Command::new("node");
    cmd.arg("dpop.mjs")
        .current_dir(crate::helpers::openid_client_dir())
        .env("ISSUER", &app.base)
        .env("CLIENT_ID", &creds.id)
        .env("CLIENT_SECRET", &creds.secret)
        .env("KEY_TYPE", key_type);
    // Off the async runtime: the server runs on it.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("node thread")
        .expect("run node");
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).unwrap_or_else(|e| {
        panic!(
            "node printed {line:?} ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test]
async fn openid_client_5_gets_and_uses_dpop_bound_tokens_with_and_without_nonces() {
    if !crate::helpers::openid_client_installed() {
        return;
    }
    for nonce in ["off", "required"] {
        let app = spawn_app_with(Options {
            overrides: ServeOverrides {
                dpop_nonce: Some(nonce.into()),
                ..ServeOverrides::default()
            },
            ..Options::default()
        })
        .await;
        let creds = app.create_client("property:read");
        for key_type in ["ec", "ed25519"] {
            let done = openid_client_dpop(&app, &creds, key_type).await;
            assert!(
                done.get("error").is_none(),
                "{nonce}/{key_type}: openid-client: {done}"
            );
            assert_eq!(done["token_type"], "DPoP", "{done}");
            assert_eq!(
                done["dpop_algs"],
                json!(["ES256", "EdDSA", "PS256", "RS256"]),
                "{done}"
            );
            // The token is bound to the key openid-client holds.
            let jwk = &done["jwk"];
            let params = match key_type {
                "ec" => deedbolt_core::jose::JwkParams::Ec {
                    crv: jwk["crv"].as_str().unwrap().into(),
                    x: jwk["x"].as_str().unwrap().into(),
                    y: jwk["y"].as_str().unwrap().into(),
                },
                _ => deedbolt_core::jose::JwkParams::Okp {
                    crv: jwk["crv"].as_str().unwrap().into(),
                    x: jwk["x"].as_str().unwrap().into(),
                },
            };
            let claims = jwt_part(done["access_token"].as_str().unwrap(), 1);
            assert_eq!(
                claims["cnf"]["jkt"],
                params.thumbprint(),
                "{nonce}/{key_type}"
            );
            assert_eq!(done["api_status"], 200, "{nonce}/{key_type}: {done}");
            assert_eq!(done["again_status"], 200, "{nonce}/{key_type}: {done}");
            assert_eq!(done["bearer_status"], 401, "{done}");
            assert!(
                done["bearer_challenge"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("DPoP "),
                "{done}"
            );
            assert_eq!(done["other_key_status"], 401, "{done}");
            assert!(
                done["other_key_challenge"]
                    .as_str()
                    .unwrap_or("")
                    .contains("invalid_dpop_proof"),
                "{done}"
            );
        }
        app.stop().await;
    }
}

/// Two instances behind one public issuer, sharing PostgreSQL and Redis: a nonce handed
/// out by one is good at the other (they are stateless, keyed from the shared pepper), a
/// proof used at one is a replay at the other (the shared `jti` cache), and `htu` is the
/// public URL, not the address a request reached (RFC 9449 §4.3 check 9).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_nonces_and_the_replay_cache_and_check_the_public_htu() {
    const ISSUER: &str = "https://auth.example.com";
    let Some(mut opts) = crate::helpers::postgres_options().await else {
        return;
    };
    let Some(redis) = crate::helpers::redis_url() else {
        return;
    };
    let master = deedbolt_core::seal::MasterKey::generate_encoded().expect("master key");
    opts.master_key = Some(master.as_str().to_owned());
    opts.overrides.issuer = Some(ISSUER.into());
    opts.overrides.dpop_nonce = Some("required".into());
    opts.global.redis_url = Some(redis);
    opts.global.redis_prefix = Some(format!(
        "deedbolt-test-{}:",
        crate::helpers::random_b64url(9)
    ));
    let a = spawn_app_with(opts.clone()).await;
    let b = spawn_app_with(opts).await;
    let creds = a.create_client("property:read");
    let key = DpopKey::new();
    let htu = format!("{ISSUER}/token");
    let proof_with = |nonce: Option<&str>| {
        let mut c = DpopKey::claims("POST", &htu);
        if let Some(n) = nonce {
            c["nonce"] = json!(n);
        }
        key.sign(&key.header(), &c)
    };
    // A's nonce, used at B.
    let res = cc(&a, &creds, &[&proof_with(None)]).await;
    let headers = expect_error(res, 400, "use_dpop_nonce").await;
    let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
    let proof = proof_with(Some(&nonce));
    let res = cc(&b, &creds, &[&proof]).await;
    assert_eq!(res.status(), 200, "B takes A's nonce");
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // The same proof at A: a replay.
    let res = cc(&a, &creds, &[&proof]).await;
    expect_error(res, 400, "invalid_dpop_proof").await;
    // A proof naming the address the request reached, not the public URL, is refused.
    let mut c = DpopKey::claims("POST", &format!("{}/token", a.base));
    c["nonce"] = json!(nonce);
    let res = cc(&a, &creds, &[&key.sign(&key.header(), &c)]).await;
    expect_error(res, 400, "invalid_dpop_proof").await;
    // At the API too: htu is the public URL of the path, and a replay at the other
    // instance is refused.
    const PATH: &str = "/api/properties";
    let mut c = DpopKey::claims("GET", &format!("{ISSUER}{PATH}"));
    c["ath"] = json!(ath(&token));
    c["nonce"] = json!(nonce);
    let proof = key.sign(&key.header(), &c);
    let res = dpop_get(&a, PATH, &token, Some(&proof)).await;
    assert_eq!(res.status(), 200, "{}", www_authenticate(&res));
    let res = dpop_get(&b, PATH, &token, Some(&proof)).await;
    assert_eq!(res.status(), 401);
    assert!(www_authenticate(&res).contains("invalid_dpop_proof"));
    a.stop().await;
    b.stop().await;
}

/// `POST /par` for the confidential `client` with `proofs`.
async fn push_with(
    app: &TestApp,
    client: &CodeClient,
    req: &crate::par::Pushed,
    proofs: &[&str],
) -> reqwest::Response {
    let body = req.form(&[]);
    let mut r = app
        .http
        .post(app.url("/par"))
        .header("content-type", "application/x-www-form-urlencoded")
        .basic_auth(&client.id, client.secret.as_deref());
    for p in proofs {
        r = r.header("DPoP", *p);
    }
    r.body(body).send().await.expect("PAR request")
}

#[tokio::test]
async fn a_proof_at_the_par_endpoint_binds_the_code_to_its_key() {
    let app = spawn_app().await;
    app.create_user(RITA, "tenant", PASSWORD);
    let web = app.create_code_client(FULL, &[CB], false, &[]);
    let key = DpopKey::new();
    let par_proof = |k: &DpopKey| {
        k.sign(
            &k.header(),
            &DpopKey::claims("POST", &format!("{}/par", app.base)),
        )
    };
    // RFC 9449 §10.1: a dpop_jkt naming another key than the proof's is refused.
    let req = crate::par::Pushed::new(FULL).set("dpop_jkt", &DpopKey::new().jkt());
    let res = push_with(&app, &web, &req, &[&par_proof(&key)]).await;
    expect_error(res, 400, "invalid_dpop_proof").await;
    // A proof for the token endpoint is not one for /par.
    let req = crate::par::Pushed::new(FULL);
    let res = push_with(&app, &web, &req, &[&key.token_proof(&app)]).await;
    expect_error(res, 400, "invalid_dpop_proof").await;
    // The proof's key binds the code.
    let res = push_with(&app, &web, &req, &[&par_proof(&key)]).await;
    let uri = crate::par::pushed_uri(res).await;
    let back = app
        .sign_in_through_pages(
            &crate::par::authorize_uri(&web.id, &uri),
            RITA,
            PASSWORD,
            "approve",
            &mut Default::default(),
        )
        .await;
    let code = crate::par::callback(&back)["code"].clone();
    let res = redeem(
        &app,
        &web,
        &code,
        &req.verifier,
        &[&DpopKey::new().token_proof(&app)],
    )
    .await;
    expect_error(res, 400, "invalid_grant").await;
    let res = redeem(&app, &web, &code, &req.verifier, &[&key.token_proof(&app)]).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        jwt_part(body["access_token"].as_str().unwrap(), 1)["cnf"]["jkt"],
        key.jkt()
    );
    app.stop().await;
}
