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
//!
//! # Sender-constrained tokens: DPoP (RFC 9449)
//!
//! A token with `cnf.jkt` is bound to a DPoP key and is accepted only as
//! `Authorization: DPoP <token>` together with a `DPoP` proof header. Turn it on with
//! [`Guard::with_dpop`], giving a [`dpop::DpopVerifier`] (the `iat` window and, optionally,
//! required server nonces), a [`ReplayCache`](deedbolt_core::ports::ReplayCache) shared by
//! every instance of the resource server, and the server's public base URL:
//!
//! ```ignore
//! let dpop = DpopVerifier::new(clock.clone());
//! let guard = Guard::new(verifier).with_dpop(dpop, replay, "https://api.example.com");
//! ```
//!
//! For a `DPoP` request the guard then checks, after the token itself: that the token is
//! DPoP-bound (`cnf.jkt`), the proof by every rule of RFC 9449 §4.3 (one header, compact
//! JWS, `typ` `dpop+jwt`, `alg` in [`dpop::DPOP_SIGNING_ALGS`], a public `jwk` that verifies
//! the signature, `htm` = the method, `htu` = the public base URL + the request path,
//! `iat` in the window, `jti` unseen, `ath` = the token's hash, the nonce if required),
//! and that the proof key's thumbprint is the token's `cnf.jkt`. A DPoP-bound token
//! presented as `Bearer` is refused with `invalid_token` (§7.2). Proof failures are 401
//! `WWW-Authenticate: DPoP error="invalid_dpop_proof", algs="…"` (or `use_dpop_nonce` with
//! a `DPoP-Nonce` header); a request without a token is offered both the `Bearer` and the
//! `DPoP` challenge. [`Authorized::dpop_jkt`] tells a handler which key was proven.
//! Code that authorizes outside a tower stack uses [`Guard::authorize_request`]; a handler
//! behind the layer that refuses a token for a reason of its own (a role the scopes cannot
//! express) answers with [`Guard::forbid`], in the same shape and scheme.
//! Without `with_dpop`, the `DPoP` scheme is not accepted and bound tokens are still
//! refused as bearer tokens.
#![forbid(unsafe_code, unused_must_use)]
#![warn(missing_docs)]

mod cache;
pub mod dpop;
mod keys;
mod layer;
pub mod mtls;
mod verify;

pub use keys::{BadJwk, KeyResolver, StaticKeys, VerifyingKey};
pub use layer::{Authorized, Guard, GuardRefusal, GuardService, RequireScopes, MAX_FORM_BYTES};
pub use mtls::{certificate_binding_holds, x5t_s256, CertificateTrust, ClientCertificate};
pub use verify::{
    parse_authorization, parse_bearer, BearerError, RevocationCheck, Scheme, TokenRejection,
    Verifier,
};
