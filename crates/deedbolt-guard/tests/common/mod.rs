//! What the guard's integration tests share: an issuer's signing key, the verifier that
//! trusts it at a fixed time, and the access tokens it signs.

use std::sync::Arc;

use deedbolt_core::clock::{Clock, ManualClock, UnixTime};
use deedbolt_core::ids::{ClientId, TokenId};
use deedbolt_core::jose::{JwkSet, SigningAlg, SigningKey};
use deedbolt_core::token::{AccessTokenClaims, Confirmation, ACCESS_TOKEN_TYP};
use deedbolt_guard::{StaticKeys, Verifier};

/// The fixed time of every test.
pub const NOW: i64 = 1_800_000_000;

/// A fresh ES256 issuer key, a clock standing at [`NOW`], and a verifier for issuer
/// `https://as` and audience `https://as/api` that trusts the key on that clock.
pub fn issuer() -> (SigningKey, Arc<dyn Clock>, Verifier) {
    let (key, _) = SigningKey::generate(SigningAlg::ES256).unwrap();
    let set = JwkSet {
        keys: vec![key.public_jwk().clone()],
    };
    let keys = Arc::new(StaticKeys::from_jwks(&set).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(UnixTime(NOW)));
    let verifier = Verifier::new("https://as", "https://as/api", keys, clock.clone());
    (key, clock, verifier)
}

/// An access token of the client `dbc_a` for `property:read`, valid at [`NOW`], signed by
/// `key`, with the confirmation `cnf` (RFC 7800) if any.
pub fn token(key: &SigningKey, cnf: Option<Confirmation>) -> String {
    let claims = AccessTokenClaims {
        iss: "https://as".into(),
        sub: "dbc_a".into(),
        aud: "https://as/api".into(),
        exp: UnixTime(NOW + 900),
        iat: UnixTime(NOW),
        nbf: None,
        jti: TokenId::generate().unwrap(),
        client_id: ClientId::parse("dbc_a").unwrap(),
        scope: "property:read".parse().unwrap(),
        cnf,
    };
    key.sign_jwt(ACCESS_TOKEN_TYP, &claims).unwrap()
}
