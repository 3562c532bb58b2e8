//! # deedbolt-client
//!
//! What a Rust application needs to be an OAuth 2.0 client of deedbolt (or of any
//! authorization server that follows the same RFCs). The server's own backend-for-frontend
//! uses it too.
//!
//! # Layout
//!
//! The protocol pieces that need no network are separate from the HTTP client, so each can
//! be tested (and reused) on its own:
//!
//! - [`pkce`]: the PKCE verifier and its S256 challenge (RFC 7636).
//! - [`state`]: [`PendingFlows`], the single-use, expiring `state` and `nonce` of
//!   authorization requests in progress, with a payload of your choosing (typically the
//!   PKCE pair and the page to return to).
//! - [`seal`]: [`Sealer`], AES-256-GCM sealing of small blobs (tokens in a cookie) with a
//!   key ring for rotation.
//! - [`token`]: [`TokenSet`] and [`Secret`], the redacting, zeroizing string type for
//!   tokens and client secrets.
//! - [`id_token`]: the OpenID Connect ID-token checks (signature against the issuer's
//!   JWKS, `iss`, `aud`, `azp`, `nonce`, `exp`, `iat`).
//! - [`client`]: [`OAuthClient`], which talks to the server: discovery (RFC 8414), the
//!   authorization URL, the authorization response, the code exchange, refresh, client
//!   credentials and revocation (RFC 7009).
//! - [`cache`]: [`TokenCache`], a client-credentials token kept until shortly before it
//!   expires, with concurrent callers sharing one fetch.
//! - [`clock`]: the injectable [`Clock`] that every expiry decision reads.
//!
//! # A sign-in, end to end
//!
//! ```no_run
//! # async fn sign_in(query_from_callback: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::SystemTime;
//! use deedbolt_client::{ClientCredentials, OAuthClient, PendingFlows, PkcePair, Secret};
//!
//! let http = reqwest::Client::builder()
//!     .redirect(reqwest::redirect::Policy::none())
//!     .build()?;
//! let client = OAuthClient::discover(
//!     http,
//!     "https://auth.example.com",
//!     "dbc_example",
//!     ClientCredentials::SecretBasic(Secret::new("dbs_example")),
//! )
//! .await?;
//! let flows: PendingFlows<PkcePair> = PendingFlows::new();
//!
//! // 1. Send the browser to the authorization endpoint.
//! let pkce = PkcePair::generate()?;
//! let begun = flows.begin(pkce.clone())?;
//! let url = client.authorization_url(
//!     "https://app.example.com/cb",
//!     "openid tenant:read",
//!     &begun.state,
//!     Some(&begun.nonce),
//!     &pkce,
//! );
//! # let _ = url;
//!
//! // 2. On the callback: check `iss`, take the pending flow (once), redeem the code.
//! let response = client.parse_callback(query_from_callback)?;
//! let pending = flows.take(&response.state)?;
//! let tokens = client
//!     .exchange_code(response.code.expose(), "https://app.example.com/cb", &pending.payload)
//!     .await?;
//! let id_token = tokens.id_token.as_deref().ok_or("no ID token")?;
//! let claims = client
//!     .verify_id_token(id_token, &pending.nonce, SystemTime::now())
//!     .await?;
//! println!("signed in as {}", claims.sub);
//! # Ok(())
//! # }
//! ```
//!
//! # HTTPS
//!
//! This crate enables no TLS feature of `reqwest`: its rustls features would either compile
//! in `ring` next to `aws-lc-rs` or make every `reqwest::Client` in the process depend on a
//! process-wide default rustls provider. Pass a `reqwest::Client` configured for HTTPS
//! (for example with `use_preconfigured_tls` and an aws-lc-rs rustls config) to
//! [`OAuthClient::new`] or [`OAuthClient::discover`]. Build it with redirects disabled
//! (`reqwest::redirect::Policy::none()`): nothing here expects a redirect, and a token
//! request should never be replayed elsewhere. Plain `http://` endpoints are refused
//! unless they are on a loopback address (see [`PlainHttp`]).
//!
//! # Secrets
//!
//! Tokens, client secrets, PKCE verifiers and sealing keys live in types whose `Debug`
//! prints a placeholder and whose memory is zeroed on drop ([`Secret`], [`PkcePair`],
//! [`SealKey`]). Zeroing is best effort: copies made by `reqwest`, `serde_json` or the
//! allocator while a request is built are out of this crate's reach.
#![forbid(unsafe_code, unused_must_use)]
#![warn(missing_docs)]
// No `unwrap`/`expect`/`panic!` in library code: every failure is a typed error. Tests may.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod cache;
pub mod client;
pub mod clock;
pub mod error;
pub mod id_token;
pub mod pkce;
pub mod seal;
pub mod state;
pub mod token;

mod http;
mod random;

pub use cache::{ClientCredentialsSource, TokenCache, TokenSource, DEFAULT_SKEW};
pub use client::{
    AuthorizationResponse, ClientConfig, ClientCredentials, ClientError, OAuthClient, PlainHttp,
    ServerMetadata, TokenTypeHint,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use id_token::{IdTokenClaims, IdTokenError};
pub use pkce::{PkceError, PkcePair};
pub use random::RandomError;
pub use seal::{SealError, SealKey, SealKeyError, Sealer};
pub use state::{Begun, Pending, PendingFlows, StateError};
pub use token::{Secret, TokenSet};
