//! `client create --auth-method private_key_jwt`: the client's key source (`--jwks-file` or
//! `--jwks-uri`) and algorithm, validated before anything is stored.

use std::path::Path;

use anyhow::{bail, Context as _};
use deedbolt_core::client::{AuthMethod, ClientMetadata};
use deedbolt_core::client_jwks::{AssertionAlg, ClientJwks};

/// The largest key-set file read.
const MAX_JWKS_FILE: u64 = 64 * 1024;

/// The metadata of a `private_key_jwt` client: exactly one key source, a valid public
/// JWK Set (or an https `jwks_uri`), and the optional pinned algorithm.
pub(crate) fn private_key_jwt_metadata(
    jwks_file: Option<&Path>,
    jwks_uri: Option<&str>,
    alg: Option<&str>,
) -> anyhow::Result<ClientMetadata> {
    let mut metadata = ClientMetadata {
        token_endpoint_auth_method: Some(AuthMethod::PrivateKeyJwt),
        ..ClientMetadata::default()
    };
    match (jwks_file, jwks_uri) {
        (Some(file), None) => {
            let size = std::fs::metadata(file)
                .with_context(|| format!("cannot read --jwks-file {}", file.display()))?
                .len();
            if size > MAX_JWKS_FILE {
                bail!("--jwks-file {} is larger than 64 KiB", file.display());
            }
            let text = std::fs::read(file)
                .with_context(|| format!("cannot read --jwks-file {}", file.display()))?;
            let (_, value) = ClientJwks::parse_json(&text).with_context(|| {
                format!(
                    "--jwks-file {} is not an acceptable JWK Set",
                    file.display()
                )
            })?;
            metadata.jwks = Some(value);
        }
        (None, Some(uri)) => {
            deedbolt_http::oauth::client_keys::check_jwks_uri(uri)
                .map_err(|e| anyhow::anyhow!("invalid --jwks-uri: {e}"))?;
            metadata.jwks_uri = Some(uri.to_owned());
        }
        (None, None) => bail!("--auth-method private_key_jwt needs --jwks-file or --jwks-uri"),
        (Some(_), Some(_)) => bail!("give --jwks-file or --jwks-uri, not both"),
    }
    if let Some(alg) = alg {
        let alg: AssertionAlg = alg
            .parse()
            .with_context(|| format!("invalid --auth-signing-alg {alg}"))?;
        metadata.token_endpoint_auth_signing_alg = Some(alg.as_str().to_owned());
    }
    Ok(metadata)
}

/// Refuses key-source flags on a client that does not use `private_key_jwt`.
pub(crate) fn refuse_keys_without_private_key_jwt(
    jwks_file: Option<&Path>,
    jwks_uri: Option<&str>,
    alg: Option<&str>,
) -> anyhow::Result<()> {
    if jwks_file.is_some() || jwks_uri.is_some() || alg.is_some() {
        bail!(
            "--jwks-file, --jwks-uri and --auth-signing-alg go with --auth-method private_key_jwt"
        );
    }
    Ok(())
}
