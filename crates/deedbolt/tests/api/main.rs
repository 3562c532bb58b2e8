//! Integration tests: the real server on an ephemeral port with a fresh data directory,
//! driven over HTTP (and through the real CLI binary where a user would use it).

mod helpers;

mod admin;
mod api;
mod audit;
mod authorize_abuse;
mod bff;
mod bff_browser;
mod browser;
mod client_lib;
mod code_flow;
mod cors;
mod crm;
mod fapi2;
mod fapi2_e2e;
mod headers;
mod id_tokens;
mod instances;
mod mtls;
mod openapi;
mod par;
mod postgres;
mod private_key_jwt;
mod refresh;
mod registration;
mod token;

mod cli;
mod config;
mod data_files;
mod demo;
mod discovery;
mod dpop;
mod keys;
mod logs;
mod master_key;
mod metrics;
mod rate_limits;
mod restart;
mod shared_state;
mod webhook;
