//! Suspicious-activity detection wired to the server: failed authentications per IP,
//! unusual scope requests, token-usage anomalies. Alerts are stored (an outbox the webhook
//! worker delivers from), audited, logged and counted; `auto_revoke` revokes a token whose
//! usage is anomalous.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deedbolt_core::audit::{AuditKind, AuditRecord};
use deedbolt_core::clock::UnixTime;
use deedbolt_core::detect::{
    Alert, AlertKind, AuthFailureDetector, ScopeRequestDetector, UsageMonitor, ACTION_REVOKE_TOKEN,
};
use deedbolt_core::ports::{AlertStore, FlowStore};
use deedbolt_core::revocation::{RevocationFeed, RevocationList, Revoked};
use deedbolt_core::scope::ScopeSet;
use deedbolt_core::token::AccessTokenClaims;
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::runtime::audit::AuditLog;

/// Detection settings.
#[derive(Clone, Copy, Debug)]
pub struct DetectionSettings {
    /// Failed authentications from one IP that raise an alert.
    pub auth_failure_threshold: usize,
    /// The window for that count, in seconds.
    pub auth_failure_window_secs: i64,
    /// The usage anomaly score that raises an alert.
    pub anomaly_threshold: f64,
    /// Revoke a token whose usage is anomalous.
    pub auto_revoke: bool,
}

impl Default for DetectionSettings {
    fn default() -> Self {
        DetectionSettings {
            auth_failure_threshold: 5,
            auth_failure_window_secs: 300,
            anomaly_threshold: deedbolt_core::detect::DEFAULT_ANOMALY_THRESHOLD,
            auto_revoke: false,
        }
    }
}

/// A client's 7-day hourly usage, as loaded for one hour.
type HourlyHistory = (i64, Arc<Vec<u64>>);

/// The detectors and what they need to act.
pub struct Security {
    settings: DetectionSettings,
    auth_failures: AuthFailureDetector,
    scopes: ScopeRequestDetector,
    /// API usage per client and token, for anomaly scoring.
    pub usage: UsageMonitor,
    history: Mutex<HashMap<String, HourlyHistory>>,
    alerts: Arc<dyn AlertStore>,
    flow: Arc<dyn FlowStore>,
    revocations: Arc<RevocationList>,
    feed: Arc<dyn RevocationFeed>,
    audit: AuditLog,
    metrics: Arc<Metrics>,
    /// Woken when an alert is stored, so the webhook worker delivers without delay.
    pub alert_stored: Arc<Notify>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Security {
    /// Detectors with `settings`.
    pub fn new(
        settings: DetectionSettings,
        alerts: Arc<dyn AlertStore>,
        flow: Arc<dyn FlowStore>,
        revocations: Arc<RevocationList>,
        feed: Arc<dyn RevocationFeed>,
        audit: AuditLog,
        metrics: Arc<Metrics>,
    ) -> Self {
        Security {
            auth_failures: AuthFailureDetector::new(
                settings.auth_failure_threshold,
                settings.auth_failure_window_secs,
            ),
            // One beyond-registration alert per client and scope per alert window.
            scopes: ScopeRequestDetector::with_window(settings.auth_failure_window_secs),
            usage: UsageMonitor::new(),
            history: Mutex::new(HashMap::new()),
            settings,
            alerts,
            flow,
            revocations,
            feed,
            audit,
            metrics,
            alert_stored: Arc::new(Notify::new()),
        }
    }

    /// Stores, audits, logs and counts an alert.
    pub async fn raise(&self, alert: Alert) {
        tracing::warn!(
            kind = alert.kind.as_str(),
            subject = %alert.subject,
            detail = %alert.detail,
            "security alert"
        );
        self.metrics.alert();
        let json = serde_json::to_value(&alert).unwrap_or(serde_json::Value::Null);
        if let Err(e) = self.alerts.insert_alert(&json, alert.at).await {
            tracing::error!(error = %e, "cannot store alert");
        }
        self.alert_stored.notify_one();
        let mut record = AuditRecord::new(AuditKind::Alert, false, alert.at).detail(format!(
            "{} {}",
            alert.kind.as_str(),
            alert.subject
        ));
        if let Some(c) = &alert.client_id {
            record = record.client(c);
        }
        if let Some(ip) = &alert.ip {
            record = record.ip(ip);
        }
        self.audit.record(record).await;
    }

    /// Seeds the scope detector with what clients used before this process started.
    pub async fn load_history(&self) -> Result<(), deedbolt_core::ports::StoreError> {
        for (client, scopes) in self.alerts.privileged_seen().await? {
            self.scopes.seed(&client, scopes);
        }
        Ok(())
    }

    /// A failed authentication (client or user) from `ip`.
    pub async fn auth_failure(&self, ip: &str, now: UnixTime) {
        if let Some(alert) = self.auth_failures.record_failure(ip, now) {
            self.raise(alert).await;
        }
    }

    /// A validated request by a client for `requested` scopes (registered for
    /// `registered`): an authenticated token request, or an authorization request that
    /// passed the client, redirect-URI and PKCE checks. Alerts on scopes beyond the
    /// registration, at most once per client and scope per alert window.
    pub async fn scope_request(
        &self,
        client_id: &str,
        registered: ScopeSet,
        requested: ScopeSet,
        now: UnixTime,
    ) {
        if let Some(alert) = self
            .scopes
            .observe_request(client_id, registered, requested, now)
        {
            self.raise(alert).await;
        }
    }

    /// A token was issued to a client with `granted` scopes: alerts on the first use of
    /// each privileged scope, and remembers it (in storage too, so a restart does not
    /// alert again).
    pub async fn scopes_issued(&self, client_id: &str, granted: ScopeSet, now: UnixTime) {
        let alerts = self.scopes.observe_issued(client_id, granted, now);
        if !alerts.is_empty() {
            let seen = self.scopes.seen(client_id);
            if let Err(e) = self.alerts.save_privileged_seen(client_id, seen).await {
                tracing::error!(error = %e, "cannot store privileged scopes seen");
            }
        }
        for alert in alerts {
            self.raise(alert).await;
        }
    }

    /// An API call with a verified token: counts it and checks for anomalies.
    pub async fn api_call(&self, claims: &AccessTokenClaims, now: UnixTime) {
        let client = claims.client_id.as_str();
        let jti = claims.jti.as_str();
        self.usage.record(client, jti, now);
        let Some(history) = self.history_of(client, now).await else {
            return;
        };
        for alert in self
            .usage
            .check(client, jti, &history, self.settings.anomaly_threshold, now)
        {
            let revoke = self.settings.auto_revoke
                && alert.kind == AlertKind::TokenUsageAnomaly
                && alert.recommended_action == Some(ACTION_REVOKE_TOKEN)
                && alert.jti.is_some();
            self.raise(alert).await;
            if revoke {
                self.revocations
                    .revoke_local(claims.jti.clone(), claims.exp);
                if let Err(e) = self.flow.revoke_token(&claims.jti, claims.exp, now).await {
                    tracing::error!(error = %e, "cannot store an automatic revocation");
                }
                let revoked = Revoked {
                    jti: claims.jti.clone(),
                    expires_at: claims.exp,
                };
                if let Err(e) = self.feed.publish(&revoked).await {
                    tracing::error!(error = %e, "cannot announce an automatic revocation");
                }
                tracing::warn!(jti = %claims.jti, client_id = client, "token revoked automatically for anomalous usage");
                self.audit
                    .record(
                        AuditRecord::new(AuditKind::TokenRevoked, true, now)
                            .client(client)
                            .detail(format!("jti={} reason=usage_anomaly", claims.jti)),
                    )
                    .await;
            }
        }
    }

    /// The client's hourly history for the past 7 days, loaded once per hour.
    async fn history_of(&self, client: &str, now: UnixTime) -> Option<Arc<Vec<u64>>> {
        let hour = now.0.div_euclid(3600);
        if let Some((h, hist)) = self
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(client)
        {
            if *h == hour {
                return Some(hist.clone());
            }
        }
        let loaded = match self.alerts.usage_history(client, hour - 168, hour).await {
            Ok(v) => Arc::new(v),
            Err(e) => {
                tracing::error!(error = %e, "cannot load usage history");
                return None;
            }
        };
        let mut map = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (h, _)| *h == hour);
        }
        map.insert(client.to_owned(), (hour, loaded.clone()));
        Some(loaded)
    }

    /// Persists finished hours of usage (called by the sync loop).
    pub async fn persist_usage(&self, now: UnixTime) {
        for (client, hour, count) in self.usage.roll_hour(now) {
            if let Err(e) = self.alerts.add_usage(&client, hour, count).await {
                tracing::error!(error = %e, "cannot persist usage counts");
            }
        }
    }
}
