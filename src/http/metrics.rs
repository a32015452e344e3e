//! Prometheus metrics of the API: request latency histograms by route, errors by code,
//! command conflicts and retries, idempotent replays; rendered by `GET /metrics`
//! together with sessions by status and the projections' lag (read from the store at
//! scrape time).
//!
//! A small hand-rolled registry: a few label sets, no dependency. Locks are plain
//! `std::sync::Mutex`es held only while updating a map, never across `.await`.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tracing::Instrument;

use super::error::ErrorCode;
use super::AppState;

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// The API's counters and histograms.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (method, route, status) -> latency.
    requests: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    /// error code -> count.
    errors: Mutex<BTreeMap<String, u64>>,
    conflicts: AtomicU64,
    retries: AtomicU64,
    replays: AtomicU64,
}

impl Metrics {
    /// Records a command that took `attempts` tries (retries = attempts - 1).
    pub fn command_attempts(&self, attempts: u32) {
        self.retries
            .fetch_add(u64::from(attempts.saturating_sub(1)), Ordering::Relaxed);
    }

    /// Records a response replayed from an idempotency record.
    pub fn idempotent_replay(&self) {
        self.replays.fetch_add(1, Ordering::Relaxed);
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        if let Ok(mut m) = self.requests.lock() {
            m.entry((method.to_string(), route.to_string(), status))
                .or_default()
                .observe(seconds);
        }
    }

    fn error(&self, code: &str) {
        if code == "conflict" {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(code.to_string()).or_default() += 1;
        }
    }

    /// The API's own families in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let requests = self.requests.lock().map(|m| m.clone()).unwrap_or_default();
        family(
            out,
            "sessiond_http_request_duration_seconds",
            "histogram",
            "Latency of HTTP requests by method, matched route and status.",
        );
        for ((method, route, status), h) in &requests {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                escape(route)
            );
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "sessiond_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "sessiond_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "sessiond_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "sessiond_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        let errors = self.errors.lock().map(|m| m.clone()).unwrap_or_default();
        family(
            out,
            "sessiond_http_errors_total",
            "counter",
            "Error responses by error code.",
        );
        for (code, n) in &errors {
            let _ = writeln!(
                out,
                "sessiond_http_errors_total{{code=\"{}\"}} {n}",
                escape(code)
            );
        }
        family(
            out,
            "sessiond_command_conflicts_total",
            "counter",
            "API commands that still conflicted after every internal retry (answered 409 conflict).",
        );
        let _ = writeln!(
            out,
            "sessiond_command_conflicts_total {}",
            self.conflicts.load(Ordering::Relaxed)
        );
        family(
            out,
            "sessiond_command_retries_total",
            "counter",
            "Internal retries of API commands after optimistic-concurrency conflicts.",
        );
        let _ = writeln!(
            out,
            "sessiond_command_retries_total {}",
            self.retries.load(Ordering::Relaxed)
        );
        family(
            out,
            "sessiond_idempotent_replays_total",
            "counter",
            "POST /v1/sessions answered from an Idempotency-Key record.",
        );
        let _ = writeln!(
            out,
            "sessiond_idempotent_replays_total {}",
            self.replays.load(Ordering::Relaxed)
        );
    }
}

/// `# HELP` and `# TYPE` lines of a family.
pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Middleware: a tracing span per request carrying the matched route, and the latency
/// histogram / error counters. Unmatched paths are counted under the route `unmatched`
/// so arbitrary URLs cannot grow the label set.
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let span = tracing::info_span!("request", %method, %route, status = tracing::field::Empty);
    let started = Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.record("status", status);
    state
        .metrics
        .observe(&method, &route, status, started.elapsed().as_secs_f64());
    if let Some(ErrorCode(code)) = response.extensions().get::<ErrorCode>() {
        state.metrics.error(code);
    }
    response
}
