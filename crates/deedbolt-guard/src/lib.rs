//! # deedbolt-guard
//!
//! The resource-server side of deedbolt: validate JWT access tokens (RFC 9068) and enforce
//! per-route scopes, as a tower layer that any axum or tower service can use.
//!
//! ```ignore
//! let guard = Guard::new(Verifier::new(issuer, audience, keys, clock));
//! let app = Router::new().route(
//!     "/api/properties",
//!     get(list.layer(guard.require(Scope::PropertyRead.into())))
//!         .post(create.layer(guard.require(Scope::PropertyWrite.into()))),
//! );
//! // Handlers read the verified claims with `Extension<Authorized>`.
//! ```
//!
//! What is checked, in order (see [`Verifier::verify`]): the `Authorization: Bearer`
//! syntax (RFC 6750 §2.1), and no token in the URI query or a form body (§2.2, §2.3:
//! refused with `invalid_request`, alone or next to the header); the JOSE header (`alg` on the allow-list ES256/RS256/EdDSA, `typ`
//! `at+jwt`, a `kid`, no `crit`; `jku`, `x5u` and embedded `jwk` are never followed); the
//! key by `kid` with its algorithm pinned; the signature; `exp`, `nbf` and `iat` against
//! an injected clock with a small leeway; `iss` and `aud`; the required claims; a
//! certificate binding (`cnf.x5t#S256`, RFC 8705 §3: see [`mtls`] for how the request's
//! client certificate is passed in); then the route's scopes.
//!
//! Failures are answered as RFC 6750 §3 says: 401 with
//! `WWW-Authenticate: Bearer error="invalid_token"` for a bad token, 401 with a bare
//! challenge when no token was sent, 400 `invalid_request` for a malformed header, and 403
//! `insufficient_scope` naming the scopes the route needs.
#![forbid(unsafe_code, unused_must_use)]
#![warn(missing_docs)]

mod cache;
mod keys;
mod layer;
pub mod mtls;
mod verify;

pub use keys::{BadJwk, KeyResolver, StaticKeys, VerifyingKey};
pub use layer::{Authorized, Guard, GuardService, RequireScopes, MAX_FORM_BYTES};
pub use mtls::{certificate_binding_holds, x5t_s256, CertificateTrust, ClientCertificate};
pub use verify::{parse_bearer, BearerError, RevocationCheck, TokenRejection, Verifier};
