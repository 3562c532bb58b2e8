//! # deedbolt
//!
//! The composition root of deedbolt: configuration ([`config`]), telemetry
//! ([`telemetry`]), [`startup::Application`] which wires the storage backend chosen once in [`storage`]
//! (SQLite or PostgreSQL), the key ring
//! and the axum router together, and the clap CLI ([`cli`]).
#![forbid(unsafe_code, unused_must_use)]
#![warn(missing_docs)]

pub mod accounts;
pub mod bff_check;
pub mod cli;
pub mod client_auth_args;
pub mod client_keys;
pub mod config;
pub mod console;
pub mod demo;
pub mod registration_cli;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod tls;
