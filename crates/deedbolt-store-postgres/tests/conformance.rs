//! The port conformance suite on PostgreSQL: a fresh database per test on the server in
//! `DATABASE_URL` (skipped with a warning when unset, failing when `CI` is set), dropped
//! again when the test passed.

use deedbolt_store_postgres::testing::{fresh_store, release_store};

deedbolt_store_conformance::conformance_suite!(fresh_store, release_store);
