//! Certificate-bound access tokens (RFC 8705 §3): the client certificate of a request, and
//! the check that a token bound to a certificate is used with that certificate.
//!
//! # How a resource server passes the certificate in
//!
//! The guard never looks at TLS itself: whatever terminates mutual TLS puts the verified
//! leaf certificate of the connection into the request extensions as a
//! [`ClientCertificate`], before the request reaches a [`RequireScopes`](crate::RequireScopes)
//! layer. deedbolt's own mTLS listener does this for every request on a connection that
//! presented a certificate; another tower/axum service does the same from its TLS
//! acceptor, e.g. with tokio-rustls:
//!
//! ```ignore
//! let (_, conn) = tls_stream.get_ref();
//! let cert = conn
//!     .peer_certificates()
//!     .and_then(|chain| chain.first())
//!     .map(|leaf| ClientCertificate::new(leaf.as_ref().to_vec(), CertificateTrust::CaVerified));
//! // then, per request: if let Some(c) = &cert { req.extensions_mut().insert(c.clone()); }
//! ```
//!
//! (`tests/mtls.rs` of this crate does exactly this in front of a tower service.)
//!
//! A token whose claims carry `cnf.x5t#S256` is then accepted only when the request carries
//! a [`ClientCertificate`] whose SHA-256 thumbprint is that value; otherwise the guard answers
//! 401 `invalid_token`. A token without `cnf` is a bearer token and needs no certificate.
//!
//! Never build a [`ClientCertificate`] from a request header that a client could set (such
//! as a proxy's `X-Client-Cert`) unless the proxy is the only way in and strips that header
//! from what clients send.

use std::sync::Arc;

use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// How the TLS layer accepted a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertificateTrust {
    /// The certificate chains to a configured client CA (the PKI method, RFC 8705 §2.1).
    CaVerified,
    /// The certificate does not chain to a configured CA; the TLS layer accepted it only
    /// because it is self-signed (RFC 8705 §2.2): it identifies a client only when that
    /// client registered exactly this certificate.
    SelfSigned,
}

/// The leaf certificate a client presented in the TLS handshake of the request's
/// connection, after the TLS layer verified the handshake signature (the client holds its
/// private key). Cheap to clone.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    der: Arc<[u8]>,
    thumbprint: Arc<str>,
    trust: CertificateTrust,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint)
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// The certificate with its DER encoding, as the TLS layer accepted it.
    ///
    /// ```
    /// use deedbolt_guard::{CertificateTrust, ClientCertificate};
    /// let c = ClientCertificate::new(b"not really DER".to_vec(), CertificateTrust::SelfSigned);
    /// assert_eq!(c.x5t_s256(), deedbolt_guard::x5t_s256(b"not really DER"));
    /// assert_eq!(c.x5t_s256().len(), 43);
    /// ```
    pub fn new(der: Vec<u8>, trust: CertificateTrust) -> Self {
        let thumbprint = x5t_s256(&der);
        ClientCertificate {
            der: der.into(),
            thumbprint: thumbprint.into(),
            trust,
        }
    }

    /// The DER encoding of the certificate.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The base64url (unpadded) SHA-256 of the DER: the `x5t#S256` confirmation value
    /// (RFC 8705 §3.1).
    pub fn x5t_s256(&self) -> &str {
        &self.thumbprint
    }

    /// How the TLS layer accepted the certificate.
    pub fn trust(&self) -> CertificateTrust {
        self.trust
    }
}

/// The `x5t#S256` value of a DER certificate: base64url without padding of its SHA-256
/// (RFC 8705 §3.1).
pub fn x5t_s256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, der))
}

/// Whether a token confirmed to the certificate thumbprint `bound` (its `cnf.x5t#S256`,
/// if any) may be used on a request that carries `presented`. A token without a
/// certificate confirmation is not bound and passes. The comparison is constant-time.
pub fn certificate_binding_holds(
    bound: Option<&str>,
    presented: Option<&ClientCertificate>,
) -> bool {
    match (bound, presented) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(bound), Some(cert)) => aws_lc_rs::constant_time::verify_slices_are_equal(
            bound.as_bytes(),
            cert.x5t_s256().as_bytes(),
        )
        .is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_is_base64url_sha256_of_the_der() {
        // SHA-256 of the empty string.
        assert_eq!(x5t_s256(b""), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
    }

    #[test]
    fn a_bound_token_needs_the_same_certificate() {
        let a = ClientCertificate::new(b"a".to_vec(), CertificateTrust::CaVerified);
        let b = ClientCertificate::new(b"b".to_vec(), CertificateTrust::CaVerified);
        assert!(certificate_binding_holds(None, None));
        assert!(certificate_binding_holds(None, Some(&a)));
        assert!(certificate_binding_holds(Some(a.x5t_s256()), Some(&a)));
        assert!(!certificate_binding_holds(Some(a.x5t_s256()), Some(&b)));
        assert!(!certificate_binding_holds(Some(a.x5t_s256()), None));
    }
}
