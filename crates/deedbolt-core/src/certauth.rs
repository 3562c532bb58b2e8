//! Client authentication by TLS certificate (RFC 8705 §2), as pure rules: which registered
//! value a certificate must match, and the proof of authentication when it does.
//!
//! - `tls_client_auth` (§2.1, PKI): the certificate chains to a trusted CA (the TLS layer
//!   checked that) and matches the client's one registered name: the subject DN
//!   (`tls_client_auth_subject_dn`) or exactly one SAN (`tls_client_auth_san_dns`, `_uri`,
//!   `_ip`, `_email`). A certificate that did *not* chain to the CA never authenticates
//!   such a client, whatever names it carries (anyone can self-sign any name).
//! - `self_signed_tls_client_auth` (§2.2): the certificate is one the client registered,
//!   as the first `x5c` entry of a key in its `jwks`; compared by SHA-256 of the DER.
//!
//! The adapter reads the certificate ([`CertificateEvidence`]); [`authenticate`] makes the
//! [`ClientAuthenticated`] proof. Every failure is the same `invalid_client`.

use std::net::IpAddr;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

use crate::client::{AuthMethod, Client, ClientMetadata};
use crate::dn::{DistinguishedName, DnError};
use crate::error::OAuthError;
use crate::grant::ClientAuthenticated;

/// The names of a certificate that chained to a trusted CA.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateNames {
    /// The subject, in RFC 4514 order.
    pub subject: Option<DistinguishedName>,
    /// `dNSName` SANs.
    pub dns: Vec<String>,
    /// `uniformResourceIdentifier` SANs.
    pub uris: Vec<String>,
    /// `iPAddress` SANs.
    pub ips: Vec<IpAddr>,
    /// `rfc822Name` SANs.
    pub emails: Vec<String>,
}

/// What the TLS layer and the adapter learned about the presented client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateEvidence {
    /// `x5t#S256` of the certificate (base64url SHA-256 of the DER).
    pub x5t_s256: String,
    /// The names, only when the certificate chained to a trusted CA.
    pub ca_verified: Option<CertificateNames>,
}

/// The one name a `tls_client_auth` client registered (RFC 8705 §2.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PkiRule {
    /// `tls_client_auth_subject_dn`.
    SubjectDn(DistinguishedName),
    /// `tls_client_auth_san_dns` (compared case-insensitively).
    Dns(String),
    /// `tls_client_auth_san_uri` (compared exactly).
    Uri(String),
    /// `tls_client_auth_san_ip`.
    Ip(IpAddr),
    /// `tls_client_auth_san_email` (compared case-insensitively).
    Email(String),
}

/// Why a client's certificate-authentication metadata is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertRuleError {
    /// RFC 8705 §2.1.2: "exactly one" of the five `tls_client_auth_*` parameters.
    #[error("tls_client_auth needs exactly one of tls_client_auth_subject_dn, _san_dns, _san_uri, _san_ip, _san_email")]
    NotExactlyOne,
    /// The subject DN does not parse.
    #[error("tls_client_auth_subject_dn: {0}")]
    SubjectDn(#[from] DnError),
    /// The SAN IP is not an IP address.
    #[error("tls_client_auth_san_ip is not an IP address")]
    Ip,
    /// An empty value.
    #[error("a tls_client_auth_* value is empty")]
    Empty,
    /// `self_signed_tls_client_auth` without a certificate in `jwks` (a `jwks_uri` is not
    /// read for this method).
    #[error("self_signed_tls_client_auth needs its certificate in jwks (the first x5c entry of a key); jwks_uri is not supported for it")]
    NoCertificate,
    /// The `jwks` of a `self_signed_tls_client_auth` client holds private key material.
    #[error("jwks: {0}")]
    Keys(#[from] crate::client_jwks::JwksError),
}

impl PkiRule {
    /// The rule a client registered.
    pub fn from_metadata(m: &ClientMetadata) -> Result<PkiRule, CertRuleError> {
        let set = [
            m.tls_client_auth_subject_dn.as_deref(),
            m.tls_client_auth_san_dns.as_deref(),
            m.tls_client_auth_san_uri.as_deref(),
            m.tls_client_auth_san_ip.as_deref(),
            m.tls_client_auth_san_email.as_deref(),
        ];
        let mut present = set
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i, v)));
        let (Some((which, value)), None) = (present.next(), present.next()) else {
            return Err(CertRuleError::NotExactlyOne);
        };
        if value.trim().is_empty() {
            return Err(CertRuleError::Empty);
        }
        Ok(match which {
            0 => PkiRule::SubjectDn(value.parse()?),
            1 => PkiRule::Dns(value.to_owned()),
            2 => PkiRule::Uri(value.to_owned()),
            3 => PkiRule::Ip(value.parse().map_err(|_| CertRuleError::Ip)?),
            _ => PkiRule::Email(value.to_owned()),
        })
    }

    /// Whether a CA-verified certificate's names satisfy the rule.
    pub fn matches(&self, names: &CertificateNames) -> bool {
        match self {
            PkiRule::SubjectDn(dn) => names.subject.as_ref() == Some(dn),
            PkiRule::Dns(d) => names.dns.iter().any(|n| n.eq_ignore_ascii_case(d)),
            PkiRule::Uri(u) => names.uris.iter().any(|n| n == u),
            PkiRule::Ip(ip) => names.ips.contains(ip),
            PkiRule::Email(e) => names.emails.iter().any(|n| n.eq_ignore_ascii_case(e)),
        }
    }
}

/// The `x5t#S256` values of the certificates a client registered in `jwks` for
/// `self_signed_tls_client_auth`: of each key, its first `x5c` entry (RFC 7517 §4.7: the
/// certificate holding the key).
pub fn registered_certificates(jwks: &serde_json::Value) -> Vec<String> {
    jwks.get("keys")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|key| key.get("x5c")?.as_array()?.first()?.as_str())
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .map(|der| {
            URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der))
        })
        .collect()
}

/// Checks a client's registered certificate-authentication metadata (for registration).
pub fn validate(method: AuthMethod, m: &ClientMetadata) -> Result<(), CertRuleError> {
    match method {
        AuthMethod::TlsClientAuth => PkiRule::from_metadata(m).map(|_| ()),
        AuthMethod::SelfSignedTlsClientAuth => {
            let jwks = m.jwks.as_ref().ok_or(CertRuleError::NoCertificate)?;
            // Any certificate key type will do (the TLS handshake proves its key); only
            // public keys may be stored.
            crate::client_jwks::refuse_private_keys(jwks)?;
            if registered_certificates(jwks).is_empty() {
                Err(CertRuleError::NoCertificate)
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// The outcome of [`authenticate`] for a client that exists or not.
#[derive(Debug)]
pub enum ByCertificate {
    /// The client registered a certificate method and the certificate fits it.
    Authenticated(ClientAuthenticated),
    /// The client (if any) registered no certificate method: it is handed back for the
    /// other methods (a public client naming itself).
    NotACertificateClient(Option<Client>),
}

/// Authenticates `found` (the client named by the request's `client_id`) by the presented
/// certificate if it registered a certificate method; such a client without a fitting
/// certificate gets `invalid_client`.
pub fn authenticate(
    found: Option<Client>,
    evidence: Option<&CertificateEvidence>,
) -> Result<ByCertificate, OAuthError> {
    let Some(client) = found else {
        return Ok(ByCertificate::NotACertificateClient(None));
    };
    let method = client.auth_method();
    if !matches!(
        method,
        AuthMethod::TlsClientAuth | AuthMethod::SelfSignedTlsClientAuth
    ) {
        return Ok(ByCertificate::NotACertificateClient(Some(client)));
    }
    if evidence.is_some_and(|e| certificate_fits(&client, method, e)) {
        Ok(ByCertificate::Authenticated(ClientAuthenticated::new(
            client,
        )))
    } else {
        Err(OAuthError::client_authentication_failed())
    }
}

/// Whether `evidence` authenticates `client` by `method`.
fn certificate_fits(client: &Client, method: AuthMethod, evidence: &CertificateEvidence) -> bool {
    let m = &client.metadata;
    match method {
        AuthMethod::TlsClientAuth => match (&evidence.ca_verified, PkiRule::from_metadata(m)) {
            (Some(names), Ok(rule)) => rule.matches(names),
            _ => false,
        },
        AuthMethod::SelfSignedTlsClientAuth => m.jwks.as_ref().is_some_and(|jwks| {
            registered_certificates(jwks).iter().any(|t| {
                aws_lc_rs::constant_time::verify_slices_are_equal(
                    t.as_bytes(),
                    evidence.x5t_s256.as_bytes(),
                )
                .is_ok()
            })
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> CertificateNames {
        CertificateNames {
            subject: "CN=bot,O=Acme".parse().ok(),
            dns: vec!["Bot.Acme.example".into()],
            uris: vec!["urn:acme:bot".into()],
            ips: vec!["10.0.0.7".parse().unwrap()],
            emails: vec!["Bot@Acme.example".into()],
        }
    }

    fn metadata(f: impl FnOnce(&mut ClientMetadata)) -> ClientMetadata {
        let mut m = ClientMetadata {
            token_endpoint_auth_method: Some(AuthMethod::TlsClientAuth),
            ..ClientMetadata::default()
        };
        f(&mut m);
        m
    }

    #[test]
    fn each_registered_name_matches_by_its_rule() {
        fn rule(f: impl FnOnce(&mut ClientMetadata)) -> PkiRule {
            PkiRule::from_metadata(&metadata(f)).unwrap()
        }
        let n = names();
        assert!(rule(|m| m.tls_client_auth_subject_dn = Some("cn=BOT, o=acme".into())).matches(&n));
        assert!(!rule(|m| m.tls_client_auth_subject_dn = Some("CN=bot".into())).matches(&n));
        assert!(rule(|m| m.tls_client_auth_san_dns = Some("bot.acme.EXAMPLE".into())).matches(&n));
        assert!(rule(|m| m.tls_client_auth_san_uri = Some("urn:acme:bot".into())).matches(&n));
        assert!(!rule(|m| m.tls_client_auth_san_uri = Some("URN:acme:bot".into())).matches(&n));
        assert!(rule(|m| m.tls_client_auth_san_ip = Some("10.0.0.7".into())).matches(&n));
        assert!(!rule(|m| m.tls_client_auth_san_ip = Some("10.0.0.8".into())).matches(&n));
        assert!(
            rule(|m| m.tls_client_auth_san_email = Some("bot@acme.example".into())).matches(&n)
        );
        // A certificate without a string subject matches no DN.
        let no_subject = CertificateNames::default();
        assert!(
            !rule(|m| m.tls_client_auth_subject_dn = Some("CN=bot".into())).matches(&no_subject)
        );
    }

    #[test]
    fn exactly_one_valid_name_is_required() {
        fn err(f: impl FnOnce(&mut ClientMetadata)) -> CertRuleError {
            PkiRule::from_metadata(&metadata(f)).unwrap_err()
        }
        assert_eq!(err(|_| {}), CertRuleError::NotExactlyOne);
        assert_eq!(
            err(|m| {
                m.tls_client_auth_san_dns = Some("a".into());
                m.tls_client_auth_san_uri = Some("b".into());
            }),
            CertRuleError::NotExactlyOne
        );
        assert_eq!(
            err(|m| m.tls_client_auth_san_ip = Some("nope".into())),
            CertRuleError::Ip
        );
        assert_eq!(
            err(|m| m.tls_client_auth_san_dns = Some(" ".into())),
            CertRuleError::Empty
        );
        assert!(matches!(
            err(|m| m.tls_client_auth_subject_dn = Some("XX=1".into())),
            CertRuleError::SubjectDn(_)
        ));
    }

    #[test]
    fn a_self_signed_clients_jwks_holds_public_keys_only() {
        let meta = |key: serde_json::Value| ClientMetadata {
            jwks: Some(serde_json::json!({ "keys": [key] })),
            ..ClientMetadata::default()
        };
        let cert = STANDARD.encode(b"cert");
        let public = serde_json::json!({"kty": "EC", "crv": "P-384", "x5c": [cert]});
        assert!(validate(AuthMethod::SelfSignedTlsClientAuth, &meta(public.clone())).is_ok());
        let mut private = public;
        private["d"] = serde_json::json!("AA");
        assert!(matches!(
            validate(AuthMethod::SelfSignedTlsClientAuth, &meta(private)),
            Err(CertRuleError::Keys(_))
        ));
    }

    #[test]
    fn registered_certificates_are_the_first_x5c_of_each_key() {
        let jwks = serde_json::json!({"keys": [
            {"kty": "EC", "x5c": [STANDARD.encode(b"cert-a"), STANDARD.encode(b"ca")]},
            {"kty": "EC"},
            {"kty": "EC", "x5c": ["not base64!"]},
            {"kty": "EC", "x5c": [STANDARD.encode(b"cert-b")]},
        ]});
        let thumbprints = registered_certificates(&jwks);
        let t = |der: &[u8]| {
            URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
        };
        assert_eq!(thumbprints, vec![t(b"cert-a"), t(b"cert-b")]);
        assert!(registered_certificates(&serde_json::json!({})).is_empty());
    }
}
