//! Integration tests: the real server on an ephemeral port with a fresh data directory,
//! driven over HTTP (and through the real CLI binary where a user would use it).

mod helpers;

mod api;
mod token;
