//! The `client create` flags for how a client authenticates beyond a secret: the mutual-TLS
//! methods of RFC 8705 (`tls_client_auth` with the one certificate name it must carry,
//! `self_signed_tls_client_auth` with its certificate in a JWK Set) and certificate-bound
//! access tokens. They become the client's [`ClientMetadata`], checked by the same rules
//! the token endpoint applies ([`deedbolt_core::certauth::validate`]).

use std::path::PathBuf;

use anyhow::{bail, Context};
use deedbolt_core::client::{AuthMethod, ClientMetadata};

/// The largest JWK Set file read.
const MAX_JWKS_BYTES: u64 = 64 * 1024;

/// Client-authentication flags of `client create`.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ClientAuthArgs {
    /// How the client authenticates at the token endpoint (its
    /// token_endpoint_auth_method): tls_client_auth or self_signed_tls_client_auth (RFC
    /// 8705, over the mutual-TLS listener: no secret is issued) [default:
    /// client_secret_basic, or none with --public].
    #[arg(long, value_parser = parse_auth_method)]
    pub auth_method: Option<AuthMethod>,
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
    /// self_signed_tls_client_auth: a JWK Set file (its jwks) whose keys carry the client's
    /// self-signed certificate(s) as the first `x5c` entry.
    #[arg(long)]
    pub jwks_file: Option<PathBuf>,
    /// Its access tokens must be bound to its TLS certificate
    /// (tls_client_certificate_bound_access_tokens, RFC 8705 §3.4): token requests without
    /// a client certificate are refused.
    #[arg(long)]
    pub tls_bound_tokens: bool,
}

fn parse_auth_method(s: &str) -> Result<AuthMethod, String> {
    s.parse::<AuthMethod>().map_err(|e| e.to_string())
}

impl ClientAuthArgs {
    /// The metadata these flags register, for a public client or not.
    pub fn metadata(&self, public: bool) -> anyhow::Result<ClientMetadata> {
        let method = self.auth_method.unwrap_or(if public {
            AuthMethod::None
        } else {
            AuthMethod::ClientSecretBasic
        });
        let names = [
            &self.tls_subject_dn,
            &self.tls_san_dns,
            &self.tls_san_uri,
            &self.tls_san_ip,
            &self.tls_san_email,
        ];
        if method != AuthMethod::TlsClientAuth && names.iter().any(|n| n.is_some()) {
            bail!("--tls-subject-dn and --tls-san-* need --auth-method tls_client_auth");
        }
        if method != AuthMethod::SelfSignedTlsClientAuth && self.jwks_file.is_some() {
            bail!("--jwks-file needs --auth-method self_signed_tls_client_auth");
        }
        if method == AuthMethod::PrivateKeyJwt {
            bail!("--auth-method private_key_jwt is not supported by `client create` yet");
        }
        let jwks = match &self.jwks_file {
            Some(path) => Some(read_jwks(path)?),
            None => None,
        };
        let metadata = ClientMetadata {
            token_endpoint_auth_method: self.auth_method,
            jwks,
            tls_client_auth_subject_dn: self.tls_subject_dn.clone(),
            tls_client_auth_san_dns: self.tls_san_dns.clone(),
            tls_client_auth_san_uri: self.tls_san_uri.clone(),
            tls_client_auth_san_ip: self.tls_san_ip.clone(),
            tls_client_auth_san_email: self.tls_san_email.clone(),
            tls_client_certificate_bound_access_tokens: self.tls_bound_tokens,
            ..ClientMetadata::default()
        };
        deedbolt_core::certauth::validate(method, &metadata)?;
        Ok(metadata)
    }
}

/// Reads a JWK Set file (a JSON object with `keys`).
fn read_jwks(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
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
        let mut a = ClientAuthArgs {
            auth_method: Some(AuthMethod::TlsClientAuth),
            ..ClientAuthArgs::default()
        };
        assert!(a.metadata(false).is_err());
        a.tls_subject_dn = Some("CN=bot,O=Acme".into());
        let m = a.metadata(false).unwrap();
        assert_eq!(
            m.token_endpoint_auth_method,
            Some(AuthMethod::TlsClientAuth)
        );
        a.tls_san_dns = Some("bot.example".into());
        assert!(a.metadata(false).is_err());
        a.tls_san_dns = None;
        a.tls_subject_dn = Some("CN=bot,".into());
        assert!(a.metadata(false).is_err());
    }

    #[test]
    fn names_without_the_method_are_refused() {
        let a = ClientAuthArgs {
            tls_san_dns: Some("bot.example".into()),
            ..ClientAuthArgs::default()
        };
        assert!(a.metadata(false).is_err());
        let self_signed = ClientAuthArgs {
            auth_method: Some(AuthMethod::SelfSignedTlsClientAuth),
            ..ClientAuthArgs::default()
        };
        assert!(
            self_signed.metadata(false).is_err(),
            "no certificate registered"
        );
    }
}
