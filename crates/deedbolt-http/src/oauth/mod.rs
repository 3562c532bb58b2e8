//! The authorization server's endpoints (RFC 6749 and its extensions, OpenID Connect).
//!
//! The browser side of the code flow is [`authorize`] (the request), [`login`],
//! [`consent`] and the [`session`] they share; the token endpoint is [`token`], one file
//! per grant; [`revocation`], [`introspection`] and [`metadata`] (discovery and JWKS)
//! complete it, with [`par`] (pushed authorization requests, RFC 9126); [`request`]
//! validates authorization requests for both. [`client_auth`] authenticates clients for all
//! of them ([`client_keys`] holds `private_key_jwt` clients' public keys). [`registration`]
//! is dynamic client registration and its management (RFC 7591/7592); [`mtls`] publishes
//! the mutual-TLS listener (RFC 8705).

pub mod authorize;
pub mod client_auth;
pub mod client_auth_tls;
pub mod client_keys;
pub mod consent;
pub mod introspection;
pub mod login;
pub mod metadata;
pub mod mtls;
pub mod par;
pub mod private_key_jwt;
pub mod profile;
pub mod registration;
pub mod request;
pub mod revocation;
pub mod session;
pub mod token;
