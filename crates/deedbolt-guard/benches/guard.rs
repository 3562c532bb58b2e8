//! The guard's full check of a token against its cryptographic floor.
//!
//! `guard/full_check/*` (header, key lookup, signature, claims, scope) should be read as
//! a ratio to `floor/verify/*` (the bare aws-lc-rs signature verification) plus
//! `floor/claims_parse` (one JSON parse of the claims). `dpop/proof/*` is what a DPoP
//! proof adds to a request (RFC 9449 §4.3: header, embedded key, signature, claims,
//! thumbprint; not the replay cache), beside the same `floor/verify/*`.

use std::sync::Arc;

use aws_lc_rs::signature::{
    RsaPublicKeyComponents, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519,
    RSA_PKCS1_2048_8192_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use deedbolt_core::clock::SystemClock;
use deedbolt_core::ids::{ClientId, TokenId};
use deedbolt_core::jose::{JwkParams, JwkSet, SigningAlg, SigningKey};
use deedbolt_core::scope::{Scope, ScopeSet};
use deedbolt_core::token::{AccessTokenClaims, ACCESS_TOKEN_TYP};
use deedbolt_guard::{StaticKeys, Verifier};

fn bench(c: &mut Criterion) {
    for alg in SigningAlg::ALL {
        let (key, _) = SigningKey::generate(alg).unwrap();
        let now = deedbolt_core::clock::Clock::now(&SystemClock);
        let claims = AccessTokenClaims {
            iss: "https://auth.example.com".into(),
            sub: "dbc_bench".into(),
            aud: "https://auth.example.com/api".into(),
            exp: now.plus_secs(900),
            iat: now,
            nbf: None,
            jti: TokenId::generate().unwrap(),
            client_id: ClientId::parse("dbc_bench").unwrap(),
            scope: "property:read financial:read".parse().unwrap(),
            cnf: None,
        };
        let token = key.sign_jwt(ACCESS_TOKEN_TYP, &claims).unwrap();
        let keys = Arc::new(
            StaticKeys::from_jwks(&JwkSet {
                keys: vec![key.public_jwk().clone()],
            })
            .unwrap(),
        );
        let verifier = Verifier::new(
            "https://auth.example.com",
            "https://auth.example.com/api",
            keys,
            Arc::new(SystemClock),
        );
        let required = ScopeSet::empty().with(Scope::PropertyRead);

        let (message, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let d = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
        let floor: Box<dyn Fn() -> bool> = match key.public_jwk().params.clone() {
            JwkParams::Ec { x, y, .. } => {
                let mut point = vec![4u8];
                point.extend(d(&x));
                point.extend(d(&y));
                let pk = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point);
                let (m, s) = (message.as_bytes().to_vec(), sig.clone());
                Box::new(move || pk.verify(&m, &s).is_ok())
            }
            JwkParams::Okp { x, .. } => {
                let pk = UnparsedPublicKey::new(&ED25519, d(&x));
                let (m, s) = (message.as_bytes().to_vec(), sig.clone());
                Box::new(move || pk.verify(&m, &s).is_ok())
            }
            JwkParams::Rsa { n, e } => {
                let pk = RsaPublicKeyComponents { n: d(&n), e: d(&e) };
                let (m, s) = (message.as_bytes().to_vec(), sig.clone());
                Box::new(move || pk.verify(&RSA_PKCS1_2048_8192_SHA256, &m, &s).is_ok())
            }
        };
        assert!(floor());
        c.bench_function(&format!("floor/verify/{alg}"), |b| {
            b.iter(|| black_box(floor()))
        });
        c.bench_function(&format!("guard/full_check/{alg}"), |b| {
            b.iter(|| {
                let claims = verifier.verify(black_box(&token)).unwrap();
                assert!(required.is_subset(&claims.scope));
                claims
            })
        });
    }
    let claims_json = serde_json::json!({
        "iss": "https://auth.example.com", "sub": "dbc_bench", "aud": "https://auth.example.com/api",
        "exp": 1_900_000_000, "iat": 1_800_000_000, "jti": "abcdefghijklmnopqrstuv",
        "client_id": "dbc_bench", "scope": "property:read financial:read"
    })
    .to_string();
    c.bench_function("floor/claims_parse", |b| {
        b.iter(|| serde_json::from_str::<AccessTokenClaims>(black_box(&claims_json)).unwrap())
    });
}

fn dpop(c: &mut Criterion) {
    use deedbolt_guard::dpop::{DpopRequest, DpopVerifier};
    let b64 = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let verifier = DpopVerifier::new(Arc::new(SystemClock));
    let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl";
    let request = DpopRequest {
        method: "GET",
        uri: "https://api.example.com/api/properties",
        access_token: Some(token),
    };
    for alg in SigningAlg::ALL {
        let (key, _) = SigningKey::generate(alg).unwrap();
        let mut jwk = serde_json::to_value(&key.public_jwk().params).unwrap();
        jwk.as_object_mut().unwrap().remove("alg");
        let header = serde_json::json!({ "typ": "dpop+jwt", "alg": alg.as_str(), "jwk": jwk });
        let now = deedbolt_core::clock::Clock::now(&SystemClock);
        let claims = serde_json::json!({
            "jti": "bench-proof-0123456789", "htm": "GET",
            "htu": "https://api.example.com/api/properties", "iat": now.0,
            "ath": deedbolt_guard::dpop::access_token_hash(token),
        });
        let message = format!("{}.{}", b64(&header), b64(&claims));
        let signature = URL_SAFE_NO_PAD.encode(key.sign_bytes(message.as_bytes()).unwrap());
        let proof = http::HeaderValue::from_str(&format!("{message}.{signature}")).unwrap();
        assert!(verifier
            .verify_stateless(std::iter::once(&proof), &request)
            .is_ok());
        c.bench_function(&format!("dpop/proof/{alg}"), |b| {
            b.iter(|| {
                verifier
                    .verify_stateless(std::iter::once(black_box(&proof)), &request)
                    .unwrap()
            })
        });
    }
}

// `criterion_group!` generates an undocumented `pub fn`.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, bench, dpop);
}

criterion_main!(group::benches);
