//! Client authentication by TLS certificate (RFC 8705 §2) and certificate-bound access
//! tokens (§3) at the authorization server's endpoints.
//!
//! The certificate comes only from the mutual-TLS listener, as the
//! [`ClientCertificate`] request extension it sets (see `deedbolt_guard::mtls`); on the
//! main listener there is never one, so these methods work only over mTLS. This file reads
//! the certificate (x509-parser) into [`CertificateEvidence`]; the rules are
//! [`deedbolt_core::certauth`]. [`crate::oauth::client_auth::authenticate`] calls
//! [`authenticate`] for a request that names a client without a secret.

use std::net::IpAddr;

use deedbolt_core::certauth::{self, ByCertificate, CertificateEvidence, CertificateNames};
use deedbolt_core::client::Client;
use deedbolt_core::dn::DistinguishedName;
use deedbolt_core::error::OAuthError;
use deedbolt_core::token::{AccessTokenClaims, Confirmation};
use deedbolt_guard::{CertificateTrust, ClientCertificate};
use x509_parser::extensions::GeneralName;

/// What the request's certificate proves, for the core rules: its thumbprint, and its
/// names when it chained to the client CA (a self-signed certificate's names prove
/// nothing).
pub fn evidence(cert: &ClientCertificate) -> CertificateEvidence {
    let ca_verified = match cert.trust() {
        CertificateTrust::CaVerified => Some(certificate_names(cert.der())),
        CertificateTrust::SelfSigned => None,
    };
    CertificateEvidence {
        x5t_s256: cert.x5t_s256().to_owned(),
        ca_verified,
    }
}

/// The subject (RFC 4514 order) and SANs of a DER certificate. A certificate that does not
/// parse, or a subject attribute that is not a string, leaves the part empty: it then
/// matches no registered name.
fn certificate_names(der: &[u8]) -> CertificateNames {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return CertificateNames::default();
    };
    let subject = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let value = atv.as_str().ok()?;
                    Some((atv.attr_type().to_id_string(), value.to_owned()))
                })
                .collect::<Option<Vec<_>>>()
        })
        .collect::<Option<Vec<_>>>()
        .map(|mut rdns| {
            // The certificate lists RDNs from the root down; RFC 4514 strings the reverse.
            rdns.reverse();
            DistinguishedName::from_rdns(rdns)
        });
    let mut names = CertificateNames {
        subject,
        ..CertificateNames::default()
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => names.dns.push((*d).to_owned()),
                GeneralName::URI(u) => names.uris.push((*u).to_owned()),
                GeneralName::RFC822Name(e) => names.emails.push((*e).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        names.ips.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    names
}

/// An `iPAddress` SAN: 4 or 16 octets.
fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Authenticates `found` by the request's certificate when the client registered
/// `tls_client_auth` or `self_signed_tls_client_auth` (RFC 8705 §2); see
/// [`certauth::authenticate`].
pub fn authenticate(
    found: Option<Client>,
    cert: Option<&ClientCertificate>,
) -> Result<ByCertificate, OAuthError> {
    let evidence = cert.map(evidence);
    certauth::authenticate(found, evidence.as_ref())
}

/// The certificate an access token for `client` is bound to (RFC 8705 §3): the request's
/// client certificate, when there is one. A client registered with
/// `tls_client_certificate_bound_access_tokens` must present one (§3.4).
pub fn certificate_binding(
    client: &Client,
    cert: Option<&ClientCertificate>,
) -> Result<Option<String>, OAuthError> {
    match cert {
        Some(c) => Ok(Some(c.x5t_s256().to_owned())),
        None if client.metadata.tls_client_certificate_bound_access_tokens => {
            Err(OAuthError::invalid_request(
                "this client's access tokens are bound to its TLS certificate: request them \
                 over the mutual-TLS endpoint (mtls_endpoint_aliases) with the certificate",
            ))
        }
        None => Ok(None),
    }
}

/// Binds `claims` to the certificate thumbprint `bound` (from [`certificate_binding`]), if
/// any: sets `cnf.x5t#S256` and keeps a confirmation already there (a DPoP `jkt`), so the
/// order in which the bindings are applied does not matter.
pub fn bind(claims: &mut AccessTokenClaims, bound: Option<String>) {
    if let Some(x5t) = bound {
        claims
            .cnf
            .get_or_insert_with(Confirmation::default)
            .x5t_s256 = Some(x5t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_sans_are_four_or_sixteen_octets() {
        assert_eq!(ip_from_bytes(&[127, 0, 0, 1]), "127.0.0.1".parse().ok());
        assert_eq!(ip_from_bytes(&[0; 16]), "::".parse().ok());
        assert_eq!(ip_from_bytes(&[1, 2, 3]), None);
    }

    #[test]
    fn garbage_is_a_certificate_without_names() {
        assert_eq!(certificate_names(b"not DER"), CertificateNames::default());
    }
}
