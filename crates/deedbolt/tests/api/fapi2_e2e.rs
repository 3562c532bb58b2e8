//! The FAPI 2.0 Security Profile end to end, driven by a relying-party library: panva's
//! openid-client 5 (tests/openid-client/fapi2.mjs) against a server started with
//! `--profile fapi2`. The client authenticates with `private_key_jwt` (RFC 7523), pushes
//! its authorization request (RFC 9126), proves PKCE S256, checks `iss` on the response
//! (RFC 9207), and gets DPoP-bound tokens (RFC 9449, with the nonces the profile requires)
//! that it then uses at /userinfo and the PropTech API, and refreshes.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};

use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::helpers::{
    fapi2_options, openid_client_dir, openid_client_installed, spawn_app_with, Jar,
};

const CB: &str = "https://rp.example.com/cb";
const EMAIL: &str = "fapi.tenant@example.com";
const PASSWORD: &str = "correct horse battery staple 42";

/// One JSON line from the relying party (read off the async runtime: the server runs on it).
async fn next_line(
    stdout: BufReader<std::process::ChildStdout>,
) -> (BufReader<std::process::ChildStdout>, Value) {
    tokio::task::spawn_blocking(move || {
        let mut stdout = stdout;
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read from node");
        let v =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("node printed {line:?}: {e}"));
        (stdout, v)
    })
    .await
    .expect("reader thread")
}

#[tokio::test]
async fn openid_client_5_completes_a_fapi2_flow_with_private_key_jwt_par_and_dpop() {
    if !openid_client_installed() {
        return;
    }
    let app = spawn_app_with(fapi2_options()).await;
    let user_id = app.create_user(EMAIL, "tenant", PASSWORD);

    // The client's ES256 key: the public half registered, the private half to node.
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key");
    let pkcs8 = pair.to_pkcs8v1().expect("pkcs8");
    let public = pair.public_key().as_ref();
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "rp-1", "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&public[1..33]), "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
    }]});
    let jwks_file = app.data_dir.path().join("rp.jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).expect("write jwks");
    let client = app.cli_json(&[
        "client",
        "create",
        "--name",
        "fapi-rp",
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
        jwks_file.to_str().expect("path"),
        "--id-token-alg",
        "ES256",
        "--json",
    ]);
    let client_id = client["client_id"].as_str().expect("client_id").to_owned();

    let mut child = Command::new("node")
        .arg("fapi2.mjs")
        .current_dir(openid_client_dir())
        .env("ISSUER", &app.base)
        .env("CLIENT_ID", &client_id)
        .env("CLIENT_KEY_PKCS8", STANDARD.encode(pkcs8.as_ref()))
        .env("CLIENT_KID", "rp-1")
        .env("REDIRECT_URI", CB)
        .env("SCOPE", "openid tenant:read")
        .env("API_URL", app.url("/api/tenants"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start node");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));

    let (stdout, first) = next_line(stdout).await;
    let authorize = first["authorize"]
        .as_str()
        .unwrap_or_else(|| panic!("openid-client failed before redirecting: {first}"))
        .to_owned();
    // The request itself was pushed: PKCE, state and nonce never travel through the browser
    // (openid-client adds its defaults — scope, response_type, redirect_uri — which the
    // server ignores beside a request_uri, RFC 9126 §4).
    let query = crate::helpers::query_params(&authorize);
    for pushed in ["code_challenge", "state", "nonce"] {
        assert!(!query.contains_key(pushed), "{pushed} in {authorize}");
    }
    assert!(query["request_uri"].starts_with("urn:ietf:params:oauth:request_uri:"));

    let back = app
        .sign_in_through_pages(&authorize, EMAIL, PASSWORD, "approve", &mut Jar::default())
        .await;
    assert_eq!(
        crate::helpers::query_params(&back)["iss"],
        app.base,
        "RFC 9207 iss"
    );
    writeln!(stdin, "{back}").expect("write to node");
    let (_, done) = next_line(stdout).await;
    let _ = child.kill();
    let _ = child.wait();

    assert!(done.get("error").is_none(), "openid-client: {done}");
    assert_eq!(done["token_type"], "DPoP", "{done}");
    let jkt = done["access_claims"]["cnf"]["jkt"]
        .as_str()
        .expect("cnf.jkt");
    assert_eq!(done["access_claims"]["sub"], user_id.as_str());
    assert_eq!(
        done["claims"]["sub"],
        user_id.as_str(),
        "the ID token was verified"
    );
    assert_eq!(done["userinfo"]["sub"], user_id.as_str());
    assert_eq!(done["api_status"], 200, "the API took the DPoP-bound token");
    assert_eq!(done["refreshed_token_type"], "DPoP");
    assert_eq!(
        done["refreshed_claims"]["cnf"]["jkt"], jkt,
        "the refreshed access token is bound to the same key"
    );
}
