//! `Verifier::check`: the verified-token cache must never accept what `verify` would not.

use std::sync::Arc;

use deedbolt_core::clock::{ManualClock, UnixTime};
use deedbolt_core::ids::{ClientId, TokenId};
use deedbolt_core::jose::{JwkSet, SigningAlg, SigningKey};
use deedbolt_core::token::{AccessTokenClaims, ACCESS_TOKEN_TYP};
use deedbolt_guard::{StaticKeys, TokenRejection, Verifier};

const NOW: i64 = 1_800_000_000;

fn claims(exp: i64) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "https://as".into(),
        sub: "dbc_a".into(),
        aud: "https://as/api".into(),
        exp: UnixTime(exp),
        iat: UnixTime(NOW),
        nbf: None,
        jti: TokenId::generate().unwrap(),
        client_id: ClientId::parse("dbc_a").unwrap(),
        scope: "property:read".parse().unwrap(),
        cnf: None,
    }
}

fn set(keys: &[&SigningKey]) -> JwkSet {
    JwkSet {
        keys: keys.iter().map(|k| k.public_jwk().clone()).collect(),
    }
}

struct Fixture {
    key: SigningKey,
    keys: Arc<StaticKeys>,
    clock: Arc<ManualClock>,
    verifier: Verifier,
}

fn fixture(capacity: usize) -> Fixture {
    let (key, _) = SigningKey::generate(SigningAlg::ES256).unwrap();
    let keys = Arc::new(StaticKeys::from_jwks(&set(&[&key])).unwrap());
    let clock = Arc::new(ManualClock::new(UnixTime(NOW)));
    let verifier = Verifier::new("https://as", "https://as/api", keys.clone(), clock.clone())
        .with_cache_capacity(capacity);
    Fixture {
        key,
        keys,
        clock,
        verifier,
    }
}

#[test]
fn repeated_check_returns_the_same_claims() {
    let f = fixture(16);
    let c = claims(NOW + 900);
    let token = f.key.sign_jwt(ACCESS_TOKEN_TYP, &c).unwrap();
    let first = f.verifier.check(&token).unwrap();
    let second = f.verifier.check(&token).unwrap();
    assert_eq!(*first, c);
    assert!(
        Arc::ptr_eq(&first, &second),
        "second check is served from the cache"
    );
}

#[test]
fn cached_token_still_expires() {
    let f = fixture(16);
    let token = f
        .key
        .sign_jwt(ACCESS_TOKEN_TYP, &claims(NOW + 900))
        .unwrap();
    f.verifier.check(&token).unwrap();
    f.clock.set(UnixTime(NOW + 900 + 29));
    assert!(f.verifier.check(&token).is_ok());
    f.clock.set(UnixTime(NOW + 900 + 30));
    assert_eq!(f.verifier.check(&token), Err(TokenRejection::Expired));
}

#[test]
fn cached_token_is_dropped_when_its_key_leaves_the_set() {
    let f = fixture(16);
    let token = f
        .key
        .sign_jwt(ACCESS_TOKEN_TYP, &claims(NOW + 900))
        .unwrap();
    f.verifier.check(&token).unwrap();
    let (other, _) = SigningKey::generate(SigningAlg::ES256).unwrap();
    f.keys.replace(&set(&[&other])).unwrap();
    assert_eq!(f.verifier.check(&token), Err(TokenRejection::UnknownKey));
}

#[test]
fn cached_token_is_reverified_when_its_key_is_replaced() {
    let f = fixture(16);
    let token = f
        .key
        .sign_jwt(ACCESS_TOKEN_TYP, &claims(NOW + 900))
        .unwrap();
    f.verifier.check(&token).unwrap();
    // Same kid, different public key: the cached verdict must not survive.
    let (other, _) = SigningKey::generate(SigningAlg::ES256).unwrap();
    let mut jwk = other.public_jwk().clone();
    jwk.kid = f.key.kid().clone();
    f.keys.replace(&JwkSet { keys: vec![jwk] }).unwrap();
    assert_eq!(f.verifier.check(&token), Err(TokenRejection::Signature));
}

#[test]
fn a_tampered_copy_is_not_served_from_the_cache() {
    let f = fixture(16);
    let token = f
        .key
        .sign_jwt(ACCESS_TOKEN_TYP, &claims(NOW + 900))
        .unwrap();
    f.verifier.check(&token).unwrap();
    let mut parts: Vec<&str> = token.split('.').collect();
    let other = f
        .key
        .sign_jwt(ACCESS_TOKEN_TYP, &claims(NOW + 1800))
        .unwrap();
    let other_claims = other.split('.').nth(1).unwrap().to_owned();
    parts[1] = &other_claims;
    assert_eq!(
        f.verifier.check(&parts.join(".")),
        Err(TokenRejection::Signature)
    );
}

#[test]
fn failures_are_not_cached() {
    let f = fixture(16);
    let token = f
        .key
        .sign_jwt(ACCESS_TOKEN_TYP, &claims(NOW - 100))
        .unwrap();
    assert_eq!(f.verifier.check(&token), Err(TokenRejection::Expired));
    assert_eq!(f.verifier.check(&token), Err(TokenRejection::Expired));
}

#[test]
fn the_cache_can_be_disabled_and_overflows_safely() {
    for capacity in [0, 1] {
        let f = fixture(capacity);
        for _ in 0..3 {
            let token = f
                .key
                .sign_jwt(ACCESS_TOKEN_TYP, &claims(NOW + 900))
                .unwrap();
            assert!(f.verifier.check(&token).is_ok());
            assert!(f.verifier.check(&token).is_ok());
        }
    }
}
