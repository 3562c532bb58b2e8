//! Leaf helpers of the HTTP layer: they know no handler and no application state, so
//! every other module may use them.

pub mod access_log;
pub mod challenge;
pub mod client_ip;
pub mod cookies;
pub mod cors;
pub mod csrf;
pub mod dpop;
pub mod edge;
pub mod form;
pub mod no_store;
pub mod pages;
pub mod rate_limit;
