//! The HTTP layer's metrics, recorded through the `metrics` facade: requests and a
//! latency histogram by method, matched route and status, and errors by code. Spans come from
//! `tower_http::trace::TraceLayer` (see [`super::router`]); this middleware only counts.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

use super::error::ErrorCode;

/// Records the request's latency and, for an error response, its code. Unmatched paths
/// count under the route `unmatched`, so arbitrary URLs cannot grow the label set.
pub async fn record(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "sessiond_http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status.clone()
    )
    .increment(1);
    metrics::histogram!(
        "sessiond_http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => status
    )
    .record(started.elapsed().as_secs_f64());
    if let Some(code) = response.extensions().get::<ErrorCode>() {
        metrics::counter!("sessiond_http_errors_total", "code" => code.as_str()).increment(1);
        if *code == ErrorCode::Conflict {
            metrics::counter!("sessiond_command_conflicts_total").increment(1);
        }
    }
    response
}

/// Records a command that took `attempts` tries (retries = attempts - 1).
pub fn command_attempts(attempts: u32) {
    metrics::counter!("sessiond_command_retries_total")
        .increment(u64::from(attempts.saturating_sub(1)));
}

/// Records a response replayed from an idempotency record.
pub fn idempotent_replay() {
    metrics::counter!("sessiond_idempotent_replays_total").increment(1);
}
