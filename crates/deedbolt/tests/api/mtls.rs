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
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
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
        params
            .distinguished_name
            .push(DnType::CommonName, "deedbolt test server");
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
    // rcgen starts with a CN of its own; the subject is exactly O then CN (ASN.1 order).
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, org);
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

    /// Options for a server whose main listener stays plain HTTP, with an mTLS listener on
    /// its own certificate (`--mtls-cert`/`--mtls-key`).
    fn mtls_only_options(&self) -> Options {
        let server = self.server_ca.server();
        let mut opts = Options::default();
        opts.overrides.mtls_listen = Some("127.0.0.1:0".into());
        opts.overrides.mtls_cert = Some(self.write("mtls-server.pem", &server.pem));
        opts.overrides.mtls_key = Some(self.write("mtls-server.key", &server.key.serialize_pem()));
        opts.overrides.mtls_client_ca = Some(self.write("client-ca.pem", &self.client_ca.pem()));
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
        let res = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("{e:?}"))?;
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
        .get(
            &format!("{}/.well-known/oauth-authorization-server", app.base),
            None,
        )
        .await
        .expect("HTTPS works");
    assert_eq!(res.status, StatusCode::OK);
    let doc = res.json();
    assert_eq!(doc["issuer"], app.base);
    // No mTLS listener: nothing about it in discovery.
    assert!(doc.get("mtls_endpoint_aliases").is_none());
    assert!(doc
        .get("tls_client_certificate_bound_access_tokens")
        .is_none());
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
        assert_eq!(
            aliases["introspection_endpoint"],
            format!("{mtls}/introspect")
        );
        assert_eq!(aliases["userinfo_endpoint"], format!("{mtls}/userinfo"));
        assert_eq!(
            aliases["pushed_authorization_request_endpoint"],
            format!("{mtls}/par")
        );
        let methods = doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .expect("methods");
        for m in [
            "tls_client_auth",
            "self_signed_tls_client_auth",
            "client_secret_basic",
        ] {
            assert!(methods.iter().any(|v| v == m), "{m} in {methods:?}");
        }
    }
    // The mTLS listener serves the same application, also without a client certificate.
    let res = client
        .get(
            &format!("{mtls}/.well-known/oauth-authorization-server"),
            None,
        )
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
    let good = pki
        .client_ca
        .client("valuation-bot", "Acme Valuations", Vec::new());
    let res = pki.client(Some(&good)).get(&url, None).await;
    assert_eq!(res.expect("CA-issued certificate").status, StatusCode::OK);
    let own = self_signed("self-signed-bot");
    let res = pki.client(Some(&own)).get(&url, None).await;
    assert_eq!(res.expect("self-signed certificate").status, StatusCode::OK);
    // Issued by another CA (and not self-signed): the handshake fails.
    let rogue_ca = Ca::new("rogue CA");
    let rogue = rogue_ca.client("valuation-bot", "Acme Valuations", Vec::new());
    let res = pki.client(Some(&rogue)).get(&url, None).await;
    assert!(
        res.is_err(),
        "a certificate from another CA must be refused"
    );
    // Expired, whether CA-issued or self-signed: the handshake fails.
    let expire = |mut params: CertificateParams| {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        params
    };
    let key = KeyPair::generate().expect("key");
    let cert = expire(client_params(
        "valuation-bot",
        "Acme Valuations",
        Vec::new(),
    ))
    .signed_by(&key, &pki.client_ca.issuer)
    .expect("expired cert");
    let expired = Identity::new(cert.der().clone(), cert.pem(), key);
    assert!(
        pki.client(Some(&expired)).get(&url, None).await.is_err(),
        "an expired CA-issued certificate must be refused"
    );
    let key = KeyPair::generate().expect("key");
    let cert = expire(client_params(
        "self-signed-bot",
        "Self Signed Ltd",
        Vec::new(),
    ))
    .self_signed(&key)
    .expect("expired self-signed cert");
    let expired = Identity::new(cert.der().clone(), cert.pem(), key);
    assert!(
        pki.client(Some(&expired)).get(&url, None).await.is_err(),
        "an expired self-signed certificate must be refused"
    );
    // Issued by the client CA for servers only (extended key usage serverAuth).
    let mut params = client_params("valuation-bot", "Acme Valuations", Vec::new());
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("key");
    let cert = params
        .signed_by(&key, &pki.client_ca.issuer)
        .expect("server-only cert");
    let server_only = Identity::new(cert.der().clone(), cert.pem(), key);
    assert!(
        pki.client(Some(&server_only))
            .get(&url, None)
            .await
            .is_err(),
        "a certificate not for client authentication must be refused"
    );
    app.stop().await;
}

/// Registers a client-credentials client through the CLI with extra `client create` flags.
fn create_cert_client(app: &TestApp, flags: &[&str]) -> Value {
    let mut args = vec![
        "client",
        "create",
        "--name",
        "cert-client",
        "--grant",
        "client_credentials",
        "--scope",
        "property:read",
        "--json",
    ];
    args.extend_from_slice(flags);
    app.cli_json(&args)
}

fn client_id(v: &Value) -> String {
    v["client_id"].as_str().expect("client_id").to_owned()
}

/// A client-credentials token request over `base` (the mTLS or the main listener).
async fn token_request(client: &TlsClient, base: &str, id: &str) -> Result<Reply, String> {
    client
        .post_form(
            &format!("{base}/token"),
            &format!("grant_type=client_credentials&client_id={id}"),
        )
        .await
}

fn access_token(reply: &Reply) -> String {
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

fn assert_invalid_client(reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["error"], "invalid_client");
}

#[tokio::test]
async fn tls_client_auth_authenticates_by_the_registered_subject_dn_and_binds_the_token() {
    let pki = Pki::new();
    let app = spawn_app_with(pki.options(true)).await;
    let mtls = mtls_base(&app).to_owned();
    let registered = create_cert_client(
        &app,
        &[
            "--auth-method",
            "tls_client_auth",
            "--tls-subject-dn",
            "CN=valuation-bot, O=Acme Valuations",
        ],
    );
    assert_eq!(registered["token_endpoint_auth_method"], "tls_client_auth");
    assert!(
        registered.get("client_secret").is_none(),
        "no secret for a certificate client"
    );
    let id = client_id(&registered);
    let cert = pki
        .client_ca
        .client("valuation-bot", "Acme Valuations", Vec::new());
    let client = pki.client(Some(&cert));
    let reply = token_request(&client, &mtls, &id).await.expect("token");
    let token = access_token(&reply);
    let claims = crate::helpers::jwt_part(&token, 1);
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["cnf"]["x5t#S256"], cert.thumbprint());

    // Wrong subject: another name from the same CA.
    let other = pki
        .client_ca
        .client("other-bot", "Acme Valuations", Vec::new());
    let reply = token_request(&pki.client(Some(&other)), &mtls, &id)
        .await
        .expect("answer");
    assert_invalid_client(&reply);
    // The right subject, self-signed: anyone can make one, so it proves nothing here.
    let forged = {
        let params = client_params("valuation-bot", "Acme Valuations", Vec::new());
        let key = KeyPair::generate().expect("key");
        let c = params.self_signed(&key).expect("cert");
        Identity::new(c.der().clone(), c.pem(), key)
    };
    let reply = token_request(&pki.client(Some(&forged)), &mtls, &id)
        .await
        .expect("answer");
    assert_invalid_client(&reply);
    // No certificate on the mTLS listener, and the main listener (which never asks).
    let reply = token_request(&pki.client(None), &mtls, &id)
        .await
        .expect("answer");
    assert_invalid_client(&reply);
    let reply = token_request(&pki.client(Some(&cert)), &app.base, &id)
        .await
        .expect("answer");
    assert_invalid_client(&reply);
    // The right subject from another CA: refused in the handshake.
    let rogue = Ca::new("rogue CA").client("valuation-bot", "Acme Valuations", Vec::new());
    assert!(token_request(&pki.client(Some(&rogue)), &mtls, &id)
        .await
        .is_err());
    app.stop().await;
}

#[tokio::test]
async fn tls_client_auth_can_match_one_san_instead() {
    let pki = Pki::new();
    let app = spawn_app_with(pki.options(true)).await;
    let mtls = mtls_base(&app).to_owned();
    let dns = client_id(&create_cert_client(
        &app,
        &[
            "--auth-method",
            "tls_client_auth",
            "--tls-san-dns",
            "bot.acme.example",
        ],
    ));
    let ip = client_id(&create_cert_client(
        &app,
        &[
            "--auth-method",
            "tls_client_auth",
            "--tls-san-ip",
            "10.1.2.3",
        ],
    ));
    let cert = pki.client_ca.client(
        "anything",
        "Acme",
        vec![
            SanType::DnsName("BOT.acme.example".try_into().expect("dns")),
            SanType::IpAddress("10.1.2.3".parse().expect("ip")),
        ],
    );
    let client = pki.client(Some(&cert));
    access_token(&token_request(&client, &mtls, &dns).await.expect("dns"));
    access_token(&token_request(&client, &mtls, &ip).await.expect("ip"));
    let plain = pki.client_ca.client("anything", "Acme", Vec::new());
    let reply = token_request(&pki.client(Some(&plain)), &mtls, &dns)
        .await
        .expect("answer");
    assert_invalid_client(&reply);
    // Exactly one name must be registered.
    let out = app.cli(&[
        "client",
        "create",
        "--name",
        "two-names",
        "--grant",
        "client_credentials",
        "--scope",
        "property:read",
        "--auth-method",
        "tls_client_auth",
        "--tls-san-dns",
        "a.example",
        "--tls-subject-dn",
        "CN=a",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exactly one"));
    app.stop().await;
}

#[tokio::test]
async fn self_signed_tls_client_auth_accepts_only_the_registered_certificate() {
    let pki = Pki::new();
    let app = spawn_app_with(pki.options(true)).await;
    let mtls = mtls_base(&app).to_owned();
    let own = self_signed("self-signed-bot");
    let jwks = pki.write("bot-jwks.json", &own.jwks().to_string());
    let id = client_id(&create_cert_client(
        &app,
        &[
            "--auth-method",
            "self_signed_tls_client_auth",
            "--jwks-file",
            jwks.to_str().expect("path"),
        ],
    ));
    let reply = token_request(&pki.client(Some(&own)), &mtls, &id)
        .await
        .expect("token");
    let token = access_token(&reply);
    assert_eq!(
        crate::helpers::jwt_part(&token, 1)["cnf"]["x5t#S256"],
        own.thumbprint()
    );
    // Same subject, another key: another certificate.
    let twin = self_signed("self-signed-bot");
    let reply = token_request(&pki.client(Some(&twin)), &mtls, &id)
        .await
        .expect("answer");
    assert_invalid_client(&reply);
    // A CA-issued certificate is not the registered one either.
    let ca_issued = pki
        .client_ca
        .client("self-signed-bot", "Self Signed Ltd", Vec::new());
    let reply = token_request(&pki.client(Some(&ca_issued)), &mtls, &id)
        .await
        .expect("answer");
    assert_invalid_client(&reply);
    let reply = token_request(&pki.client(None), &mtls, &id)
        .await
        .expect("answer");
    assert_invalid_client(&reply);
    // Each refusal is audited under the client it claimed (the writer batches: poll).
    let mut audited = 0;
    for _ in 0..50 {
        let out = app.cli(&[
            "audit",
            "search",
            "--json",
            "--type",
            "client_auth_failed",
            "--client",
            &id,
        ]);
        audited = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("invalid_client"))
            .count();
        if audited >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(audited, 3, "one client_auth_failed record per refusal");
    app.stop().await;
}

#[tokio::test]
async fn a_bound_token_works_only_with_its_certificate_at_the_api_and_userinfo() {
    let pki = Pki::new();
    let app = spawn_app_with(pki.options(true)).await;
    let mtls = mtls_base(&app).to_owned();
    let id = client_id(&create_cert_client(
        &app,
        &[
            "--auth-method",
            "tls_client_auth",
            "--tls-subject-dn",
            "CN=bot,O=Acme",
        ],
    ));
    let cert = pki.client_ca.client("bot", "Acme", Vec::new());
    let with_cert = pki.client(Some(&cert));
    let token = access_token(&token_request(&with_cert, &mtls, &id).await.expect("token"));
    let api = format!("{mtls}/api/properties");
    let res = with_cert.get(&api, Some(&token)).await.expect("API");
    assert_eq!(
        res.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&res.body)
    );

    let refused = |res: Reply| {
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        assert_eq!(res.json()["error"], "invalid_token");
        let challenge = res.headers["www-authenticate"].to_str().expect("ascii");
        assert!(challenge.contains("invalid_token"), "{challenge}");
    };
    // Another certificate (same CA, even the same subject), none, or the main listener.
    let other = pki.client_ca.client("bot", "Acme", Vec::new());
    refused(
        pki.client(Some(&other))
            .get(&api, Some(&token))
            .await
            .expect("API"),
    );
    refused(pki.client(None).get(&api, Some(&token)).await.expect("API"));
    refused(
        pki.client(None)
            .get(&format!("{}/api/properties", app.base), Some(&token))
            .await
            .expect("API"),
    );
    // /userinfo checks the binding before the scope: without the certificate the token is
    // invalid; with it, it merely lacks `openid`.
    let userinfo = format!("{mtls}/userinfo");
    refused(
        pki.client(None)
            .get(&userinfo, Some(&token))
            .await
            .expect("userinfo"),
    );
    let res = with_cert
        .get(&userinfo, Some(&token))
        .await
        .expect("userinfo");
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    // Introspection (by the client itself, authenticated by its certificate) shows cnf.
    let res = with_cert
        .post_form(
            &format!("{mtls}/introspect"),
            &format!("client_id={id}&token={token}"),
        )
        .await
        .expect("introspect");
    assert_eq!(
        res.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&res.body)
    );
    let body = res.json();
    assert_eq!(body["active"], true);
    assert_eq!(body["cnf"]["x5t#S256"], cert.thumbprint());
    app.stop().await;
}

#[tokio::test]
async fn a_client_registered_for_bound_tokens_must_present_a_certificate() {
    let pki = Pki::new();
    let app = spawn_app_with(pki.options(true)).await;
    let mtls = mtls_base(&app).to_owned();
    // A secret client whose tokens must be certificate-bound.
    let registered = create_cert_client(&app, &["--tls-bound-tokens"]);
    assert_eq!(
        registered["tls_client_certificate_bound_access_tokens"],
        true
    );
    let id = client_id(&registered);
    let secret = registered["client_secret"].as_str().expect("secret");
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
    let res = pki
        .client(None)
        .post_form(&format!("{}/token", app.base), &form)
        .await
        .expect("answer");
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json()["error"], "invalid_request");
    // With a certificate on the mTLS listener (authenticated by its secret; the
    // certificate only binds): a bound token.
    let cert = self_signed("any");
    let res = pki
        .client(Some(&cert))
        .post_form(&format!("{mtls}/token"), &form)
        .await
        .expect("token");
    let token = access_token(&res);
    assert_eq!(
        crate::helpers::jwt_part(&token, 1)["cnf"]["x5t#S256"],
        cert.thumbprint()
    );
    // An ordinary secret client over the main listener still gets a bearer token.
    let plain = create_cert_client(&app, &[]);
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        client_id(&plain),
        plain["client_secret"].as_str().expect("secret")
    );
    let res = pki
        .client(None)
        .post_form(&format!("{}/token", app.base), &form)
        .await
        .expect("token");
    let token = access_token(&res);
    assert!(crate::helpers::jwt_part(&token, 1).get("cnf").is_none());
    app.stop().await;
}

#[tokio::test]
async fn openid_client_authenticates_with_tls_client_auth_and_uses_the_bound_token() {
    if !crate::helpers::openid_client_installed() {
        return;
    }
    let pki = Pki::new();
    let app = spawn_app_with(pki.options(true)).await;
    let mtls = mtls_base(&app).to_owned();
    let id = client_id(&create_cert_client(
        &app,
        &[
            "--auth-method",
            "tls_client_auth",
            "--tls-san-uri",
            "urn:acme:valuation-bot",
        ],
    ));
    let cert = pki.client_ca.client(
        "valuation-bot",
        "Acme",
        vec![SanType::URI(
            "urn:acme:valuation-bot".try_into().expect("uri"),
        )],
    );
    let ca_file = pki.write("node-ca.pem", &pki.server_ca.pem());
    let cert_file = pki.write("node-client.pem", &cert.pem);
    let key_file = pki.write("node-client.key", &cert.key.serialize_pem());
    let mut cmd = std::process::Command::new("node");
    cmd.arg("mtls.mjs")
        .current_dir(crate::helpers::openid_client_dir())
        .env("ISSUER", &app.base)
        .env("CLIENT_ID", &id)
        .env("CA_FILE", &ca_file)
        .env("CERT_FILE", &cert_file)
        .env("KEY_FILE", &key_file)
        .env("API_URL", format!("{mtls}/api/properties"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // Node runs while this runtime keeps serving the server: wait on a blocking thread.
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("start node");
        let limit = std::time::Duration::from_secs(60);
        if crate::helpers::wait_child(&mut child, limit).is_none() {
            let _ = child.kill();
        }
        child.wait_with_output().expect("node output")
    })
    .await
    .expect("node thread");
    let line = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
        panic!(
            "node printed {line:?} ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(v.get("error").is_none(), "openid-client failed: {v}");
    let token = v["access_token"].as_str().expect("access_token");
    assert_eq!(
        crate::helpers::jwt_part(token, 1)["cnf"]["x5t#S256"],
        cert.thumbprint()
    );
    assert_eq!(v["api_status"], 200);
    assert!(v["api_body"]["items"].is_array());
    assert_eq!(v["introspection"]["active"], true);
    assert_eq!(v["introspection"]["cnf"]["x5t#S256"], cert.thumbprint());
    app.stop().await;
}

#[tokio::test]
async fn a_key_that_does_not_fit_the_certificate_stops_the_start() {
    let pki = Pki::new();
    let mut opts = pki.options(false);
    let stranger = KeyPair::generate().expect("key");
    opts.overrides.tls_key = Some(pki.write("other.key", &stranger.serialize_pem()));
    let err = crate::helpers::try_spawn_app(opts)
        .await
        .err()
        .expect("the start fails");
    assert!(
        format!("{err:#}").contains("do not fit together"),
        "{err:#}"
    );
    // A file that is not PEM.
    let mut opts = pki.options(false);
    opts.overrides.tls_cert = Some(pki.write("garbage.pem", "not a certificate"));
    assert!(crate::helpers::try_spawn_app(opts).await.is_err());
}

const CB: &str = "https://rp.example.com/cb";
const EMAIL: &str = "tess.tls@example.com";
const PASSWORD: &str = "granite-Willow-Comet-58-gently";

/// Signs `EMAIL` in through the pages (main listener, plain HTTP) for `client_id`; returns
/// the code and its PKCE verifier.
async fn code_for(app: &TestApp, client_id: &str) -> (String, String) {
    let (verifier, challenge) = crate::helpers::pkce_pair();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", CB)
        .append_pair("scope", "openid tenant:read")
        .append_pair("state", &crate::helpers::random_b64url(16))
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .finish();
    let callback = app
        .sign_in_through_pages(
            &format!("/authorize?{query}"),
            EMAIL,
            PASSWORD,
            "approve",
            &mut crate::helpers::Jar::default(),
        )
        .await;
    let code = crate::helpers::query_params(&callback)
        .remove("code")
        .unwrap_or_else(|| panic!("no code in {callback}"));
    (code, verifier)
}

fn redeem_form(client_id: &str, extra: &str, code: &str, verifier: &str) -> String {
    format!(
        "grant_type=authorization_code&client_id={client_id}{extra}&code={code}\
         &redirect_uri={}&code_verifier={verifier}",
        url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>()
    )
}

#[tokio::test]
async fn the_code_flow_and_refresh_over_mtls_bind_every_access_token() {
    let pki = Pki::new();
    let app = spawn_app_with(pki.mtls_only_options()).await;
    assert!(
        app.base.starts_with("http://"),
        "the main listener stays plain"
    );
    let mtls = mtls_base(&app).to_owned();
    app.create_user(EMAIL, "tenant", PASSWORD);
    let own = self_signed("tenant-app");
    let jwks = pki.write("app-jwks.json", &own.jwks().to_string());
    let id = client_id(&app.cli_json(&[
        "client",
        "create",
        "--name",
        "tls app",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--scope",
        "openid tenant:read",
        "--redirect-uri",
        CB,
        "--auth-method",
        "self_signed_tls_client_auth",
        "--jwks-file",
        jwks.to_str().expect("path"),
        "--json",
    ]));
    let (code, verifier) = code_for(&app, &id).await;
    let form = redeem_form(&id, "", &code, &verifier);
    // Without the certificate the client is not authenticated, and the code is not spent.
    let res = pki
        .client(None)
        .post_form(&format!("{mtls}/token"), &form)
        .await
        .expect("answer");
    assert_invalid_client(&res);
    let with_cert = pki.client(Some(&own));
    let res = with_cert
        .post_form(&format!("{mtls}/token"), &form)
        .await
        .expect("token");
    let access = access_token(&res);
    let body = res.json();
    assert_eq!(
        crate::helpers::jwt_part(&access, 1)["cnf"]["x5t#S256"],
        own.thumbprint()
    );
    // /userinfo on the mTLS listener: with the certificate only.
    let userinfo = format!("{mtls}/userinfo");
    let res = with_cert
        .get(&userinfo, Some(&access))
        .await
        .expect("userinfo");
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.json()["sub"].is_string());
    let res = pki
        .client(None)
        .get(&userinfo, Some(&access))
        .await
        .expect("userinfo");
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    // Refresh over mTLS: the new access token is bound too.
    let refresh = body["refresh_token"].as_str().expect("refresh_token");
    let res = with_cert
        .post_form(
            &format!("{mtls}/token"),
            &format!("grant_type=refresh_token&client_id={id}&refresh_token={refresh}"),
        )
        .await
        .expect("refresh");
    let renewed = access_token(&res);
    assert_ne!(renewed, access);
    assert_eq!(
        crate::helpers::jwt_part(&renewed, 1)["cnf"]["x5t#S256"],
        own.thumbprint()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_bound_tokens_client_without_a_certificate_keeps_its_code() {
    let pki = Pki::new();
    let app = spawn_app_with(pki.mtls_only_options()).await;
    let mtls = mtls_base(&app).to_owned();
    app.create_user(EMAIL, "tenant", PASSWORD);
    let v = app.cli_json(&[
        "client",
        "create",
        "--name",
        "bound secret app",
        "--grant",
        "authorization_code",
        "--scope",
        "openid tenant:read",
        "--redirect-uri",
        CB,
        "--tls-bound-tokens",
        "--json",
    ]);
    let id = client_id(&v);
    let secret = v["client_secret"].as_str().expect("secret");
    let (code, verifier) = code_for(&app, &id).await;
    let form = redeem_form(&id, &format!("&client_secret={secret}"), &code, &verifier);
    // On the plain main listener (no certificate possible): refused before redemption.
    let res = app
        .http
        .post(format!("{}/token", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.clone())
        .send()
        .await
        .expect("answer");
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["error"], "invalid_request");
    // The same code still redeems over mTLS with a certificate, bound to it.
    let cert = pki.client_ca.client("bound-app", "Acme", Vec::new());
    let res = pki
        .client(Some(&cert))
        .post_form(&format!("{mtls}/token"), &form)
        .await
        .expect("token");
    let access = access_token(&res);
    assert_eq!(
        crate::helpers::jwt_part(&access, 1)["cnf"]["x5t#S256"],
        cert.thumbprint()
    );
    app.stop().await;
}

#[tokio::test]
async fn under_fapi2_certificate_clients_authenticate_and_their_tokens_are_bound() {
    let pki = Pki::new();
    let mut opts = pki.options(true);
    opts.global.profile = Some(deedbolt_core::profile::Profile::Fapi2);
    let app = spawn_app_with(opts).await;
    let mtls = mtls_base(&app).to_owned();
    let doc = pki
        .client(None)
        .get(
            &format!("{}/.well-known/oauth-authorization-server", app.base),
            None,
        )
        .await
        .expect("discovery")
        .json();
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "private_key_jwt",
            "tls_client_auth",
            "self_signed_tls_client_auth"
        ])
    );
    let id = client_id(&create_cert_client(
        &app,
        &[
            "--auth-method",
            "tls_client_auth",
            "--tls-subject-dn",
            "CN=bot,O=Acme",
        ],
    ));
    let cert = pki.client_ca.client("bot", "Acme", Vec::new());
    let token = access_token(
        &token_request(&pki.client(Some(&cert)), &mtls, &id)
            .await
            .expect("token"),
    );
    assert_eq!(
        crate::helpers::jwt_part(&token, 1)["cnf"]["x5t#S256"],
        cert.thumbprint()
    );
    // A bare client_id of a client that is no certificate client is `none`: not allowed,
    // with or without a certificate.
    let secret_client = create_cert_client(&app, &[]);
    for client in [pki.client(Some(&cert)), pki.client(None)] {
        let reply = token_request(&client, &mtls, &client_id(&secret_client))
            .await
            .expect("answer");
        assert_invalid_client(&reply);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_self_signed_client_registered_at_the_registration_endpoint_authenticates() {
    use base64::Engine as _;
    let pki = Pki::new();
    let mut opts = pki.mtls_only_options();
    opts.overrides.registration = Some("open".into());
    opts.overrides.registration_scope = Some("property:read".into());
    let app = spawn_app_with(opts).await;
    let mtls = mtls_base(&app).to_owned();
    let own = self_signed("registered-bot");
    // The certificate's own P-256 key, with the certificate as its x5c.
    let raw = own.key.public_key_raw();
    assert_eq!(raw.len(), 65, "an uncompressed P-256 point");
    let b64url = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwk = serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(&raw[1..33]),
        "y": b64url(&raw[33..]),
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&own.der)],
    });
    let register = |body: Value| {
        app.http
            .post(format!("{}/register", app.base))
            .json(&body)
            .send()
    };
    let res = register(serde_json::json!({
        "grant_types": ["client_credentials"],
        "scope": "property:read",
        "token_endpoint_auth_method": "self_signed_tls_client_auth",
        "jwks": {"keys": [jwk.clone()]},
        "tls_client_certificate_bound_access_tokens": true,
    }))
    .await
    .expect("register");
    assert_eq!(res.status(), 201);
    let registered: Value = res.json().await.expect("JSON");
    assert!(registered.get("client_secret").is_none());
    let id = client_id(&registered);
    let token = access_token(
        &token_request(&pki.client(Some(&own)), &mtls, &id)
            .await
            .expect("token"),
    );
    assert_eq!(
        crate::helpers::jwt_part(&token, 1)["cnf"]["x5t#S256"],
        own.thumbprint()
    );
    // A key without its certificate cannot be a self-signed client's registration.
    let mut bare = jwk.clone();
    if let Some(o) = bare.as_object_mut() {
        o.remove("x5c");
    }
    let res = register(serde_json::json!({
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "self_signed_tls_client_auth",
        "jwks": {"keys": [bare]},
    }))
    .await
    .expect("register");
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body["error"], "invalid_client_metadata");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("x5c")),
        "{body}"
    );
    app.stop().await;
}

/// RFC 9449 §4.3 check 9: `htu` is the URI of the request the proof came with. On the
/// mutual-TLS listener, whose endpoints discovery advertises as `mtls_endpoint_aliases`
/// (RFC 8705 §5), that is the alias: a proof naming it is accepted there, and one naming
/// the main listener is refused, at `/token`, `/par`, the API, `/userinfo` and the admin
/// API.
#[tokio::test]
async fn dpop_proofs_on_the_mtls_listener_name_its_own_urls() {
    let pki = Pki::new();
    let app = spawn_app_with(pki.mtls_only_options()).await;
    let mtls = mtls_base(&app).to_owned();
    let meta: Value = app
        .get("/.well-known/oauth-authorization-server", None)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        meta["mtls_endpoint_aliases"]["token_endpoint"],
        format!("{mtls}/token")
    );
    let creds = app.create_client("property:read");
    let key = crate::dpop::DpopKey::new();
    let tls = pki.client(None);
    // A POST to `path` of the mTLS listener, as the client `id` with `secret`, with a proof
    // naming `htu`.
    let post = |path: &'static str, htu: String, id: &str, secret: &str, form: String| {
        use base64::Engine as _;
        let proof = key.proof("POST", &htu, None);
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
        );
        let url = format!("{mtls}{path}");
        let tls = &tls;
        async move {
            tls.send(
                Method::POST,
                &url,
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("authorization", &basic),
                    ("dpop", &proof),
                ],
                Some(&form),
            )
            .await
            .expect(path)
        }
    };
    let token_with = |htu: String| {
        post(
            "/token",
            htu,
            &creds.id,
            &creds.secret,
            "grant_type=client_credentials".to_owned(),
        )
    };
    // /token: the alias's URL is the htu; the main listener's is another URI.
    let res = token_with(format!("{}/token", app.base)).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json()["error"], "invalid_dpop_proof");
    let res = token_with(format!("{mtls}/token")).await;
    let token = access_token(&res);
    assert_eq!(res.json()["token_type"], "DPoP");

    // /par, with a code client's secret.
    let web = app.create_code_client("openid property:read", &[CB], false, &[]);
    let par_with = |htu: String| {
        let form = format!(
            "response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s\
             &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
            web.id,
            url::form_urlencoded::byte_serialize(CB.as_bytes()).collect::<String>()
        );
        post(
            "/par",
            htu,
            &web.id,
            web.secret.as_deref().expect("secret"),
            form,
        )
    };
    let res = par_with(format!("{}/par", app.base)).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(res.json()["error"], "invalid_dpop_proof");
    let res = par_with(format!("{mtls}/par")).await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&res.body)
    );

    // The guard: the API (200), /userinfo and the admin API (403: the proof passed, the
    // token lacks their scopes); with the main listener's URL, 401 invalid_dpop_proof.
    let dpop_auth = format!("DPoP {token}");
    for (path, passed) in [
        ("/api/properties", StatusCode::OK),
        ("/userinfo", StatusCode::FORBIDDEN),
        ("/admin/api/audit", StatusCode::FORBIDDEN),
    ] {
        for (base, want) in [
            (app.base.as_str(), StatusCode::UNAUTHORIZED),
            (&mtls, passed),
        ] {
            let proof = key.proof("GET", &format!("{base}{path}"), Some(&token));
            let res = tls
                .send(
                    Method::GET,
                    &format!("{mtls}{path}"),
                    &[("authorization", &dpop_auth), ("dpop", &proof)],
                    None,
                )
                .await
                .expect("GET");
            let challenge = res
                .headers
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap_or("").to_owned())
                .unwrap_or_default();
            assert_eq!(res.status, want, "{path} with htu on {base}: {challenge}");
            if want == StatusCode::UNAUTHORIZED {
                assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
            }
        }
    }
    app.stop().await;
}
