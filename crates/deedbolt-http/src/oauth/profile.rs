//! Where the HTTP layer applies the security profile (`--profile`, see
//! [`deedbolt_core::profile`]): discovery lists only what the profile allows. The other
//! rules are asked where they apply: client authentication in
//! [`crate::oauth::client_auth::authenticate`], PAR in [`crate::oauth::authorize`], the
//! sender constraint just before an access token is signed
//! ([`crate::oauth::token::sign_access_token`]), and the code lifetime where codes are
//! issued.

use deedbolt_core::client::AuthMethod;
use deedbolt_core::profile::Profile;
use serde_json::Value;

/// The metadata keys listing client authentication methods (RFC 8414 §2).
const AUTH_METHOD_LISTS: [&str; 3] = [
    "token_endpoint_auth_methods_supported",
    "revocation_endpoint_auth_methods_supported",
    "introspection_endpoint_auth_methods_supported",
];

/// The metadata keys listing JWS algorithms (RFC 8414 §2, OpenID Connect Discovery §3).
/// Not `dpop_signing_alg_values_supported`: discovery takes that from the DPoP verifier,
/// which is configured with the profile's algorithms already.
const ALG_LISTS: [&str; 4] = [
    "token_endpoint_auth_signing_alg_values_supported",
    "revocation_endpoint_auth_signing_alg_values_supported",
    "introspection_endpoint_auth_signing_alg_values_supported",
    "id_token_signing_alg_values_supported",
];

/// Removes from a discovery document what `profile` does not allow, and states what it
/// requires: only the allowed client authentication methods (a method this server does
/// not know is dropped too) and JWS algorithms, and `require_pushed_authorization_requests:
/// true` when every request must be pushed (RFC 9126 §5).
pub fn restrict_discovery(doc: &mut Value, profile: Profile) {
    for key in ALG_LISTS {
        if let Some(Value::Array(algs)) = doc.get_mut(key) {
            algs.retain(|a| a.as_str().is_some_and(|a| profile.allows_jws_alg(a)));
        }
    }
    for key in AUTH_METHOD_LISTS {
        if let Some(Value::Array(methods)) = doc.get_mut(key) {
            methods.retain(|m| {
                m.as_str()
                    .and_then(|m| m.parse::<AuthMethod>().ok())
                    .is_some_and(|m| profile.allows_auth_method(m))
            });
        }
    }
    if profile.requires_par() {
        doc["require_pushed_authorization_requests"] = Value::Bool(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "token_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post", "private_key_jwt", "tls_client_auth", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "self_signed_tls_client_auth"],
            "require_pushed_authorization_requests": false,
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "PS256", "RS256", "EdDSA"],
            "id_token_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
        })
    }

    #[test]
    fn the_default_profile_changes_nothing() {
        let mut d = doc();
        restrict_discovery(&mut d, Profile::Default);
        assert_eq!(d, doc());
    }

    #[test]
    fn fapi2_lists_only_private_key_jwt_and_mtls_and_requires_par() {
        let mut d = doc();
        restrict_discovery(&mut d, Profile::Fapi2);
        assert_eq!(
            d["token_endpoint_auth_methods_supported"],
            json!(["private_key_jwt", "tls_client_auth"])
        );
        assert_eq!(d["revocation_endpoint_auth_methods_supported"], json!([]));
        assert_eq!(
            d["introspection_endpoint_auth_methods_supported"],
            json!(["self_signed_tls_client_auth"])
        );
        assert_eq!(d["require_pushed_authorization_requests"], json!(true));
        assert_eq!(
            d["token_endpoint_auth_signing_alg_values_supported"],
            json!(["ES256", "PS256", "EdDSA"])
        );
        assert_eq!(
            d["id_token_signing_alg_values_supported"],
            json!(["ES256", "EdDSA"])
        );
    }
}
