//! # deedbolt-http
//!
//! The axum adapters of deedbolt, and nothing else: routes of the authorization server
//! (discovery, JWKS, token endpoint), the PropTech API behind `deedbolt-guard`, health
//! checks, the admin console ([`admin`]), the alert webhook worker ([`webhook`]), and the
//! one place where errors become HTTP responses ([`error`]).
//!
//! Handlers stay thin: parse the request into core types, call the core rules, persist
//! through the store ports (as trait objects; this crate never names a backend), and map
//! the outcome to an RFC-shaped response.
#![forbid(unsafe_code, unused_must_use)]
#![warn(missing_docs)]

pub mod access_log;
pub mod admin;
pub mod api;
pub mod audit;
pub mod authorize;
pub mod bff;
pub mod client_auth;
pub mod cors;
pub mod crm;
pub mod discovery;
pub mod error;
pub mod form;
pub mod keys;
pub mod landing;
pub mod limits;
pub mod metrics;
mod openapi;
pub mod pages;
pub mod refresh;
pub mod request_metrics;
pub mod revoke;
pub mod router;
pub mod security;
pub mod state;
pub mod token;
pub mod webhook;

pub use keys::KeyRing;
pub use limits::RateLimits;
pub use router::router;
pub use state::{AppState, Services};
