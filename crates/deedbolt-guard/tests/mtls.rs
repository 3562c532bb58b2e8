//! Certificate-bound tokens (RFC 8705 §3) at the guard, the way any resource server uses
//! it: whatever terminates mutual TLS puts the connection's client certificate into the
//! request extensions as a `ClientCertificate`; a token with `cnf.x5t#S256` passes only with
//! that certificate.

use std::convert::Infallible;

use bytes::Bytes;
use deedbolt_core::jose::SigningKey;
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::token::Confirmation;
use deedbolt_guard::{CertificateTrust, ClientCertificate, Guard};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Layer, ServiceExt};

mod common;

struct Fixture {
    key: SigningKey,
    guard: Guard,
}

fn fixture() -> Fixture {
    let (key, _, verifier) = common::issuer();
    Fixture {
        key,
        guard: Guard::new(verifier),
    }
}

fn token(f: &Fixture, cnf: Option<Confirmation>) -> String {
    common::token(&f.key, cnf)
}

/// One request through `require(property:read)`, with the certificate as an extension.
async fn call(f: &Fixture, token: &str, cert: Option<&ClientCertificate>) -> Response<String> {
    let inner = tower::service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new("handler".to_owned()))
    });
    let service = f
        .guard
        .require("property:read".parse::<ScopeSet>().unwrap())
        .layer(inner);
    let mut req = Request::builder()
        .uri("/api/properties")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::default())
        .unwrap();
    if let Some(c) = cert {
        req.extensions_mut().insert(c.clone());
    }
    service.oneshot(req).await.unwrap()
}

fn cert(der: &[u8]) -> ClientCertificate {
    ClientCertificate::new(der.to_vec(), CertificateTrust::CaVerified)
}

#[tokio::test]
async fn a_bound_token_passes_only_with_its_certificate() {
    let f = fixture();
    let mine = cert(b"my certificate");
    let bound = token(&f, Some(Confirmation::certificate(mine.x5t_s256())));
    assert_eq!(call(&f, &bound, Some(&mine)).await.status(), StatusCode::OK);
    for presented in [None, Some(cert(b"another certificate"))] {
        let res = call(&f, &bound, presented.as_ref()).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let challenge = res.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
}

#[tokio::test]
async fn an_unbound_token_needs_no_certificate() {
    let f = fixture();
    let bearer = token(&f, None);
    assert_eq!(call(&f, &bearer, None).await.status(), StatusCode::OK);
    assert_eq!(
        call(&f, &bearer, Some(&cert(b"any"))).await.status(),
        StatusCode::OK
    );
}
