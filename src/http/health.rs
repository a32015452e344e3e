//! `GET /healthz` (liveness), `GET /readyz` (store reachable, migrations applied) and
//! `GET /metrics` (Prometheus). No authentication.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorCode};
use super::AppState;

/// `router()` of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// A health answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: &'static str,
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// Readiness: the store answers (migrations were applied before the server started)
/// and no background worker is down. 503 `store_unavailable` or `not_ready` otherwise.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses((status = 200, body = Health), (status = 503, body = super::error::ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    state
        .app
        .store
        .ping()
        .await
        .map_err(ApiError::unavailable)?;
    let down = state.app.supervisor.down();
    if !down.is_empty() {
        let names: Vec<String> = down
            .iter()
            .map(|(name, failure)| format!("'{name}' ({failure})"))
            .collect();
        return Err(ApiError::new(
            ErrorCode::NotReady,
            format!(
                "background workers are down and restarting: {}",
                names.join(", ")
            ),
        ));
    }
    Ok(axum::Json(Health { status: "ready" }))
}

/// Prometheus text exposition: request latency by route, errors by code, command
/// conflicts and retries, the scheduler's counters, the workers' health, open
/// streams, sessions by status, projection position / lag / failures.
#[utoipa::path(get, path = "/metrics", tag = "health", security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
              (status = 503, body = super::error::ErrorBody)))]
async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    // Gauges read from the store at scrape time.
    let counts = projections::models::session_list::count_by_status(state.app.db()).await?;
    for status in domain::session::ALL_STATUSES {
        let n = counts
            .iter()
            .find(|(s, _)| s == status.as_str())
            .map(|(_, n)| *n)
            .unwrap_or(0);
        metrics::gauge!("sessiond_sessions", "status" => status.as_str()).set(n as f64);
    }
    for s in state.app.engine.status().await? {
        let p = s.name.clone();
        metrics::gauge!("sessiond_projection_position", "projection" => p.clone())
            .set(s.position as f64);
        metrics::gauge!("sessiond_projection_lag_events", "projection" => p.clone())
            .set(s.lag_events as f64);
        metrics::gauge!("sessiond_projection_lag_seconds", "projection" => p.clone())
            .set(s.lag_seconds);
        metrics::gauge!("sessiond_projection_consecutive_failures", "projection" => p.clone())
            .set(s.failures as f64);
        metrics::counter!("sessiond_projection_failures_total", "projection" => p).increment(0);
    }
    let handle = crate::telemetry::metrics();
    handle.run_upkeep();
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    ))
}
