//! The RFC 6750 `WWW-Authenticate: Bearer` challenge, built in one place for every
//! refusal of a bearer credential (the API's `invalid_token`, the metrics token, the admin
//! API).
