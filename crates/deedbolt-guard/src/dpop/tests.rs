//! Unit tests: one per rule of RFC 9449 §4.3, plus nonces and thumbprints.

use super::*;
use deedbolt_core::clock::ManualClock;
use deedbolt_core::jose::{SigningAlg, SigningKey};
use http::HeaderValue;
use serde_json::{json, Value};

const NOW: i64 = 1_700_000_000;
const URI: &str = "https://as.example/token";

fn b64j(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A proof key: a deedbolt signing key, which signs like any JOSE library.
struct Key(SigningKey);

impl Key {
    fn new(alg: SigningAlg) -> Key {
        Key(SigningKey::generate(alg).unwrap().0)
    }

    fn jwk(&self) -> Value {
        let mut v = serde_json::to_value(&self.0.public_jwk().params).unwrap();
        v.as_object_mut().unwrap().remove("kid");
        v
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let msg = format!("{}.{}", b64j(header), b64j(claims));
        let sig = self.0.sign_bytes(msg.as_bytes()).unwrap();
        format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.0.alg().as_str(), "jwk": self.jwk()})
    }

    fn proof(&self, claims: &Value) -> String {
        self.sign(&self.header(), claims)
    }

    fn jkt(&self) -> String {
        self.0.public_jwk().params.thumbprint()
    }
}

fn claims() -> Value {
    json!({"jti": "j-1", "htm": "POST", "htu": URI, "iat": NOW})
}

fn verifier() -> DpopVerifier {
    DpopVerifier::new(Arc::new(ManualClock::new(UnixTime(NOW))))
}

fn request() -> DpopRequest<'static> {
    DpopRequest {
        method: "POST",
        uri: URI,
        access_token: None,
    }
}

fn run(v: &DpopVerifier, proof: &str, req: &DpopRequest<'_>) -> Result<DpopProof, DpopError> {
    let h = [HeaderValue::from_str(proof).unwrap()];
    v.verify_stateless(h.iter(), req).map(|(p, _)| p)
}

#[test]
fn a_valid_proof_of_each_algorithm_yields_its_thumbprint() {
    for alg in SigningAlg::ALL {
        let key = Key::new(alg);
        let proof = run(&verifier(), &key.proof(&claims()), &request()).unwrap();
        assert_eq!(proof.jkt.as_str(), key.jkt(), "{alg}");
        assert_eq!(proof.iat, UnixTime(NOW));
    }
}

#[test]
fn ps256_proofs_are_accepted() {
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{KeyPair, RsaKeyPair, RsaPublicKeyComponents, RSA_PSS_SHA256};
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let parts = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
    let n = URL_SAFE_NO_PAD.encode(&parts.n);
    let e = URL_SAFE_NO_PAD.encode(&parts.e);
    let header = json!({"typ": "dpop+jwt", "alg": "PS256", "jwk": {"kty": "RSA", "n": n, "e": e}});
    let msg = format!("{}.{}", b64j(&header), b64j(&claims()));
    let mut sig = vec![0; pair.public_modulus_len()];
    pair.sign(
        &RSA_PSS_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        msg.as_bytes(),
        &mut sig,
    )
    .unwrap();
    let proof = format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig));
    let out = run(&verifier(), &proof, &request()).unwrap();
    assert_eq!(out.jkt.as_str(), JwkParams::Rsa { n, e }.thumbprint());
}

/// The thumbprint of a proof key, as the verifier builds it from the `jwk` header, is the
/// published one for fixed EC and Ed25519 keys (values: see
/// `deedbolt_core::jose` test `rfc7638_thumbprints_of_fixed_ec_and_ed25519_keys`).
#[test]
fn proofs_by_fixed_ec_and_ed25519_keys_yield_their_published_thumbprints() {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let b64 = |s: &str| URL_SAFE_NO_PAD.decode(s).unwrap();
    let prove = |header: Value, sign: &dyn Fn(&[u8]) -> Vec<u8>| {
        let msg = format!("{}.{}", b64j(&header), b64j(&claims()));
        let proof = format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sign(msg.as_bytes())));
        run(&verifier(), &proof, &request()).unwrap().jkt
    };

    // RFC 8037 Appendix A.1 (private seed), A.2 (public key), A.3 (thumbprint).
    let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    let ed =
        Ed25519KeyPair::from_seed_unchecked(&b64("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"))
            .unwrap();
    let header = json!({"typ": "dpop+jwt", "alg": "EdDSA",
        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": x}});
    let jkt = prove(header, &|m| ed.sign(m).as_ref().to_vec());
    assert_eq!(jkt.as_str(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");

    // RFC 7517 Appendix A.1 (public key) and A.2 (private `d`).
    let (x, y) = (
        "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
        "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
    );
    let public = [vec![4], b64(x), b64(y)].concat();
    let ec = EcdsaKeyPair::from_private_key_and_public_key(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &b64("870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"),
        &public,
    )
    .unwrap();
    let header = json!({"typ": "dpop+jwt", "alg": "ES256",
        "jwk": {"kty": "EC", "crv": "P-256", "x": x, "y": y}});
    let jkt = prove(header, &|m| {
        ec.sign(&SystemRandom::new(), m).unwrap().as_ref().to_vec()
    });
    assert_eq!(jkt.as_str(), "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s");
}

#[test]
fn exactly_one_header_is_required() {
    let key = Key::new(SigningAlg::ES256);
    let p = HeaderValue::from_str(&key.proof(&claims())).unwrap();
    let v = verifier();
    assert_eq!(
        v.verify_stateless([].iter(), &request()).unwrap_err(),
        DpopError::Missing
    );
    assert_eq!(
        v.verify_stateless([p.clone(), p].iter(), &request())
            .unwrap_err(),
        DpopError::Multiple
    );
}

#[test]
fn malformed_proofs_are_refused() {
    let v = verifier();
    for bad in ["abc", "a.b", "a.b.c.d", "!!.??.xx", "e30.e30.", ""] {
        assert_eq!(
            run(&v, bad, &request()).unwrap_err(),
            DpopError::Malformed,
            "{bad}"
        );
    }
    let long = "a".repeat(MAX_PROOF_LEN + 1);
    assert_eq!(
        run(&v, &long, &request()).unwrap_err(),
        DpopError::Malformed
    );
}

#[test]
fn typ_must_be_dpop_jwt() {
    let key = Key::new(SigningAlg::ES256);
    for typ in [json!("JWT"), json!("at+jwt"), Value::Null] {
        let mut h = key.header();
        if typ.is_null() {
            h.as_object_mut().unwrap().remove("typ");
        } else {
            h["typ"] = typ;
        }
        let proof = key.sign(&h, &claims());
        assert_eq!(
            run(&verifier(), &proof, &request()).unwrap_err(),
            DpopError::Type
        );
    }
}

#[test]
fn alg_none_and_symmetric_algs_are_refused() {
    let key = Key::new(SigningAlg::ES256);
    for alg in ["none", "HS256", "ES384", "RS512", ""] {
        let mut h = key.header();
        h["alg"] = json!(alg);
        let proof = key.sign(&h, &claims());
        assert_eq!(
            run(&verifier(), &proof, &request()).unwrap_err(),
            DpopError::Algorithm,
            "{alg}"
        );
    }
    // `alg: none` with an empty signature, the classic.
    let h = json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk()});
    let proof = format!("{}.{}.", b64j(&h), b64j(&claims()));
    assert_eq!(
        run(&verifier(), &proof, &request()).unwrap_err(),
        DpopError::Algorithm
    );
}

#[test]
fn a_verifier_restricted_to_some_algorithms_refuses_the_others() {
    // FAPI 2.0 SP §5.4.1: PS256, ES256 and EdDSA only.
    let fapi = verifier().with_algs(|a| a != "RS256");
    assert_eq!(fapi.algs(), ["ES256", "EdDSA", "PS256"]);
    assert_eq!(verifier().algs(), DPOP_SIGNING_ALGS);
    let rsa = Key::new(SigningAlg::RS256);
    assert!(run(&verifier(), &rsa.proof(&claims()), &request()).is_ok());
    assert_eq!(
        run(&fapi, &rsa.proof(&claims()), &request()).unwrap_err(),
        DpopError::Algorithm
    );
    for alg in [SigningAlg::ES256, SigningAlg::EdDSA] {
        let key = Key::new(alg);
        assert!(
            run(&fapi, &key.proof(&claims()), &request()).is_ok(),
            "{alg}"
        );
    }
}

#[test]
fn crit_is_refused() {
    let key = Key::new(SigningAlg::ES256);
    let mut h = key.header();
    h["crit"] = json!(["exp"]);
    let proof = key.sign(&h, &claims());
    assert_eq!(
        run(&verifier(), &proof, &request()).unwrap_err(),
        DpopError::Critical
    );
}

#[test]
fn private_missing_or_mismatched_keys_are_refused() {
    let key = Key::new(SigningAlg::ES256);
    let mut h = key.header();
    h["jwk"]["d"] = json!("AAAA");
    assert_eq!(
        run(&verifier(), &key.sign(&h, &claims()), &request()).unwrap_err(),
        DpopError::Key
    );
    let mut h = key.header();
    h.as_object_mut().unwrap().remove("jwk");
    assert_eq!(
        run(&verifier(), &key.sign(&h, &claims()), &request()).unwrap_err(),
        DpopError::Key
    );
    // An EC key with an Ed25519 alg, and a symmetric key.
    let mut h = key.header();
    h["alg"] = json!("EdDSA");
    assert_eq!(
        run(&verifier(), &key.sign(&h, &claims()), &request()).unwrap_err(),
        DpopError::Key
    );
    let mut h = key.header();
    h["jwk"] = json!({"kty": "oct", "k": "c2VjcmV0"});
    assert_eq!(
        run(&verifier(), &key.sign(&h, &claims()), &request()).unwrap_err(),
        DpopError::Key
    );
    let mut h = key.header();
    h["jwk"]["crv"] = json!("P-384");
    assert_eq!(
        run(&verifier(), &key.sign(&h, &claims()), &request()).unwrap_err(),
        DpopError::Key
    );
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let key = Key::new(SigningAlg::ES256);
    let other = Key::new(SigningAlg::ES256);
    let proof = key.sign(&other.header(), &claims());
    assert_eq!(
        run(&verifier(), &proof, &request()).unwrap_err(),
        DpopError::Signature
    );
    let mut tampered = key.proof(&claims());
    let dot = tampered.rfind('.').unwrap();
    tampered.replace_range(dot + 1..dot + 3, "AA");
    let err = run(&verifier(), &tampered, &request()).unwrap_err();
    assert_eq!(err, DpopError::Signature);
}

#[test]
fn required_claims_must_be_present() {
    let key = Key::new(SigningAlg::ES256);
    for missing in ["jti", "htm", "htu", "iat"] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(missing);
        assert_eq!(
            run(&verifier(), &key.proof(&c), &request()).unwrap_err(),
            DpopError::Claims,
            "{missing}"
        );
    }
    let mut c = claims();
    c["jti"] = json!("");
    assert_eq!(
        run(&verifier(), &key.proof(&c), &request()).unwrap_err(),
        DpopError::Claims
    );
}

#[test]
fn htm_must_be_the_request_method() {
    let key = Key::new(SigningAlg::ES256);
    let mut c = claims();
    c["htm"] = json!("GET");
    assert_eq!(
        run(&verifier(), &key.proof(&c), &request()).unwrap_err(),
        DpopError::Method
    );
    c["htm"] = json!("post");
    assert_eq!(
        run(&verifier(), &key.proof(&c), &request()).unwrap_err(),
        DpopError::Method
    );
}

#[test]
fn htu_is_compared_after_normalisation_and_without_query() {
    let key = Key::new(SigningAlg::ES256);
    for same in [
        "HTTPS://AS.EXAMPLE/token",
        "https://as.example:443/token",
        "https://as.example/token?a=b",
        "https://as.example/token#x",
        "https://as.example/./token",
    ] {
        let mut c = claims();
        c["htu"] = json!(same);
        run(&verifier(), &key.proof(&c), &request()).unwrap_or_else(|e| panic!("{same}: {e}"));
    }
    for other in [
        "https://as.example/Token",
        "http://as.example/token",
        "https://as.example:8443/token",
        "https://evil.example/token",
        "https://as.example/token/",
        "/token",
        "https://user@as.example/token",
    ] {
        let mut c = claims();
        c["htu"] = json!(other);
        assert_eq!(
            run(&verifier(), &key.proof(&c), &request()).unwrap_err(),
            DpopError::Uri,
            "{other}"
        );
    }
}

#[test]
fn htu_paths_are_compared_after_percent_encoding_normalisation() {
    // RFC 3986 §6.2.2.1: hex digits are case-insensitive; §6.2.2.2: a percent-encoded
    // unreserved character equals the character.
    let key = Key::new(SigningAlg::ES256);
    let check = |htu: &str, uri: &str| {
        let mut c = claims();
        c["htu"] = json!(htu);
        let req = DpopRequest { uri, ..request() };
        run(&verifier(), &key.proof(&c), &req)
    };
    for (htu, uri) in [
        ("https://as.example/%74oken", URI),
        ("https://as.example/%74%6F%6b%65%6E", URI),
        (URI, "https://as.example/%74oken"),
        ("https://as.example/p/a%2fb", "https://as.example/p/a%2Fb"),
        ("https://as.example/p/%41bc", "https://as.example/p/Abc"),
        ("https://as.example/p/%7Eme", "https://as.example/p/~me"),
    ] {
        check(htu, uri).unwrap_or_else(|e| panic!("{htu} vs {uri}: {e}"));
    }
    for (htu, uri) in [
        // A reserved character and its encoding differ (§6.2.2.2 keeps them apart).
        ("https://as.example/p/a/b", "https://as.example/p/a%2Fb"),
        ("https://as.example/p/%41bc", "https://as.example/p/abc"),
    ] {
        assert_eq!(
            check(htu, uri).unwrap_err(),
            DpopError::Uri,
            "{htu} vs {uri}"
        );
    }
}

#[test]
fn percent_encoding_normalisation_decodes_unreserved_and_upper_cases_the_rest() {
    for (input, want) in [
        ("", ""),
        ("/token", "/token"),
        ("/%74oken", "/token"),
        ("/%41%5a%61%7A%30%39%2D%2E%5F%7E", "/AZaz09-._~"),
        ("/a%2fb%3a%40", "/a%2Fb%3A%40"),
        ("/%e2%82%ac", "/%E2%82%AC"),
        ("/%", "/%"),
        ("/%4", "/%4"),
        ("/%zz%4g", "/%zz%4g"),
        ("/%%41", "/%A"),
        ("/é%41", "/éA"),
    ] {
        assert_eq!(normalize_percent_encoding(input), want, "{input}");
    }
}

#[test]
fn iat_must_be_within_the_window() {
    let key = Key::new(SigningAlg::ES256);
    for (iat, ok) in [
        (NOW - 60, true),
        (NOW - 61, false),
        // FAPI 2.0 SP §5.3.2.1: up to 10 s in the future is accepted.
        (NOW + 5, true),
        (NOW + 10, true),
        (NOW + 11, false),
        (0, false),
    ] {
        let mut c = claims();
        c["iat"] = json!(iat);
        let r = run(&verifier(), &key.proof(&c), &request());
        assert_eq!(r.is_ok(), ok, "{iat}: {r:?}");
        if !ok {
            assert_eq!(r.unwrap_err(), DpopError::IssuedAt);
        }
    }
    let wide = verifier().with_window(300, 0);
    let mut c = claims();
    c["iat"] = json!(NOW - 200);
    assert!(run(&wide, &key.proof(&c), &request()).is_ok());
    c["iat"] = json!(NOW + 1);
    assert_eq!(
        run(&wide, &key.proof(&c), &request()).unwrap_err(),
        DpopError::IssuedAt
    );
}

#[test]
fn ath_must_hash_the_presented_token() {
    let key = Key::new(SigningAlg::ES256);
    let token = "eyJ.access.token";
    let req = DpopRequest {
        access_token: Some(token),
        ..request()
    };
    let mut c = claims();
    assert_eq!(
        run(&verifier(), &key.proof(&c), &req).unwrap_err(),
        DpopError::AccessTokenHash
    );
    c["ath"] = json!(access_token_hash("another"));
    assert_eq!(
        run(&verifier(), &key.proof(&c), &req).unwrap_err(),
        DpopError::AccessTokenHash
    );
    c["ath"] = json!(access_token_hash(token));
    assert!(run(&verifier(), &key.proof(&c), &req).is_ok());
}

#[test]
fn access_token_hash_matches_rfc9449_example() {
    // RFC 9449 §7.1: the access token "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU" has
    // ath "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo".
    assert_eq!(
        access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
}

#[test]
fn nonces_are_required_when_configured_and_expire_after_two_slots() {
    let clock = Arc::new(ManualClock::new(UnixTime(NOW)));
    let nonces = Arc::new(DpopNonces::new(&[7; 32]));
    let v = DpopVerifier::new(clock.clone()).with_nonces(nonces.clone(), NonceMode::Required);
    let key = Key::new(SigningAlg::ES256);
    assert_eq!(
        run(&v, &key.proof(&claims()), &request()).unwrap_err(),
        DpopError::UseNonce
    );
    let mut c = claims();
    c["nonce"] = json!("made-up");
    assert_eq!(
        run(&v, &key.proof(&c), &request()).unwrap_err(),
        DpopError::UseNonce
    );
    let issued = v.nonce().unwrap();
    c["nonce"] = json!(issued);
    assert!(run(&v, &key.proof(&c), &request()).is_ok());
    // Another server key's nonce is foreign.
    let foreign = DpopNonces::new(&[8; 32]).current(UnixTime(NOW));
    assert!(!nonces.is_valid(&foreign, UnixTime(NOW)));
    // Still valid in the next slot, not in the one after.
    let slot = DpopNonces::DEFAULT_SLOT_SECS;
    assert!(nonces.is_valid(&issued, UnixTime(NOW + slot)));
    assert!(!nonces.is_valid(&issued, UnixTime(NOW + 2 * slot)));
    // Off: a proof without a nonce passes, and answers carry no nonce.
    let off = DpopVerifier::new(clock.clone()).with_nonces(nonces.clone(), NonceMode::Off);
    assert!(run(&off, &key.proof(&claims()), &request()).is_ok());
    assert_eq!(off.nonce(), None);
    // Off, but a proof carrying a nonce the server did not supply (RFC 9449 §8): refused
    // with use_dpop_nonce and a fresh nonce to use; a valid one passes.
    c["nonce"] = json!("made-up");
    assert_eq!(
        run(&off, &key.proof(&c), &request()).unwrap_err(),
        DpopError::UseNonce
    );
    let fresh = off.refusal_nonce(DpopError::UseNonce).unwrap();
    assert!(nonces.is_valid(&fresh, UnixTime(NOW)));
    assert_eq!(off.refusal_nonce(DpopError::Replayed), None);
    c["nonce"] = json!(fresh);
    assert!(run(&off, &key.proof(&c), &request()).is_ok());
    // Without a nonce key nothing can be told: a nonce claim passes in Off mode only.
    assert!(run(&verifier(), &key.proof(&c), &request()).is_ok());
    let keyless = DpopVerifier {
        nonce_mode: NonceMode::Required,
        ..verifier()
    };
    assert_eq!(
        run(&keyless, &key.proof(&c), &request()).unwrap_err(),
        DpopError::UseNonce
    );
    assert_eq!(v.refusal_nonce(DpopError::Replayed), v.nonce());
    assert_eq!(DpopError::UseNonce.code(), "use_dpop_nonce");
    assert_eq!(DpopError::Replayed.code(), "invalid_dpop_proof");
}

#[test]
fn jkt_parses_only_sha256_thumbprints() {
    let key = Key::new(SigningAlg::ES256);
    let jkt = Jkt::parse(&key.jkt()).unwrap();
    assert!(jkt.matches(&key.jkt()));
    assert!(!jkt.matches(&Key::new(SigningAlg::ES256).jkt()));
    assert!(Jkt::parse("short").is_none());
    assert!(Jkt::parse(&"!".repeat(43)).is_none());
}
