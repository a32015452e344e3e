//! Tracing set-up, once per process: `RUST_LOG`-style filter (default `info`), pretty
//! or JSON output on stderr; and [`error_chain`] for logging an error with its causes.
//!
//! Log lines can never be forged through a field: in pretty output every field value
//! (the message too) has its control characters escaped (`\n` is written as `\\n`), so
//! one event is always one line; JSON output escapes them by construction.

use std::fmt::Write as _;
use std::io::IsTerminal;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// Installs the global subscriber. Calling it twice is harmless (the second is ignored).
pub fn init(format: LogFormat) {
    init_with_default(format, "info,sqlx=warn");
}

/// [`init`] with another filter when `RUST_LOG` is not set (`sessiond demo` logs only
/// warnings: its live view is the output).
pub fn init_with_default(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.fmt_fields(EscapingFields::default()).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// `outer: inner: root` for an error and its sources (the store's, shared).
pub use store::error_chain;

/// The default field formatter with every control character escaped.
#[derive(Debug, Default)]
pub struct EscapingFields(DefaultFields);

impl<'w> FormatFields<'w> for EscapingFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut buf = String::new();
        self.0.format_fields(Writer::new(&mut buf), fields)?;
        writer.write_str(&escape_controls(&buf))
    }
}

/// `s` with control characters written as escapes (`\n`, `\r`, `\t`, `\u{7}`).
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len().saturating_add(8));
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Upper bounds (seconds) of the HTTP latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static METRICS: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
    std::sync::OnceLock::new();

/// Installs the process's metrics recorder (once; later calls return the same handle)
/// and describes the families sessiond records, so `/metrics` lists each from the start.
pub fn metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    METRICS.get_or_init(|| {
        use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
        let builder = PrometheusBuilder::new();
        let builder = builder
            .set_buckets_for_metric(
                Matcher::Full("sessiond_http_request_duration_seconds".into()),
                &LATENCY_BUCKETS,
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let handle = match builder.install_recorder() {
            Ok(h) => h,
            // Another recorder was installed first (a host program): render our own.
            Err(_) => PrometheusBuilder::new().build_recorder().handle(),
        };
        describe_metrics();
        handle
    })
}

/// HELP texts of every family, and a zero for every unlabelled counter so it is listed
/// before it first moves.
fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_histogram!(
        "sessiond_http_request_duration_seconds",
        Unit::Seconds,
        "Latency of HTTP requests by method, matched route and status."
    );
    describe_counter!(
        "sessiond_http_requests_total",
        "HTTP requests answered, by method, matched route and status."
    );
    describe_counter!(
        "sessiond_http_errors_total",
        "Error responses by error code."
    );
    describe_counter!(
        "sessiond_command_conflicts_total",
        "API commands that still conflicted after every internal retry (answered 409 conflict)."
    );
    describe_counter!(
        "sessiond_command_retries_total",
        "Internal retries of API commands after optimistic-concurrency conflicts."
    );
    describe_counter!(
        "sessiond_command_conflicts_retried_total",
        "Optimistic-concurrency conflicts met by any command (API or worker) and retried."
    );
    describe_counter!(
        "sessiond_idempotent_replays_total",
        "POST /v1/sessions answered from an Idempotency-Key record."
    );
    describe_gauge!(
        "sessiond_sessions",
        "Sessions by status (sessions read model)."
    );
    describe_gauge!(
        "sessiond_projection_position",
        "Global position of the last applied event."
    );
    describe_gauge!(
        "sessiond_projection_lag_events",
        "Events in the log not yet applied."
    );
    describe_gauge!(
        "sessiond_projection_lag_seconds",
        "Age of the oldest event not yet applied."
    );
    describe_gauge!(
        "sessiond_projection_consecutive_failures",
        "Failed attempts since the last success (0 = healthy)."
    );
    describe_counter!(
        "sessiond_projection_failures_total",
        "Failed batches seen by this process."
    );
    describe_gauge!(
        "sessiond_streams_open",
        "Server-Sent Event streams and long-polls open now."
    );
    describe_gauge!(
        "sessiond_store_reachable",
        "1 while the store answers, 0 while requests are refused with store_unavailable."
    );
    describe_counter!(
        "sessiond_streams_refused_total",
        "Streams and long-polls refused with 429, by the limit reached."
    );
    describe_counter!(
        "sessiond_rate_limited_total",
        "Requests refused with 429 rate_limited (a key over its request rate)."
    );
    describe_counter!(
        "sessiond_idempotency_purged_total",
        "Idempotency-Key records purged after their time to live."
    );
    describe_counter!(
        "sessiond_snapshots_written_total",
        "Stream snapshots written (a load folded snapshot_every events or more)."
    );
    describe_counter!(
        "sessiond_snapshots_ignored_total",
        "Snapshots not used, by reason (schema_version, undecodable): the stream was folded whole."
    );
    describe_counter!(
        "sessiond_snapshots_failed_total",
        "Snapshots that could not be written (the stream stays readable from its events)."
    );
    describe_histogram!(
        "sessiond_stream_events_folded",
        "Events folded per stream load on top of its snapshot, by aggregate type."
    );
    crate::supervisor::describe_metrics();
    crate::tasks::describe_metrics();
    crate::webhooks::dispatcher::describe_metrics();
    for (name, help) in crate::scheduler::stats::COUNTERS {
        describe_counter!(name, help);
        metrics::counter!(name).increment(0);
    }
    for name in [
        "sessiond_command_conflicts_total",
        "sessiond_command_retries_total",
        "sessiond_command_conflicts_retried_total",
        "sessiond_idempotent_replays_total",
        "sessiond_snapshots_written_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    metrics::gauge!("sessiond_streams_open").set(0.0);
    metrics::gauge!("sessiond_store_reachable").set(1.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map(|mut v| v.extend_from_slice(buf)).ok();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_field_with_a_newline_cannot_forge_a_second_log_line() {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .fmt_fields(EscapingFields::default())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let id = "evil\n2026-12-01T00:00:00Z  INFO sessiond::server: FORGED LINE";
            tracing::warn!(agent_id = %id, "agent LOST: {id}");
        });
        let out = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains("evil\\n2026"));
    }

    #[test]
    fn control_characters_are_escaped_and_text_is_kept() {
        assert_eq!(escape_controls("a\tb\u{7}c é"), "a\\tb\\u{7}c é");
        assert_eq!(escape_controls("plain"), "plain");
    }
}
