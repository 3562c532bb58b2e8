//! ID tokens that relying parties accept: each client's ID tokens are signed with its
//! registered `id_token_signed_response_alg` (RS256 unless it asked otherwise, as OpenID
//! Connect defines the default), with a current key of every algorithm in the JWKS; and
//! panva's openid-client 5 (npm), on its defaults, completes the code flow.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::Value;

use crate::helpers::{
    jwt_part, openid_client_dir, openid_client_installed, pkce_pair, query_params, random_b64url,
    spawn_app, Jar, TestApp,
};

const EMAIL: &str = "ida.tenant@example.com";
const PASSWORD: &str = "plum-Orchard-Lantern-77-quietly";
const CB: &str = "https://rp.example.com/cb";
const SCOPE: &str = "openid profile email tenant:read";

/// Registers a confidential code client; `id_token_alg` is passed as `--id-token-alg`.
fn code_client(app: &TestApp, id_token_alg: Option<&str>) -> (String, String, Value) {
    let mut args = vec![
        "client",
        "create",
        "--name",
        "relying party",
        "--grant",
        "authorization_code",
        "--scope",
        SCOPE,
        "--redirect-uri",
        CB,
        "--json",
    ];
    if let Some(alg) = id_token_alg {
        args.extend(["--id-token-alg", alg]);
    }
    let v = app.cli_json(&args);
    (
        v["client_id"].as_str().expect("client_id").to_owned(),
        v["client_secret"]
            .as_str()
            .expect("client_secret")
            .to_owned(),
        v,
    )
}

/// Signs in through the server's pages and returns the token response of the code.
async fn code_flow(app: &TestApp, client_id: &str, secret: &str) -> (Value, String) {
    let (verifier, challenge) = pkce_pair();
    let (state, nonce) = (random_b64url(16), random_b64url(16));
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", CB),
            ("scope", SCOPE),
            ("state", &state),
            ("nonce", &nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    let mut jar = Jar::default();
    let back = app
        .sign_in_through_pages(
            &format!("/authorize?{query}"),
            EMAIL,
            PASSWORD,
            "approve",
            &mut jar,
        )
        .await;
    let params = query_params(&back);
    assert_eq!(params["state"], state);
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &params["code"]),
            ("redirect_uri", CB),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .expect("POST /token");
    assert_eq!(res.status(), 200);
    (res.json().await.expect("token JSON"), nonce)
}

/// Verifies `id_token` with the published key its `kid` names, as a relying party does,
/// allowing only `alg`; returns the claims.
async fn verify_id_token(app: &TestApp, id_token: &str, alg: &str, client_id: &str) -> Value {
    let header = jsonwebtoken::decode_header(id_token).expect("ID token header");
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(app.jwks().await).expect("JWKS parses");
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("the ID token's key is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("usable JWK");
    let mut validation = jsonwebtoken::Validation::new(alg.parse().expect("alg"));
    validation.set_issuer(&[&app.base]);
    validation.set_audience(&[client_id]);
    jsonwebtoken::decode::<Value>(id_token, &key, &validation)
        .unwrap_or_else(|e| panic!("{alg} ID token does not verify: {e}"))
        .claims
}

#[tokio::test]
async fn rs256_and_es256_clients_each_get_a_verifiable_id_token_of_their_alg() {
    let app = spawn_app().await;
    let user_id = app.create_user(EMAIL, "tenant", PASSWORD);
    let (default_id, default_secret, registered) = code_client(&app, None);
    assert_eq!(
        registered["id_token_signed_response_alg"], "RS256",
        "OpenID Connect's default: {registered}"
    );
    let (es_id, es_secret, registered) = code_client(&app, Some("ES256"));
    assert_eq!(registered["id_token_signed_response_alg"], "ES256");

    for (client_id, secret, alg) in [
        (&default_id, &default_secret, "RS256"),
        (&es_id, &es_secret, "ES256"),
    ] {
        let (body, nonce) = code_flow(&app, client_id, secret).await;
        let access = body["access_token"].as_str().expect("access_token");
        assert_eq!(
            jwt_part(access, 0)["alg"],
            "ES256",
            "access tokens keep --signing-alg"
        );
        let id_token = body["id_token"].as_str().expect("id_token");
        assert_eq!(jwt_part(id_token, 0)["alg"], alg);
        let claims = verify_id_token(&app, id_token, alg, client_id).await;
        assert_eq!(claims["sub"], user_id.as_str());
        assert_eq!(claims["nonce"], nonce.as_str());
        let expected_at_hash = deedbolt_core::flow::at_hash(access, alg.parse().unwrap());
        assert_eq!(claims["at_hash"], expected_at_hash.as_str(), "{alg}");
        // Only the registered algorithm verifies it: a relying party pinning another
        // refuses it.
        let other = if alg == "RS256" { "ES256" } else { "RS256" };
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(app.jwks().await).unwrap();
        let kid = jwt_part(id_token, 0)["kid"].as_str().unwrap().to_owned();
        let key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
        let mut pinned = jsonwebtoken::Validation::new(other.parse().unwrap());
        pinned.set_audience(&[client_id]);
        assert!(jsonwebtoken::decode::<Value>(id_token, &key, &pinned).is_err());
        // Its key is in the JWKS the API trusts, but an ID token is not an access token.
        assert_eq!(app.get("/userinfo", Some(id_token)).await.status(), 401);
    }

    // Discovery advertises exactly the algorithms the JWKS has a current key for.
    let doc: Value = app
        .get("/.well-known/openid-configuration", None)
        .await
        .json()
        .await
        .unwrap();
    let mut advertised: Vec<String> = doc["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    advertised.sort();
    let mut published: Vec<String> = app.jwks().await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap().to_owned())
        .collect();
    published.sort();
    assert_eq!(advertised, published);
    assert_eq!(advertised, ["ES256", "EdDSA", "RS256"]);
}

#[tokio::test]
async fn client_create_refuses_an_unknown_id_token_alg() {
    let app = spawn_app().await;
    for alg in ["HS256", "none", "rs256"] {
        let out = app.cli(&[
            "client",
            "create",
            "--name",
            "rp",
            "--grant",
            "authorization_code",
            "--scope",
            SCOPE,
            "--redirect-uri",
            CB,
            "--id-token-alg",
            alg,
        ]);
        assert!(!out.status.success(), "--id-token-alg {alg} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(alg), "stderr names the value: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------
// openid-client 5 (tests/openid-client/code-flow.mjs)
// ---------------------------------------------------------------------------------------

/// The Node.js relying party, one JSON line per step.
struct RelyingParty {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl RelyingParty {
    fn start(app: &TestApp, client_id: &str, secret: &str, id_token_alg: Option<&str>) -> Self {
        let mut cmd = Command::new("node");
        cmd.arg("code-flow.mjs")
            .current_dir(openid_client_dir())
            .env("ISSUER", &app.base)
            .env("CLIENT_ID", client_id)
            .env("CLIENT_SECRET", secret)
            .env("REDIRECT_URI", CB)
            .env("SCOPE", SCOPE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(alg) = id_token_alg {
            cmd.env("ID_TOKEN_ALG", alg);
        }
        let mut child = cmd.spawn().expect("start node");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        RelyingParty {
            child,
            stdin,
            stdout,
        }
    }

    /// The next JSON line (read off the async runtime: the server runs on it).
    async fn next(self) -> (Self, Value) {
        tokio::task::spawn_blocking(move || {
            let mut me = self;
            let mut line = String::new();
            me.stdout.read_line(&mut line).expect("read from node");
            let v = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("node printed {line:?}: {e}"));
            (me, v)
        })
        .await
        .expect("reader thread")
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to node");
    }
}

impl Drop for RelyingParty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the code flow with openid-client; its final JSON line.
async fn openid_client_flow(
    app: &TestApp,
    client_id: &str,
    secret: &str,
    id_token_alg: Option<&str>,
) -> Value {
    let rp = RelyingParty::start(app, client_id, secret, id_token_alg);
    let (mut rp, first) = rp.next().await;
    let authorize = first["authorize"]
        .as_str()
        .unwrap_or_else(|| panic!("openid-client failed before redirecting: {first}"))
        .to_owned();
    let mut jar = Jar::default();
    let back = app
        .sign_in_through_pages(&authorize, EMAIL, PASSWORD, "approve", &mut jar)
        .await;
    rp.send(&back);
    rp.next().await.1
}

#[tokio::test]
async fn openid_client_5_on_defaults_completes_the_code_flow() {
    if !openid_client_installed() {
        return;
    }
    let app = spawn_app().await;
    let user_id = app.create_user(EMAIL, "tenant", PASSWORD);

    // A client registered without an algorithm, and openid-client without one: both
    // assume RS256.
    let (id, secret, _) = code_client(&app, None);
    let done = openid_client_flow(&app, &id, &secret, None).await;
    assert!(done.get("error").is_none(), "openid-client: {done}");
    assert_eq!(done["id_token_header"]["alg"], "RS256", "{done}");
    assert_eq!(done["claims"]["sub"], user_id.as_str());
    assert_eq!(done["claims"]["aud"], id.as_str());
    assert_eq!(done["userinfo"]["sub"], user_id.as_str());
    assert_eq!(done["userinfo"]["email"], EMAIL);

    // A client registered for ES256 that tells openid-client so.
    let (id, secret, _) = code_client(&app, Some("ES256"));
    let done = openid_client_flow(&app, &id, &secret, Some("ES256")).await;
    assert!(done.get("error").is_none(), "openid-client: {done}");
    assert_eq!(done["id_token_header"]["alg"], "ES256", "{done}");
    assert_eq!(done["claims"]["sub"], user_id.as_str());

    // The mismatch the issue was about is still caught by the client: an ES256 client
    // that leaves openid-client on its RS256 default has its ID token refused.
    let done = openid_client_flow(&app, &id, &secret, None).await;
    let error = done["error"].as_str().unwrap_or_else(|| panic!("{done}"));
    assert!(error.contains("alg"), "{error}");
}
