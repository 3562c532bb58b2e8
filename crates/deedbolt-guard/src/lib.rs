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
//! required server nonces), a [`ReplayCache`](deedbolt_core::ports::ReplayCache) that
//! remembers each proof's `jti` for its lifetime, and the server's public base URL. The
//! replay cache must be shared by every instance of the resource server, or a proof used
//! at one instance could be replayed at another: for a single instance, the in-process
//! [`MemoryReplayCache`](deedbolt_core::replay::MemoryReplayCache); for several, one in
//! Redis (`deedbolt_store_redis::RedisStore` implements the port, with `SET NX`).
//!
//! ```
//! use std::sync::Arc;
//! use deedbolt_core::clock::{Clock, SystemClock};
//! use deedbolt_core::jose::JwkSet;
//! use deedbolt_core::replay::MemoryReplayCache;
//! use deedbolt_guard::dpop::DpopVerifier;
//! use deedbolt_guard::{Guard, StaticKeys, Verifier};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let jwks = JwkSet { keys: Vec::new() }; // the authorization server's JWKS
//! let clock: Arc<dyn Clock> = Arc::new(SystemClock);
//! let keys = Arc::new(StaticKeys::from_jwks(&jwks)?);
//! let verifier = Verifier::new("https://as.example.com", "https://api.example.com", keys, clock.clone());
//! // One instance: an in-process replay cache (several: a shared one, e.g. Redis).
//! let replay = Arc::new(MemoryReplayCache::new(clock.clone()));
//! let dpop = DpopVerifier::new(clock);
//! let guard = Guard::new(verifier).with_dpop(dpop, replay, "https://api.example.com");
//! # let _ = guard;
//! # Ok(())
//! # }
//! ```
//!
//! `htu` is the public base URL followed by the request's path. Under an axum
//! `Router::nest` the router strips the nest's prefix from the URI the guard sees; with the
//! `axum` feature (on by default) the guard reads the full path from axum's `OriginalUri`
//! extension instead. A server reachable under several public URLs tags each request with
//! the URL it came in on ([`dpop::ListenerBase`]), which then replaces the base.
//!
//! For a `DPoP` request the guard then checks, after the token itself: that the token is
//! DPoP-bound (`cnf.jkt`), the proof by every rule of RFC 9449 §4.3 (one header, compact
//! JWS, `typ` `dpop+jwt`, `alg` one the verifier accepts ([`dpop::DPOP_SIGNING_ALGS`] or
//! the subset of [`dpop::DpopVerifier::with_algs`]), a public `jwk` that verifies
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
