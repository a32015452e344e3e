//! Agents as the API and the workers see them: registration (an event on the Agent
//! aggregate), heartbeats (not events: a plain last-seen table, SPEC §1.4) and the
//! assignments an agent polls for.

use domain::agent::{Agent, AgentCommand, AgentError};
use domain::ids::{AgentAddr, AgentId, GroupName};
use domain::scaling_group::ScalingGroup;
use domain::session::{Notice, SessionStatus, SessionType};
use domain::{ResourceSlots, ValidationError};
use projections::models::documents;
use projections::ProjectionError;
use serde::Serialize;
use uuid::Uuid;

use crate::app::App;
use crate::command::{CommandError, Committed};
use crate::store::{EventMetadata, StoreError};

/// Why an agent command did not land.
#[derive(Debug, thiserror::Error)]
pub enum AgentCommandError {
    /// No such agent.
    #[error("agent not found")]
    NotFound,
    /// A field is invalid (422), e.g. a scaling group that does not exist.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The domain rejected it; nothing was appended.
    #[error(transparent)]
    Rejected(AgentError),
    /// Still conflicting after every retry.
    #[error("the agent changed concurrently; try again")]
    Conflict,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A read model could not be read.
    #[error(transparent)]
    ReadModel(#[from] ProjectionError),
}

impl From<CommandError<AgentError>> for AgentCommandError {
    fn from(e: CommandError<AgentError>) -> Self {
        match e {
            CommandError::Rejected(AgentError::NotFound) => Self::NotFound,
            CommandError::Rejected(r) => Self::Rejected(r),
            CommandError::Conflict { .. } => Self::Conflict,
            CommandError::Store(s) => Self::Store(s),
        }
    }
}

/// Registration (or update) of an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterAgent {
    /// Id.
    pub agent_id: AgentId,
    /// Group it serves.
    pub scaling_group: GroupName,
    /// Address.
    pub addr: AgentAddr,
    /// Capacity.
    pub available_slots: ResourceSlots,
}

/// Registers or updates an agent (re-registering revives a LOST one) and counts as a
/// heartbeat. Re-registering unchanged appends nothing. The scaling group must exist
/// (read from its stream, so a group created a moment ago counts). A capacity below what
/// the agent holds is accepted: it is a fact the agent reports (a device failed); the
/// agent then shows as over capacity and nothing new is placed on it until sessions end
/// (docs/adr/0003-scheduler.md).
pub async fn register(
    app: &App,
    req: RegisterAgent,
    meta: &EventMetadata,
) -> Result<Committed<Agent>, AgentCommandError> {
    let group: ScalingGroup = app.commands.load(req.scaling_group.as_str()).await?;
    if !group.exists {
        return Err(ValidationError::new(
            "scaling_group",
            format!("no scaling group '{}'", req.scaling_group),
        )
        .into());
    }
    let agent_id = req.agent_id.to_string();
    let committed = app
        .commands
        .execute::<Agent>(
            &agent_id,
            AgentCommand::Register {
                agent_id: req.agent_id,
                scaling_group: req.scaling_group,
                addr: req.addr,
                available_slots: req.available_slots,
                now: app.clock.now(),
            },
            meta,
        )
        .await?;
    record_heartbeat(app, &agent_id).await?;
    Ok(committed)
}

/// A heartbeat: updates the agent's last-seen time (no event). Unknown agents are
/// refused, so a typo does not go unnoticed.
pub async fn heartbeat(app: &App, agent_id: &str) -> Result<(), AgentCommandError> {
    let agent: Agent = app.commands.load(agent_id).await?;
    if !agent.registered {
        return Err(AgentCommandError::NotFound);
    }
    record_heartbeat(app, agent_id).await?;
    Ok(())
}

async fn record_heartbeat(app: &App, agent_id: &str) -> Result<(), StoreError> {
    let now_ms = app.clock.now().timestamp_millis();
    app.store.record_heartbeat(agent_id, now_ms).await
}

/// What an agent should do about a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AssignmentAction {
    /// Bring it up (or keep it running).
    Start,
    /// Tear it down: an abort notice (SPEC §9). It stays until the agent reports the
    /// kernel ended (`terminated` / `failed`), even after the slots were released.
    Stop,
}

impl AssignmentAction {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
        }
    }
}

impl From<Notice> for AssignmentAction {
    fn from(n: Notice) -> Self {
        match n {
            Notice::Start => Self::Start,
            Notice::Stop => Self::Stop,
        }
    }
}

/// What an agent should do about one session placed on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assignment {
    /// The session.
    pub session_id: Uuid,
    /// Its name.
    pub name: String,
    /// `interactive | batch | inference`.
    pub session_type: SessionType,
    /// Bring it up, or tear it down.
    pub action: AssignmentAction,
    /// Its status now.
    pub status: SessionStatus,
    /// Image to run.
    pub image: String,
    /// Slots allocated to it on this agent.
    pub slots: ResourceSlots,
    /// Batch command, if any.
    pub startup_command: Option<String>,
    /// Batch: seconds it may run.
    pub batch_timeout: Option<u64>,
    /// Kernels.
    pub cluster_size: u32,
}

/// What `agent_id` must do: every session placed on it from SCHEDULED to
/// RUNNING_DEGRADED (start, or keep running), and every one that must stop and whose
/// end the agent has not reported yet (abort notices: TERMINATING, and CANCELLED,
/// TERMINATED or ERROR while its kernel may still exist), by session id. Read from the
/// `sessions` read model through its agent index ([`domain::session::Session::notice_for`]).
pub async fn assignments(app: &App, agent_id: &str) -> Result<Vec<Assignment>, AgentCommandError> {
    let sessions = documents::sessions_of_agent(app.db(), agent_id).await?;
    if sessions.is_empty() {
        // Unknown agents are 404; a registered one the read models have not caught up
        // with has nothing placed on it that they would show.
        let known = documents::agent_occupancy()
            .get(app.db(), agent_id)
            .await?
            .is_some()
            || app
                .store
                .read_first(<Agent as domain::Decider>::TYPE, agent_id)
                .await?
                .is_some();
        return if known {
            Ok(vec![])
        } else {
            Err(AgentCommandError::NotFound)
        };
    }
    let mut out: Vec<Assignment> = sessions
        .into_iter()
        .filter_map(|s| {
            let action = s.notice_for(agent_id)?.into();
            let spec = s.spec.as_ref()?;
            let status = s.status?;
            let slots = s
                .allocations
                .iter()
                .find(|a| a.agent_id == agent_id)
                .map(|a| a.slots.clone())
                .unwrap_or_default();
            Some(Assignment {
                session_id: spec.session_id,
                name: spec.name.to_string(),
                session_type: spec.session_type,
                action,
                status,
                image: spec.image.to_string(),
                slots,
                startup_command: spec.startup_command.clone(),
                batch_timeout: spec.batch_timeout.map(|t| t.get()),
                cluster_size: spec.cluster_size.get(),
            })
        })
        .collect();
    out.sort_by_key(|a| a.session_id);
    Ok(out)
}
