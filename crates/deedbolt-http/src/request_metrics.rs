//! Request counts and latency histograms by route template and status, for `/metrics`.
//!
//! The route label is the router's template (`/api/properties/{id}`), never the raw
//! path: ids, codes or anything else a client puts in a URL never reach the metrics, and
//! the number of series is bounded by the routes and the statuses the server answers
//! with. A path no route matches is counted as `unmatched`.
//!
//! The hot path takes two uncontended read locks and a few relaxed atomic increments; a
//! series is allocated once, the first time its route and status are seen.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

/// The histogram's upper bounds in microseconds (rendered in seconds): from 0.5 ms, where
/// a token request on a fast machine lands, to 10 s, past which the request timeout is near.
const BUCKETS_MICROS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// One route and status: a count and a latency histogram.
#[derive(Debug, Default)]
struct Series {
    /// Per bucket, not cumulative (the last one is +Inf); made cumulative when rendered.
    buckets: [AtomicU64; BUCKETS_MICROS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Series {
    fn observe(&self, micros: u64) {
        let bucket = BUCKETS_MICROS.partition_point(|bound| *bound < micros);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// The series of one route, by status.
#[derive(Debug, Default)]
struct Route {
    statuses: RwLock<Vec<(u16, Series)>>,
}

impl Route {
    /// Counts into an existing series; `false` if `status` has none yet.
    fn observe_existing(&self, status: u16, micros: u64) -> bool {
        let statuses = self.statuses.read().unwrap_or_else(PoisonError::into_inner);
        match statuses.iter().find(|(s, _)| *s == status) {
            Some((_, series)) => {
                series.observe(micros);
                true
            }
            None => false,
        }
    }

    fn observe_new(&self, status: u16, micros: u64) {
        let mut statuses = self
            .statuses
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, series)) = statuses.iter().find(|(s, _)| *s == status) {
            series.observe(micros);
            return;
        }
        let series = Series::default();
        series.observe(micros);
        statuses.push((status, series));
    }
}

/// Every route's series.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    routes: RwLock<HashMap<Box<str>, Route>>,
}

impl RequestMetrics {
    /// Counts a request to `route` (a template) answered with `status` after `micros`.
    pub fn observe(&self, route: &str, status: u16, micros: u64) {
        {
            let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(r) = routes.get(route) {
                if !r.observe_existing(status, micros) {
                    r.observe_new(status, micros);
                }
                return;
            }
        }
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        routes
            .entry(Box::from(route))
            .or_default()
            .observe_new(status, micros);
    }

    /// Appends `deedbolt_http_requests_total` and `deedbolt_http_request_duration_seconds`
    /// in the Prometheus text format, series sorted by route and status.
    pub fn render(&self, out: &mut String) {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        let mut rows: Vec<(&str, u16, [u64; BUCKETS_MICROS.len() + 1], u64, u64)> = Vec::new();
        for (route, r) in routes.iter() {
            let statuses = r.statuses.read().unwrap_or_else(PoisonError::into_inner);
            for (status, s) in statuses.iter() {
                let mut buckets = [0; BUCKETS_MICROS.len() + 1];
                for (to, from) in buckets.iter_mut().zip(&s.buckets) {
                    *to = from.load(Ordering::Relaxed);
                }
                rows.push((
                    route,
                    *status,
                    buckets,
                    s.sum_micros.load(Ordering::Relaxed),
                    // The count is the sum of the buckets read, so that +Inf and _count
                    // agree even while requests are being counted.
                    buckets.iter().sum(),
                ));
            }
        }
        rows.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));

        out.push_str(
            "# HELP deedbolt_http_requests_total HTTP requests answered, by route template and status.\n\
             # TYPE deedbolt_http_requests_total counter\n",
        );
        for (route, status, _, _, count) in &rows {
            let route = escape(route);
            let _ = writeln!(
                out,
                "deedbolt_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP deedbolt_http_request_duration_seconds Time to answer an HTTP request, by route template and status.\n\
             # TYPE deedbolt_http_request_duration_seconds histogram\n",
        );
        for (route, status, buckets, sum, count) in &rows {
            let route = escape(route);
            let labels = format!("route=\"{route}\",status=\"{status}\"");
            let mut cumulative = 0;
            for (i, n) in buckets.iter().enumerate() {
                cumulative += n;
                let le = match BUCKETS_MICROS.get(i) {
                    Some(bound) => seconds(*bound),
                    None => "+Inf".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "deedbolt_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "deedbolt_http_request_duration_seconds_sum{{{labels}}} {}",
                seconds(*sum)
            );
            let _ = writeln!(
                out,
                "deedbolt_http_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
    }
}

/// Microseconds as decimal seconds, exactly (no float rounding).
fn seconds(micros: u64) -> String {
    let (whole, frac) = (micros / 1_000_000, micros % 1_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:06}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// A label value escaped as the text format requires (backslash, quote, newline).
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        std::borrow::Cow::Owned(
            value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n"),
        )
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_agree_with_the_counts() {
        let m = RequestMetrics::default();
        for micros in [100, 700, 700, 20_000, 60_000_000] {
            m.observe("/token", 200, micros);
        }
        m.observe("/token", 401, 1_000);
        m.observe("/api/properties/{id}", 404, 2_000);
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("deedbolt_http_requests_total{route=\"/token\",status=\"200\"} 5\n"));
        assert!(out.contains("deedbolt_http_requests_total{route=\"/token\",status=\"401\"} 1\n"));
        let bucket = |le: &str| {
            format!(
                "deedbolt_http_request_duration_seconds_bucket{{route=\"/token\",status=\"200\",le=\"{le}\"}} "
            )
        };
        assert!(out.contains(&format!("{}1\n", bucket("0.0005"))), "{out}");
        assert!(out.contains(&format!("{}3\n", bucket("0.001"))), "{out}");
        assert!(out.contains(&format!("{}4\n", bucket("0.025"))), "{out}");
        assert!(out.contains(&format!("{}4\n", bucket("10"))), "{out}");
        assert!(out.contains(&format!("{}5\n", bucket("+Inf"))), "{out}");
        assert!(out.contains(
            "deedbolt_http_request_duration_seconds_sum{route=\"/token\",status=\"200\"} 60.0215\n"
        ));
        assert!(out.contains(
            "deedbolt_http_request_duration_seconds_count{route=\"/api/properties/{id}\",status=\"404\"} 1\n"
        ));
        // Sorted: the API route before /token, 200 before 401.
        let api = out.find("route=\"/api/properties/{id}\"").unwrap();
        let ok = out.find("route=\"/token\",status=\"200\"").unwrap();
        let denied = out.find("route=\"/token\",status=\"401\"").unwrap();
        assert!(api < ok && ok < denied);
    }

    #[test]
    fn seconds_are_exact_and_labels_escaped() {
        assert_eq!(seconds(500), "0.0005");
        assert_eq!(seconds(2_500_000), "2.5");
        assert_eq!(seconds(10_000_000), "10");
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape("/token"), "/token");
    }
}
