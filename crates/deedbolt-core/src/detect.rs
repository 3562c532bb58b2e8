//! Suspicious-activity rules: bursts of failed authentications, unusual scope requests,
//! and token usage far outside a client's normal hourly volume.
//!
//! These are *detectors*, not gates: nothing here refuses a request. Each rule turns what
//! the adapters observe into an [`Alert`] for operators (a log line, a webhook, an
//! automated response), with a [`recommended_action`](Alert::recommended_action) that an
//! automation may act on. The gates themselves live elsewhere ([`crate::throttle`] for
//! logins, [`crate::grant`] for scopes), so a bug or a false positive here costs an alert,
//! never an outage.
//!
//! Every detector is in-memory, thread-safe (one `Mutex`, `&self` methods) and bounded:
//! stale entries are dropped, and a map that still reaches its cap sheds its least
//! interesting half rather than growing without limit. Time comes in as [`UnixTime`], so
//! every window is testable at its exact boundary.
//!
//! - [`AuthFailureDetector`]: failed authentications per IP in a sliding window.
//! - [`ScopeRequestDetector`]: scopes beyond a client's registration, and the first
//!   issuance of a privileged scope.
//! - [`anomaly_score`] and [`UsageMonitor`]: hourly request counts per client and per
//!   token, scored against the client's past week.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, MutexGuard};

use serde::Serialize;

use crate::clock::UnixTime;
use crate::scope::{Scope, ScopeSet};

/// The recommended action for a token whose usage is anomalous.
pub const ACTION_REVOKE_TOKEN: &str = "revoke_token";
/// The recommended action for an IP with a burst of failed authentications.
pub const ACTION_BLOCK_IP: &str = "block_ip";
/// The recommended action for a client behaving unusually (scopes or volume).
pub const ACTION_REVIEW_CLIENT: &str = "review_client";

/// The default score above which [`UsageMonitor::check`] alerts: five standard
/// deviations above the hourly mean.
pub const DEFAULT_ANOMALY_THRESHOLD: f64 = 5.0;

/// The fewest hourly history points [`anomaly_score`] will judge by (one day).
pub const MIN_HISTORY_HOURS: usize = 24;

/// The most keys any one map here remembers. Past this, stale entries are dropped, and
/// if that frees too little, the least interesting half goes (see `make_room`).
const MAX_KEYS: usize = 100_000;

/// The most unrolled hours kept per client when [`UsageMonitor::roll_hour`] is not called
/// (eight days); older ones are dropped rather than kept forever.
const MAX_PENDING_HOURS: usize = 8 * 24;

const SECS_PER_HOUR: i64 = 3_600;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves counters, not invariants, behind:
    // carry on with them rather than poison every later request.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps `map` below `cap` keys before an insert.
///
/// First drops entries that are no longer `live`. If that leaves the map more than three
/// quarters full, keeps only the (at most) `cap / 2` entries of highest `rank`. Evicting
/// a large batch at once keeps the cost amortised O(1) per insert even when every entry
/// is live (a flood of distinct keys), instead of an O(n) scan on every insert.
fn make_room<V, R: Ord + Copy>(
    map: &mut HashMap<String, V>,
    cap: usize,
    live: impl Fn(&V) -> bool,
    rank: impl Fn(&V) -> R,
) {
    if map.len() < cap {
        return;
    }
    map.retain(|_, v| live(v));
    if map.len() <= cap - cap / 4 {
        return;
    }
    let keep = cap / 2;
    let mut ranks: Vec<R> = map.values().map(&rank).collect();
    // `len > 3/4 cap >= keep`, so the index is in range.
    let (_, pivot, _) = ranks.select_nth_unstable(map.len() - keep - 1);
    let pivot = *pivot;
    // Strictly above the pivot: ties with it go too, so at most `keep` entries remain.
    map.retain(|_, v| rank(v) > pivot);
}

/// What a detector noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Many failed authentications from one IP in a short window ([`AuthFailureDetector`]).
    MultipleAuthFailures,
    /// A client asked for scopes beyond its registration, or was issued a privileged scope
    /// for the first time ([`ScopeRequestDetector`]).
    UnusualScopeRequest,
    /// A client or token made far more requests this hour than the client usually does
    /// ([`UsageMonitor`]).
    TokenUsageAnomaly,
}

impl AlertKind {
    /// The name used in logs and in the serialised alert.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertKind::MultipleAuthFailures => "multiple_auth_failures",
            AlertKind::UnusualScopeRequest => "unusual_scope_request",
            AlertKind::TokenUsageAnomaly => "token_usage_anomaly",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert, ready to log or send. It carries identifiers only — never a secret, a
/// token value or a password.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Which rule fired.
    pub kind: AlertKind,
    /// What the alert is about, as `kind:value`: `ip:1.2.3.4`, `client:dbc_x`, `token:JTI`.
    pub subject: String,
    /// The client involved, if known.
    pub client_id: Option<String>,
    /// The remote IP involved, if known.
    pub ip: Option<String>,
    /// The access token's `jti`, for token alerts.
    pub jti: Option<String>,
    /// The anomaly score, for usage alerts (see [`anomaly_score`]).
    pub score: Option<f64>,
    /// A human-readable explanation.
    pub detail: String,
    /// What an operator or automation should consider doing: [`ACTION_REVOKE_TOKEN`],
    /// [`ACTION_BLOCK_IP`] or [`ACTION_REVIEW_CLIENT`].
    pub recommended_action: Option<&'static str>,
    /// When the rule fired.
    pub at: UnixTime,
}

// ---------------------------------------------------------------------------------------
// Failed authentications
// ---------------------------------------------------------------------------------------

/// Raises an alert when one IP fails authentication `threshold` times within
/// `window_secs` seconds (by default 5 in 300 s).
///
/// The window is inclusive at both ends: failures at `t` and `t + window_secs` are in
/// one window, failures `window_secs + 1` seconds apart are not. An IP alerts at most
/// once per window: after it fires at `f`, it stays quiet until `f` has left the window
/// (from `f + window_secs + 1` on), and then fires again if it is still at the threshold.
///
/// ```
/// use deedbolt_core::clock::UnixTime;
/// use deedbolt_core::detect::AuthFailureDetector;
/// let d = AuthFailureDetector::default();
/// for t in 0..4 {
///     assert!(d.record_failure("203.0.113.9", UnixTime(t)).is_none());
/// }
/// assert!(d.record_failure("203.0.113.9", UnixTime(4)).is_some()); // the fifth
/// assert!(d.record_failure("203.0.113.9", UnixTime(5)).is_none()); // already reported
/// ```
///
/// This counts; it does not block. Blocking logins is [`crate::throttle::LoginThrottle`]'s
/// job; this detector also sees failures the throttle does not (bad client secrets,
/// bad bearer tokens).
#[derive(Debug)]
pub struct AuthFailureDetector {
    threshold: usize,
    window_secs: i64,
    max_keys: usize,
    ips: Mutex<HashMap<String, IpFailures>>,
}

#[derive(Debug)]
struct IpFailures {
    /// The most recent failure times, oldest first; at most `threshold` of them, which is
    /// all that "are there `threshold` in the window?" needs.
    times: VecDeque<i64>,
    /// When this IP last fired.
    fired_at: Option<i64>,
}

impl Default for AuthFailureDetector {
    /// Five failures in five minutes.
    fn default() -> Self {
        AuthFailureDetector::new(5, 300)
    }
}

impl AuthFailureDetector {
    /// Alerts on `threshold` failures from one IP within `window_secs` seconds.
    /// A threshold of 0 is taken as 1, and a negative window as 0 (the same second).
    pub fn new(threshold: usize, window_secs: i64) -> Self {
        AuthFailureDetector {
            threshold: threshold.max(1),
            window_secs: window_secs.max(0),
            max_keys: MAX_KEYS,
            ips: Mutex::new(HashMap::new()),
        }
    }

    /// Records one failed authentication from `ip` at `now`; returns an alert exactly
    /// when this failure brings the IP to the threshold within the window and the IP has
    /// not already been reported in this window.
    pub fn record_failure(&self, ip: &str, now: UnixTime) -> Option<Alert> {
        let cutoff = now.0.saturating_sub(self.window_secs);
        let mut map = lock(&self.ips);
        let entry = match map.get_mut(ip) {
            Some(entry) => entry,
            None => {
                make_room(
                    &mut map,
                    self.max_keys,
                    |f| f.times.back().is_some_and(|t| *t >= cutoff),
                    |f| f.times.back().copied().unwrap_or(i64::MIN),
                );
                map.entry(ip.to_owned()).or_insert(IpFailures {
                    times: VecDeque::new(),
                    fired_at: None,
                })
            }
        };
        // Concurrent callers may arrive a second out of order; time never runs backwards
        // within one IP's queue, so stale entries always sit at the front.
        let t = entry.times.back().map_or(now.0, |last| now.0.max(*last));
        entry.times.push_back(t);
        if entry.times.len() > self.threshold {
            entry.times.pop_front();
        }
        while entry.times.front().is_some_and(|t| *t < cutoff) {
            entry.times.pop_front();
        }
        let reported = entry.fired_at.is_some_and(|f| f >= cutoff);
        if entry.times.len() < self.threshold || reported {
            return None;
        }
        entry.fired_at = Some(t);
        Some(Alert {
            kind: AlertKind::MultipleAuthFailures,
            subject: format!("ip:{ip}"),
            client_id: None,
            ip: Some(ip.to_owned()),
            jti: None,
            score: None,
            detail: format!(
                "{} failed authentications from {ip} within {} s",
                entry.times.len(),
                self.window_secs
            ),
            recommended_action: Some(ACTION_BLOCK_IP),
            at: now,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Scope requests
// ---------------------------------------------------------------------------------------

/// Whether `scope` is privileged for [`ScopeRequestDetector`]: any `*:write` scope, and
/// every `financial:*` scope (reading the ledger is as sensitive as writing it), and the
/// administration scopes (they reach the security audit log).
///
/// Decided by the scope's wire name, so scopes added to the catalogue later follow the
/// same rule without a change here.
///
/// ```
/// use deedbolt_core::detect::is_privileged;
/// use deedbolt_core::scope::Scope;
/// assert!(is_privileged(Scope::FinancialRead));
/// assert!(is_privileged(Scope::TenantWrite));
/// assert!(!is_privileged(Scope::TenantRead));
/// assert!(!is_privileged(Scope::MaintenanceManage));
/// assert!(is_privileged(Scope::AdminRead));
/// ```
pub fn is_privileged(scope: Scope) -> bool {
    let name = scope.as_str();
    name.ends_with(":write") || name.starts_with("financial:") || scope.is_admin()
}

fn privileged_of(set: ScopeSet) -> ScopeSet {
    set.iter().filter(|s| is_privileged(*s)).collect()
}

/// How long, by default, a client's beyond-registration alert for a scope silences
/// repeats ([`ScopeRequestDetector::with_window`]); the default alert window.
pub const DEFAULT_SCOPE_ALERT_WINDOW_SECS: i64 = 300;

/// Flags unusual scope requests by a client.
///
/// Two rules, each fed by its own event:
/// 1. **Beyond registration** ([`ScopeRequestDetector::observe_request`]): a request names
///    scopes the client is not registered for. The grant refuses such a request anyway;
///    the alert is for the operator, since a client probing for more access is either
///    misconfigured or compromised. Feed it only requests that proved something about the
///    client: an authenticated client at the token endpoint, or an authorization request
///    that passed the client, redirect-URI and PKCE checks. Anyone can send such an
///    authorization request for a public client, so the rule is bounded per requester:
///    each out-of-registration scope alerts at most once per client per window (the
///    repeats carry no news), so a flood of identical probes raises one alert, and one
///    client at most one per catalogue scope per window.
/// 2. **First privileged use** ([`ScopeRequestDetector::observe_issued`]): a token was
///    *issued* carrying a privileged scope (see [`is_privileged`]) the client never had
///    before. This fires even on the client's very first token: operators want to know
///    when a client *starts* using financial data or write access, and a brand-new client
///    doing so is exactly that event. Each privileged scope alerts once per client. It is
///    fed by issuance only, never by requests: an anonymous authorization request would
///    otherwise spend the alert before the client ever received such a token.
///
/// Privileged scopes beyond the registration only trigger rule 1 and are not remembered
/// as seen: they were never granted, so the client has not started using them.
///
/// What each client has been issued lives only in memory; load it from storage at
/// start-up with [`ScopeRequestDetector::seed`], or every client's first privileged token
/// after a restart alerts again.
#[derive(Debug)]
pub struct ScopeRequestDetector {
    max_keys: usize,
    window_secs: i64,
    state: Mutex<ScopeState>,
}

#[derive(Debug, Default)]
struct ScopeState {
    /// Privileged scopes seen per client, with a use counter for eviction (least recently
    /// touched go first; losing one only risks a repeated alert, never a missed one).
    seen: HashMap<String, (ScopeSet, u64)>,
    tick: u64,
    /// Per client: the out-of-registration scopes already reported in the current window,
    /// and when that window started.
    reported: HashMap<String, (ScopeSet, i64)>,
}

impl Default for ScopeRequestDetector {
    fn default() -> Self {
        ScopeRequestDetector::new()
    }
}

impl ScopeRequestDetector {
    /// A detector that has seen nothing yet, with the default alert window
    /// ([`DEFAULT_SCOPE_ALERT_WINDOW_SECS`]).
    pub fn new() -> Self {
        Self::with_window(DEFAULT_SCOPE_ALERT_WINDOW_SECS)
    }

    /// A detector whose beyond-registration alerts repeat at most once per `window_secs`
    /// per client and scope.
    pub fn with_window(window_secs: i64) -> Self {
        ScopeRequestDetector {
            max_keys: MAX_KEYS,
            window_secs: window_secs.max(1),
            state: Mutex::new(ScopeState::default()),
        }
    }

    /// Adds `seen` to what `client_id` is known to have been issued before (merging, not
    /// replacing). Only the privileged scopes in it are kept.
    pub fn seed(&self, client_id: &str, seen: ScopeSet) {
        let privileged = privileged_of(seen);
        if privileged.is_empty() {
            return;
        }
        let mut state = lock(&self.state);
        Self::remember(&mut state, self.max_keys, client_id, privileged);
    }

    /// The privileged scopes `client_id` is known to have been issued.
    pub fn seen(&self, client_id: &str) -> ScopeSet {
        lock(&self.state)
            .seen
            .get(client_id)
            .map_or(ScopeSet::empty(), |(set, _)| *set)
    }

    fn alert(client_id: &str, detail: String, now: UnixTime) -> Alert {
        Alert {
            kind: AlertKind::UnusualScopeRequest,
            subject: format!("client:{client_id}"),
            client_id: Some(client_id.to_owned()),
            ip: None,
            jti: None,
            score: None,
            detail,
            recommended_action: Some(ACTION_REVIEW_CLIENT),
            at: now,
        }
    }

    /// Rule 1: a validated request by `client_id` for `requested` scopes, against its
    /// `registered` ones. Alerts when it names a scope beyond the registration that was
    /// not already reported for this client in the current window.
    ///
    /// ```
    /// use deedbolt_core::clock::UnixTime;
    /// use deedbolt_core::detect::ScopeRequestDetector;
    /// let d = ScopeRequestDetector::with_window(300);
    /// let registered = "property:read".parse().unwrap();
    /// let probe = "property:write".parse().unwrap();
    /// assert!(d.observe_request("dbc_a", registered, probe, UnixTime(0)).is_some());
    /// // The same probe again within the window: no news.
    /// assert!(d.observe_request("dbc_a", registered, probe, UnixTime(299)).is_none());
    /// // A new window reports it again.
    /// assert!(d.observe_request("dbc_a", registered, probe, UnixTime(300)).is_some());
    /// ```
    pub fn observe_request(
        &self,
        client_id: &str,
        registered: ScopeSet,
        requested: ScopeSet,
        now: UnixTime,
    ) -> Option<Alert> {
        let beyond = requested.difference(&registered);
        if beyond.is_empty() {
            return None;
        }
        let mut state = lock(&self.state);
        let window = self.window_secs;
        let (reported, since) = match state.reported.get(client_id) {
            Some((set, since)) if now.0 - *since < window => (*set, *since),
            _ => (ScopeSet::empty(), now.0),
        };
        let news = beyond.difference(&reported);
        if news.is_empty() {
            return None;
        }
        if !state.reported.contains_key(client_id) {
            make_room(
                &mut state.reported,
                self.max_keys,
                |(_, since)| now.0 - *since < window,
                |(_, since)| *since,
            );
        }
        state
            .reported
            .insert(client_id.to_owned(), (reported.union(&news), since));
        Some(Self::alert(
            client_id,
            format!("requested scopes beyond registration: {beyond}"),
            now,
        ))
    }

    /// Rule 2: a token was issued to `client_id` with `granted` scopes. Returns one alert
    /// per privileged scope the client had never been issued before.
    ///
    /// ```
    /// use deedbolt_core::clock::UnixTime;
    /// use deedbolt_core::detect::ScopeRequestDetector;
    /// let d = ScopeRequestDetector::new();
    /// let granted = "property:read financial:read".parse().unwrap();
    /// assert_eq!(d.observe_issued("dbc_a", granted, UnixTime(0)).len(), 1);
    /// assert!(d.observe_issued("dbc_a", granted, UnixTime(1)).is_empty());
    /// ```
    pub fn observe_issued(&self, client_id: &str, granted: ScopeSet, now: UnixTime) -> Vec<Alert> {
        let privileged = privileged_of(granted);
        if privileged.is_empty() {
            return Vec::new();
        }
        // Check and remember under one lock, so two concurrent first issuances of the
        // same scope alert once.
        let new = {
            let mut state = lock(&self.state);
            let before = state
                .seen
                .get(client_id)
                .map_or(ScopeSet::empty(), |(set, _)| *set);
            Self::remember(&mut state, self.max_keys, client_id, privileged);
            privileged.difference(&before)
        };
        new.iter()
            .map(|scope| {
                Self::alert(
                    client_id,
                    format!("first use of privileged scope {scope}"),
                    now,
                )
            })
            .collect()
    }

    fn remember(state: &mut ScopeState, cap: usize, client_id: &str, scopes: ScopeSet) {
        state.tick += 1;
        let tick = state.tick;
        match state.seen.get_mut(client_id) {
            Some((set, used)) => {
                *set = set.union(&scopes);
                *used = tick;
            }
            None => {
                make_room(&mut state.seen, cap, |_| true, |(_, used)| *used);
                state.seen.insert(client_id.to_owned(), (scopes, tick));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Usage anomalies
// ---------------------------------------------------------------------------------------

/// The mean and (floored) standard deviation of an hourly history.
#[derive(Debug, Clone, Copy)]
struct Baseline {
    mean: f64,
    std: f64,
    hours: usize,
}

impl Baseline {
    fn of(history: &[u64]) -> Option<Baseline> {
        if history.len() < MIN_HISTORY_HOURS {
            return None;
        }
        let n = history.len() as f64;
        // Two passes: the one-pass `E[x²] - E[x]²` loses everything to cancellation for
        // large, steady counts. Even at u64::MAX the squares stay far below f64::MAX.
        let mean = history.iter().map(|&c| c as f64).sum::<f64>() / n;
        let var = history
            .iter()
            .map(|&c| {
                let d = c as f64 - mean;
                d * d
            })
            .sum::<f64>()
            / n;
        // The floor: counts are roughly Poisson, whose standard deviation is √mean, and
        // never below 1, so a flat history (std 0) gives a finite, meaningful score
        // instead of ±∞ or NaN, and a nearly flat one does not turn a handful of extra
        // requests into a huge score.
        let std = var.sqrt().max(mean.sqrt().max(1.0));
        Some(Baseline {
            mean,
            std,
            hours: history.len(),
        })
    }

    fn score(&self, current: u64) -> f64 {
        (current as f64 - self.mean) / self.std
    }
}

/// How many standard deviations `current` lies above the mean of `history`.
///
/// `history` is the hourly request counts of the past week (up to 168 values, oldest
/// first; hours without requests count as 0 and must be included). The score is
/// `(current - mean) / std` with the population standard deviation, floored at
/// `max(√mean, 1)` (the spread of a Poisson count), so it is always finite.
///
/// Returns `None` with fewer than [`MIN_HISTORY_HOURS`] (24) values: less than a day
/// does not cover a daily cycle, and a new client's first busy morning is not an anomaly.
///
/// ```
/// use deedbolt_core::detect::anomaly_score;
/// assert_eq!(anomaly_score(50, &[0; 23]), None); // too short to judge
/// assert_eq!(anomaly_score(50, &[0; 24]), Some(50.0)); // floor of 1
/// assert_eq!(anomaly_score(100, &[100; 168]), Some(0.0));
/// assert_eq!(anomaly_score(150, &[100; 168]), Some(5.0)); // floor of √100
/// ```
pub fn anomaly_score(current: u64, history: &[u64]) -> Option<f64> {
    Baseline::of(history).map(|b| b.score(current))
}

/// Counts requests per client and per access token (`jti`) in hourly buckets, and scores
/// the current hour against the client's history.
///
/// The adapter calls [`record`](UsageMonitor::record) on every authenticated API call,
/// [`check`](UsageMonitor::check) with the client's stored history (as often as it
/// likes; alerts are deduplicated per client and per token per hour), and
/// [`roll_hour`](UsageMonitor::roll_hour) once an hour to persist finished hours, which
/// become the history of later checks.
///
/// Hours are `unix_time / 3600` (UTC). The current hour is partial, so early in an hour
/// a spike scores lower than it will by the end: alerts come late rather than falsely.
#[derive(Debug)]
pub struct UsageMonitor {
    max_keys: usize,
    state: Mutex<UsageState>,
}

#[derive(Debug, Default)]
struct UsageState {
    clients: HashMap<String, ClientUsage>,
    tokens: HashMap<String, TokenUsage>,
    /// Hours before this one have been handed out by `roll_hour`; a late `record` for
    /// them is counted in this hour instead, so no hour is ever reported twice.
    open_from: i64,
}

#[derive(Debug)]
struct ClientUsage {
    /// `(hour, count)`, oldest first, at most [`MAX_PENDING_HOURS`].
    hours: VecDeque<(i64, u64)>,
    /// The hour this client last alerted in.
    alerted_hour: Option<i64>,
}

impl ClientUsage {
    fn count_in(&self, hour: i64) -> u64 {
        match self.hours.back() {
            Some((h, n)) if *h == hour => *n,
            _ => 0,
        }
    }
}

#[derive(Debug)]
struct TokenUsage {
    hour: i64,
    count: u64,
    alerted: bool,
}

impl Default for UsageMonitor {
    fn default() -> Self {
        UsageMonitor::new()
    }
}

impl UsageMonitor {
    /// A monitor with no counts.
    pub fn new() -> Self {
        UsageMonitor {
            max_keys: MAX_KEYS,
            state: Mutex::new(UsageState::default()),
        }
    }

    fn hour_of(now: UnixTime) -> i64 {
        now.0.div_euclid(SECS_PER_HOUR)
    }

    /// Counts one request by `client_id` with the token `jti` at `now`.
    ///
    /// On the hot path: one lock, and no allocation unless the client or token is new
    /// (or, once an hour per client, a new bucket).
    pub fn record(&self, client_id: &str, jti: &str, now: UnixTime) {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let hour = Self::hour_of(now).max(state.open_from);
        let cap = self.max_keys;

        match state.clients.get_mut(client_id) {
            Some(c) => match c.hours.back_mut() {
                // A request stamped a moment before the latest bucket (concurrent callers
                // at the hour boundary) counts in the latest bucket.
                Some((h, n)) if *h >= hour => *n = n.saturating_add(1),
                _ => {
                    if c.hours.len() >= MAX_PENDING_HOURS {
                        c.hours.pop_front();
                    }
                    c.hours.push_back((hour, 1));
                }
            },
            None => {
                // Pending hours are data not yet persisted, so every entry is live; if
                // there are ever this many active clients, the least recent ones go.
                make_room(
                    &mut state.clients,
                    cap,
                    |c| !c.hours.is_empty(),
                    |c| c.hours.back().copied().unwrap_or((i64::MIN, 0)),
                );
                state.clients.insert(
                    client_id.to_owned(),
                    ClientUsage {
                        hours: VecDeque::from([(hour, 1)]),
                        alerted_hour: None,
                    },
                );
            }
        }

        match state.tokens.get_mut(jti) {
            Some(t) if t.hour >= hour => t.count = t.count.saturating_add(1),
            Some(t) => {
                *t = TokenUsage {
                    hour,
                    count: 1,
                    alerted: false,
                }
            }
            None => {
                // Past hours' tokens go first; then the least used, so a flood of
                // single-use tokens cannot push out the one busy token worth reporting.
                make_room(
                    &mut state.tokens,
                    cap,
                    |t| t.hour >= hour,
                    |t| (t.hour, t.count),
                );
                state.tokens.insert(
                    jti.to_owned(),
                    TokenUsage {
                        hour,
                        count: 1,
                        alerted: false,
                    },
                );
            }
        }
    }

    /// Hands out every finished hour (before `now`'s hour) as `(client_id, hour, count)`,
    /// sorted by client then hour, for persistence; forgets them, and the tokens of past
    /// hours. Each `(client, hour)` is returned once: requests recorded late for an hour
    /// already handed out are counted in the current hour instead.
    pub fn roll_hour(&self, now: UnixTime) -> Vec<(String, i64, u64)> {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let current = Self::hour_of(now).max(state.open_from);
        state.open_from = current;
        let mut done = Vec::new();
        state.clients.retain(|client, usage| {
            while let Some(&(hour, count)) = usage.hours.front() {
                if hour >= current {
                    break;
                }
                done.push((client.clone(), hour, count));
                usage.hours.pop_front();
            }
            !usage.hours.is_empty()
        });
        state.tokens.retain(|_, t| t.hour >= current);
        done.sort_unstable();
        done
    }

    /// Scores the current hour of `client_id` and of its token `jti` against
    /// `client_history` (the client's hourly counts of the past week, as for
    /// [`anomaly_score`]); returns an alert for each whose score is above `threshold`
    /// (usually [`DEFAULT_ANOMALY_THRESHOLD`]) and that has not alerted yet this hour.
    ///
    /// The token is scored against the *client's* history too: how the client's volume
    /// splits over its tokens is not recorded, and one token doing more than the whole
    /// client usually does is anomalous on its face. A token never counts more than its
    /// client, so a token alert comes with (or after) a client alert; its value is naming
    /// the token to revoke.
    ///
    /// Only spikes alert: a client or token with no requests this hour never does, and
    /// with under [`MIN_HISTORY_HOURS`] of history nothing does.
    pub fn check(
        &self,
        client_id: &str,
        jti: &str,
        client_history: &[u64],
        threshold: f64,
        now: UnixTime,
    ) -> Vec<Alert> {
        let (hour, client_count, token_count) = {
            let state = lock(&self.state);
            let hour = Self::hour_of(now).max(state.open_from);
            let client = state
                .clients
                .get(client_id)
                .filter(|c| c.alerted_hour != Some(hour))
                .map_or(0, |c| c.count_in(hour));
            let token = state
                .tokens
                .get(jti)
                .filter(|t| t.hour == hour && !t.alerted)
                .map_or(0, |t| t.count);
            (hour, client, token)
        };
        if client_count == 0 && token_count == 0 {
            return Vec::new();
        }
        // Scored outside the lock: `record` on other requests need not wait for it.
        let Some(base) = Baseline::of(client_history) else {
            return Vec::new();
        };
        let client_score = base.score(client_count);
        let token_score = base.score(token_count);
        let client_hit = client_count > 0 && client_score > threshold;
        let token_hit = token_count > 0 && token_score > threshold;
        if !client_hit && !token_hit {
            return Vec::new();
        }

        let detail = |what: &str, count: u64, score: f64| {
            format!(
                "{what} made {count} requests this hour; the client's hourly mean over \
                 {} hours is {:.1} (score {score:.1})",
                base.hours, base.mean
            )
        };
        let mut alerts = Vec::new();
        // Test-and-set under the lock again, so concurrent checks alert once.
        let mut state = lock(&self.state);
        if client_hit {
            if let Some(c) = state.clients.get_mut(client_id) {
                if c.alerted_hour != Some(hour) {
                    c.alerted_hour = Some(hour);
                    alerts.push(Alert {
                        kind: AlertKind::TokenUsageAnomaly,
                        subject: format!("client:{client_id}"),
                        client_id: Some(client_id.to_owned()),
                        ip: None,
                        jti: None,
                        score: Some(client_score),
                        detail: detail(&format!("client {client_id}"), client_count, client_score),
                        recommended_action: Some(ACTION_REVIEW_CLIENT),
                        at: now,
                    });
                }
            }
        }
        if token_hit {
            if let Some(t) = state.tokens.get_mut(jti) {
                if t.hour == hour && !t.alerted {
                    t.alerted = true;
                    alerts.push(Alert {
                        kind: AlertKind::TokenUsageAnomaly,
                        subject: format!("token:{jti}"),
                        client_id: Some(client_id.to_owned()),
                        ip: None,
                        jti: Some(jti.to_owned()),
                        score: Some(token_score),
                        detail: detail(&format!("token {jti}"), token_count, token_score),
                        recommended_action: Some(ACTION_REVOKE_TOKEN),
                        at: now,
                    });
                }
            }
        }
        alerts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const IP: &str = "198.51.100.7";

    fn set(s: &str) -> ScopeSet {
        s.parse().unwrap()
    }

    // --- failed authentications ---

    #[test]
    fn the_fifth_failure_in_the_window_alerts_and_the_fourth_and_sixth_do_not() {
        let d = AuthFailureDetector::default();
        for t in 0..4 {
            assert_eq!(d.record_failure(IP, UnixTime(t * 10)), None, "failure {t}");
        }
        let alert = d.record_failure(IP, UnixTime(40)).expect("fifth alerts");
        assert_eq!(alert.kind, AlertKind::MultipleAuthFailures);
        assert_eq!(alert.subject, format!("ip:{IP}"));
        assert_eq!(alert.ip.as_deref(), Some(IP));
        assert_eq!(alert.recommended_action, Some(ACTION_BLOCK_IP));
        assert_eq!(alert.at, UnixTime(40));
        assert_eq!(d.record_failure(IP, UnixTime(50)), None);
    }

    #[test]
    fn the_window_is_inclusive_so_300_s_apart_accumulate_and_301_s_do_not() {
        let d = AuthFailureDetector::default();
        for t in 0..4 {
            assert!(d.record_failure(IP, UnixTime(t)).is_none());
        }
        // 0 and 300 are in one window.
        assert!(d.record_failure(IP, UnixTime(300)).is_some());

        let d = AuthFailureDetector::default();
        d.record_failure(IP, UnixTime(0));
        for t in 301..304 {
            assert!(d.record_failure(IP, UnixTime(t)).is_none());
        }
        // 0 has left the window: only four remain.
        assert!(d.record_failure(IP, UnixTime(304)).is_none());
        // ...and a fifth inside it fires.
        assert!(d.record_failure(IP, UnixTime(305)).is_some());
    }

    #[test]
    fn failures_301_s_apart_never_accumulate() {
        let d = AuthFailureDetector::default();
        for i in 0..20 {
            assert!(d.record_failure(IP, UnixTime(i * 301)).is_none());
        }
    }

    #[test]
    fn a_sustained_attack_alerts_once_per_window() {
        let d = AuthFailureDetector::default();
        let fired: Vec<i64> = (0..700)
            .filter(|t| d.record_failure(IP, UnixTime(*t)).is_some())
            .collect();
        // Fires at 4; quiet while 4 is in the window (up to 304); fires at 305, then 606.
        assert_eq!(fired, vec![4, 305, 606]);
    }

    #[test]
    fn it_fires_again_after_a_quiet_window() {
        let d = AuthFailureDetector::default();
        for t in 0..5 {
            d.record_failure(IP, UnixTime(t));
        }
        for t in 400..404 {
            assert!(d.record_failure(IP, UnixTime(t)).is_none());
        }
        assert!(d.record_failure(IP, UnixTime(404)).is_some());
    }

    #[test]
    fn ips_are_counted_separately() {
        let d = AuthFailureDetector::default();
        for t in 0..4 {
            d.record_failure(IP, UnixTime(t));
            d.record_failure("192.0.2.1", UnixTime(t));
        }
        assert!(d.record_failure(IP, UnixTime(5)).is_some());
        assert!(d.record_failure("192.0.2.1", UnixTime(5)).is_some());
        assert!(d.record_failure("192.0.2.2", UnixTime(5)).is_none());
    }

    #[test]
    fn concurrent_failures_at_the_threshold_alert_exactly_once() {
        let d = AuthFailureDetector::new(8, 300);
        let alerts: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|_| s.spawn(|| d.record_failure(IP, UnixTime(100)).is_some()))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap() as usize)
                .sum()
        });
        assert_eq!(alerts, 1);
    }

    #[test]
    fn degenerate_settings_are_clamped() {
        let d = AuthFailureDetector::new(0, -5);
        assert!(d.record_failure(IP, UnixTime(0)).is_some());
        assert!(d.record_failure(IP, UnixTime(0)).is_none());
        assert!(d.record_failure(IP, UnixTime(1)).is_some());
    }

    #[test]
    fn auth_failure_memory_is_bounded_and_stale_ips_go_first() {
        let mut d = AuthFailureDetector::new(5, 300);
        d.max_keys = 8;
        for i in 0..4 {
            d.record_failure(&format!("old-{i}"), UnixTime(0));
        }
        for i in 0..4 {
            d.record_failure(&format!("new-{i}"), UnixTime(1_000));
        }
        d.record_failure("newest", UnixTime(1_000));
        {
            let map = lock(&d.ips);
            assert_eq!(map.len(), 5);
            assert!(map.keys().all(|k| !k.starts_with("old-")));
        }
        for i in 0..1_000 {
            d.record_failure(&format!("flood-{i}"), UnixTime(1_000 + i));
            assert!(lock(&d.ips).len() <= 8);
        }
        // The most recent survive a flood of live keys.
        assert!(lock(&d.ips).contains_key("flood-999"));
    }

    // --- scope requests ---

    #[test]
    fn scopes_beyond_registration_are_named() {
        let d = ScopeRequestDetector::new();
        let a = d
            .observe_request(
                "dbc_a",
                set("property:read"),
                set("property:read tenant:read maintenance:manage"),
                UnixTime(7),
            )
            .expect("an alert");
        assert_eq!(a.kind, AlertKind::UnusualScopeRequest);
        assert_eq!(a.subject, "client:dbc_a");
        assert_eq!(a.client_id.as_deref(), Some("dbc_a"));
        assert_eq!(a.recommended_action, Some(ACTION_REVIEW_CLIENT));
        assert_eq!(
            a.detail,
            "requested scopes beyond registration: tenant:read maintenance:manage"
        );
        assert_eq!(a.at, UnixTime(7));
    }

    #[test]
    fn repeated_probes_alert_once_per_client_and_scope_per_window() {
        let d = ScopeRequestDetector::with_window(300);
        let registered = set("property:read");
        let probe =
            |scopes: &str, t: i64| d.observe_request("dbc_a", registered, set(scopes), UnixTime(t));
        assert!(probe("tenant:read", 0).is_some());
        for t in 1..100 {
            assert!(probe("tenant:read", t).is_none(), "repeat at {t}");
        }
        // A scope not yet reported in this window is news; the known one with it is not.
        let a = probe("tenant:read tenant:write", 100).expect("a new scope");
        assert!(
            a.detail.ends_with("tenant:read tenant:write"),
            "{}",
            a.detail
        );
        assert!(probe("tenant:write", 101).is_none());
        // Other clients are separate.
        assert!(d
            .observe_request("dbc_b", registered, set("tenant:read"), UnixTime(102))
            .is_some());
        // The window (from the first report, at 0) ends at 300: everything is news again.
        assert!(probe("tenant:read", 299).is_none());
        assert!(probe("tenant:read", 300).is_some());
        assert!(probe("tenant:write", 301).is_some());
        // Within the registration: never an alert.
        assert!(probe("property:read", 302).is_none());
    }

    #[test]
    fn a_flood_of_probes_from_distinct_clients_keeps_memory_bounded() {
        let mut d = ScopeRequestDetector::new();
        d.max_keys = 8;
        for i in 0..100 {
            let alert = d.observe_request(
                &format!("dbc_{i}"),
                set("property:read"),
                set("tenant:read"),
                UnixTime(i),
            );
            assert!(alert.is_some());
            assert!(lock(&d.state).reported.len() <= 8);
        }
    }

    #[test]
    fn requests_never_count_as_a_first_privileged_use() {
        let d = ScopeRequestDetector::new();
        let registered = set("property:read financial:read");
        assert!(d
            .observe_request("dbc_a", registered, registered, UnixTime(0))
            .is_none());
        assert!(d.seen("dbc_a").is_empty());
        assert_eq!(d.observe_issued("dbc_a", registered, UnixTime(1)).len(), 1);
    }

    #[test]
    fn ordinary_issuances_are_quiet() {
        let d = ScopeRequestDetector::new();
        let granted = set("property:read tenant:read maintenance:manage openid");
        assert!(d.observe_issued("dbc_a", granted, UnixTime(0)).is_empty());
        assert!(d
            .observe_issued("dbc_a", ScopeSet::empty(), UnixTime(0))
            .is_empty());
        assert!(d.seen("dbc_a").is_empty());
        assert!(lock(&d.state).seen.is_empty());
    }

    #[test]
    fn the_first_privileged_issuance_alerts_even_on_a_first_observation_and_only_once() {
        let d = ScopeRequestDetector::new();
        let alerts = d.observe_issued("dbc_a", set("financial:read"), UnixTime(0));
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            alerts[0].detail,
            "first use of privileged scope financial:read"
        );
        assert!(d
            .observe_issued("dbc_a", set("financial:read"), UnixTime(1))
            .is_empty());
        // A second privileged scope is news too, one alert per scope.
        let alerts = d.observe_issued("dbc_a", set("financial:read tenant:write"), UnixTime(2));
        assert_eq!(alerts.len(), 1);
        assert!(alerts[0].detail.ends_with("tenant:write"));
        assert_eq!(d.seen("dbc_a"), set("financial:read tenant:write"));
        // Other clients have their own history.
        assert_eq!(
            d.observe_issued("dbc_b", set("financial:read"), UnixTime(3))
                .len(),
            1
        );
    }

    #[test]
    fn privileged_scopes_beyond_registration_only_trip_the_registration_rule() {
        let d = ScopeRequestDetector::new();
        let alert = d.observe_request(
            "dbc_a",
            set("property:read"),
            set("financial:write"),
            UnixTime(0),
        );
        assert!(alert
            .expect("an alert")
            .detail
            .starts_with("requested scopes beyond"));
        assert!(d.seen("dbc_a").is_empty());
        // Once issued, it is news.
        assert_eq!(
            d.observe_issued("dbc_a", set("financial:write"), UnixTime(1))
                .len(),
            1
        );
    }

    #[test]
    fn seeded_history_suppresses_alerts_and_keeps_only_privileged_scopes() {
        let d = ScopeRequestDetector::new();
        d.seed("dbc_a", set("property:read financial:read"));
        d.seed("dbc_a", set("property:write"));
        assert_eq!(d.seen("dbc_a"), set("financial:read property:write"));
        let granted = set("property:read property:write financial:read");
        assert!(d.observe_issued("dbc_a", granted, UnixTime(0)).is_empty());
        d.seed("dbc_b", set("tenant:read"));
        assert!(!lock(&d.state).seen.contains_key("dbc_b"));
    }

    #[test]
    fn privileged_means_write_financial_or_admin() {
        let privileged: ScopeSet = Scope::ALL
            .into_iter()
            .filter(|s| is_privileged(*s))
            .collect();
        assert_eq!(
            privileged,
            set(
                "property:write tenant:write financial:read financial:write admin:read admin:write"
            )
        );
    }

    #[test]
    fn scope_history_memory_is_bounded() {
        let mut d = ScopeRequestDetector::new();
        d.max_keys = 8;
        let fin = set("financial:read");
        for i in 0..100 {
            d.observe_issued(&format!("dbc_{i}"), fin, UnixTime(i));
            assert!(lock(&d.state).seen.len() <= 8);
        }
        assert_eq!(d.seen("dbc_99"), fin);
    }

    // --- anomaly scores ---

    #[test]
    fn history_shorter_than_a_day_is_not_judged() {
        assert_eq!(anomaly_score(1_000, &[]), None);
        assert_eq!(anomaly_score(1_000, &[10; 23]), None);
        assert!(anomaly_score(1_000, &[10; 24]).is_some());
    }

    #[test]
    fn flat_histories_use_the_poisson_floor() {
        assert_eq!(anomaly_score(50, &[0; 168]), Some(50.0));
        assert_eq!(anomaly_score(0, &[0; 168]), Some(0.0));
        assert_eq!(anomaly_score(100, &[100; 168]), Some(0.0));
        assert_eq!(anomaly_score(130, &[100; 168]), Some(3.0));
        assert_eq!(anomaly_score(70, &[100; 168]), Some(-3.0));
    }

    #[test]
    fn a_spread_history_uses_its_own_deviation() {
        // Mean 10, population std 10 (well above the floor √10).
        let history: Vec<u64> = [0, 20].repeat(12);
        assert_eq!(anomaly_score(10, &history), Some(0.0));
        assert_eq!(anomaly_score(60, &history), Some(5.0));
    }

    #[test]
    fn extreme_counts_stay_finite() {
        let s = anomaly_score(u64::MAX, &[u64::MAX; 168]).unwrap();
        assert!(s.is_finite());
        let s = anomaly_score(0, &[u64::MAX; 168]).unwrap();
        assert!(s.is_finite() && s < 0.0);
        let s = anomaly_score(u64::MAX, &[0; 168]).unwrap();
        assert!(s.is_finite() && s > 0.0);
    }

    // --- usage monitor ---

    fn hits(m: &UsageMonitor, client: &str, jti: &str, n: u64, at: i64) {
        for _ in 0..n {
            m.record(client, jti, UnixTime(at));
        }
    }

    #[test]
    fn a_spike_alerts_strictly_above_the_threshold_once_per_hour() {
        let m = UsageMonitor::new();
        let history = [100; 168];
        let t = 10 * SECS_PER_HOUR;
        hits(&m, "dbc_a", "jti1", 150, t);
        // Score exactly 5.0 is not above 5.0.
        assert!(m
            .check(
                "dbc_a",
                "jti1",
                &history,
                DEFAULT_ANOMALY_THRESHOLD,
                UnixTime(t)
            )
            .is_empty());
        hits(&m, "dbc_a", "jti1", 1, t + 1);
        let alerts = m.check("dbc_a", "jti1", &history, 5.0, UnixTime(t + 1));
        assert_eq!(alerts.len(), 2);
        let (client, token) = (&alerts[0], &alerts[1]);
        assert_eq!(client.kind, AlertKind::TokenUsageAnomaly);
        assert_eq!(client.subject, "client:dbc_a");
        assert_eq!(client.jti, None);
        assert_eq!(client.recommended_action, Some(ACTION_REVIEW_CLIENT));
        assert_eq!(client.score, Some(5.1));
        assert_eq!(token.subject, "token:jti1");
        assert_eq!(token.jti.as_deref(), Some("jti1"));
        assert_eq!(token.client_id.as_deref(), Some("dbc_a"));
        assert_eq!(token.recommended_action, Some(ACTION_REVOKE_TOKEN));
        assert_eq!(token.score, Some(5.1));

        // Same hour: no repeat, however high it goes.
        hits(&m, "dbc_a", "jti1", 500, t + 2);
        assert!(m
            .check("dbc_a", "jti1", &history, 5.0, UnixTime(t + 2))
            .is_empty());
        // Next hour: counts restart, and a new spike is reported again.
        let next = t + SECS_PER_HOUR;
        hits(&m, "dbc_a", "jti1", 151, next);
        assert_eq!(
            m.check("dbc_a", "jti1", &history, 5.0, UnixTime(next))
                .len(),
            2
        );
    }

    #[test]
    fn a_busy_client_spread_over_tokens_alerts_for_the_client_only() {
        let m = UsageMonitor::new();
        let history = [100; 168];
        hits(&m, "dbc_a", "jti1", 100, 0);
        hits(&m, "dbc_a", "jti2", 60, 0);
        let alerts = m.check("dbc_a", "jti1", &history, 5.0, UnixTime(0));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].subject, "client:dbc_a");
        assert_eq!(alerts[0].score, Some(6.0));
        assert!(m
            .check("dbc_a", "jti2", &history, 5.0, UnixTime(0))
            .is_empty());
    }

    #[test]
    fn a_token_spike_after_the_client_alerted_is_still_reported() {
        let m = UsageMonitor::new();
        let history = [10; 48];
        hits(&m, "dbc_a", "jti1", 30, 0);
        assert_eq!(
            m.check("dbc_a", "jti1", &history, 5.0, UnixTime(0)).len(),
            2
        );
        hits(&m, "dbc_a", "jti2", 30, 1);
        let alerts = m.check("dbc_a", "jti2", &history, 5.0, UnixTime(1));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].subject, "token:jti2");
    }

    #[test]
    fn no_history_or_no_requests_means_no_alerts() {
        let m = UsageMonitor::new();
        hits(&m, "dbc_a", "jti1", 10_000, 0);
        assert!(m
            .check("dbc_a", "jti1", &[0; 23], 5.0, UnixTime(0))
            .is_empty());
        // Silence is never a spike, whatever the threshold.
        assert!(m
            .check("dbc_b", "jti9", &[100; 168], -1e9, UnixTime(0))
            .is_empty());
        // Last hour's busy token is quiet this hour.
        assert!(m
            .check("dbc_a", "jti1", &[0; 168], 5.0, UnixTime(SECS_PER_HOUR))
            .is_empty());
    }

    #[test]
    fn roll_hour_hands_out_finished_hours_once_and_prunes_tokens() {
        let m = UsageMonitor::new();
        hits(&m, "dbc_b", "jti1", 2, 0);
        hits(&m, "dbc_a", "jti2", 3, 0);
        hits(&m, "dbc_a", "jti3", 4, SECS_PER_HOUR);
        hits(&m, "dbc_a", "jti4", 5, 2 * SECS_PER_HOUR);
        // The boundary: the last second of hour 1 leaves hour 1 open.
        assert_eq!(
            m.roll_hour(UnixTime(2 * SECS_PER_HOUR - 1)),
            vec![("dbc_a".into(), 0, 3), ("dbc_b".into(), 0, 2)]
        );
        assert_eq!(
            m.roll_hour(UnixTime(2 * SECS_PER_HOUR)),
            vec![("dbc_a".into(), 1, 4)]
        );
        assert!(m.roll_hour(UnixTime(2 * SECS_PER_HOUR)).is_empty());
        {
            let state = lock(&m.state);
            assert_eq!(state.clients.len(), 1);
            assert_eq!(state.tokens.len(), 1);
            assert!(state.tokens.contains_key("jti4"));
        }
        assert_eq!(
            m.roll_hour(UnixTime(3 * SECS_PER_HOUR)),
            vec![("dbc_a".into(), 2, 5)]
        );
        let state = lock(&m.state);
        assert!(state.clients.is_empty() && state.tokens.is_empty());
    }

    #[test]
    fn late_records_for_a_rolled_hour_count_in_the_current_one() {
        let m = UsageMonitor::new();
        hits(&m, "dbc_a", "jti1", 3, 0);
        assert_eq!(
            m.roll_hour(UnixTime(SECS_PER_HOUR)),
            vec![("dbc_a".into(), 0, 3)]
        );
        m.record("dbc_a", "jti1", UnixTime(SECS_PER_HOUR - 1));
        m.record("dbc_a", "jti1", UnixTime(SECS_PER_HOUR + 5));
        assert_eq!(
            m.roll_hour(UnixTime(2 * SECS_PER_HOUR)),
            vec![("dbc_a".into(), 1, 2)]
        );
    }

    #[test]
    fn unrolled_hours_are_capped_per_client() {
        let m = UsageMonitor::new();
        for h in 0..(MAX_PENDING_HOURS as i64 + 10) {
            m.record("dbc_a", "jti", UnixTime(h * SECS_PER_HOUR));
        }
        let rolled = m.roll_hour(UnixTime(1_000 * SECS_PER_HOUR));
        assert_eq!(rolled.len(), MAX_PENDING_HOURS);
        assert_eq!(rolled[0].1, 10);
    }

    #[test]
    fn token_memory_is_bounded_and_busy_tokens_survive_a_flood() {
        let mut m = UsageMonitor::new();
        m.max_keys = 16;
        hits(&m, "dbc_a", "busy", 50, 0);
        for i in 0..1_000 {
            m.record("dbc_a", &format!("jti{i}"), UnixTime(1));
            assert!(lock(&m.state).tokens.len() <= 16);
        }
        assert_eq!(lock(&m.state).tokens.get("busy").map(|t| t.count), Some(50));
    }

    #[test]
    fn alerts_serialise_with_snake_case_kinds() {
        for (kind, name) in [
            (AlertKind::MultipleAuthFailures, "multiple_auth_failures"),
            (AlertKind::UnusualScopeRequest, "unusual_scope_request"),
            (AlertKind::TokenUsageAnomaly, "token_usage_anomaly"),
        ] {
            assert_eq!(kind.as_str(), name);
            assert_eq!(kind.to_string(), name);
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
        }
        let alert = AuthFailureDetector::new(1, 60)
            .record_failure(IP, UnixTime(42))
            .unwrap();
        let json = serde_json::to_value(&alert).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "multiple_auth_failures",
                "subject": format!("ip:{IP}"),
                "client_id": null,
                "ip": IP,
                "jti": null,
                "score": null,
                "detail": format!("1 failed authentications from {IP} within 60 s"),
                "recommended_action": "block_ip",
                "at": 42,
            })
        );
    }

    fn history() -> impl Strategy<Value = Vec<u64>> {
        prop::collection::vec(any::<u64>(), 0..200)
    }

    proptest! {
        #[test]
        fn score_is_never_nan_or_infinite(current in any::<u64>(), history in history()) {
            match anomaly_score(current, &history) {
                Some(s) => {
                    prop_assert!(history.len() >= MIN_HISTORY_HOURS);
                    prop_assert!(s.is_finite());
                }
                None => prop_assert!(history.len() < MIN_HISTORY_HOURS),
            }
        }

        #[test]
        fn score_is_zero_at_the_mean_with_spread(
            mean in 1_000u64..1_000_000,
            spread in 1u64..1_000,
            pairs in 12usize..=84,
        ) {
            let history: Vec<u64> = [mean - spread, mean + spread].repeat(pairs);
            prop_assert_eq!(anomaly_score(mean, &history), Some(0.0));
        }

        #[test]
        fn score_grows_with_current(
            history in prop::collection::vec(0u64..1_000_000_000, 24..=168),
            a in 0u64..1_000_000_000_000,
            step in 1u64..1_000_000,
            x in any::<u64>(),
            y in any::<u64>(),
        ) {
            let score = |c| anomaly_score(c, &history).unwrap();
            prop_assert!(score(a) < score(a + step));
            // Beyond 2^53 counts round, so only non-decreasing there.
            let (lo, hi) = (x.min(y), x.max(y));
            prop_assert!(score(lo) <= score(hi));
        }
    }
}
