//! DPoP-bound tokens (RFC 9449 §7) at the guard, the way a resource server uses it:
//! `Guard::with_dpop` with an in-process replay cache in front of an axum router, also one
//! nested under a prefix, where `htu` must still be the full public URL of the request.
#![cfg(feature = "axum")]

use std::sync::Arc;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use deedbolt_core::ids::TokenId;
use deedbolt_core::jose::{SigningAlg, SigningKey};
use deedbolt_core::replay::MemoryReplayCache;
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::token::Confirmation;
use deedbolt_guard::dpop::{access_token_hash, DpopVerifier};
use deedbolt_guard::Guard;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, StatusCode};
use serde_json::json;
use tower::ServiceExt as _;

mod common;

use common::NOW;

const PUBLIC: &str = "https://api.example.com";

struct Fixture {
    signer: SigningKey,
    proof_key: SigningKey,
    guard: Guard,
}

fn fixture() -> Fixture {
    let (signer, clock, verifier) = common::issuer();
    let (proof_key, _) = SigningKey::generate(SigningAlg::ES256).unwrap();
    // One instance: the in-process replay cache.
    let replay = Arc::new(MemoryReplayCache::new(clock.clone()));
    let guard = Guard::new(verifier).with_dpop(DpopVerifier::new(clock), replay, PUBLIC);
    Fixture {
        signer,
        proof_key,
        guard,
    }
}

/// An access token bound to the fixture's proof key.
fn token(f: &Fixture) -> String {
    let jkt = f.proof_key.public_jwk().params.thumbprint();
    common::token(&f.signer, Some(Confirmation::dpop(jkt)))
}

/// A proof for `GET htu` with `token`, a fresh `jti` each time.
fn proof(f: &Fixture, htu: &str, token: &str) -> String {
    let mut jwk = serde_json::to_value(&f.proof_key.public_jwk().params).unwrap();
    jwk.as_object_mut().unwrap().remove("kid");
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
    let claims = json!({
        "jti": TokenId::generate().unwrap().as_str(),
        "htm": "GET", "htu": htu, "iat": NOW, "ath": access_token_hash(token),
    });
    let msg = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = f.proof_key.sign_bytes(msg.as_bytes()).unwrap();
    format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// `/things` behind the guard, mounted at the top and nested under `/v1`.
fn app(f: &Fixture) -> Router {
    let scope: ScopeSet = "property:read".parse().unwrap();
    let things = || {
        Router::new()
            .route("/things", get(|| async { "things" }))
            .route_layer(f.guard.require(scope))
    };
    Router::new().merge(things()).nest("/v1", things())
}

async fn get_with(f: &Fixture, path: &str, htu: &str) -> (StatusCode, String) {
    let token = token(f);
    let req = Request::builder()
        .uri(path)
        .header(AUTHORIZATION, format!("DPoP {token}"))
        .header("dpop", proof(f, htu, &token))
        .body(Body::empty())
        .unwrap();
    let res = app(f).oneshot(req).await.unwrap();
    let challenge = res
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (res.status(), challenge)
}

#[tokio::test]
async fn a_bound_token_passes_with_a_proof_of_its_key_for_the_public_url() {
    let f = fixture();
    let (status, challenge) = get_with(&f, "/things", &format!("{PUBLIC}/things")).await;
    assert_eq!(status, StatusCode::OK, "{challenge}");
    let (status, challenge) = get_with(&f, "/things", "https://elsewhere.example/things").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
}

#[tokio::test]
async fn under_a_nested_router_htu_is_the_full_path_not_the_stripped_one() {
    let f = fixture();
    let (status, challenge) = get_with(&f, "/v1/things", &format!("{PUBLIC}/v1/things")).await;
    assert_eq!(status, StatusCode::OK, "{challenge}");
    // The path the nested router hands on (prefix stripped) is not the request's URI.
    let (status, challenge) = get_with(&f, "/v1/things", &format!("{PUBLIC}/things")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
}
