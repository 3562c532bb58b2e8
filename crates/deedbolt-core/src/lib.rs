//! # deedbolt-core
//!
//! The pure protocol rules of deedbolt, an OAuth 2.0 authorization server for PropTech APIs.
//!
//! This crate knows OAuth 2.0 (RFC 6749), JWT access tokens (RFC 9068) and the PropTech
//! scope catalogue, but nothing about HTTP frameworks, async runtimes or databases. The
//! adapters around it (the SQLite store, the axum routes, the resource-server guard) turn
//! the outside world into these types, call these rules and turn the outcome back.
//!
//! # Layout
//! - [`scope`]: the typed scope catalogue and [`scope::ScopeSet`] with its subset relation.
//! - [`ids`]: typed identifiers ([`ids::ClientId`], [`ids::KeyId`], [`ids::TokenId`]).
//! - [`secret`]: client secrets that redact themselves, and their keyed hash.
//! - [`seal`]: AES-256-GCM sealing of data at rest under the master key.
//! - [`jose`]: signing keys, JWS compact signing and public JWKs.
//! - [`keyring`]: the signing-key lifecycle (rotation, sealing, publication, pruning).
//! - [`client`]: registered clients and the rules for registering one.
//! - [`client_jwks`]: a client's public keys (`jwks`/`jwks_uri` content), validated.
//! - [`assertion`]: `private_key_jwt` client assertions (RFC 7523): parsing and verification.
//! - [`cache`]: a read-through client cache kept fresh by a change counter.
//! - [`certauth`]: client authentication by TLS certificate (RFC 8705 §2).
//! - [`grant`]: client authentication (with proof values) and the client-credentials grant.
//! - [`flow`]: the authorization-code flow: request validation, codes, ID tokens.
//! - [`issue`]: token issuance: every access-token and ID-token claim set, built in one
//!   place from the proofs the grant checks leave.
//! - [`par`]: pushed authorization requests (RFC 9126): `request_uri` references and
//!   who must push.
//! - [`profile`]: security profiles (`--profile fapi2`, the FAPI 2.0 Security Profile).
//! - [`pkce`]: PKCE (S256 only) with a proof value.
//! - [`redirect`]: redirect URIs, registered and compared exactly.
//! - [`registration`]: dynamic client registration (RFC 7591/7592): initial and
//!   registration access tokens, and the policy registered metadata must meet.
//! - [`user`]: users, roles and argon2id passwords.
//! - [`revocation`]: the in-process list of revoked access tokens.
//! - [`refresh`]: refresh-token rotation and reuse detection as a state machine.
//! - [`replay`]: the in-process cache of single-use values (DPoP and assertion `jti`s).
//! - [`grace`]: the port keeping recent rotations' answers for the grace period.
//! - [`detect`]: suspicious-activity rules and token-usage anomaly scoring.
//! - [`dn`]: RFC 4514 distinguished names as `tls_client_auth` clients register them.
//! - [`token`]: access-token claim sets and lifetimes.
//! - [`error`]: the RFC 6749 §5.2 error codes.
//! - [`text`]: bounded echoes of client input in error messages.
//! - [`ports`]: the storage traits that backends implement, plus [`clock`] and [`rand`].
//!
//! The PropTech resources (properties, tenants, ledger, maintenance) and their storage
//! port live in the `deedbolt-proptech` crate, so this crate (and the guard and client
//! built on it) carries only the authorization server's concerns.
//!
//! Security checks leave evidence: issuing a client-credentials token needs a
//! [`grant::ClientAuthenticated`] value, which only [`grant::authenticate_client`] (a secret)
//! or [`assertion::RedeemedAssertion::authenticate`] (a single-use client assertion) can make
//! (a public client gets a [`grant::PublicClient`] instead); issuing for a code needs the
//! [`pkce::PkceVerified`] proof that only a successful PKCE check makes ([`issue`]).
#![forbid(unsafe_code, unused_must_use)]
#![warn(missing_docs)]

pub mod assertion;
pub mod audit;
pub mod cache;
pub mod certauth;
pub mod client;
pub mod client_jwks;
pub mod clock;
pub mod detect;
pub mod dn;
pub mod error;
pub mod flow;
pub mod grace;
pub mod grant;
pub mod ids;
pub mod issue;
pub mod jose;
pub mod keyring;
pub mod par;
pub mod pkce;
pub mod ports;
pub mod profile;
pub mod rand;
pub mod ratelimit;
pub mod redirect;
pub mod refresh;
pub mod registration;
pub mod replay;
pub mod revocation;
pub mod scope;
pub mod seal;
pub mod secret;
pub mod text;
pub mod throttle;
pub mod token;
pub mod user;
