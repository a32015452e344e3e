//! `GET /healthz` (liveness), `GET /readyz` (store reachable, migrations applied) and
//! `GET /metrics` (Prometheus). No authentication.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::metrics::{escape, family};
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

/// Readiness: the store answers (migrations were applied before the server started).
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses((status = 200, body = Health), (status = 503, body = super::error::ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    state
        .app
        .store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
    Ok(axum::Json(Health { status: "ready" }))
}

/// Prometheus text exposition: request latency by route, errors by code, command
/// conflicts and retries, the scheduler's counters, sessions by status, projection
/// position / lag / failures.
#[utoipa::path(get, path = "/metrics", tag = "health", security(()),
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut out = String::new();
    state.metrics.render(&mut out);
    state.app.scheduler_stats.render(&mut out);

    let counts = projections::models::session_list::count_by_status(state.app.db()).await?;
    family(
        &mut out,
        "sessiond_sessions",
        "gauge",
        "Sessions by status (sessions read model).",
    );
    for status in domain::session::ALL_STATUSES {
        let n = counts
            .iter()
            .find(|(s, _)| s == status.as_str())
            .map(|(_, n)| *n)
            .unwrap_or(0);
        out.push_str(&format!(
            "sessiond_sessions{{status=\"{}\"}} {n}\n",
            status.as_str()
        ));
    }

    let statuses = state.app.engine.status().await?;
    let failures = state.app.engine.failure_counts();
    type Value = fn(&projections::ProjectionStatus) -> String;
    let families: [(&str, &str, &str, Value); 4] = [
        (
            "sessiond_projection_position",
            "gauge",
            "Global position of the last applied event.",
            |s| s.position.to_string(),
        ),
        (
            "sessiond_projection_lag_events",
            "gauge",
            "Events in the log not yet applied.",
            |s| s.lag_events.to_string(),
        ),
        (
            "sessiond_projection_lag_seconds",
            "gauge",
            "Age of the oldest event not yet applied.",
            |s| format!("{:.3}", s.lag_seconds),
        ),
        (
            "sessiond_projection_consecutive_failures",
            "gauge",
            "Failed attempts since the last success (0 = healthy).",
            |s| s.failures.to_string(),
        ),
    ];
    for (name, kind, help, value) in families {
        family(&mut out, name, kind, help);
        for s in &statuses {
            out.push_str(&format!(
                "{name}{{projection=\"{}\"}} {}\n",
                escape(&s.name),
                value(s)
            ));
        }
    }
    family(
        &mut out,
        "sessiond_projection_failures_total",
        "counter",
        "Failed batches seen by this process.",
    );
    for s in &statuses {
        out.push_str(&format!(
            "sessiond_projection_failures_total{{projection=\"{}\"}} {}\n",
            escape(&s.name),
            failures.get(s.name.as_str()).copied().unwrap_or(0)
        ));
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out,
    ))
}
