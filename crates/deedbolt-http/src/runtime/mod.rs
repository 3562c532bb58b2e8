//! What runs beside the handlers: the audit log and its writer ([`audit`]), the anomaly
//! detectors ([`security`]) and the alert webhook worker ([`webhook`]).

pub mod audit;
pub mod security;
pub mod webhook;
