//! Mutual TLS (RFC 8705) at the authorization server: where the mTLS listener is
//! published ([`MtlsEndpoints`]) and what discovery says about it.
//!
//! The listener itself lives in the composition root; it hands every request on a
//! connection with an accepted client certificate a
//! [`ClientCertificate`](deedbolt_guard::ClientCertificate) extension. Client
//! authentication by certificate is in [`crate::oauth::client_auth_tls`]; certificate-bound
//! tokens are checked by the guard (`deedbolt_guard::mtls`).

use serde_json::{json, Value};

/// The mutual-TLS listener, as clients reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtlsEndpoints {
    /// Its public base URL (`https://…`, no trailing slash).
    pub base_url: String,
}

impl MtlsEndpoints {
    /// Adds the RFC 8705 metadata to a discovery document: `mtls_endpoint_aliases` (§5)
    /// for every endpoint a client authenticates at or presents a bound token to,
    /// `tls_client_certificate_bound_access_tokens` (§3.3), and the two certificate
    /// methods among the token endpoint's authentication methods (§2.1.1, §2.2.1).
    pub fn describe(&self, doc: &mut Value) {
        let base = &self.base_url;
        let mut aliases = json!({
            "token_endpoint": format!("{base}/token"),
            "revocation_endpoint": format!("{base}/revoke"),
            "introspection_endpoint": format!("{base}/introspect"),
            "userinfo_endpoint": format!("{base}/userinfo"),
        });
        // Every endpoint that the document names and the listener also serves.
        if let Some(par) = doc
            .get("pushed_authorization_request_endpoint")
            .and_then(Value::as_str)
            .and_then(|url| url.rsplit_once('/'))
            .map(|(_, path)| format!("{base}/{path}"))
        {
            aliases["pushed_authorization_request_endpoint"] = json!(par);
        }
        doc["mtls_endpoint_aliases"] = aliases;
        doc["tls_client_certificate_bound_access_tokens"] = json!(true);
        // The token endpoint's list comes from `Services::token_auth_methods`, which
        // already has the certificate methods when this listener runs.
        for key in [
            "revocation_endpoint_auth_methods_supported",
            "introspection_endpoint_auth_methods_supported",
        ] {
            if let Some(methods) = doc.get_mut(key).and_then(Value::as_array_mut) {
                for m in ["tls_client_auth", "self_signed_tls_client_auth"] {
                    if !methods.iter().any(|v| v == m) {
                        methods.push(json!(m));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_name_the_mtls_listener_and_the_methods_are_added_once() {
        let mut doc = json!({
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "tls_client_auth"],
            "pushed_authorization_request_endpoint": "https://as.example/par",
        });
        MtlsEndpoints {
            base_url: "https://mtls.example".into(),
        }
        .describe(&mut doc);
        assert_eq!(
            doc["mtls_endpoint_aliases"]["token_endpoint"],
            "https://mtls.example/token"
        );
        assert_eq!(
            doc["mtls_endpoint_aliases"]["pushed_authorization_request_endpoint"],
            "https://mtls.example/par"
        );
        assert_eq!(
            doc["revocation_endpoint_auth_methods_supported"],
            json!([
                "client_secret_basic",
                "tls_client_auth",
                "self_signed_tls_client_auth"
            ])
        );
        assert_eq!(doc["tls_client_certificate_bound_access_tokens"], true);
    }
}
