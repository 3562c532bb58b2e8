//! The audit log: append-only records of every security-relevant event.
//!
//! A record holds identifiers and outcomes only — client ids, user ids, token ids (`jti`),
//! hashes — never a token, secret, password or code. Constructors take typed ids, not
//! free text, to keep it that way.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::clock::UnixTime;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// A request to `/authorize` (valid or not).
    AuthorizationRequest,
    /// A pushed authorization request (RFC 9126) at `/par` (stored or refused).
    PushedAuthorizationRequest,
    /// A password login (success or failure).
    Login,
    /// A consent decision (approve or deny).
    Consent,
    /// An access token issued (client credentials or code).
    TokenIssued,
    /// A refresh-token rotation.
    TokenRefreshed,
    /// A token request refused (other than client authentication).
    TokenRequestFailed,
    /// Client authentication failed at the token, revocation or introspection endpoint.
    ClientAuthFailed,
    /// A token revoked (by its client, by reuse detection, or by an operator).
    TokenRevoked,
    /// A refresh token or code used twice.
    ReuseDetected,
    /// A client registered.
    ClientCreated,
    /// A client changed (e.g. secret rotated).
    ClientChanged,
    /// A client deleted.
    ClientDeleted,
    /// A user registered.
    UserCreated,
    /// A user changed (role) or deleted by an operator.
    UserChanged,
    /// A request refused by a rate limit.
    RateLimited,
    /// A security alert raised.
    Alert,
    /// A PropTech record created or changed through the API (property, tenant, ledger
    /// entry, maintenance request): ids and kinds only, never names or amounts.
    RecordChanged,
    /// A client registered itself at `/register` (RFC 7591).
    ClientRegistered,
    /// A dynamically registered client changed its registration (RFC 7592 PUT).
    ClientRegistrationUpdated,
    /// A dynamically registered client deleted its registration (RFC 7592 DELETE).
    ClientRegistrationDeleted,
    /// A registration or registration-management request refused (bad or missing initial
    /// or registration access token, invalid metadata).
    RegistrationRefused,
    /// An initial access token issued (by the CLI).
    RegistrationTokenIssued,
    /// An initial access token revoked (by the CLI).
    RegistrationTokenRevoked,
}

impl AuditKind {
    /// Every kind.
    pub const ALL: [AuditKind; 24] = [
        AuditKind::AuthorizationRequest,
        AuditKind::PushedAuthorizationRequest,
        AuditKind::Login,
        AuditKind::Consent,
        AuditKind::TokenIssued,
        AuditKind::TokenRefreshed,
        AuditKind::TokenRequestFailed,
        AuditKind::ClientAuthFailed,
        AuditKind::TokenRevoked,
        AuditKind::ReuseDetected,
        AuditKind::ClientCreated,
        AuditKind::ClientChanged,
        AuditKind::ClientDeleted,
        AuditKind::UserCreated,
        AuditKind::RateLimited,
        AuditKind::Alert,
        AuditKind::RecordChanged,
        AuditKind::UserChanged,
        AuditKind::ClientRegistered,
        AuditKind::ClientRegistrationUpdated,
        AuditKind::ClientRegistrationDeleted,
        AuditKind::RegistrationRefused,
        AuditKind::RegistrationTokenIssued,
        AuditKind::RegistrationTokenRevoked,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditKind::AuthorizationRequest => "authorization_request",
            AuditKind::PushedAuthorizationRequest => "pushed_authorization_request",
            AuditKind::Login => "login",
            AuditKind::Consent => "consent",
            AuditKind::TokenIssued => "token_issued",
            AuditKind::TokenRefreshed => "token_refreshed",
            AuditKind::TokenRequestFailed => "token_request_failed",
            AuditKind::ClientAuthFailed => "client_auth_failed",
            AuditKind::TokenRevoked => "token_revoked",
            AuditKind::ReuseDetected => "reuse_detected",
            AuditKind::ClientCreated => "client_created",
            AuditKind::ClientChanged => "client_changed",
            AuditKind::ClientDeleted => "client_deleted",
            AuditKind::UserCreated => "user_created",
            AuditKind::UserChanged => "user_changed",
            AuditKind::RateLimited => "rate_limited",
            AuditKind::Alert => "alert",
            AuditKind::RecordChanged => "record_changed",
            AuditKind::ClientRegistered => "client_registered",
            AuditKind::ClientRegistrationUpdated => "client_registration_updated",
            AuditKind::ClientRegistrationDeleted => "client_registration_deleted",
            AuditKind::RegistrationRefused => "registration_refused",
            AuditKind::RegistrationTokenIssued => "registration_token_issued",
            AuditKind::RegistrationTokenRevoked => "registration_token_revoked",
        }
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown audit kind name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit record type")]
pub struct UnknownAuditKind;

impl FromStr for AuditKind {
    type Err = UnknownAuditKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(UnknownAuditKind)
    }
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditRecord {
    /// Sequence number (0 until stored).
    pub id: i64,
    /// When.
    pub at: UnixTime,
    /// What.
    #[serde(rename = "type")]
    pub kind: AuditKind,
    /// Whether it succeeded.
    pub success: bool,
    /// The client involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The user involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The client IP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The user agent (truncated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Requested or granted scopes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The error code, on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A short, non-reversible session reference (hash prefix).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Extra ids (e.g. `jti=…`), never secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

fn bounded(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

impl AuditRecord {
    /// A record of `kind` at `at`.
    pub fn new(kind: AuditKind, success: bool, at: UnixTime) -> Self {
        AuditRecord {
            id: 0,
            at,
            kind,
            success,
            client_id: None,
            user_id: None,
            ip: None,
            user_agent: None,
            scope: None,
            error: None,
            session: None,
            detail: None,
        }
    }

    /// Sets the client id.
    pub fn client(mut self, id: impl fmt::Display) -> Self {
        self.client_id = Some(bounded(&id.to_string(), 128));
        self
    }

    /// Sets the user id.
    pub fn user(mut self, id: impl fmt::Display) -> Self {
        self.user_id = Some(bounded(&id.to_string(), 128));
        self
    }

    /// Sets the IP.
    pub fn ip(mut self, ip: impl fmt::Display) -> Self {
        self.ip = Some(bounded(&ip.to_string(), 64));
        self
    }

    /// Sets the user agent (truncated to 200 characters).
    pub fn user_agent(mut self, ua: Option<&str>) -> Self {
        self.user_agent = ua.map(|u| bounded(u, 200));
        self
    }

    /// Sets the scope.
    pub fn scope(mut self, scope: impl fmt::Display) -> Self {
        self.scope = Some(bounded(&scope.to_string(), 300));
        self
    }

    /// Sets the error code.
    pub fn error(mut self, code: &str) -> Self {
        self.error = Some(bounded(code, 64));
        self
    }

    /// Sets the session reference.
    pub fn session(mut self, reference: &str) -> Self {
        self.session = Some(bounded(reference, 16));
        self
    }

    /// Sets the detail (ids only).
    pub fn detail(mut self, detail: impl fmt::Display) -> Self {
        self.detail = Some(bounded(&detail.to_string(), 300));
        self
    }
}

/// A search over the audit log, newest first.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only this client.
    pub client_id: Option<String>,
    /// Only this user.
    pub user_id: Option<String>,
    /// Only this IP.
    pub ip: Option<String>,
    /// Only this kind.
    pub kind: Option<AuditKind>,
    /// Only at or after this time.
    pub since: Option<UnixTime>,
    /// Only records with a smaller id (the pagination cursor).
    pub before_id: Option<i64>,
    /// Only records with a larger id (for `tail --follow`).
    pub after_id: Option<i64>,
    /// At most this many (1–1000).
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in AuditKind::ALL {
            assert_eq!(k.as_str().parse::<AuditKind>(), Ok(k));
        }
        assert!("nope".parse::<AuditKind>().is_err());
    }

    #[test]
    fn fields_are_bounded_and_stripped_of_controls() {
        let r = AuditRecord::new(AuditKind::Login, false, UnixTime(1))
            .user_agent(Some(&format!("evil\nagent{}", "x".repeat(500))));
        let ua = r.user_agent.unwrap();
        assert!(!ua.contains('\n'));
        assert_eq!(ua.chars().count(), 200);
    }
}
