//! TLS for the listeners (rustls with the aws-lc-rs provider; nothing cryptographic here
//! is ours): the server certificate and key from PEM files, the client-certificate policy
//! of the mutual-TLS listener ([`OptionalClientCert`]), and [`TlsListener`], an
//! [`axum::serve::Listener`] that completes handshakes off the accept loop, so the same
//! `axum::serve` (with its graceful shutdown) serves plain and TLS connections.
//!
//! The mTLS listener *requests* a client certificate and never requires one (RFC 8705
//! clients may also use other authentication methods there). A presented certificate is
//! accepted when it chains to the configured client CA (`--mtls-client-ca`, verified by
//! rustls' webpki verifier: the PKI method, RFC 8705 §2.1) or, failing that, when it is
//! self-signed (verified by the same verifier with the certificate as its own trust
//! anchor; RFC 8705 §2.2, whose clients are then matched by the exact certificate they
//! registered). Anything else fails the handshake. The handshake signature is always
//! verified, so whoever presents a certificate holds its private key. The leaf then
//! reaches every request of the connection as a [`ClientCertificate`] extension, marked
//! with how it was accepted ([`CertificateTrust`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::extract::{ConnectInfo, Request};
use axum::serve::IncomingStream;
use axum::Router;
use deedbolt_guard::dpop::ListenerBase;
use deedbolt_guard::{CertificateTrust, ClientCertificate};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many handshakes run at once per listener; further connections wait in the
/// kernel's accept queue.
const MAX_PENDING_HANDSHAKES: usize = 1024;

/// The process's crypto provider: aws-lc-rs, always (never a process-wide default, which
/// another dependency could have set differently).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads a PEM certificate chain (leaf first).
fn read_certs(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("the {what} {} is not valid PEM", path.display()))?;
    if certs.is_empty() {
        bail!("the {what} {} holds no certificate", path.display());
    }
    Ok(certs)
}

/// The server's certificate chain and private key, loaded once at start.
#[derive(Clone)]
pub struct ServerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    /// Loads `--tls-cert` (a PEM chain, leaf first) and `--tls-key` (a PEM private key:
    /// PKCS#8, SEC1 or PKCS#1), checking that they belong together.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let chain = read_certs(cert, "TLS certificate")?;
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("cannot read a PEM private key from {}", key.display()))?;
        let identity = ServerIdentity {
            chain,
            key: Arc::new(key),
        };
        // Fails when the key does not match the certificate.
        identity
            .config(None)
            .context("the TLS certificate and key do not fit together")?;
        Ok(identity)
    }

    /// A server configuration presenting this identity; with `clients`, requesting client
    /// certificates under that policy.
    fn config(&self, clients: Option<Arc<OptionalClientCert>>) -> anyhow::Result<ServerConfig> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("no TLS protocol version available")?;
        let builder = match clients {
            Some(v) => builder.with_client_cert_verifier(v),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .context("invalid TLS certificate or key")?;
        // axum serves HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// The client-certificate policy of the mTLS listener (see the module docs): request, do
/// not require; accept certificates chaining to the client CA, else self-signed ones.
#[derive(Debug)]
pub struct OptionalClientCert {
    /// rustls' webpki verifier for the configured client CA.
    ca: Option<Arc<dyn ClientCertVerifier>>,
    /// The CA's subject, sent as a hint in the CertificateRequest.
    hints: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
}

impl OptionalClientCert {
    /// The policy with the client CA bundle at `ca` (PEM, one or more certificates), if any.
    pub fn new(ca: Option<&Path>) -> anyhow::Result<Self> {
        let provider = provider();
        let (ca, hints) = match ca {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for cert in read_certs(path, "client CA")? {
                    roots
                        .add(cert)
                        .with_context(|| format!("unusable client CA in {}", path.display()))?;
                }
                let hints = roots.subjects();
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .context("cannot build the client-certificate verifier")?;
                (Some(verifier), hints)
            }
            None => (None, Vec::new()),
        };
        Ok(OptionalClientCert {
            ca,
            hints,
            provider,
        })
    }

    /// How a presented chain is acceptable, or why it is not.
    pub fn classify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<CertificateTrust, rustls::Error> {
        let ca_error = match &self.ca {
            Some(ca) => match ca.verify_client_cert(end_entity, intermediates, now) {
                Ok(_) => return Ok(CertificateTrust::CaVerified),
                Err(e) => Some(e),
            },
            None => None,
        };
        // Self-signed: the certificate is its own trust anchor, so webpki checks its
        // signature with its own key, its validity period and its key usage.
        let mut own = RootCertStore::empty();
        let self_signed = own
            .add(end_entity.clone().into_owned())
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))
            .and_then(|()| {
                WebPkiClientVerifier::builder_with_provider(Arc::new(own), self.provider.clone())
                    .build()
                    .map_err(|e| rustls::Error::General(e.to_string()))
            })
            .and_then(|v| v.verify_client_cert(end_entity, &[], now));
        match self_signed {
            Ok(_) => Ok(CertificateTrust::SelfSigned),
            // The CA's reason is the more useful one when a CA is configured.
            Err(e) => Err(ca_error.unwrap_or(e)),
        }
    }
}

impl ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.classify(end_entity, intermediates, now)
            .map(|_| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Aborts the accept task when the listener is dropped (when `axum::serve` ends).
#[derive(Debug)]
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A TLS listener for `axum::serve`: a task accepts TCP connections and runs each
/// handshake in its own task (bounded by [`HANDSHAKE_TIMEOUT`] and
/// [`MAX_PENDING_HANDSHAKES`]), so a slow client never holds up the others; completed
/// connections are handed to `accept`.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    _accepting: AbortOnDrop,
}

impl TlsListener {
    /// Serves TLS on `listener` with `config`.
    fn new(listener: TcpListener, config: ServerConfig) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (tx, ready) = mpsc::channel(64);
        let permits = Arc::new(Semaphore::new(MAX_PENDING_HANDSHAKES));
        let task = tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Like axum's own listener: out of file descriptors and the like
                        // pass; back off a little.
                        tracing::error!(error = %e, "TLS listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            _accepting: AbortOnDrop(task.abort_handle()),
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task is gone only when this listener is being dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// What a listener needs to speak TLS: the server identity and, for the mTLS listener,
/// the client-certificate policy.
#[derive(Debug, Clone)]
pub struct Tls {
    identity: ServerIdentity,
    clients: Option<Arc<OptionalClientCert>>,
    /// The listener's own public URL, put on every request it serves.
    base: Option<ListenerBase>,
}

impl Tls {
    /// Server-authenticated TLS only (the main listener).
    pub fn server_only(identity: ServerIdentity) -> Self {
        Tls {
            identity,
            clients: None,
            base: None,
        }
    }

    /// TLS requesting client certificates under `clients` (the mTLS listener).
    pub fn mutual(identity: ServerIdentity, clients: OptionalClientCert) -> Self {
        Tls {
            identity,
            clients: Some(Arc::new(clients)),
            base: None,
        }
    }

    /// Tags every request of this listener with its public base URL (a [`ListenerBase`]
    /// extension), for a listener published under a URL of its own: the mTLS listener's
    /// `--mtls-base-url`, whose endpoints discovery advertises as `mtls_endpoint_aliases`.
    /// DPoP proofs sent there name that URL as their `htu` (RFC 9449 §4.3).
    pub fn with_listener_base(mut self, base_url: &str) -> Self {
        self.base = Some(ListenerBase::new(base_url));
        self
    }

    /// Serves `app` over TLS on `listener` until `shutdown`, then drains open connections
    /// like `axum::serve`. Each request carries `ConnectInfo<SocketAddr>`, the listener's
    /// [`ListenerBase`] if it has one, and, when the connection presented an accepted
    /// client certificate, a [`ClientCertificate`].
    pub async fn serve(
        &self,
        listener: TcpListener,
        app: Router,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let config = self.identity.config(self.clients.clone())?;
        let listener = TlsListener::new(listener, config)?;
        let clients = self.clients.clone();
        let base = self.base.clone();
        let make = tower::service_fn(move |incoming: IncomingStream<'_, TlsListener>| {
            let peer = *incoming.remote_addr();
            let cert = clients
                .as_deref()
                .and_then(|policy| client_certificate(policy, incoming.io()));
            let app = app.clone();
            let base = base.clone();
            async move {
                Ok::<_, Infallible>(app.map_request(move |mut req: Request| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    if let Some(base) = &base {
                        req.extensions_mut().insert(base.clone());
                    }
                    if let Some(cert) = &cert {
                        req.extensions_mut().insert(cert.clone());
                    }
                    req
                }))
            }
        });
        axum::serve(listener, make)
            .with_graceful_shutdown(shutdown)
            .await
            .context("TLS listener failed")
    }
}

/// The accepted client certificate of a connection, classified again (the verifier cannot
/// attach its verdict to the connection; verifying once more is cheap next to the
/// handshake).
fn client_certificate(
    policy: &OptionalClientCert,
    stream: &TlsStream<TcpStream>,
) -> Option<ClientCertificate> {
    let (_, connection) = stream.get_ref();
    let (leaf, intermediates) = connection.peer_certificates()?.split_first()?;
    match policy.classify(leaf, intermediates, UnixTime::now()) {
        Ok(trust) => Some(ClientCertificate::new(leaf.as_ref().to_vec(), trust)),
        Err(e) => {
            // Only when the certificate expired between the handshake and now.
            tracing::debug!(error = %e, "client certificate no longer acceptable");
            None
        }
    }
}
