//! Mutual TLS (RFC 8705) through the real server: the HTTPS main listener, the mTLS
//! listener with a test CA (rcgen), client authentication by certificate
//! (`tls_client_auth`, `self_signed_tls_client_auth`), certificate-bound access tokens at
//! the API and `/userinfo`, introspection and discovery.

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::{HeaderMap, Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;

use crate::helpers::{spawn_app_with, Options, TestApp};

/// A test certificate authority.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A server certificate for 127.0.0.1 and localhost.
    fn server(&self) -> Identity {
        let mut params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("server params");
        params.distinguished_name.push(DnType::CommonName, "deedbolt test server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("server cert");
        Identity::new(cert.der().clone(), cert.pem(), key)
    }

    /// A client certificate with subject `CN=<cn>, O=<org>` (RFC 4514 order) and `sans`.
    fn client(&self, cn: &str, org: &str, sans: Vec<SanType>) -> Identity {
        let params = client_params(cn, org, sans);
        let key = KeyPair::generate().expect("client key");
        let cert = params.signed_by(&key, &self.issuer).expect("client cert");
        Identity::new(cert.der().clone(), cert.pem(), key)
    }
}

fn client_params(cn: &str, org: &str, sans: Vec<SanType>) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
    params.distinguished_name.push(DnType::OrganizationName, org);
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

/// A self-signed client certificate.
fn self_signed(cn: &str) -> Identity {
    let params = client_params(cn, "Self Signed Ltd", Vec::new());
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed cert");
    Identity::new(cert.der().clone(), cert.pem(), key)
}

/// A certificate with its private key.
struct Identity {
    der: CertificateDer<'static>,
    pem: String,
    key: KeyPair,
}

impl Identity {
    fn new(der: CertificateDer<'static>, pem: String, key: KeyPair) -> Identity {
        Identity { der, pem, key }
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    /// `x5t#S256` of the certificate.
    fn thumbprint(&self) -> String {
        deedbolt_guard::x5t_s256(&self.der)
    }

    /// The certificate as a JWK with `x5c` (for `self_signed_tls_client_auth`).
    fn jwks(&self) -> Value {
        use base64::Engine as _;
        let x5c = base64::engine::general_purpose::STANDARD.encode(&self.der);
        serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "use": "sig", "x5c": [x5c]}]})
    }
}

/// The test PKI and a server on it: TLS on the main listener and an mTLS listener whose
/// client CA is `client_ca`.
struct Pki {
    server_ca: Ca,
    client_ca: Ca,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        Pki {
            server_ca: Ca::new("deedbolt test server CA"),
            client_ca: Ca::new("deedbolt test client CA"),
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write PEM");
        path
    }

    /// Options for a server with TLS, and the mTLS listener unless `mtls` is false.
    fn options(&self, mtls: bool) -> Options {
        let server = self.server_ca.server();
        let mut opts = Options::default();
        opts.overrides.tls_cert = Some(self.write("server.pem", &server.pem));
        opts.overrides.tls_key = Some(self.write("server.key", &server.key.serialize_pem()));
        if mtls {
            opts.overrides.mtls_listen = Some("127.0.0.1:0".into());
            opts.overrides.mtls_client_ca =
                Some(self.write("client-ca.pem", &self.client_ca.pem()));
        }
        opts
    }

    /// An HTTPS client trusting the server CA, presenting `identity` if given.
    fn client(&self, identity: Option<&Identity>) -> TlsClient {
        TlsClient::new(self.server_ca.der(), identity)
    }
}

/// An HTTPS client (hyper + rustls on aws-lc-rs) with an optional client certificate.
struct TlsClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A response: status, headers and body.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

impl TlsClient {
    fn new(server_ca: CertificateDer<'static>, identity: Option<&Identity>) -> TlsClient {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(server_ca).expect("server CA");
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
        let config = match identity {
            Some(id) => builder
                .with_client_auth_cert(vec![id.der.clone()], id.key_der())
                .expect("client identity"),
            None => builder.with_no_client_auth(),
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .build();
        TlsClient {
            client: Client::builder(TokioExecutor::new()).build(https),
        }
    }

    /// Sends a request; `Err` when the connection (the TLS handshake) fails.
    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Reply, String> {
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
            .expect("request");
        let res = self.client.request(req).await.map_err(|e| format!("{e:?}"))?;
        let status = res.status();
        let headers = res.headers().clone();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{e:?}"))?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    async fn get(&self, url: &str, bearer: Option<&str>) -> Result<Reply, String> {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        self.send(Method::GET, url, &headers, None).await
    }

    async fn post_form(&self, url: &str, form: &str) -> Result<Reply, String> {
        self.send(
            Method::POST,
            url,
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(form),
        )
        .await
    }
}

fn mtls_base(app: &TestApp) -> &str {
    app.mtls_base.as_deref().expect("the mTLS listener runs")
}

#[tokio::test]
async fn the_main_listener_serves_https_and_the_issuer_is_https() {
    let pki = Pki::new();
    let app = spawn_app_with(pki.options(false)).await;
    assert!(app.base.starts_with("https://127.0.0.1:"));
    let client = pki.client(None);
    let res = client
        .get(&format!("{}/.well-known/oauth-authorization-server", app.base), None)
        .await
        .expect("HTTPS works");
    assert_eq!(res.status, StatusCode::OK);
    let doc = res.json();
    assert_eq!(doc["issuer"], app.base);
    // No mTLS listener: nothing about it in discovery.
    assert!(doc.get("mtls_endpoint_aliases").is_none());
    assert!(doc.get("tls_client_certificate_bound_access_tokens").is_none());
    // HSTS on an https issuer.
    assert!(res.headers.contains_key("strict-transport-security"));
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!(
            "{}/healthz",
            app.base.replace("https://", "http://")
        ))
        .send()
        .await;
    assert!(plain.is_err() || !plain.expect("answer").status().is_success());
    app.stop().await;
}

#[tokio::test]
async fn discovery_advertises_the_mtls_aliases_and_methods() {
    let pki = Pki::new();
    let app = spawn_app_with(pki.options(true)).await;
    let mtls = mtls_base(&app).to_owned();
    let client = pki.client(None);
    for doc_path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc = client
            .get(&format!("{}{doc_path}", app.base), None)
            .await
            .expect("discovery")
            .json();
        assert_eq!(doc["tls_client_certificate_bound_access_tokens"], true);
        let aliases = &doc["mtls_endpoint_aliases"];
        assert_eq!(aliases["token_endpoint"], format!("{mtls}/token"));
        assert_eq!(aliases["revocation_endpoint"], format!("{mtls}/revoke"));
        assert_eq!(aliases["introspection_endpoint"], format!("{mtls}/introspect"));
        assert_eq!(aliases["userinfo_endpoint"], format!("{mtls}/userinfo"));
        let methods = doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .expect("methods");
        for m in ["tls_client_auth", "self_signed_tls_client_auth", "client_secret_basic"] {
            assert!(methods.iter().any(|v| v == m), "{m} in {methods:?}");
        }
    }
    // The mTLS listener serves the same application, also without a client certificate.
    let res = client
        .get(&format!("{mtls}/.well-known/oauth-authorization-server"), None)
        .await
        .expect("mTLS listener without a certificate");
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["issuer"], app.base);
    app.stop().await;
}

#[tokio::test]
async fn the_mtls_listener_accepts_ca_issued_and_self_signed_certificates_only() {
    let pki = Pki::new();
    let app = spawn_app_with(pki.options(true)).await;
    let mtls = mtls_base(&app).to_owned();
    let url = format!("{mtls}/healthz");
    let good = pki.client_ca.client("valuation-bot", "Acme Valuations", Vec::new());
    let res = pki.client(Some(&good)).get(&url, None).await;
    assert_eq!(res.expect("CA-issued certificate").status, StatusCode::OK);
    let own = self_signed("self-signed-bot");
    let res = pki.client(Some(&own)).get(&url, None).await;
    assert_eq!(res.expect("self-signed certificate").status, StatusCode::OK);
    // Issued by another CA (and not self-signed): the handshake fails.
    let rogue_ca = Ca::new("rogue CA");
    let rogue = rogue_ca.client("valuation-bot", "Acme Valuations", Vec::new());
    let res = pki.client(Some(&rogue)).get(&url, None).await;
    assert!(res.is_err(), "a certificate from another CA must be refused");
    app.stop().await;
}
