//! # deedbolt-http
//!
//! The axum adapters of deedbolt, and nothing else. Handlers stay thin: parse the request
//! into core types, call the core rules, persist through the store ports (as trait
//! objects; this crate never names a backend), and map the outcome to an RFC-shaped
//! response.
//!
//! # Layout
//!
//! Folders by role; dependencies point downwards in this list, never back up (no file
//! imports a file that imports it, checked by `scripts/import-cycles`):
//!
//! - [`router`]: every route and the cross-cutting middleware; the only file that knows
//!   all handlers.
//! - [`oauth`]: the authorization server: `/authorize` with login and consent, the token
//!   endpoint (one file per grant), revocation, introspection, discovery and JWKS.
//! - [`api`]: the PropTech resource API behind `deedbolt-guard`, its OpenAPI document, and
//!   OpenID Connect `/userinfo`.
//! - [`bff`]: the backend-for-frontend. [`admin`]: the admin console. [`ops`]: health,
//!   readiness and metrics endpoints. [`landing`]: the page at `/`.
//! - [`limits`]: rate-limit checks that need the state (handlers call them).
//! - [`state`]: the shared state of every handler; it imports no handler module.
//! - [`runtime`]: what runs beside the handlers: the audit writer, the detectors, the
//!   alert webhook.
//! - [`error`]: the one place where errors become HTTP responses.
//! - [`web`]: leaf helpers that know no handler and no state: body and form reading,
//!   cookies, CSRF, `no-store`, RFC 6750 challenges, HTML pages, client IP, rate-limit
//!   headers, CORS and the access log.
//! - [`keys`], [`metrics`], [`request_metrics`]: the signing key ring and the counters.
#![forbid(unsafe_code, unused_must_use)]
#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod bff;
pub mod error;
pub mod keys;
pub mod landing;
pub mod limits;
pub mod metrics;
pub mod oauth;
pub mod ops;
pub mod request_metrics;
pub mod router;
pub mod runtime;
pub mod state;
pub mod web;

/// DPoP proof checks and server nonces (RFC 9449), from the guard crate.
pub use deedbolt_guard::dpop;
pub use keys::KeyRing;
pub use router::router;
pub use state::{AppState, Services};
pub use web::rate_limit::RateLimits;
