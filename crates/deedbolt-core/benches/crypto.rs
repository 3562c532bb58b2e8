//! Token signing and client authentication against their cryptographic floor.
//!
//! Each `sign_jwt/*` figure should be read as a ratio to the matching `floor/sign/*`
//! figure (the bare aws-lc-rs signature over a message of the same size).
//! `client_assertion/verify/*` is what a `private_key_jwt` client costs per request
//! (parse, signature, claims; not the replay cache), beside `client_secret/verify`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use deedbolt_core::client::{Client, ClientName, GrantType};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::grant::{authenticate_client, client_credentials_scope, TokenPolicy};
use deedbolt_core::ids::ClientId;
use deedbolt_core::jose::{SigningAlg, SigningKey};
use deedbolt_core::secret::{ClientSecret, Pepper, SecretHasher};
use deedbolt_core::token::{AccessTokenLifetime, ACCESS_TOKEN_TYP};

fn fixture() -> (Client, ClientSecret, SecretHasher, TokenPolicy) {
    let hasher = SecretHasher::new(&Pepper::generate().unwrap());
    let secret = ClientSecret::generate().unwrap();
    let client = Client {
        id: ClientId::generate().unwrap(),
        name: ClientName::parse("bench").unwrap(),
        secret_hash: Some(hasher.hash(&secret)),
        grant_types: vec![GrantType::ClientCredentials],
        scopes: "property:read financial:read".parse().unwrap(),
        redirect_uris: vec![],
        kind: deedbolt_core::client::ClientKind::Confidential,
        allow_introspection: false,
        properties: None,
        id_token_alg: SigningAlg::RS256,
        metadata: Default::default(),
        registration_token_hash: None,
        created_at: UnixTime(0),
        updated_at: UnixTime(0),
    };
    let policy = TokenPolicy {
        issuer: "https://auth.example.com".into(),
        audience: "https://auth.example.com/api".into(),
        lifetime: AccessTokenLifetime::default(),
    };
    (client, secret, hasher, policy)
}

fn signing(c: &mut Criterion) {
    let (client, secret, hasher, policy) = fixture();
    let auth = authenticate_client(Some(client), &secret, &hasher).unwrap();
    let claims = policy
        .client_credentials_claims(&auth, auth.client().scopes, UnixTime(1_800_000_000))
        .unwrap();
    for alg in SigningAlg::ALL {
        let (key, _) = SigningKey::generate(alg).unwrap();
        // The floor: one signature over a message as long as a real signing input.
        let message = key.sign_jwt(ACCESS_TOKEN_TYP, &claims).unwrap();
        let message = message.rsplit_once('.').unwrap().0.as_bytes().to_vec();
        c.bench_function(&format!("floor/sign/{alg}"), |b| {
            b.iter(|| key.sign_bytes(black_box(&message)).unwrap())
        });
        c.bench_function(&format!("sign_jwt/{alg}"), |b| {
            b.iter(|| key.sign_jwt(ACCESS_TOKEN_TYP, black_box(&claims)).unwrap())
        });
    }
}

fn client_auth(c: &mut Criterion) {
    let (client, secret, hasher, policy) = fixture();
    let stored = client.secret_hash.clone().unwrap();
    c.bench_function("client_secret/verify", |b| {
        b.iter(|| hasher.verify(black_box(&secret), black_box(&stored)))
    });
    // Everything the token endpoint does per request except HTTP and the signature.
    c.bench_function("client_credentials/rules_and_claims", |b| {
        b.iter(|| {
            let auth = authenticate_client(Some(client.clone()), &secret, &hasher).unwrap();
            let scope = client_credentials_scope(&auth, Some("property:read")).unwrap();
            policy
                .client_credentials_claims(&auth, scope, UnixTime(1_800_000_000))
                .unwrap()
        })
    });
}

fn client_assertions(c: &mut Criterion) {
    use deedbolt_core::assertion::{self, AssertionRules, PresentedAssertion};
    use deedbolt_core::client_jwks::ClientJwks;
    let issuer = "https://auth.example.com";
    let id = ClientId::generate().unwrap();
    let now = UnixTime(1_800_000_000);
    for alg in SigningAlg::ALL {
        let (key, _) = SigningKey::generate(alg).unwrap();
        let jwks = ClientJwks::parse(&serde_json::json!({ "keys": [key.public_jwk()] })).unwrap();
        let claims = serde_json::json!({
            "iss": id.as_str(), "sub": id.as_str(), "aud": issuer,
            "iat": now.0, "exp": now.0 + 60, "jti": "bench-jti-0123456789",
        });
        let jwt = key.sign_jwt("client-authentication+jwt", &claims).unwrap();
        let rules = AssertionRules {
            issuer,
            audience_as_string: false,
            required_alg: None,
            now,
        };
        c.bench_function(&format!("client_assertion/verify/{alg}"), |b| {
            b.iter(|| {
                let presented = PresentedAssertion::parse(black_box(&jwt)).unwrap();
                assertion::verify(&presented, &id, &jwks, &rules).unwrap()
            })
        });
    }
}

fn pkce_and_password(c: &mut Criterion) {
    use deedbolt_core::pkce::{verify, CodeChallenge, CodeVerifier};
    use deedbolt_core::user::{Password, PasswordHasher};
    let verifier = CodeVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
    let challenge = CodeChallenge::parse(
        Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
        Some("S256"),
    )
    .unwrap();
    c.bench_function("pkce/verify_s256", |b| {
        b.iter(|| verify(black_box(&verifier), black_box(&challenge)).unwrap())
    });
    // argon2id is slow by design; this bounds password logins per core.
    let hasher = PasswordHasher::new().unwrap();
    let stored = hasher
        .hash(&Password::presented("correct horse battery".into()))
        .unwrap();
    let presented = Password::presented("correct horse battery".into());
    let mut group = c.benchmark_group("password");
    group.sample_size(10);
    group.bench_function("argon2id_verify", |b| {
        b.iter(|| assert!(hasher.verify(black_box(&presented), &stored)))
    });
    group.finish();
}

// `criterion_group!` generates an undocumented `pub fn`.
#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(
        benches,
        signing,
        client_auth,
        client_assertions,
        pkce_and_password
    );
}

criterion_main!(group::benches);
