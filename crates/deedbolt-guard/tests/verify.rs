//! Behaviour tests for the resource-server guard: the token verifier (RFC 9068, RFC 7515,
//! RFC 8725 attacks), its time rules, key rotation, and the tower layer's RFC 6750 §3
//! responses.

use std::convert::Infallible;
use std::io::ErrorKind as IoErrorKind;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use deedbolt_core::clock::{ManualClock, UnixTime};
use deedbolt_core::ids::{ClientId, TokenId};
use deedbolt_core::jose::{Jwk, JwkParams, JwkSet, SigningAlg, SigningKey};
use deedbolt_core::scope::{Scope, ScopeSet};
use deedbolt_core::token::AccessTokenClaims;
use deedbolt_guard::{
    Authorized, Guard, KeyResolver, StaticKeys, TokenRejection, Verifier, VerifyingKey,
};
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use serde_json::{json, Value};
use tower::{Layer, ServiceExt};

const ISSUER: &str = "https://as.deedbolt.test";
const AUDIENCE: &str = "https://api.deedbolt.test";
const NOW: i64 = 1_700_000_000;
const LIFETIME: i64 = 900;
const LEEWAY: i64 = 30;
const CLIENT: &str = "dbc_guardtest";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn new_key(alg: SigningAlg) -> SigningKey {
    SigningKey::generate(alg).expect("key generation").0
}

fn jwks(keys: &[&SigningKey]) -> JwkSet {
    JwkSet {
        keys: keys.iter().map(|k| k.public_jwk().clone()).collect(),
    }
}

/// A verifier for `ISSUER`/`AUDIENCE` trusting `keys`, on a manual clock stopped at `NOW`.
struct Fixture {
    verifier: Verifier,
    clock: Arc<ManualClock>,
    keys: Arc<StaticKeys>,
}

fn fixture(keys: &[&SigningKey]) -> Fixture {
    let store = Arc::new(StaticKeys::from_jwks(&jwks(keys)).expect("usable JWKS"));
    let clock = Arc::new(ManualClock::new(UnixTime(NOW)));
    let verifier =
        Verifier::new(ISSUER, AUDIENCE, store.clone(), clock.clone()).with_leeway_secs(LEEWAY);
    Fixture {
        verifier,
        clock,
        keys: store,
    }
}

fn claims() -> AccessTokenClaims {
    AccessTokenClaims {
        iss: ISSUER.into(),
        sub: "user-42".into(),
        aud: AUDIENCE.into(),
        exp: UnixTime(NOW + LIFETIME),
        iat: UnixTime(NOW),
        nbf: None,
        jti: TokenId::parse("jti-0001").unwrap(),
        client_id: ClientId::parse(CLIENT).unwrap(),
        scope: "property:read".parse().unwrap(),
        cnf: None,
    }
}

fn claims_json() -> Value {
    serde_json::to_value(claims()).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_json(value: &Value) -> String {
    b64(&serde_json::to_vec(value).unwrap())
}

/// The normal header for `key`: `{alg, typ: at+jwt, kid}`.
fn header_for(key: &SigningKey) -> Value {
    json!({"alg": key.alg().as_str(), "typ": "at+jwt", "kid": key.kid().as_str()})
}

/// A compact JWS with exactly this header and payload, signed by `key`'s algorithm
/// (whatever the header claims).
fn compact(key: &SigningKey, header: &Value, payload: &Value) -> String {
    let signing_input = format!("{}.{}", b64_json(header), b64_json(payload));
    let signature = key.sign_bytes(signing_input.as_bytes()).unwrap();
    format!("{signing_input}.{}", b64(&signature))
}

/// A token as the authorization server issues it.
fn issue(key: &SigningKey, claims: &AccessTokenClaims) -> String {
    key.sign_jwt("at+jwt", claims).unwrap()
}

/// `token` with its payload's `scope` replaced and the original signature kept.
fn tamper_scope(token: &str, scope: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["scope"] = json!(scope);
    format!("{}.{}.{}", parts[0], b64_json(&payload), parts[2])
}

fn hs256(secret: &[u8], signing_input: &str) -> Vec<u8> {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::sign(&key, signing_input.as_bytes()).as_ref().to_vec()
}

/// The uncompressed SEC1 point of an ES256 JWK, i.e. the "public key bytes".
fn ec_point(jwk: &Jwk) -> Vec<u8> {
    let JwkParams::Ec { x, y, .. } = &jwk.params else {
        panic!("not an EC key");
    };
    let mut point = vec![4u8];
    point.extend(URL_SAFE_NO_PAD.decode(x).unwrap());
    point.extend(URL_SAFE_NO_PAD.decode(y).unwrap());
    point
}

/// A key resolver that records every `kid` it is asked for.
struct RecordingKeys {
    inner: Arc<StaticKeys>,
    asked: Mutex<Vec<String>>,
}

impl KeyResolver for RecordingKeys {
    fn resolve(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.asked.lock().unwrap().push(kid.to_owned());
        self.inner.resolve(kid)
    }
}

// ---------------------------------------------------------------------------------------
// 1. Valid tokens
// ---------------------------------------------------------------------------------------

#[test]
fn valid_token_of_every_algorithm_verifies_and_returns_its_claims() {
    for alg in SigningAlg::ALL {
        let key = new_key(alg);
        let f = fixture(&[&key]);
        let token = issue(&key, &claims());
        assert_eq!(f.verifier.verify(&token), Ok(claims()), "{alg}");
    }
}

#[test]
fn each_key_in_a_mixed_set_verifies_its_own_tokens() {
    let keys: Vec<SigningKey> = SigningAlg::ALL.into_iter().map(new_key).collect();
    let f = fixture(&keys.iter().collect::<Vec<_>>());
    for key in &keys {
        let mut c = claims();
        c.sub = format!("signed-by-{}", key.alg());
        assert_eq!(f.verifier.verify(&issue(key, &c)), Ok(c), "{}", key.alg());
    }
}

#[test]
fn nbf_and_full_scope_set_are_returned_verbatim() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    let mut c = claims();
    c.nbf = Some(UnixTime(NOW - 5));
    c.scope = ScopeSet::all();
    assert_eq!(f.verifier.verify(&issue(&key, &c)), Ok(c));
}

// ---------------------------------------------------------------------------------------
// 2. JOSE header attacks
// ---------------------------------------------------------------------------------------

#[test]
fn alg_none_is_rejected() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": key.kid().as_str()});
        let token = format!("{}.{}.", b64_json(&header), b64_json(&claims_json()));
        assert_eq!(
            f.verifier.verify(&token),
            Err(TokenRejection::Algorithm),
            "{alg}"
        );
    }
}

#[test]
fn hs256_signed_with_the_public_key_is_rejected() {
    // Algorithm confusion (RFC 8725 §2.1): the attacker HMACs with the published key.
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": key.kid().as_str()});
    let signing_input = format!("{}.{}", b64_json(&header), b64_json(&claims_json()));
    let secrets = [
        ec_point(key.public_jwk()),
        serde_json::to_vec(key.public_jwk()).unwrap(),
        serde_json::to_vec(&jwks(&[&key])).unwrap(),
    ];
    for secret in secrets {
        let token = format!("{signing_input}.{}", b64(&hs256(&secret, &signing_input)));
        assert_eq!(f.verifier.verify(&token), Err(TokenRejection::Algorithm));
    }
}

#[test]
fn other_hmac_and_unsupported_algorithms_are_rejected() {
    let key = new_key(SigningAlg::RS256);
    let f = fixture(&[&key]);
    for alg in [
        "HS256", "HS384", "HS512", "PS256", "RS384", "RS512", "ES384", "ES512", "Ed25519", "rs256",
        "",
    ] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": key.kid().as_str()});
        let token = compact(&key, &header, &claims_json());
        assert_eq!(
            f.verifier.verify(&token),
            Err(TokenRejection::Algorithm),
            "{alg:?}"
        );
    }
}

#[test]
fn header_alg_differing_from_the_keys_alg_is_rejected() {
    // The key pins the algorithm; the header cannot switch it (e.g. EdDSA with an ES256 kid).
    let keys: Vec<SigningKey> = SigningAlg::ALL.into_iter().map(new_key).collect();
    let f = fixture(&keys.iter().collect::<Vec<_>>());
    for key in &keys {
        for claimed in SigningAlg::ALL {
            if claimed == key.alg() {
                continue;
            }
            let header =
                json!({"alg": claimed.as_str(), "typ": "at+jwt", "kid": key.kid().as_str()});
            // Signed by a genuine key of the claimed algorithm, so only the pinning can stop it.
            let forger = keys.iter().find(|k| k.alg() == claimed).unwrap();
            let token = compact(forger, &header, &claims_json());
            assert_eq!(
                f.verifier.verify(&token),
                Err(TokenRejection::Algorithm),
                "header {claimed} with a {} kid",
                key.alg()
            );
        }
    }
}

#[test]
fn eddsa_header_with_es256_kid_is_rejected() {
    let es = new_key(SigningAlg::ES256);
    let ed = new_key(SigningAlg::EdDSA);
    let f = fixture(&[&es]);
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": es.kid().as_str()});
    let token = compact(&ed, &header, &claims_json());
    assert_eq!(f.verifier.verify(&token), Err(TokenRejection::Algorithm));
}

#[test]
fn unknown_kid_is_rejected() {
    let trusted = new_key(SigningAlg::ES256);
    let attacker = new_key(SigningAlg::ES256);
    let f = fixture(&[&trusted]);
    assert_eq!(
        f.verifier.verify(&issue(&attacker, &claims())),
        Err(TokenRejection::UnknownKey)
    );
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "no-such-key"});
    assert_eq!(
        f.verifier
            .verify(&compact(&trusted, &header, &claims_json())),
        Err(TokenRejection::UnknownKey)
    );
}

#[test]
fn missing_kid_is_rejected_even_if_the_only_trusted_key_signed_it() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    let header = json!({"alg": "ES256", "typ": "at+jwt"});
    let token = compact(&key, &header, &claims_json());
    assert_eq!(f.verifier.verify(&token), Err(TokenRejection::UnknownKey));
}

#[test]
fn non_string_kid_is_rejected() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    for (kid, rejection) in [
        (json!(null), TokenRejection::UnknownKey),
        (json!(""), TokenRejection::UnknownKey),
        (json!(7), TokenRejection::Malformed),
        (json!([key.kid().as_str()]), TokenRejection::Malformed),
    ] {
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": kid});
        let token = compact(&key, &header, &claims_json());
        assert_eq!(f.verifier.verify(&token), Err(rejection), "kid {kid}");
    }
}

#[test]
fn jku_x5u_and_embedded_jwk_with_unknown_kid_are_never_followed() {
    let trusted = new_key(SigningAlg::ES256);
    let attacker = new_key(SigningAlg::ES256);
    // Anything that fetched `jku`/`x5u` would connect here; the backlog would show it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());

    let store = Arc::new(StaticKeys::from_jwks(&jwks(&[&trusted])).unwrap());
    let recording = Arc::new(RecordingKeys {
        inner: store,
        asked: Mutex::new(Vec::new()),
    });
    let verifier = Verifier::new(
        ISSUER,
        AUDIENCE,
        recording.clone(),
        Arc::new(ManualClock::new(UnixTime(NOW))),
    );

    let kid = attacker.kid().as_str();
    let headers = [
        json!({"alg": "ES256", "typ": "at+jwt", "kid": kid, "jku": url}),
        json!({"alg": "ES256", "typ": "at+jwt", "kid": kid, "x5u": url}),
        json!({"alg": "ES256", "typ": "at+jwt", "kid": kid, "jwk": attacker.public_jwk()}),
        json!({"alg": "ES256", "typ": "at+jwt", "kid": kid, "jku": url, "x5u": url,
               "jwk": attacker.public_jwk()}),
    ];
    for header in &headers {
        let token = compact(&attacker, header, &claims_json());
        assert_eq!(
            verifier.verify(&token),
            Err(TokenRejection::UnknownKey),
            "{header}"
        );
    }
    match listener.accept() {
        Err(e) if e.kind() == IoErrorKind::WouldBlock => {}
        other => panic!("the verifier fetched a header URL: {other:?}"),
    }
    // Only the header's `kid` was ever looked up; nothing derived from jku/x5u/jwk.
    let asked = recording.asked.lock().unwrap();
    assert_eq!(asked.len(), headers.len());
    assert!(asked.iter().all(|k| k == kid), "{asked:?}");
}

#[test]
fn embedded_jwk_with_a_trusted_kid_does_not_replace_the_trusted_key() {
    let trusted = new_key(SigningAlg::ES256);
    let attacker = new_key(SigningAlg::ES256);
    let f = fixture(&[&trusted]);
    // The attacker's public key, relabelled with the trusted kid, embedded in the header.
    let mut embedded = attacker.public_jwk().clone();
    embedded.kid = trusted.kid().clone();
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": trusted.kid().as_str(),
                        "jwk": embedded});
    let token = compact(&attacker, &header, &claims_json());
    assert_eq!(f.verifier.verify(&token), Err(TokenRejection::Signature));
}

#[test]
fn crit_header_is_rejected() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    for crit in [json!(["exp"]), json!(["b64"]), json!([]), json!("exp")] {
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": key.kid().as_str(),
                            "crit": crit, "exp": 1, "b64": true});
        let token = compact(&key, &header, &claims_json());
        assert_eq!(
            f.verifier.verify(&token),
            Err(TokenRejection::Critical),
            "crit {crit}"
        );
    }
}

#[test]
fn typ_other_than_at_jwt_is_rejected() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    let kid = key.kid().as_str();
    let headers = [
        json!({"alg": "ES256", "kid": kid}),
        json!({"alg": "ES256", "kid": kid, "typ": "JWT"}),
        json!({"alg": "ES256", "kid": kid, "typ": "jwt"}),
        json!({"alg": "ES256", "kid": kid, "typ": "application/jwt"}),
        json!({"alg": "ES256", "kid": kid, "typ": "dpop+jwt"}),
        json!({"alg": "ES256", "kid": kid, "typ": "at+jwt "}),
        json!({"alg": "ES256", "kid": kid, "typ": ""}),
    ];
    for header in &headers {
        let token = compact(&key, header, &claims_json());
        assert_eq!(
            f.verifier.verify(&token),
            Err(TokenRejection::Type),
            "{header}"
        );
    }
    // Also for a token the issuer signed normally, only with the wrong typ.
    assert_eq!(
        f.verifier.verify(&key.sign_jwt("JWT", &claims()).unwrap()),
        Err(TokenRejection::Type)
    );
}

#[test]
fn typ_application_at_jwt_and_other_cases_are_accepted() {
    // RFC 9068 §2.1: `at+jwt`; RFC 7515 §4.1.9: the `application/` prefix may be present,
    // and media types are case-insensitive.
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    for typ in [
        "at+jwt",
        "application/at+jwt",
        "AT+JWT",
        "Application/At+Jwt",
    ] {
        assert_eq!(
            f.verifier.verify(&key.sign_jwt(typ, &claims()).unwrap()),
            Ok(claims()),
            "{typ}"
        );
    }
}

#[test]
fn tampered_payload_is_rejected() {
    for alg in SigningAlg::ALL {
        let key = new_key(alg);
        let f = fixture(&[&key]);
        let token = issue(&key, &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let tamperings = [
            ("scope", json!("property:read property:write")),
            ("sub", json!("admin")),
            ("client_id", json!("dbc_other")),
            ("exp", json!(NOW + 10 * LIFETIME)),
        ];
        for (claim, value) in tamperings {
            let mut payload = claims_json();
            payload[claim] = value;
            let forged = format!("{}.{}.{}", parts[0], b64_json(&payload), parts[2]);
            assert_eq!(
                f.verifier.verify(&forged),
                Err(TokenRejection::Signature),
                "{alg}: {claim}"
            );
        }
    }
}

#[test]
fn tampered_header_is_rejected() {
    // The header is part of the signing input: adding a member breaks the signature.
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    let token = issue(&key, &claims());
    let (_, rest) = token.split_once('.').unwrap();
    let mut header = header_for(&key);
    header["cty"] = json!("JWT");
    let forged = format!("{}.{rest}", b64_json(&header));
    assert_eq!(f.verifier.verify(&forged), Err(TokenRejection::Signature));
}

#[test]
fn signature_from_another_key_with_the_same_kid_is_rejected() {
    for alg in SigningAlg::ALL {
        let trusted = new_key(alg);
        let impostor = new_key(alg);
        let f = fixture(&[&trusted]);
        let token = compact(&impostor, &header_for(&trusted), &claims_json());
        assert_eq!(
            f.verifier.verify(&token),
            Err(TokenRejection::Signature),
            "{alg}"
        );
    }
}

#[test]
fn empty_or_truncated_signature_is_rejected() {
    for alg in SigningAlg::ALL {
        let key = new_key(alg);
        let f = fixture(&[&key]);
        let token = issue(&key, &claims());
        let (signing_input, signature) = token.rsplit_once('.').unwrap();
        let empty = format!("{signing_input}.");
        assert_eq!(
            f.verifier.verify(&empty),
            Err(TokenRejection::Signature),
            "{alg}: empty"
        );
        let raw = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let truncated = format!("{signing_input}.{}", b64(&raw[..raw.len() - 1]));
        assert_eq!(
            f.verifier.verify(&truncated),
            Err(TokenRejection::Signature),
            "{alg}: truncated"
        );
        let mut flipped = raw.clone();
        flipped[0] ^= 1;
        let flipped = format!("{signing_input}.{}", b64(&flipped));
        assert_eq!(
            f.verifier.verify(&flipped),
            Err(TokenRejection::Signature),
            "{alg}: bit flip"
        );
    }
}

#[test]
fn token_without_three_parts_is_malformed() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    let token = issue(&key, &claims());
    let parts: Vec<&str> = token.split('.').collect();
    let cases = [
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        parts[0].to_owned(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{token}."),
        format!("{token}.{}", parts[2]),
        format!("{}.{}.{}.{}.{}", parts[0], parts[1], "x", "y", parts[2]),
    ];
    for case in &cases {
        assert_eq!(
            f.verifier.verify(case),
            Err(TokenRejection::Malformed),
            "{case:?}"
        );
    }
}

#[test]
fn header_that_is_not_base64url_is_malformed() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    let token = issue(&key, &claims());
    let (header, rest) = token.split_once('.').unwrap();
    let padded = format!("{header}==");
    let standard_alphabet = header.replace('-', "+").replace('_', "/") + "+/";
    let cases = [
        format!("!!!!.{rest}"),
        format!("{padded}.{rest}"),
        format!("{standard_alphabet}.{rest}"),
        format!("{}.{rest}", &header[..header.len() - 3]),
        format!("e y.{rest}"),
    ];
    for case in &cases {
        assert_eq!(
            f.verifier.verify(case),
            Err(TokenRejection::Malformed),
            "{case}"
        );
    }
}

#[test]
fn header_that_is_not_a_json_object_with_alg_is_malformed() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    let payload = b64_json(&claims_json());
    let headers: [&[u8]; 7] = [
        b"not json",
        b"",
        b"[]",
        b"\"ES256\"",
        b"null",
        br#"{"typ":"at+jwt"}"#,
        br#"{"alg":"ES256","typ":"at+jwt""#,
    ];
    for header in headers {
        let signing_input = format!("{}.{payload}", b64(header));
        let sig = key.sign_bytes(signing_input.as_bytes()).unwrap();
        let token = format!("{signing_input}.{}", b64(&sig));
        assert_eq!(
            f.verifier.verify(&token),
            Err(TokenRejection::Malformed),
            "{}",
            String::from_utf8_lossy(header)
        );
    }
}

#[test]
fn signature_that_is_not_base64url_is_malformed() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    let token = issue(&key, &claims());
    let (signing_input, _) = token.rsplit_once('.').unwrap();
    assert_eq!(
        f.verifier.verify(&format!("{signing_input}.!!!!")),
        Err(TokenRejection::Malformed)
    );
}

#[test]
fn token_longer_than_8_kib_is_malformed_even_if_validly_signed() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    // Grow `sub` to find the longest issued token within 8 KiB and the shortest beyond.
    // (base64url lengths skip every value = 1 mod 4, so exactly 8192 may be unreachable.)
    let mut at_limit = None;
    let mut over_limit = None;
    for pad in 5_500..6_300 {
        let mut c = claims();
        c.sub = "s".repeat(pad);
        let token = issue(&key, &c);
        if token.len() <= 8 * 1024 {
            at_limit = Some((token, c));
        } else {
            over_limit = Some(token);
            break;
        }
    }
    let (at_limit, c) = at_limit.expect("a token within 8 KiB");
    let over_limit = over_limit.expect("a token over 8 KiB");
    // Deterministic: the kid is always 43 characters and ES256 signatures 64 bytes.
    assert_eq!(at_limit.len(), 8 * 1024);
    assert_eq!(over_limit.len(), 8 * 1024 + 1);
    assert_eq!(f.verifier.verify(&at_limit), Ok(c));
    assert_eq!(
        f.verifier.verify(&over_limit),
        Err(TokenRejection::Malformed)
    );
    // And huge garbage is refused without being parsed.
    assert_eq!(
        f.verifier.verify(&"a.".repeat(1 << 20)),
        Err(TokenRejection::Malformed)
    );
}

#[test]
fn duplicate_header_or_claim_members_are_rejected() {
    // No parser differential: a second `alg` or `scope` is refused, not "last one wins".
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    let sign_raw = |header: &str, payload: &str| {
        let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let sig = key.sign_bytes(signing_input.as_bytes()).unwrap();
        format!("{signing_input}.{}", b64(&sig))
    };
    let kid = key.kid().as_str();
    let payload = serde_json::to_string(&claims_json()).unwrap();
    let dup_alg = format!(r#"{{"alg":"ES256","alg":"none","typ":"at+jwt","kid":"{kid}"}}"#);
    assert_eq!(
        f.verifier.verify(&sign_raw(&dup_alg, &payload)),
        Err(TokenRejection::Malformed)
    );
    let dup_kid = format!(r#"{{"alg":"ES256","typ":"at+jwt","kid":"{kid}","kid":"other"}}"#);
    assert_eq!(
        f.verifier.verify(&sign_raw(&dup_kid, &payload)),
        Err(TokenRejection::Malformed)
    );
    let header = serde_json::to_string(&header_for(&key)).unwrap();
    let dup_scope = payload.replacen(
        r#""scope":"property:read""#,
        r#""scope":"property:read","scope":"property:write""#,
        1,
    );
    assert_ne!(dup_scope, payload);
    assert_eq!(
        f.verifier.verify(&sign_raw(&header, &dup_scope)),
        Err(TokenRejection::Claims)
    );
}

#[test]
fn unknown_string_header_members_are_ignored() {
    // RFC 7515 §4: header parameters that are not understood MUST be ignored.
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    let mut header = header_for(&key);
    header["x-tenant"] = json!("acme");
    header["cty"] = json!("JWT");
    assert_eq!(
        f.verifier.verify(&compact(&key, &header, &claims_json())),
        Ok(claims())
    );
}

// Regression: the verifier once re-parsed the header through `jsonwebtoken::Header`, whose
// string-only `extras` map rejected any non-string member as a claims error. RFC 7515 §4 says
// header parameters that are not understood MUST be ignored.
#[test]
fn unknown_non_string_header_members_are_ignored() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    for (name, value) in [
        ("x-n", json!(1)),
        ("x-flag", json!(true)),
        ("x-obj", json!({"a": "b"})),
    ] {
        let mut header = header_for(&key);
        header[name] = value;
        assert_eq!(
            f.verifier.verify(&compact(&key, &header, &claims_json())),
            Ok(claims()),
            "{header}"
        );
    }
}

// Regression: a signed payload that is not a JSON object is a malformed token, not a token
// lacking claims.
#[test]
fn signed_payload_that_is_not_json_is_malformed() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    for payload in [&b"not json"[..], b"", b"[1,2]", b"\"claims\""] {
        let signing_input = format!("{}.{}", b64_json(&header_for(&key)), b64(payload));
        let sig = key.sign_bytes(signing_input.as_bytes()).unwrap();
        let token = format!("{signing_input}.{}", b64(&sig));
        assert_eq!(
            f.verifier.verify(&token),
            Err(TokenRejection::Malformed),
            "{}",
            String::from_utf8_lossy(payload)
        );
    }
}

// ---------------------------------------------------------------------------------------
// 3. Time boundaries
// ---------------------------------------------------------------------------------------

#[test]
fn expiry_is_enforced_with_exactly_the_leeway() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    let token = issue(&key, &claims());
    let exp = NOW + LIFETIME;
    for (at, expected) in [
        (exp - 1, Ok(claims())),
        (exp, Ok(claims())),
        (exp + LEEWAY - 1, Ok(claims())),
        (exp + LEEWAY, Err(TokenRejection::Expired)),
        (exp + LEEWAY + 1, Err(TokenRejection::Expired)),
        (exp + 86_400, Err(TokenRejection::Expired)),
    ] {
        f.clock.set(UnixTime(at));
        assert_eq!(
            f.verifier.verify(&token),
            expected,
            "now = exp{:+}",
            at - exp
        );
    }
}

#[test]
fn iat_in_the_future_beyond_the_leeway_is_not_yet_valid() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    for (offset, ok) in [(LEEWAY - 1, true), (LEEWAY, true), (LEEWAY + 1, false)] {
        let mut c = claims();
        c.iat = UnixTime(NOW + offset);
        let expected = if ok {
            Ok(c.clone())
        } else {
            Err(TokenRejection::NotYetValid)
        };
        assert_eq!(
            f.verifier.verify(&issue(&key, &c)),
            expected,
            "iat = now+{offset}"
        );
    }
}

#[test]
fn nbf_in_the_future_beyond_the_leeway_is_not_yet_valid() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    for (offset, ok) in [
        (-60, true),
        (LEEWAY, true),
        (LEEWAY + 1, false),
        (600, false),
    ] {
        let mut c = claims();
        c.nbf = Some(UnixTime(NOW + offset));
        let expected = if ok {
            Ok(c.clone())
        } else {
            Err(TokenRejection::NotYetValid)
        };
        assert_eq!(
            f.verifier.verify(&issue(&key, &c)),
            expected,
            "nbf = now{offset:+}"
        );
    }
}

#[test]
fn a_future_token_becomes_valid_when_the_clock_catches_up() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    let mut c = claims();
    c.nbf = Some(UnixTime(NOW + 120));
    let token = issue(&key, &c);
    assert_eq!(f.verifier.verify(&token), Err(TokenRejection::NotYetValid));
    f.clock.advance(120 - LEEWAY - 1);
    assert_eq!(f.verifier.verify(&token), Err(TokenRejection::NotYetValid));
    f.clock.advance(1);
    assert_eq!(f.verifier.verify(&token), Ok(c));
}

#[test]
fn default_leeway_is_thirty_seconds() {
    let key = new_key(SigningAlg::ES256);
    let keys = Arc::new(StaticKeys::from_jwks(&jwks(&[&key])).unwrap());
    let clock = Arc::new(ManualClock::new(UnixTime(NOW + LIFETIME + 29)));
    let verifier = Verifier::new(ISSUER, AUDIENCE, keys, clock.clone());
    assert_eq!(Verifier::DEFAULT_LEEWAY_SECS, 30);
    let token = issue(&key, &claims());
    assert_eq!(verifier.verify(&token), Ok(claims()));
    clock.advance(1);
    assert_eq!(verifier.verify(&token), Err(TokenRejection::Expired));
}

#[test]
fn zero_leeway_expires_at_exp_and_negative_leeway_is_clamped_to_zero() {
    let key = new_key(SigningAlg::ES256);
    let token = issue(&key, &claims());
    for leeway in [0, -100] {
        let f = fixture(&[&key]);
        let verifier = f.verifier.with_leeway_secs(leeway);
        f.clock.set(UnixTime(NOW + LIFETIME - 1));
        assert_eq!(verifier.verify(&token), Ok(claims()), "leeway {leeway}");
        f.clock.set(UnixTime(NOW + LIFETIME));
        assert_eq!(
            verifier.verify(&token),
            Err(TokenRejection::Expired),
            "leeway {leeway}"
        );
    }
}

#[test]
fn leeway_is_clamped_to_five_minutes() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    let verifier = f.verifier.with_leeway_secs(86_400);
    let token = issue(&key, &claims());
    f.clock.set(UnixTime(NOW + LIFETIME + 299));
    assert_eq!(verifier.verify(&token), Ok(claims()));
    f.clock.set(UnixTime(NOW + LIFETIME + 300));
    assert_eq!(verifier.verify(&token), Err(TokenRejection::Expired));
}

// ---------------------------------------------------------------------------------------
// 4. Issuer, audience and required claims
// ---------------------------------------------------------------------------------------

#[test]
fn wrong_issuer_is_rejected() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    for iss in [
        "https://evil.test",
        "https://as.deedbolt.test/",
        "https://AS.deedbolt.test",
        "",
    ] {
        let mut c = claims();
        c.iss = iss.into();
        assert_eq!(
            f.verifier.verify(&issue(&key, &c)),
            Err(TokenRejection::Issuer),
            "{iss:?}"
        );
    }
}

#[test]
fn wrong_audience_is_rejected() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    for aud in [
        "https://other-api.deedbolt.test",
        "https://api.deedbolt.test/",
        ISSUER,
        "",
    ] {
        let mut c = claims();
        c.aud = aud.into();
        assert_eq!(
            f.verifier.verify(&issue(&key, &c)),
            Err(TokenRejection::Audience),
            "{aud:?}"
        );
    }
}

#[test]
fn missing_required_claims_are_rejected() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    for claim in [
        "jti",
        "client_id",
        "scope",
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
    ] {
        let mut payload = claims_json();
        payload.as_object_mut().unwrap().remove(claim).unwrap();
        let token = compact(&key, &header_for(&key), &payload);
        assert_eq!(
            f.verifier.verify(&token),
            Err(TokenRejection::Claims),
            "without {claim}"
        );
    }
}

#[test]
fn unknown_or_malformed_scope_is_rejected() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    for scope in [
        json!("property:read admin"),
        json!("property:delete"),
        json!("Property:Read"),
        json!("property:read  tenant:read"),
        json!(""),
        json!(["property:read"]),
        json!(null),
    ] {
        let mut payload = claims_json();
        payload["scope"] = scope.clone();
        let token = compact(&key, &header_for(&key), &payload);
        assert_eq!(
            f.verifier.verify(&token),
            Err(TokenRejection::Claims),
            "scope {scope}"
        );
    }
}

#[test]
fn claims_of_the_wrong_type_are_rejected() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    let cases = [
        ("exp", json!((NOW + LIFETIME).to_string())),
        ("iat", json!(null)),
        ("nbf", json!("soon")),
        ("jti", json!("")),
        ("jti", json!(17)),
        ("client_id", json!("has space")),
        ("sub", json!(42)),
    ];
    for (claim, value) in cases {
        let mut payload = claims_json();
        payload[claim] = value.clone();
        let token = compact(&key, &header_for(&key), &payload);
        assert_eq!(
            f.verifier.verify(&token),
            Err(TokenRejection::Claims),
            "{claim} = {value}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 5. The tower layer (RFC 6750 §3)
// ---------------------------------------------------------------------------------------

const BARE_CHALLENGE: &str = r#"Bearer realm="deedbolt""#;

/// Runs one request through `guard.require(scopes)` in front of a handler that counts its
/// calls and answers 200 with the `client_id` of the `Authorized` extension.
async fn call(
    guard: &Guard,
    scopes: ScopeSet,
    authorization: &[&str],
) -> (Response<String>, usize) {
    let mut request = Request::builder().uri("/api/properties");
    for value in authorization {
        request = request.header(AUTHORIZATION, *value);
    }
    let (response, calls, _) =
        call_with(guard, scopes, request.body(Full::default()).unwrap()).await;
    (response, calls)
}

/// Runs `request` through `guard.require(scopes)` in front of a handler that counts its
/// calls and answers 200 with the `client_id` of the `Authorized` extension; also returns
/// the body the handler received.
async fn call_with(
    guard: &Guard,
    scopes: ScopeSet,
    request: Request<Full<Bytes>>,
) -> (Response<String>, usize, Option<Bytes>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen_body = Arc::new(Mutex::new(None));
    let inner = {
        let calls = calls.clone();
        let seen_body = seen_body.clone();
        tower::service_fn(move |req: Request<Full<Bytes>>| {
            // Counted when the service is called, not when its future is polled, so a
            // guard that calls the handler and then drops its future is caught too.
            calls.fetch_add(1, Ordering::SeqCst);
            let seen_body = seen_body.clone();
            async move {
                let body = match req.extensions().get::<Authorized>() {
                    Some(auth) => auth.claims.client_id.as_str().to_owned(),
                    None => "no Authorized extension".to_owned(),
                };
                let received = req.into_body().collect().await.unwrap().to_bytes();
                *seen_body.lock().unwrap() = Some(received);
                Ok::<_, Infallible>(Response::new(body))
            }
        })
    };
    let service = guard.require(scopes).layer(inner);
    let response = service.oneshot(request).await.unwrap();
    let seen = seen_body.lock().unwrap().clone();
    (response, calls.load(Ordering::SeqCst), seen)
}

fn challenge(response: &Response<String>) -> &str {
    let mut values = response.headers().get_all(WWW_AUTHENTICATE).iter();
    let value = values.next().expect("a WWW-Authenticate header");
    assert!(values.next().is_none(), "one WWW-Authenticate header");
    value.to_str().unwrap()
}

fn json_body(response: &Response<String>) -> Value {
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    serde_json::from_str(response.body()).expect("a JSON error body")
}

struct LayerFixture {
    guard: Guard,
    key: SigningKey,
    clock: Arc<ManualClock>,
}

fn layer_fixture() -> LayerFixture {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    LayerFixture {
        guard: Guard::new(f.verifier),
        key,
        clock: f.clock,
    }
}

fn write_scope() -> ScopeSet {
    ScopeSet::empty().with(Scope::PropertyWrite)
}

#[tokio::test]
async fn missing_authorization_header_gets_a_bare_401_challenge() {
    let lf = layer_fixture();
    let (response, calls) = call(&lf.guard, write_scope(), &[]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), BARE_CHALLENGE);
    json_body(&response);
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn other_authorization_scheme_gets_a_bare_401_challenge() {
    let lf = layer_fixture();
    for value in [
        "Basic Zm9vOmJhcg==",
        "Digest username=\"x\"",
        "DPoP abc.def.ghi",
    ] {
        let (response, calls) = call(&lf.guard, write_scope(), &[value]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{value}");
        assert_eq!(challenge(&response), BARE_CHALLENGE, "{value}");
        assert!(!challenge(&response).contains("error"), "{value}");
        assert_eq!(calls, 0, "{value}");
    }
}

#[tokio::test]
async fn empty_or_malformed_bearer_is_an_invalid_request() {
    let lf = layer_fixture();
    for value in [
        "Bearer",
        "Bearer ",
        "Bearer   ",
        "Bearer a b",
        "Bearer a,b",
        "Bearer ===",
    ] {
        let (response, calls) = call(&lf.guard, write_scope(), &[value]).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{value:?}");
        let challenge = challenge(&response);
        assert!(challenge.starts_with(BARE_CHALLENGE), "{challenge}");
        assert!(
            challenge.contains(r#"error="invalid_request""#),
            "{challenge}"
        );
        assert_eq!(json_body(&response)["error"], "invalid_request");
        assert_eq!(calls, 0, "{value:?}");
    }
}

#[tokio::test]
async fn two_authorization_headers_are_an_invalid_request() {
    let lf = layer_fixture();
    let mut c = claims();
    c.scope = write_scope();
    let bearer = format!("Bearer {}", issue(&lf.key, &c));
    // Even when both carry the same valid token with the required scope.
    for pair in [
        [bearer.as_str(), bearer.as_str()],
        [bearer.as_str(), "Basic Zm9vOmJhcg=="],
    ] {
        let (response, calls) = call(&lf.guard, write_scope(), &pair).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(challenge(&response).contains(r#"error="invalid_request""#));
        assert_eq!(calls, 0);
    }
}

#[tokio::test]
async fn invalid_token_gets_401_invalid_token_with_the_reason() {
    let lf = layer_fixture();
    let mut c = claims();
    c.scope = ScopeSet::all();
    let valid = issue(&lf.key, &c);
    let stranger = issue(&new_key(SigningAlg::ES256), &c);
    let cases = [
        ("not-a-jwt".to_owned(), TokenRejection::Malformed),
        (stranger, TokenRejection::UnknownKey),
        (lf.key.sign_jwt("JWT", &c).unwrap(), TokenRejection::Type),
        (
            tamper_scope(&valid, "property:write"),
            TokenRejection::Signature,
        ),
    ];
    for (token, rejection) in &cases {
        let bearer = format!("Bearer {token}");
        let (response, calls) = call(&lf.guard, write_scope(), &[bearer.as_str()]).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{rejection:?}");
        let challenge = challenge(&response).to_owned();
        assert!(challenge.starts_with(BARE_CHALLENGE), "{challenge}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        assert!(
            challenge.contains(&format!(
                r#"error_description="{}""#,
                rejection.description()
            )),
            "{challenge}"
        );
        assert!(!challenge.contains(token.as_str()), "the token is echoed");
        let body = json_body(&response);
        assert_eq!(body["error"], "invalid_token");
        assert_eq!(body["error_description"], rejection.description());
        assert_eq!(calls, 0, "{rejection:?}");
    }
}

#[tokio::test]
async fn expired_token_gets_401_invalid_token() {
    let lf = layer_fixture();
    let mut c = claims();
    c.scope = write_scope();
    let bearer = format!("Bearer {}", issue(&lf.key, &c));
    lf.clock.set(UnixTime(NOW + LIFETIME + LEEWAY));
    let (response, calls) = call(&lf.guard, write_scope(), &[bearer.as_str()]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&response),
        r#"Bearer realm="deedbolt", error="invalid_token", error_description="the token has expired""#
    );
    assert_eq!(json_body(&response)["error"], "invalid_token");
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn valid_token_lacking_the_scope_gets_403_insufficient_scope() {
    let lf = layer_fixture();
    let bearer = format!("Bearer {}", issue(&lf.key, &claims())); // property:read only
    let (response, calls) = call(&lf.guard, write_scope(), &[bearer.as_str()]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = challenge(&response);
    assert!(challenge.starts_with(BARE_CHALLENGE), "{challenge}");
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(
        challenge.contains(r#"scope="property:write""#),
        "{challenge}"
    );
    let body = json_body(&response);
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["scope"], "property:write");
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn insufficient_scope_names_every_scope_the_route_requires() {
    let lf = layer_fixture();
    let required: ScopeSet = "tenant:read property:read".parse().unwrap();
    let bearer = format!("Bearer {}", issue(&lf.key, &claims())); // property:read only
    let (response, calls) = call(&lf.guard, required, &[bearer.as_str()]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        challenge(&response).contains(r#"scope="property:read tenant:read""#),
        "{}",
        challenge(&response)
    );
    assert_eq!(calls, 0);
}

/// A request to `uri` with a valid token for `write_scope()` in the header (if `header`)
/// and `body` as a body of `content_type`.
fn request_with(
    lf: &LayerFixture,
    uri: &str,
    header: bool,
    content_type: Option<&str>,
    body: &str,
) -> Request<Full<Bytes>> {
    let mut c = claims();
    c.scope = write_scope();
    let mut request = Request::builder().method("POST").uri(uri);
    if header {
        request = request.header(AUTHORIZATION, format!("Bearer {}", issue(&lf.key, &c)));
    }
    if let Some(ct) = content_type {
        request = request.header(CONTENT_TYPE, ct);
    }
    request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap()
}

/// Asserts a 400 `invalid_request` with its challenge, and that the handler never ran.
fn assert_token_elsewhere_refused(response: &Response<String>, calls: usize, what: &str) {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
    let challenge = challenge(response);
    assert!(challenge.starts_with(BARE_CHALLENGE), "{what}: {challenge}");
    assert!(
        challenge.contains(r#"error="invalid_request""#),
        "{what}: {challenge}"
    );
    assert_eq!(json_body(response)["error"], "invalid_request", "{what}");
    assert_eq!(calls, 0, "{what}: the handler must not run");
}

// RFC 6750 §2: "Clients MUST NOT use more than one method to transmit the token in each
// request"; §3.1: that is `invalid_request`.
#[tokio::test]
async fn a_token_in_the_header_and_in_the_query_or_form_body_is_an_invalid_request() {
    let lf = layer_fixture();
    let form = "application/x-www-form-urlencoded";
    let cases = [
        (
            "/api/properties?access_token=abc",
            None,
            "",
            "header and query",
        ),
        (
            "/api/properties?limit=5&access%5Ftoken=abc",
            None,
            "",
            "percent-encoded name",
        ),
        (
            "/userinfo",
            Some(form),
            "access_token=abc",
            "header and form body",
        ),
        (
            "/userinfo",
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            "a=1&access_token=",
            "form body, with charset",
        ),
    ];
    for (uri, content_type, body, what) in cases {
        let request = request_with(&lf, uri, true, content_type, body);
        let (response, calls, _) = call_with(&lf.guard, write_scope(), request).await;
        assert_token_elsewhere_refused(&response, calls, what);
        assert!(
            challenge(&response).contains("exactly one way"),
            "{what}: {}",
            challenge(&response)
        );
    }
}

// RFC 6750 §2.3: the URI method "SHOULD NOT be used" and a server MAY refuse it; a token in
// a URL leaks into logs, history and Referer. The form-body method (§2.2) is not offered.
#[tokio::test]
async fn a_token_only_in_the_query_or_form_body_is_refused_not_ignored() {
    let lf = layer_fixture();
    let mut c = claims();
    c.scope = write_scope();
    let token = issue(&lf.key, &c);
    let in_query = format!("/api/properties?access_token={token}");
    let in_body = format!("access_token={token}");
    let cases = [
        (in_query.as_str(), None, "", "in the URL"),
        (
            "/userinfo",
            Some("application/x-www-form-urlencoded"),
            in_body.as_str(),
            "in the request body",
        ),
    ];
    for (uri, content_type, body, what) in cases {
        let request = request_with(&lf, uri, false, content_type, body);
        let (response, calls, _) = call_with(&lf.guard, write_scope(), request).await;
        assert_token_elsewhere_refused(&response, calls, what);
        assert!(
            challenge(&response).contains(what),
            "{}",
            challenge(&response)
        );
    }
}

#[tokio::test]
async fn other_parameters_and_non_form_bodies_pass_with_the_body_intact() {
    let lf = layer_fixture();
    let cases = [
        ("/api/properties?limit=5&token_hint=x", None, ""),
        (
            "/userinfo",
            Some("application/x-www-form-urlencoded"),
            "claims=a&b=access_token",
        ),
        (
            "/api/properties",
            Some("application/json"),
            r#"{"access_token":"not a parameter"}"#,
        ),
    ];
    for (uri, content_type, body) in cases {
        let request = request_with(&lf, uri, true, content_type, body);
        let (response, calls, seen) = call_with(&lf.guard, write_scope(), request).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri} {body}");
        assert_eq!(calls, 1);
        assert_eq!(
            seen.as_deref(),
            Some(body.as_bytes()),
            "the handler gets the same body"
        );
    }
}

#[tokio::test]
async fn an_oversized_form_body_is_refused_before_the_handler() {
    let lf = layer_fixture();
    let body = format!("a={}", "x".repeat(deedbolt_guard::MAX_FORM_BYTES));
    let request = request_with(
        &lf,
        "/userinfo",
        true,
        Some("application/x-www-form-urlencoded"),
        &body,
    );
    let (response, calls, _) = call_with(&lf.guard, write_scope(), request).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(calls, 0);
}

#[tokio::test]
async fn valid_token_with_the_scope_reaches_the_handler_with_its_claims() {
    let lf = layer_fixture();
    let mut c = claims();
    c.scope = "property:read property:write".parse().unwrap();
    let token = issue(&lf.key, &c);
    for value in [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        format!("BEARER  {token}"),
    ] {
        let (response, calls) = call(&lf.guard, write_scope(), &[value.as_str()]).await;
        assert_eq!(response.status(), StatusCode::OK, "{value}");
        assert_eq!(response.body(), CLIENT);
        assert!(response.headers().get(WWW_AUTHENTICATE).is_none());
        assert_eq!(calls, 1);
    }
}

#[tokio::test]
async fn handler_sees_the_full_verified_claims() {
    let lf = layer_fixture();
    let mut c = claims();
    c.scope = write_scope();
    let seen = Arc::new(Mutex::new(None));
    let inner = {
        let seen = seen.clone();
        tower::service_fn(move |req: Request<Full<Bytes>>| {
            let seen = seen.clone();
            async move {
                let auth = req.extensions().get::<Authorized>().cloned();
                *seen.lock().unwrap() = auth.map(|a| (*a.claims).clone());
                Ok::<_, Infallible>(Response::new(String::new()))
            }
        })
    };
    let request = Request::builder()
        .header(AUTHORIZATION, format!("Bearer {}", issue(&lf.key, &c)))
        .body(Full::default())
        .unwrap();
    let response = lf
        .guard
        .require(write_scope())
        .layer(inner)
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.lock().unwrap().as_ref(), Some(&c));
}

#[tokio::test]
async fn route_requiring_no_scope_admits_any_valid_token_but_no_anonymous_caller() {
    let lf = layer_fixture();
    let bearer = format!("Bearer {}", issue(&lf.key, &claims()));
    let (response, calls) = call(&lf.guard, ScopeSet::empty(), &[bearer.as_str()]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls, 1);
    let (response, calls) = call(&lf.guard, ScopeSet::empty(), &[]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(calls, 0);
}

// ---------------------------------------------------------------------------------------
// 6. Key rotation
// ---------------------------------------------------------------------------------------

#[test]
fn replacing_the_key_set_drops_old_keys_and_keeps_the_others() {
    let old = new_key(SigningAlg::ES256);
    let kept = new_key(SigningAlg::RS256);
    let added = new_key(SigningAlg::EdDSA);
    let f = fixture(&[&old, &kept]);
    let old_token = issue(&old, &claims());
    let kept_token = issue(&kept, &claims());
    let added_token = issue(&added, &claims());
    assert_eq!(f.verifier.verify(&old_token), Ok(claims()));
    assert_eq!(
        f.verifier.verify(&added_token),
        Err(TokenRejection::UnknownKey)
    );

    f.keys.replace(&jwks(&[&kept, &added])).unwrap();

    assert_eq!(
        f.verifier.verify(&old_token),
        Err(TokenRejection::UnknownKey)
    );
    assert_eq!(f.verifier.verify(&kept_token), Ok(claims()));
    assert_eq!(f.verifier.verify(&added_token), Ok(claims()));
    let mut kids = f.keys.kids();
    kids.sort();
    let mut expected = vec![kept.kid().to_string(), added.kid().to_string()];
    expected.sort();
    assert_eq!(kids, expected);
}

#[test]
fn replacing_with_an_empty_set_rejects_every_token() {
    let key = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    f.keys.replace(&JwkSet::default()).unwrap();
    assert!(f.keys.kids().is_empty());
    assert_eq!(
        f.verifier.verify(&issue(&key, &claims())),
        Err(TokenRejection::UnknownKey)
    );
}

#[test]
fn failed_replace_keeps_the_old_set_in_force() {
    let key = new_key(SigningAlg::ES256);
    let next = new_key(SigningAlg::ES256);
    let f = fixture(&[&key]);
    // An EC key labelled EdDSA is unusable; the whole replacement must be refused.
    let mut bad = new_key(SigningAlg::ES256).public_jwk().clone();
    bad.alg = SigningAlg::EdDSA;
    let set = JwkSet {
        keys: vec![next.public_jwk().clone(), bad],
    };
    assert!(f.keys.replace(&set).is_err());
    assert_eq!(f.keys.kids(), vec![key.kid().to_string()]);
    assert_eq!(f.verifier.verify(&issue(&key, &claims())), Ok(claims()));
    assert_eq!(
        f.verifier.verify(&issue(&next, &claims())),
        Err(TokenRejection::UnknownKey)
    );
}

#[test]
fn jwks_with_a_key_whose_alg_does_not_match_its_type_is_refused() {
    for (alg, wrong) in [
        (SigningAlg::ES256, SigningAlg::RS256),
        (SigningAlg::RS256, SigningAlg::EdDSA),
        (SigningAlg::EdDSA, SigningAlg::ES256),
    ] {
        let mut jwk = new_key(alg).public_jwk().clone();
        jwk.alg = wrong;
        assert!(
            StaticKeys::from_jwks(&JwkSet { keys: vec![jwk] }).is_err(),
            "{alg} key labelled {wrong}"
        );
    }
    let mut p384 = new_key(SigningAlg::ES256).public_jwk().clone();
    if let JwkParams::Ec { crv, .. } = &mut p384.params {
        *crv = "P-384".into();
    }
    assert!(StaticKeys::from_jwks(&JwkSet { keys: vec![p384] }).is_err());
}

#[test]
fn rotation_is_seen_by_a_guard_already_in_use() {
    let old = new_key(SigningAlg::ES256);
    let new = new_key(SigningAlg::ES256);
    let f = fixture(&[&old]);
    let keys = f.keys.clone();
    let guard = Guard::new(f.verifier);
    let new_token = issue(&new, &claims());
    assert_eq!(
        guard.verifier().verify(&new_token),
        Err(TokenRejection::UnknownKey)
    );
    keys.replace(&jwks(&[&new])).unwrap();
    assert_eq!(guard.verifier().verify(&new_token), Ok(claims()));
    assert_eq!(
        guard.verifier().verify(&issue(&old, &claims())),
        Err(TokenRejection::UnknownKey)
    );
}
