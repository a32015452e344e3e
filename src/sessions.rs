//! Session commands as the API and the workers issue them: enqueue (with the
//! enqueue-time checks of SPEC §2.1), delete (SPEC §4's DELETE semantics) and agents'
//! kernel events.
//!
//! Everything the domain needs from outside (the resolved scaling group, the owner's
//! policy, the current holder of a name) is looked up here first and put into the
//! command; the decisions themselves are the aggregates'.
//!
//! # The enqueue invariants, and where each holds
//! - **The scaling group** is resolved against the `scaling_groups` read model (re-read
//!   at the head before refusing, so a group created a moment ago is seen); a group
//!   whose opts change later is covered by the scheduler's `scaling_group` predicate.
//! - **Dependencies** must be the owner's own sessions: each one's first event is read
//!   from the event store (exact), another owner's or an unknown id is 422.
//! - **The name** is unique among the owner's non-terminal sessions through the
//!   `NameClaim` stream `session/<owner>/<name>`, appended in the same statement as
//!   `SessionEnqueued` (`domain::name_claim`): two concurrent enqueues of one name
//!   cannot both land.
//! - **`max_pending_sessions`**, when the owner's policy sets it, through the owner's
//!   `PendingQuota` stream, appended in the same statement (`domain::pending_quota`).
//! - **The session id** is new: the primary key of its first event.
//!
//! A conflict on any of those streams makes the whole statement fail; it is decided
//! again on reloaded state (bounded, jittered), so the loser sees the refusal it earned.

use domain::ids::{GroupName, Owner};
use domain::name_claim::{session_claim_id, ClaimName, NameClaim, NameClaimError};
use domain::pending_quota::{PendingQuota, PendingQuotaError, TakePendingSlot};
use domain::policy::ResourcePolicy;
use domain::scaling_group::ScalingGroup;
use domain::scheduler::{resolve_scaling_group, ResolveError};
use domain::session::{
    delete_command, KernelEvent, Session, SessionCommand, SessionError, SessionEvent, SessionSpec,
    SessionStatus, SessionType,
};
use domain::ValidationError;
use projections::models::pending_queue::PendingQueue;
use projections::models::{documents, SCALING_GROUPS};
use projections::ProjectionError;
use uuid::Uuid;

use crate::app::App;
use crate::command::{new_events, CommandError, Committed};
use crate::store::{EventMetadata, StoreError};

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
    #[error(transparent)]
    PendingLimitExceeded(#[from] PendingQuotaError),
    /// The name is in use by one of the owner's non-terminal sessions (409).
    #[error("you already have a session named '{name}' that has not ended")]
    NameConflict {
        /// The name.
        name: String,
    },
    /// A field is invalid (422), e.g. a dependency that is not one of the owner's.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// An agent reported on a session not placed on it (404, like an unknown one).
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

/// Why one enqueue attempt failed (conflicts are retried by the caller).
#[derive(Debug, thiserror::Error)]
enum EnqueueRefusal {
    #[error(transparent)]
    Name(#[from] NameClaimError),
    #[error(transparent)]
    Quota(#[from] PendingQuotaError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    ReadModel(#[from] ProjectionError),
}

async fn resolve(
    app: &App,
    owner: &Owner,
    session_type: SessionType,
    requested: Option<&GroupName>,
) -> Result<Result<GroupName, ResolveError>, ProjectionError> {
    // A named group is one row (its stream id is its name): the request costs the same
    // however many groups exist. Without a name every group is a candidate.
    let groups: Vec<ScalingGroup> = match requested {
        Some(name) => documents::scaling_groups()
            .get(app.db(), name.as_str())
            .await?
            .into_iter()
            .collect(),
        None => documents::scaling_groups().all(app.db()).await?,
    };
    Ok(resolve_scaling_group(
        &groups,
        owner,
        session_type,
        requested.map(GroupName::as_str),
    )
    .map(GroupName::from_stored))
}

/// Resolves the scaling group of a new session (SPEC §2.1). A refusal is only given
/// after the `scaling_groups` read model has caught up with the log, so a group created
/// a moment ago is seen.
pub async fn resolve_group(
    app: &App,
    owner: &Owner,
    session_type: SessionType,
    requested: Option<&GroupName>,
) -> Result<GroupName, SessionCommandError> {
    match resolve(app, owner, session_type, requested).await? {
        Ok(g) => Ok(g),
        Err(_) => {
            // Refuse only what the read model refuses once it has everything committed
            // so far (the projection runners do the work; this waits, bounded).
            app.wait_for_head(&[SCALING_GROUPS], std::time::Duration::from_secs(5))
                .await?;
            Ok(resolve(app, owner, session_type, requested).await??)
        }
    }
}

/// Checks that every dependency is one of `owner`'s sessions, reading each one's first
/// event from the store (exact, whatever the read models' lag). Another owner's session
/// and an unknown id get the same answer, so nothing about others' sessions leaks.
async fn check_dependencies(app: &App, spec: &SessionSpec) -> Result<(), SessionCommandError> {
    for (i, dep) in spec.dependencies.iter().enumerate() {
        let first = app.store.load_first::<Session>(&dep.to_string()).await?;
        let mine = matches!(
            first,
            Some(SessionEvent::SessionEnqueued { spec: ref d, .. }) if d.owner == spec.owner
        );
        if !mine {
            return Err(ValidationError::new(
                &format!("dependencies[{i}]"),
                format!("no session {dep} of yours"),
            )
            .into());
        }
    }
    Ok(())
}

/// Enqueues a session whose scaling group has been resolved ([`resolve_group`]): checks
/// its dependencies, then appends the name claim, the pending quota (when the owner's
/// policy limits PENDING sessions) and `SessionEnqueued` **in one statement**, retried
/// on conflicts. See the module documentation for each invariant.
///
/// An id that already exists (an idempotent retry after a crash) is rejected with
/// `AlreadyExists`.
pub async fn enqueue(
    app: &App,
    spec: SessionSpec,
    meta: &EventMetadata,
) -> Result<Committed<Session>, SessionCommandError> {
    check_dependencies(app, &spec).await?;
    let policy: ResourcePolicy = app.commands.load(spec.owner.as_str()).await?;
    let limit = policy.limits.max_pending_sessions.map(|l| l.get());
    let result = app
        .commands
        .retry_conflicts(|| enqueue_once(app, &spec, limit, meta))
        .await;
    match result {
        Ok((mut committed, attempts)) => {
            committed.attempts = attempts;
            Ok(committed)
        }
        Err(CommandError::Rejected(refusal)) => Err(match refusal {
            EnqueueRefusal::Name(NameClaimError::Taken { .. }) => {
                SessionCommandError::NameConflict {
                    name: spec.name.to_string(),
                }
            }
            EnqueueRefusal::Name(NameClaimError::AlreadyHeld) => {
                SessionCommandError::Rejected(SessionError::AlreadyExists)
            }
            EnqueueRefusal::Quota(q) => q.into(),
            EnqueueRefusal::Session(s) => SessionCommandError::Rejected(s),
            EnqueueRefusal::ReadModel(r) => r.into(),
        }),
        Err(CommandError::Conflict { .. }) => Err(SessionCommandError::Conflict),
        Err(CommandError::Store(s)) => Err(s.into()),
    }
}

/// One attempt of [`enqueue`]: load the claim (and quota) stream's last event, decide
/// all three aggregates, append them together.
async fn enqueue_once(
    app: &App,
    spec: &SessionSpec,
    limit: Option<u32>,
    meta: &EventMetadata,
) -> Result<Committed<Session>, CommandError<EnqueueRefusal>> {
    let now = app.clock.now();
    let session_id = spec.session_id;
    let claim_id = session_claim_id(&spec.owner, &spec.name);

    // The name: its current holder, and whether that one has ended.
    let claim = match app.store.load_last::<NameClaim>(&claim_id).await? {
        Some((sequence, last)) => NameClaim::from_last(sequence, &last),
        None => NameClaim::default(),
    };
    let holder_ended = match claim.holder {
        Some(h) if h != session_id => {
            let holder: Session = app.commands.load(&h.to_string()).await?;
            holder.status.is_none_or(SessionStatus::is_terminal)
        }
        _ => true,
    };
    let claim_events = claim
        .decide(ClaimName {
            holder: session_id,
            current_holder_ended: holder_ended,
            now,
        })
        .map_err(|e| CommandError::Rejected(e.into()))?;
    let mut rows = new_events::<NameClaim>(&claim_id, version(claim.version), &claim_events, meta)?;

    // The pending limit, only when the owner's policy sets one.
    if let Some(limit) = limit {
        let owner = spec.owner.as_str();
        let quota = match app.store.load_last::<PendingQuota>(owner).await? {
            Some((sequence, last)) => PendingQuota::from_last(sequence, &last),
            None => PendingQuota::default(),
        };
        let db = app.db();
        // The count and the checkpoint it reflects come from one snapshot; a session
        // of `unprojected` is in the count (or has left PENDING) exactly when its
        // `SessionEnqueued` is at or before that checkpoint.
        let (pending_in_read_model, checkpoint) = PendingQueue
            .count_for_owner_with_checkpoint(db, owner, i64::from(limit))
            .await
            .map_err(|e| CommandError::Rejected(e.into()))?;
        let mut projected = Vec::new();
        for id in &quota.unprojected {
            let first = app
                .store
                .read_first(<Session as domain::Decider>::TYPE, &id.to_string())
                .await?;
            if first.is_some_and(|e| e.log_position() <= checkpoint) {
                projected.push(*id);
            }
        }
        let quota_events = quota
            .decide(TakePendingSlot {
                session_id,
                limit,
                pending_in_read_model: u32::try_from(pending_in_read_model).unwrap_or(u32::MAX),
                projected,
                now,
            })
            .map_err(|e| CommandError::Rejected(e.into()))?;
        rows.extend(new_events::<PendingQuota>(
            owner,
            version(quota.version),
            &quota_events,
            meta,
        )?);
    }

    // The session itself: a new id, so decided on the empty state without loading.
    let mut session = Session::default();
    let session_events = session
        .decide(SessionCommand::Enqueue {
            spec: spec.clone(),
            now,
        })
        .map_err(|e| CommandError::Rejected(e.into()))?;
    rows.extend(new_events::<Session>(
        &session_id.to_string(),
        0,
        &session_events,
        meta,
    )?);
    let positions = app.store.append(&rows).await?;
    for e in &session_events {
        session.apply(e);
    }
    Ok(Committed {
        state: session,
        events: session_events,
        positions,
        attempts: 1,
    })
}

fn version(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What DELETE did.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// The command's outcome (no events when the session was already TERMINATING).
    pub committed: Committed<Session>,
    /// The session was already TERMINATING: nothing to do (202).
    pub already_terminating: bool,
}

/// DELETE /v1/sessions/{id}: see [`domain::session::delete_command`]. An assigned agent
/// learns of the cancellation or termination through its assignments.
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
        let Some(command) = delete_command(
            status,
            session.kernels_gone(),
            forced,
            &meta.actor,
            app.clock.now(),
        ) else {
            return Ok(Deleted {
                committed: Committed {
                    state: session,
                    events: vec![],
                    positions: vec![],
                    attempts: 1,
                },
                already_terminating: true,
            });
        };
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

/// POST /v1/sessions/{id}/kernel-events: an agent's report. With `reporting_agent`
/// (an agent key), the session must be placed on that agent; an admin's report stands
/// for every agent of the session. A final report (`terminated`, `failed`) may carry
/// the tails of the kernel's output (`logs`), recorded before the event is appended
/// (so a client that sees the session end finds its logs); a session that has already
/// ended gets the acknowledgement of its abort notice instead of a 409 (SPEC §9).
pub async fn kernel_event(
    app: &App,
    session_id: Uuid,
    reporting_agent: Option<&str>,
    event: KernelEvent,
    logs: Option<(String, String)>,
    meta: &EventMetadata,
) -> Result<Committed<Session>, SessionCommandError> {
    let id = session_id.to_string();
    let session: Session = app.commands.load(&id).await?;
    if session.status.is_none() {
        return Err(SessionCommandError::NotFound);
    }
    let agents: Vec<String> = match reporting_agent {
        Some(agent) => {
            if !session.is_placed_on(agent) {
                return Err(SessionCommandError::NotPlacedOnAgent {
                    session_id,
                    agent_id: agent.to_string(),
                });
            }
            vec![agent.to_string()]
        }
        None => session
            .allocations
            .iter()
            .map(|a| a.agent_id.to_string())
            .collect(),
    };
    if let (Some((stdout, stderr)), true) = (logs, event.is_final()) {
        let tails = store::session_logs::SessionLogs {
            agent_id: agents.first().cloned().unwrap_or_default(),
            stdout,
            stderr,
            reported_ms: app.clock.now().timestamp_millis(),
        };
        store::session_logs::record(app.db(), &id, &tails)
            .await
            .map_err(StoreError::from)?;
    }
    let command = event.command(agents, app.clock.now());
    Ok(app.commands.execute::<Session>(&id, command, meta).await?)
}

/// The log tails an agent sent for `session_id` (SPEC §9), if any.
pub async fn logs(
    app: &App,
    session_id: Uuid,
) -> Result<Option<store::session_logs::SessionLogs>, SessionCommandError> {
    Ok(store::session_logs::get(app.db(), &session_id.to_string())
        .await
        .map_err(StoreError::from)?)
}
