//! The `client create` flags of the mutual-TLS methods of RFC 8705: the one certificate name
//! a `tls_client_auth` client must carry, the JWK Set file (`--jwks-file`, shared with
//! private_key_jwt) holding a `self_signed_tls_client_auth` client's certificate, and
//! certificate-bound access tokens. They become the client's [`ClientMetadata`], checked by
//! the same rules the token endpoint applies ([`deedbolt_core::certauth::validate`]).

use std::path::Path;

use anyhow::{bail, Context};
use deedbolt_core::client::{AuthMethod, ClientMetadata};

/// The largest JWK Set file read.
const MAX_JWKS_BYTES: u64 = 64 * 1024;

/// The mutual-TLS flags of `client create` (next to its `--auth-method` and `--jwks-file`).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ClientAuthArgs {
    /// tls_client_auth: the certificate's subject DN, RFC 4514 (e.g. "CN=valuation-bot,O=Acme
    /// Ltd,C=GB"). Give exactly one of --tls-subject-dn and the --tls-san-* flags.
    #[arg(long)]
    pub tls_subject_dn: Option<String>,
    /// tls_client_auth: a dNSName SAN of the certificate.
    #[arg(long)]
    pub tls_san_dns: Option<String>,
    /// tls_client_auth: a URI SAN of the certificate.
    #[arg(long)]
    pub tls_san_uri: Option<String>,
    /// tls_client_auth: an IP address SAN of the certificate.
    #[arg(long)]
    pub tls_san_ip: Option<String>,
    /// tls_client_auth: an email (rfc822Name) SAN of the certificate.
    #[arg(long)]
    pub tls_san_email: Option<String>,
    /// Its access tokens must be bound to its TLS certificate
    /// (tls_client_certificate_bound_access_tokens, RFC 8705 §3.4): token requests without
    /// a client certificate are refused.
    #[arg(long)]
    pub tls_bound_tokens: bool,
}

impl ClientAuthArgs {
    fn has_names(&self) -> bool {
        [
            &self.tls_subject_dn,
            &self.tls_san_dns,
            &self.tls_san_uri,
            &self.tls_san_ip,
            &self.tls_san_email,
        ]
        .iter()
        .any(|n| n.is_some())
    }

    /// Refuses certificate names for a client that does not use `tls_client_auth`.
    pub fn refuse_names_without_tls_client_auth(&self) -> anyhow::Result<()> {
        if self.has_names() {
            bail!("--tls-subject-dn and --tls-san-* need --auth-method tls_client_auth");
        }
        Ok(())
    }

    /// The metadata of a client registered for `method` (`tls_client_auth` or
    /// `self_signed_tls_client_auth`), with `jwks_file` for the latter.
    pub fn metadata(
        &self,
        method: AuthMethod,
        jwks_file: Option<&Path>,
    ) -> anyhow::Result<ClientMetadata> {
        if method != AuthMethod::TlsClientAuth {
            self.refuse_names_without_tls_client_auth()?;
        }
        if method != AuthMethod::SelfSignedTlsClientAuth && jwks_file.is_some() {
            bail!("--jwks-file is for private_key_jwt and self_signed_tls_client_auth clients");
        }
        let jwks = jwks_file.map(read_jwks).transpose()?;
        let metadata = ClientMetadata {
            token_endpoint_auth_method: Some(method),
            jwks,
            tls_client_auth_subject_dn: self.tls_subject_dn.clone(),
            tls_client_auth_san_dns: self.tls_san_dns.clone(),
            tls_client_auth_san_uri: self.tls_san_uri.clone(),
            tls_client_auth_san_ip: self.tls_san_ip.clone(),
            tls_client_auth_san_email: self.tls_san_email.clone(),
            ..ClientMetadata::default()
        };
        deedbolt_core::certauth::validate(method, &metadata)?;
        Ok(metadata)
    }
}

/// Reads a JWK Set file (a JSON object with `keys`).
fn read_jwks(path: &Path) -> anyhow::Result<serde_json::Value> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read --jwks-file {}", path.display()))?
        .len();
    if size > MAX_JWKS_BYTES {
        bail!(
            "--jwks-file {} is larger than {MAX_JWKS_BYTES} bytes",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --jwks-file {}", path.display()))?;
    let jwks: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("--jwks-file {} is not JSON", path.display()))?;
    if !jwks.get("keys").is_some_and(serde_json::Value::is_array) {
        bail!(
            "--jwks-file {} is not a JWK Set (no `keys` array)",
            path.display()
        );
    }
    Ok(jwks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_client_auth_needs_exactly_one_name() {
        let mut a = ClientAuthArgs::default();
        assert!(a.metadata(AuthMethod::TlsClientAuth, None).is_err());
        a.tls_subject_dn = Some("CN=bot,O=Acme".into());
        let m = a.metadata(AuthMethod::TlsClientAuth, None).unwrap();
        assert_eq!(
            m.token_endpoint_auth_method,
            Some(AuthMethod::TlsClientAuth)
        );
        a.tls_san_dns = Some("bot.example".into());
        assert!(a.metadata(AuthMethod::TlsClientAuth, None).is_err());
        a.tls_san_dns = None;
        a.tls_subject_dn = Some("CN=bot,".into());
        assert!(a.metadata(AuthMethod::TlsClientAuth, None).is_err());
    }

    #[test]
    fn names_without_the_method_are_refused() {
        let a = ClientAuthArgs {
            tls_san_dns: Some("bot.example".into()),
            ..ClientAuthArgs::default()
        };
        assert!(a.refuse_names_without_tls_client_auth().is_err());
        assert!(a
            .metadata(AuthMethod::SelfSignedTlsClientAuth, None)
            .is_err());
        let none = ClientAuthArgs::default();
        assert!(
            none.metadata(AuthMethod::SelfSignedTlsClientAuth, None)
                .is_err(),
            "no certificate registered"
        );
    }
}
