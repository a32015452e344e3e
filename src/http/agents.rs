//! `/v1/agents`: registration, heartbeats and the assignments long-poll (SPEC §1.4, §4).
//! An agent key acts for its own agent id only (403 otherwise); admins act for any.

use axum::extract::{Path, State};
use domain::ResourceSlots;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{Caller, Json, Query};
use super::AppState;

/// `router()` of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_agent))
        .routes(routes!(heartbeat))
        .routes(routes!(assignments))
}

/// Body of `POST /v1/agents`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterAgentBody {
    /// The agent's id (an agent key may only register its own).
    pub agent_id: String,
    /// The scaling group it serves.
    pub scaling_group: String,
    /// Where it can be reached.
    pub addr: String,
    /// Its capacity, e.g. `{"cpu": 8, "mem": "32g", "cuda.device": 2}`.
    #[schema(value_type = Object)]
    pub available_slots: serde_json::Value,
}

/// An agent after registration.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentWritten {
    /// Id.
    pub agent_id: String,
    /// Group.
    pub scaling_group: String,
    /// `ALIVE | LOST | TERMINATED`.
    pub status: String,
    /// Capacity.
    #[schema(value_type = Object)]
    pub available_slots: ResourceSlots,
    /// Consistency token.
    pub position: i64,
}

/// Register an agent, or update its group, address or capacity (re-registering a LOST
/// agent revives it). Counts as a heartbeat.
#[utoipa::path(post, path = "/v1/agents", tag = "agents",
    request_body = RegisterAgentBody,
    responses((status = 200, body = AgentWritten), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn register_agent(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<RegisterAgentBody>,
) -> Result<axum::Json<AgentWritten>, ApiError> {
    caller.require_agent(&body.agent_id)?;
    let available_slots = ResourceSlots::from_json(&body.available_slots, "available_slots")?;
    let meta = state.metadata(&caller.0);
    let agent_id = body.agent_id.clone();
    let committed = crate::agents::register(
        &state.app,
        crate::agents::RegisterAgent {
            agent_id: body.agent_id,
            scaling_group: body.scaling_group,
            addr: body.addr,
            available_slots,
        },
        &meta,
    )
    .await?;
    state.metrics.command_attempts(committed.attempts);
    let position = state.position_after(&committed, &agent_id).await?;
    let a = &committed.state;
    Ok(axum::Json(AgentWritten {
        agent_id: a.agent_id.clone(),
        scaling_group: a.scaling_group.clone(),
        status: serde_json::to_value(a.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        available_slots: a.available_slots.clone(),
        position,
    }))
}

/// Acknowledgement of a heartbeat.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HeartbeatAck {
    /// The agent.
    pub agent_id: String,
    /// Always 0: heartbeats are not events (SPEC §1.4), so they have no position.
    pub position: i64,
}

/// Liveness: records the agent's last-seen time (not an event).
#[utoipa::path(post, path = "/v1/agents/{id}/heartbeat", tag = "agents",
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = HeartbeatAck), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<HeartbeatAck>, ApiError> {
    caller.require_agent(&id)?;
    crate::agents::heartbeat(&state.app, &id).await?;
    Ok(axum::Json(HeartbeatAck {
        agent_id: id,
        position: 0,
    }))
}

/// Query parameters of the assignments long-poll.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssignmentParams {
    /// Seconds to wait for a change (0 = answer at once; capped by the server).
    pub wait: Option<u64>,
    /// The `version` of the last answer: wait until the assignments differ from it.
    /// Without it, wait until there is at least one assignment.
    pub version: Option<String>,
}

/// One session the agent should act on.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssignmentView {
    /// The session.
    pub session_id: String,
    /// `start` or `stop`.
    pub action: String,
    /// Its status.
    pub status: String,
    /// Image.
    pub image: String,
    /// Slots held on this agent.
    #[schema(value_type = Object)]
    pub slots: ResourceSlots,
    /// Batch command.
    pub startup_command: Option<String>,
    /// Kernels.
    pub cluster_size: u32,
}

/// The agent's assignments.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Assignments {
    /// Sessions to start or stop.
    pub items: Vec<AssignmentView>,
    /// Fingerprint of `items`: pass as `?version=` to wait for the next change.
    pub version: String,
}

async fn current(state: &AppState, agent_id: &str) -> Result<Assignments, ApiError> {
    let items: Vec<AssignmentView> = crate::agents::assignments(&state.app, agent_id)
        .await?
        .into_iter()
        .map(|a| AssignmentView {
            session_id: a.session_id.to_string(),
            action: a.action.to_string(),
            status: a.status.as_str().to_string(),
            image: a.image,
            slots: a.slots,
            startup_command: a.startup_command,
            cluster_size: a.cluster_size,
        })
        .collect();
    let text = serde_json::to_string(&items).map_err(ApiError::internal)?;
    let version: String = Sha256::digest(text.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Assignments { items, version })
}

/// Sessions to start or stop on this agent; long-poll with `?wait=` (seconds) and
/// `?version=`.
#[utoipa::path(get, path = "/v1/agents/{id}/assignments", tag = "agents",
    params(("id" = String, Path, description = "Agent id"), AssignmentParams),
    responses((status = 200, body = Assignments), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn assignments(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<AssignmentParams>,
) -> Result<axum::Json<Assignments>, ApiError> {
    caller.require_agent(&id)?;
    let wait = Duration::from_secs(params.wait.unwrap_or(0)).min(state.config.max_long_poll);
    let deadline = tokio::time::Instant::now() + wait;
    let appended = state.app.store.appended();
    let mut shutdown = state.shutdown.clone();
    loop {
        let notified = appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let now = current(&state, &id).await?;
        let changed = match &params.version {
            Some(v) => &now.version != v,
            None => !now.items.is_empty(),
        };
        if changed || tokio::time::Instant::now() >= deadline || *shutdown.borrow() {
            return Ok(axum::Json(now));
        }
        // An append here wakes us, but the read models apply it a moment later; the
        // short poll covers that and appends by other replicas.
        tokio::select! {
            _ = &mut notified => tokio::time::sleep(Duration::from_millis(20)).await,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    }
}
