//! `/v1/agents`: registration, heartbeats and the assignments long-poll (SPEC §1.4, §4).
//! An agent key acts for its own agent id only (403 otherwise); admins act for any.

use axum::extract::{Path, State};
use domain::agent::Agent;
use domain::ids::{AgentAddr, AgentId, GroupName};
use domain::resources::SlotUse;
use domain::session::Session;
use domain::{Decider, ResourceSlots};
use projections::models::{documents, AGENT_OCCUPANCY, SESSIONS};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{Caller, Json, MinPosition, Query};
use super::{schema, AppState};

/// `router()` of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_agent, list_agents))
        .routes(routes!(heartbeat))
        .routes(routes!(assignments))
}

/// Body of `POST /v1/agents`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterAgentBody {
    /// The agent's id (an agent key may only register its own).
    #[schema(schema_with = schema::agent_id)]
    pub agent_id: String,
    /// The scaling group it serves (must exist).
    #[schema(schema_with = schema::group_name)]
    pub scaling_group: String,
    /// Where it can be reached.
    #[schema(schema_with = schema::addr)]
    pub addr: String,
    /// Its capacity, e.g. `{"cpu": 8, "mem": "32g", "cuda.device": 2}`.
    #[schema(schema_with = schema::capacity_slots)]
    pub available_slots: serde_json::Value,
}

/// An agent as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    /// Id.
    pub agent_id: String,
    /// Group.
    pub scaling_group: String,
    /// Where it can be reached.
    pub addr: String,
    /// `ALIVE | LOST | TERMINATED`.
    pub status: String,
    /// Capacity.
    #[schema(value_type = Object)]
    pub available_slots: ResourceSlots,
    /// Slots held by sessions placed on it.
    #[schema(value_type = Object)]
    pub occupied_slots: ResourceSlots,
    /// The agent holds more than its capacity: it re-registered with less than it had
    /// allocated. Its sessions keep running; nothing new is placed on it until enough
    /// of them end (docs/adr/0003-scheduler.md).
    pub over_capacity: bool,
    /// Number of sessions holding slots on it.
    pub sessions: usize,
}

impl From<&Agent> for AgentView {
    fn from(a: &Agent) -> Self {
        Self {
            agent_id: a.agent_id.clone(),
            scaling_group: a.scaling_group.clone(),
            addr: a.addr.clone(),
            status: a.status.as_str().to_string(),
            available_slots: a.available_slots.clone(),
            occupied_slots: a.occupied_slots().unwrap_or_default(),
            over_capacity: a.over_capacity(),
            sessions: a.allocations.len(),
        }
    }
}

/// An agent after registration.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentWritten {
    /// The agent after the command.
    #[serde(flatten)]
    pub agent: AgentView,
    /// Consistency token.
    pub position: i64,
}

/// An agent in the list, with its liveness.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentListItem {
    /// The agent.
    #[serde(flatten)]
    pub agent: AgentView,
    /// Its last heartbeat as this store recorded it (`null`: none recorded yet).
    pub last_heartbeat_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Seconds since then by the server's clock (`null`: none recorded yet); the agent
    /// is marked LOST after `agent_lost_after_secs` (default 30).
    pub seconds_since_heartbeat: Option<i64>,
}

/// Registered agents.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentList {
    /// Every registered agent, by scaling group then id.
    pub items: Vec<AgentListItem>,
}

/// Register an agent, or update its group, address or capacity (re-registering a LOST
/// agent revives it). Counts as a heartbeat.
#[utoipa::path(post, path = "/v1/agents", tag = "agents",
    request_body = RegisterAgentBody,
    responses((status = 200, body = AgentWritten),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 415, body = ErrorBody),
              (status = 422, description = "invalid field, or a scaling group that does not exist", body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn register_agent(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<RegisterAgentBody>,
) -> Result<axum::Json<AgentWritten>, ApiError> {
    let agent_id = AgentId::parse("agent_id", &body.agent_id)?;
    caller.require_agent(&agent_id)?;
    let request = crate::agents::RegisterAgent {
        agent_id: agent_id.clone(),
        scaling_group: GroupName::parse("scaling_group", &body.scaling_group)?,
        addr: AgentAddr::parse("addr", &body.addr)?,
        available_slots: ResourceSlots::parse(
            &body.available_slots,
            "available_slots",
            SlotUse::Capacity,
        )?,
    };
    let meta = state.metadata(&caller.0);
    let committed = crate::agents::register(&state.app, request, &meta).await?;
    super::metrics::command_attempts(committed.attempts);
    let position = state.position_after(&committed, &agent_id).await?;
    Ok(axum::Json(AgentWritten {
        agent: (&committed.state).into(),
        position,
    }))
}

/// Every registered agent with its occupancy and liveness (admin).
#[utoipa::path(get, path = "/v1/agents", tag = "agents",
    params(("min_position" = Option<i64>, Query, minimum = 0, description = "Wait until the read models include this position")),
    responses((status = 200, body = AgentList),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn list_agents(
    State(state): State<AppState>,
    caller: Caller,
    min: MinPosition,
) -> Result<axum::Json<AgentList>, ApiError> {
    caller.require_admin()?;
    min.wait(&state, &[AGENT_OCCUPANCY]).await?;
    let mut agents = documents::agent_occupancy().all(state.app.db()).await?;
    agents.retain(|a| a.registered);
    agents.sort_by(|a, b| (&a.scaling_group, &a.agent_id).cmp(&(&b.scaling_group, &b.agent_id)));
    let heartbeats = state.app.store.heartbeats().await?;
    let now_ms = state.app.clock.now().timestamp_millis();
    let items = agents
        .iter()
        .map(|a| {
            let last = heartbeats.get(&a.agent_id).copied();
            AgentListItem {
                agent: a.into(),
                last_heartbeat_at: last.and_then(chrono::DateTime::from_timestamp_millis),
                seconds_since_heartbeat: last.map(|ms| now_ms.saturating_sub(ms).max(0) / 1000),
            }
        })
        .collect();
    Ok(axum::Json(AgentList { items }))
}

/// An agent id from a path: 422 naming `id` unless valid.
fn agent_path(id: &str) -> Result<AgentId, ApiError> {
    Ok(AgentId::parse("id", id)?)
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
    responses((status = 200, body = HeartbeatAck),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<HeartbeatAck>, ApiError> {
    let id = agent_path(&id)?.to_string();
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
    /// `start` (bring it up, or keep it running) or `stop` (an abort notice: it stays
    /// until the agent reports the kernel ended with `terminated` or `failed`).
    pub action: String,
    /// Its name (the process agent exports it as `SESSIOND_SESSION_NAME`).
    pub name: String,
    /// `interactive | batch | inference`.
    #[serde(rename = "type")]
    pub session_type: String,
    /// Its status.
    pub status: String,
    /// Image.
    pub image: String,
    /// Slots held on this agent.
    #[schema(value_type = Object)]
    pub slots: ResourceSlots,
    /// Batch command.
    pub startup_command: Option<String>,
    /// Batch: seconds it may run before the agent kills it (`batch-timeout`).
    pub batch_timeout: Option<u64>,
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
            action: a.action.as_str().to_string(),
            name: a.name,
            session_type: a.session_type.as_str().to_string(),
            status: a.status.as_str().to_string(),
            image: a.image,
            slots: a.slots,
            startup_command: a.startup_command,
            batch_timeout: a.batch_timeout,
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

/// The read models assignments are computed from (`agent_occupancy` says whether a
/// registered agent is known).
const ASSIGNMENT_MODELS: [&str; 2] = [AGENT_OCCUPANCY, SESSIONS];

/// Sessions to start or stop on this agent; long-poll with `?wait=` (seconds) and
/// `?version=`. While it waits, the request holds no database connection: it follows
/// the shared log follower and recomputes only when an event of this agent, or of a
/// session assigned to it, has reached the read models.
#[utoipa::path(get, path = "/v1/agents/{id}/assignments", tag = "agents",
    params(("id" = String, Path, description = "Agent id"), AssignmentParams),
    responses((status = 200, body = Assignments),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 429, description = "too_many_streams", body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn assignments(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<AssignmentParams>,
) -> Result<axum::Json<Assignments>, ApiError> {
    let id = agent_path(&id)?.to_string();
    caller.require_agent(&id)?;
    let wait = Duration::from_secs(params.wait.unwrap_or(0)).min(state.config.max_long_poll);
    let changed = |now: &Assignments| match &params.version {
        Some(v) => &now.version != v,
        None => !now.items.is_empty(),
    };
    if wait.is_zero() {
        return Ok(axum::Json(current(&state, &id).await?));
    }
    let _permit = state.streams.acquire(&caller.0.key_id)?;
    let deadline = crate::clock::deadline_in(wait);
    let follower = &state.app.follower;
    let start = follower.position();
    let mut events = follower.subscribe(start);
    state
        .app
        .wait_for_position(&ASSIGNMENT_MODELS, start.global_position, wait)
        .await?;
    let mut now = current(&state, &id).await?;
    let mut revoked = state.app.keys.revocations();
    let mut shutdown = state.shutdown.clone();
    loop {
        // Checked on every turn, the first included: a revocation applied before the
        // subscription above does not change it again.
        if state.app.keys.is_revoked(&caller.0.key_id) {
            return Err(ApiError::unauthorized());
        }
        if changed(&now) || tokio::time::Instant::now() >= deadline || *shutdown.borrow() {
            return Ok(axum::Json(now));
        }
        tokio::select! {
            next = events.next() => {
                let followed = next?;
                let e = &followed.event;
                let relevant = match e.aggregate_type.as_str() {
                    Agent::TYPE => e.aggregate_id == id,
                    // A new placement is an event of the agent (its ledger); a change to
                    // a session already assigned here (a cancellation, which opens an
                    // abort notice, or its acknowledgement) is one of that session.
                    Session::TYPE => now.items.iter().any(|a| a.session_id == e.aggregate_id),
                    _ => false,
                };
                if relevant {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    state
                        .app
                        .wait_for_position(&ASSIGNMENT_MODELS, e.global_position, left)
                        .await?;
                    now = current(&state, &id).await?;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
            _ = revoked.changed() => {}
        }
    }
}
