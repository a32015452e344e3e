//! Session commands as the API and the workers issue them: enqueue (with the
//! enqueue-time checks of SPEC §2.1), delete (SPEC §4's DELETE semantics) and agents'
//! kernel events.
//!
//! Everything the domain needs from outside (the resolved scaling group, the owner's
//! policy and counts) is looked up here first and put into the command; the decision
//! itself is the Session aggregate's.

use chrono::{DateTime, Utc};
use domain::policy::ResourcePolicy;
use domain::scaling_group::ScalingGroup;
use domain::scheduler::{resolve_scaling_group, ResolveError};
use domain::session::{
    Session, SessionCommand, SessionError, SessionSpec, SessionStatus, SessionType,
};
use domain::ResourceSlots;
use projections::models::docs;
use projections::models::pending_queue::PendingQueue;
use projections::ProjectionError;
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::app::App;
use crate::command::{CommandError, Committed};
use crate::store::{EventMetadata, StoreError};

/// A new session as requested (the scaling group still unresolved).
#[derive(Debug, Clone, PartialEq)]
pub struct EnqueueRequest {
    /// The id to create it under; `None` generates one. Idempotent callers pass an id
    /// derived from their idempotency key, so a retry after a crash between the append
    /// and the caller's bookkeeping finds the session instead of creating a second one
    /// (the enqueue is then rejected with `AlreadyExists`).
    pub session_id: Option<Uuid>,
    /// Unique among the owner's non-terminal sessions.
    pub name: String,
    /// The owner.
    pub owner: String,
    /// interactive | batch | inference.
    pub session_type: SessionType,
    /// Container image.
    pub image: String,
    /// The group asked for; `None` picks one (SPEC §2.1).
    pub scaling_group: Option<String>,
    /// Per-kernel slots.
    pub resources: ResourceSlots,
    /// Kernels (default 1).
    pub cluster_size: u32,
    /// 0..=100 (default 10).
    pub priority: u8,
    /// Batch only: not before.
    pub starts_at: Option<DateTime<Utc>>,
    /// Batch only: seconds.
    pub batch_timeout: Option<u64>,
    /// Batch only.
    pub startup_command: Option<String>,
    /// Sessions that must TERMINATE successfully first.
    pub dependencies: Vec<Uuid>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// Why a session command did not land. Each variant maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum SessionCommandError {
    /// No such session (or not visible to the caller).
    #[error("session not found")]
    NotFound,
    /// Enqueue-time scaling-group resolution failed (422).
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// The owner already has `limit` PENDING sessions (429).
    #[error("you already have {limit} pending sessions (max_pending_sessions)")]
    PendingLimitExceeded {
        /// The limit.
        limit: u32,
    },
    /// The name is in use by one of the owner's non-terminal sessions (409).
    #[error("you already have a session named '{name}' that has not ended")]
    NameConflict {
        /// The name.
        name: String,
    },
    /// An agent reported on a session not placed on it (403).
    #[error("session {session_id} is not placed on agent '{agent_id}'")]
    NotPlacedOnAgent {
        /// The session.
        session_id: Uuid,
        /// The reporting agent.
        agent_id: String,
    },
    /// The domain rejected the command; nothing was appended.
    #[error(transparent)]
    Rejected(SessionError),
    /// Still conflicting after every retry (409 `conflict`).
    #[error("the session changed concurrently; try again")]
    Conflict,
    /// The store failed (503/500).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A read model could not be read.
    #[error(transparent)]
    ReadModel(#[from] ProjectionError),
}

impl From<CommandError<SessionError>> for SessionCommandError {
    fn from(e: CommandError<SessionError>) -> Self {
        match e {
            CommandError::Rejected(SessionError::NotFound) => Self::NotFound,
            CommandError::Rejected(r) => Self::Rejected(r),
            CommandError::Conflict { .. } => Self::Conflict,
            CommandError::Store(s) => Self::Store(s),
        }
    }
}

async fn resolve(
    app: &App,
    req: &EnqueueRequest,
) -> Result<Result<String, ResolveError>, ProjectionError> {
    let groups: Vec<ScalingGroup> = docs::scaling_groups().all(app.db()).await?;
    Ok(resolve_scaling_group(
        &groups,
        &req.owner,
        req.session_type,
        req.scaling_group.as_deref(),
    ))
}

/// Enqueues a session: resolves and validates its scaling group (SPEC §2.1), checks the
/// owner's `max_pending_sessions` and the name, then appends `SessionEnqueued` (one
/// INSERT: the id is new, so nothing is loaded).
///
/// The checks read read models. A refusal is only given after the `scaling_groups` read
/// model has caught up with the log, so a group created a moment ago is seen. The
/// pending count and the name check are as fresh as the read models (a burst of
/// concurrent enqueues of one owner can pass them together).
pub async fn enqueue(
    app: &App,
    req: EnqueueRequest,
    meta: &EventMetadata,
) -> Result<Committed<Session>, SessionCommandError> {
    let group = match resolve(app, &req).await? {
        Ok(g) => g,
        Err(_) => {
            app.catch_up_to_head(&["scaling_groups"], std::time::Duration::from_secs(5))
                .await?;
            resolve(app, &req).await??
        }
    };
    let policy: ResourcePolicy = app.commands.load(&req.owner).await?;
    if let Some(limit) = policy.limits.max_pending_sessions {
        let pending = PendingQueue.count_for_owner(app.db(), &req.owner).await?;
        if pending >= i64::from(limit) {
            return Err(SessionCommandError::PendingLimitExceeded { limit });
        }
    }
    if let Some(id) = req.session_id {
        let existing: Session = app.commands.load(&id.to_string()).await?;
        if existing.status.is_some() {
            return Err(SessionCommandError::Rejected(SessionError::AlreadyExists));
        }
    }
    if docs::session_name_taken(app.db(), &req.owner, &req.name).await? {
        return Err(SessionCommandError::NameConflict { name: req.name });
    }
    let session_id = req.session_id.unwrap_or_else(Uuid::new_v4);
    let spec = SessionSpec {
        session_id,
        name: req.name,
        owner: req.owner,
        session_type: req.session_type,
        image: req.image,
        scaling_group: group,
        resources: req.resources,
        cluster_size: req.cluster_size,
        priority: req.priority,
        starts_at: req.starts_at,
        batch_timeout: req.batch_timeout,
        startup_command: req.startup_command,
        dependencies: req.dependencies,
        labels: req.labels,
    };
    let now = app.clock.now();
    Ok(app
        .commands
        .execute_new::<Session>(
            &session_id.to_string(),
            SessionCommand::Enqueue { spec, now },
            meta,
        )
        .await?)
}

/// What DELETE did.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// The command's outcome (no events when the session was already TERMINATING).
    pub committed: Committed<Session>,
    /// The session was already TERMINATING: nothing to do (202).
    pub already_terminating: bool,
}

/// The command DELETE issues for a session in `status` (SPEC §4): PENDING..CREATING are
/// cancelled (`user-requested`), RUNNING, RESTARTING, RUNNING_DEGRADED and ERROR go to
/// TERMINATING, TERMINATING is a no-op and ended sessions are rejected by the table.
/// `forced` ends it at once: TERMINATED (`force-terminated`) where the table allows it,
/// otherwise (before RUNNING) CANCELLED with the same reason.
pub fn delete_command(
    status: SessionStatus,
    forced: bool,
    actor: &str,
    now: DateTime<Utc>,
) -> SessionCommand {
    use SessionStatus::*;
    let before_running = matches!(
        status,
        Pending | Scheduled | Preparing | Pulling | Prepared | Creating
    );
    match (forced, before_running) {
        (true, true) => SessionCommand::Cancel {
            reason: "force-terminated".into(),
            now,
        },
        (true, false) => SessionCommand::MarkTerminated {
            reason: "force-terminated".into(),
            exit_code: None,
            now,
        },
        (false, true) => SessionCommand::Cancel {
            reason: "user-requested".into(),
            now,
        },
        // Ended sessions: the table rejects this (409).
        (false, false) if status.is_terminal() => SessionCommand::Cancel {
            reason: "user-requested".into(),
            now,
        },
        (false, false) => SessionCommand::RequestTermination {
            reason: "user-requested".into(),
            requested_by: actor.to_string(),
            now,
        },
    }
}

/// DELETE /v1/sessions/{id}: see [`delete_command`]. An assigned agent learns of the
/// cancellation or termination through its assignments.
pub async fn delete(
    app: &App,
    session_id: Uuid,
    forced: bool,
    meta: &EventMetadata,
) -> Result<Deleted, SessionCommandError> {
    let id = session_id.to_string();
    // The status can move between the read and the command; the command is chosen again
    // when the table rejects it for a status that changed meanwhile.
    for _ in 0..3 {
        let session: Session = app.commands.load(&id).await?;
        let Some(status) = session.status else {
            return Err(SessionCommandError::NotFound);
        };
        if status == SessionStatus::Terminating && !forced {
            return Ok(Deleted {
                committed: Committed {
                    state: session,
                    events: vec![],
                    positions: vec![],
                    attempts: 1,
                },
                already_terminating: true,
            });
        }
        let command = delete_command(status, forced, &meta.actor, app.clock.now());
        match app.commands.execute::<Session>(&id, command, meta).await {
            Ok(committed) => {
                return Ok(Deleted {
                    committed,
                    already_terminating: false,
                })
            }
            Err(CommandError::Rejected(SessionError::IllegalTransition { from, .. }))
                if from != status =>
            {
                continue
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(SessionCommandError::Conflict)
}

/// What an agent reports about a session's kernel (SPEC §4 kernel-events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// -> PREPARING.
    Preparing,
    /// -> PULLING.
    Pulling,
    /// -> PREPARED.
    Prepared,
    /// -> CREATING.
    Creating,
    /// -> RUNNING.
    Started,
    /// The kernel exited: TERMINATED when it was asked to stop or exited with 0,
    /// ERROR `exit-code-N` otherwise.
    Terminated {
        /// Exit code, when known.
        exit_code: Option<i32>,
        /// Reason, when given.
        reason: Option<String>,
    },
    /// The kernel failed: ERROR.
    Failed {
        /// Short reason, e.g. `image-pull-failed`.
        reason: Option<String>,
    },
}

impl KernelEvent {
    /// Parses the wire form `{event, exit_code?, reason?}`.
    pub fn parse(event: &str, exit_code: Option<i32>, reason: Option<String>) -> Option<Self> {
        Some(match event {
            "preparing" => Self::Preparing,
            "pulling" => Self::Pulling,
            "prepared" => Self::Prepared,
            "creating" => Self::Creating,
            "started" => Self::Started,
            "terminated" => Self::Terminated { exit_code, reason },
            "failed" => Self::Failed { reason },
            _ => return None,
        })
    }

    /// The command this report means for a session in `status`.
    pub fn command(self, status: SessionStatus, now: DateTime<Utc>) -> SessionCommand {
        match self {
            Self::Preparing => SessionCommand::MarkPreparing { now },
            Self::Pulling => SessionCommand::MarkPulling { now },
            Self::Prepared => SessionCommand::MarkPrepared { now },
            Self::Creating => SessionCommand::MarkCreating { now },
            Self::Started => SessionCommand::Start { now },
            Self::Terminated { exit_code, reason } => {
                let asked_to_stop =
                    matches!(status, SessionStatus::Terminating | SessionStatus::Error);
                match exit_code {
                    Some(code) if code != 0 && !asked_to_stop => SessionCommand::Fail {
                        reason: format!("exit-code-{code}"),
                        detail: reason,
                        now,
                    },
                    _ => SessionCommand::MarkTerminated {
                        reason: reason.unwrap_or_else(|| {
                            if asked_to_stop {
                                "user-requested"
                            } else {
                                "self-terminated"
                            }
                            .to_string()
                        }),
                        exit_code,
                        now,
                    },
                }
            }
            Self::Failed { reason } => SessionCommand::Fail {
                reason: reason.unwrap_or_else(|| "kernel-failed".to_string()),
                detail: None,
                now,
            },
        }
    }
}

/// POST /v1/sessions/{id}/kernel-events: an agent's report. With `reporting_agent`
/// (an agent key), the session must be placed on that agent.
pub async fn kernel_event(
    app: &App,
    session_id: Uuid,
    reporting_agent: Option<&str>,
    event: KernelEvent,
    meta: &EventMetadata,
) -> Result<Committed<Session>, SessionCommandError> {
    let id = session_id.to_string();
    let session: Session = app.commands.load(&id).await?;
    let Some(status) = session.status else {
        return Err(SessionCommandError::NotFound);
    };
    if let Some(agent) = reporting_agent {
        if !session.allocations.iter().any(|a| a.agent_id == agent) {
            return Err(SessionCommandError::NotPlacedOnAgent {
                session_id,
                agent_id: agent.to_string(),
            });
        }
    }
    let command = event.command(status, app.clock.now());
    Ok(app.commands.execute::<Session>(&id, command, meta).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn delete_cancels_before_running_and_terminates_after() {
        use SessionStatus::*;
        for s in [Pending, Scheduled, Preparing, Pulling, Prepared, Creating] {
            assert!(
                matches!(delete_command(s, false, "k", t()), SessionCommand::Cancel { ref reason, .. } if reason == "user-requested")
            );
        }
        for s in [Running, Restarting, RunningDegraded, Error] {
            assert!(matches!(
                delete_command(s, false, "k", t()),
                SessionCommand::RequestTermination { .. }
            ));
            assert!(
                matches!(delete_command(s, true, "k", t()), SessionCommand::MarkTerminated { ref reason, .. } if reason == "force-terminated")
            );
        }
    }

    #[test]
    fn a_non_zero_exit_is_an_error_unless_the_kernel_was_asked_to_stop() {
        let ev = KernelEvent::Terminated {
            exit_code: Some(1),
            reason: None,
        };
        assert!(
            matches!(ev.clone().command(SessionStatus::Running, t()), SessionCommand::Fail { ref reason, .. } if reason == "exit-code-1")
        );
        assert!(matches!(
            ev.command(SessionStatus::Terminating, t()),
            SessionCommand::MarkTerminated { .. }
        ));
        let ok = KernelEvent::Terminated {
            exit_code: Some(0),
            reason: None,
        };
        assert!(matches!(
            ok.command(SessionStatus::Running, t()),
            SessionCommand::MarkTerminated {
                exit_code: Some(0),
                ..
            }
        ));
    }
}
