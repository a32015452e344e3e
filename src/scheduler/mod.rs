//! The scheduler (SPEC §2): per scaling group, order the pending sessions, evaluate the
//! predicates, pick an agent and allocate — plus the pending-timeout sweeper, the agent
//! liveness check and the slot-release worker.
//!
//! Decisions are the domain's ([`domain::scheduler`], the Session and Agent
//! aggregates). This module gathers their inputs from the read models, and appends the
//! results. A placement appends the agent's `SlotsAllocated` and the session's
//! `SessionScheduled` **in one statement**, each at the next sequence of the version it
//! was decided on: if either stream moved (another replica, a cancellation, a stale read
//! model), the whole statement conflicts and nothing lands, so no agent is ever
//! over-allocated and no slot is ever held for a session that was not scheduled. Placements
//! are batched (many sessions per statement); a conflicting batch is redone one
//! placement at a time on freshly loaded state.
//!
//! # Layout
//! - this file: [`Scheduler`] and one scheduling pass over a group.
//! - [`sweeper`]: the pending-timeout sweep.
//! - [`liveness`]: missed heartbeats -> LOST, and the lost agent's sessions -> ERROR.
//! - [`releases`]: the worker that releases the slots of ended sessions.
//! - [`workers`]: the background loops with their leases, started by `sessiond serve`.
//! - [`stats`]: counters for `/metrics`.

pub mod liveness;
pub mod releases;
pub mod stats;
pub mod sweeper;
pub mod workers;

use chrono::{DateTime, Utc};
use domain::agent::{Agent, AgentAllocation, AgentCommand};
use domain::ids::{GroupName, Reason};
use domain::policy::{ResourceLimits, ResourcePolicy};
use domain::scaling_group::{ScalingGroup, SchedulerKind};
use domain::scheduler::pass::{plan, PassInput, PendingItem, Placement};
use domain::scheduler::predicates::{DependencyState, OwnerUsage};
use domain::session::reasons::DEPENDENCY_FAILED;
use domain::session::{FailedPredicate, Session, SessionCommand, SessionError, SessionStatus};

use projections::models::documents;
use projections::models::pending_queue::PendingQueue;
use projections::ProjectionError;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use uuid::Uuid;

pub use workers::spawn_workers;

use crate::app::App;
use crate::command::{new_events, CommandError};
use crate::store::{EventMetadata, NewEvent, StoreError};

/// Sessions per append statement when placing a batch.
const PLACEMENT_CHUNK: usize = 200;

/// Why a scheduler pass failed (infrastructure only: rejected placements are part of a
/// normal pass).
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A read model could not be read.
    #[error(transparent)]
    ReadModel(#[from] ProjectionError),
}

/// What one pass over a group did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// PENDING sessions looked at.
    pub considered: usize,
    /// Sessions scheduled.
    pub scheduled: usize,
    /// Sessions that stayed PENDING.
    pub waiting: usize,
    /// Sessions not evaluated because a strict queue is blocked ahead of them.
    pub queued: usize,
    /// `SessionSchedulingFailed` events appended (only when a failure set changed).
    pub failures_recorded: usize,
    /// Sessions cancelled because a dependency can never succeed.
    pub cancelled: usize,
    /// Placement batches that conflicted and were redone one by one.
    pub conflicts: usize,
}

#[derive(Debug, Default)]
struct GroupMemory {
    /// The failure set last recorded per session (so an unchanged set costs nothing).
    recorded: HashMap<Uuid, Vec<FailedPredicate>>,
    /// The agent chosen last (round robin continues after it).
    last_agent: Option<String>,
    /// Agent states this scheduler appended to, ahead of the read model.
    agents: HashMap<String, Agent>,
}

/// The scheduler of every scaling group this process holds the lease of.
#[derive(Debug)]
pub struct Scheduler {
    app: App,
    memory: Mutex<HashMap<String, GroupMemory>>,
}

/// The actor recorded on the scheduler's events.
pub fn scheduler_metadata() -> EventMetadata {
    let id = Uuid::new_v4().to_string();
    EventMetadata {
        actor: "scheduler".into(),
        correlation_id: id.clone(),
        causation_id: id,
    }
}

fn sorted(mut failed: Vec<FailedPredicate>) -> Vec<FailedPredicate> {
    failed.sort_by(|a, b| (&a.name, &a.msg).cmp(&(&b.name, &b.msg)));
    failed.dedup();
    failed
}

fn version(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The rows of one planned placement: `SlotsAllocated` and `SessionScheduled`, each at
/// the next sequence of the version it was decided on.
fn placement_rows(p: &Placement, meta: &EventMetadata) -> Result<Vec<NewEvent>, StoreError> {
    let mut rows = new_events::<Agent>(
        p.agent_id.as_str(),
        version(p.agent_version),
        &p.agent_events,
        meta,
    )?;
    rows.extend(new_events::<Session>(
        &p.session_id.to_string(),
        version(p.session_version),
        &p.session_events,
        meta,
    )?);
    Ok(rows)
}

impl Scheduler {
    /// A scheduler for `app`.
    pub fn new(app: App) -> Self {
        Self {
            app,
            memory: Mutex::new(HashMap::new()),
        }
    }

    /// The application it works for.
    pub fn app(&self) -> &App {
        &self.app
    }

    fn with_memory<R>(&self, group: &str, f: impl FnOnce(&mut GroupMemory) -> R) -> R {
        let mut guard = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        f(guard.entry(group.to_string()).or_default())
    }

    /// One full pass for every existing group, then the housekeeping: what the workers
    /// do on each tick when they hold every lease (tests and the benchmark call it
    /// directly).
    pub async fn tick(&self) -> Result<Vec<(String, PassReport)>, SchedulerError> {
        let groups = documents::scaling_groups().all(self.app.db()).await?;
        let mut out = Vec::new();
        for g in groups {
            out.push((g.name.clone(), self.run_group(&g).await?));
        }
        self.housekeeping().await?;
        Ok(out)
    }

    /// What the holder of a group's lease does on a tick: sweep expired sessions, then
    /// schedule.
    pub async fn run_group(&self, group: &ScalingGroup) -> Result<PassReport, SchedulerError> {
        sweeper::sweep(&self.app, group).await?;
        self.schedule(&group.name, Some(group)).await
    }

    /// What the holder of the liveness lease does on a tick: the heartbeat check, then
    /// the slot releases.
    pub async fn housekeeping(&self) -> Result<(), SchedulerError> {
        liveness::check_agents(&self.app).await?;
        releases::release_due(&self.app).await?;
        Ok(())
    }

    /// One scheduling pass over `group`'s queue (reads the group from its read model).
    pub async fn schedule_group(&self, group: &str) -> Result<PassReport, SchedulerError> {
        let sg = documents::scaling_groups()
            .get(self.app.db(), group)
            .await?;
        self.schedule(group, sg.as_ref()).await
    }

    /// One scheduling pass over `group`'s queue; `sg` is the group as it is now (`None`:
    /// gone, and its waiting sessions fail the `scaling_group` predicate). Gathers the
    /// inputs of [`domain::scheduler::pass::plan`], appends what it decides.
    #[tracing::instrument(skip(self, sg), err)]
    async fn schedule(
        &self,
        group: &str,
        sg: Option<&ScalingGroup>,
    ) -> Result<PassReport, SchedulerError> {
        let app = &self.app;
        let db = app.db();
        let now = app.clock.now();
        let mut report = PassReport::default();
        let queue = PendingQueue.queue(db, group).await?;
        if queue.is_empty() {
            return Ok(report);
        }
        let group_name = GroupName::from_stored(group);
        let ids: Vec<String> = queue.iter().map(|q| q.session_id.clone()).collect();
        let sessions: HashMap<Uuid, Session> = documents::sessions()
            .get_many(db, &ids)
            .await?
            .into_iter()
            .filter(|s| s.status == Some(SessionStatus::Pending))
            .filter_map(|s| s.spec.as_ref().map(|p| p.session_id).map(|id| (id, s)))
            .collect();

        // Agents: the read model, or this scheduler's own newer copy.
        let mut agents: Vec<Agent> = documents::agents_of_group(db, group).await?;
        self.with_memory(group, |m| {
            for a in agents.iter_mut() {
                if let Some(mine) = m.agents.get(&a.agent_id) {
                    if mine.version > a.version {
                        *a = mine.clone();
                    }
                }
            }
        });

        // Owners: policies and usage (usage only where a limit or DRF needs it).
        let kind = sg.map(|g| g.scheduler).unwrap_or_default();
        let owners: BTreeSet<String> = sessions
            .values()
            .filter_map(|s| s.spec.as_ref().map(|p| p.owner.to_string()))
            .collect();
        let mut limits: HashMap<String, ResourceLimits> = HashMap::new();
        let mut usage: HashMap<String, OwnerUsage> = HashMap::new();
        for owner in &owners {
            let policy: ResourcePolicy = app.commands.load(owner).await?;
            let needs_usage = policy.limits.max_concurrent_sessions.is_some()
                || policy.limits.total_resource_slots.is_some()
                || kind == SchedulerKind::Drf;
            let mut u = OwnerUsage::default();
            if needs_usage {
                for s in documents::live_sessions_of(db, owner).await? {
                    u.concurrent = u.concurrent.saturating_add(1);
                    for a in &s.allocations {
                        u.allocated = u.allocated.saturating_add(&a.slots);
                    }
                }
            }
            usage.insert(owner.clone(), u);
            limits.insert(owner.clone(), policy.limits);
        }

        // Dependencies (with their owners: another owner's session counts as unknown).
        let dep_ids: BTreeSet<Uuid> = sessions
            .values()
            .filter_map(|s| s.spec.as_ref())
            .flat_map(|p| p.dependencies.iter().copied())
            .collect();
        let mut deps: BTreeMap<Uuid, Option<DependencyState>> =
            dep_ids.iter().map(|id| (*id, None)).collect();
        if !dep_ids.is_empty() {
            let list: Vec<String> = dep_ids.iter().map(Uuid::to_string).collect();
            for d in documents::sessions().get_many(db, &list).await? {
                if let (Some(spec), Some(status)) = (&d.spec, d.status) {
                    deps.insert(
                        spec.session_id,
                        Some(DependencyState {
                            owner: spec.owner.to_string(),
                            status,
                            exit_code: d.exit_code,
                        }),
                    );
                }
            }
        }

        let pending: Vec<PendingItem> = queue
            .iter()
            .filter_map(|q| {
                let id = Uuid::parse_str(&q.session_id).ok()?;
                Some(PendingItem {
                    session: sessions.get(&id)?.clone(),
                    enqueue_position: q.enqueue_position,
                    retries: u32::try_from(q.retries).unwrap_or(u32::MAX),
                })
            })
            .collect();
        let last_agent = self.with_memory(group, |m| m.last_agent.clone());
        let planned = plan(PassInput {
            group: &group_name,
            scaling_group: sg,
            now,
            pending,
            agents,
            limits: &limits,
            usage,
            dependencies: &deps,
            last_agent,
        });
        report.considered = planned.considered;

        // Append placements in batches; a conflicting batch (and everything decided after
        // it, which assumed it) is redone one placement at a time on loaded state.
        let meta = scheduler_metadata();
        let mut one_by_one = false;
        let mut touched: BTreeSet<String> = BTreeSet::new();
        for chunk in planned.placements.chunks(PLACEMENT_CHUNK) {
            if !one_by_one {
                let mut rows: Vec<NewEvent> = Vec::new();
                for p in chunk {
                    rows.extend(placement_rows(p, &meta)?);
                }
                match app.store.append(&rows).await {
                    Ok(_) => {
                        report.scheduled = report.scheduled.saturating_add(chunk.len());
                        continue;
                    }
                    Err(e) if e.is_conflict() => {
                        report.conflicts = report.conflicts.saturating_add(1);
                        one_by_one = true;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            for p in chunk {
                touched.insert(p.agent_id.to_string());
                if self.place_one(&group_name, p, &meta, now).await? {
                    report.scheduled = report.scheduled.saturating_add(1);
                }
            }
        }
        self.with_memory(group, |m| {
            m.last_agent = planned.last_agent.clone();
            for a in &planned.agents {
                if touched.contains(&a.agent_id) {
                    m.agents.remove(&a.agent_id);
                } else {
                    m.agents.insert(a.agent_id.clone(), a.clone());
                }
            }
            m.recorded.retain(|id, _| sessions.contains_key(id));
        });

        // Failures: an event only when the set changed; the attempt is bookkept anyway.
        let mut attempted = Vec::new();
        for w in planned.waiting {
            let id = w.session_id;
            attempted.push(id.to_string());
            let failed = sorted(w.failed);
            let known = self.with_memory(group, |m| m.recorded.get(&id).cloned());
            let last = known.unwrap_or_else(|| {
                sessions
                    .get(&id)
                    .map(|s| sorted(s.failed_predicates.clone()))
                    .unwrap_or_default()
            });
            if last == failed {
                continue;
            }
            match app
                .commands
                .execute::<Session>(
                    &id.to_string(),
                    SessionCommand::RecordSchedulingFailure {
                        failed: failed.clone(),
                        passed: w.passed,
                        now,
                    },
                    &meta,
                )
                .await
            {
                Ok(c) => {
                    report.failures_recorded =
                        report.failures_recorded.saturating_add(c.events.len());
                    self.with_memory(group, |m| m.recorded.insert(id, failed));
                }
                Err(CommandError::Rejected(_)) => {}
                Err(CommandError::Conflict { .. }) => {
                    report.conflicts = report.conflicts.saturating_add(1)
                }
                Err(CommandError::Store(e)) => return Err(e.into()),
            }
        }
        report.waiting = attempted.len();
        PendingQueue
            .record_attempts(db, &attempted, &now.to_rfc3339())
            .await?;
        // Queue order: who waits behind a blocked strict queue, and where. Written only
        // where it changed (a blocked head keeps every position still).
        let known: HashMap<&str, (Option<i64>, Option<&str>)> = queue
            .iter()
            .map(|q| {
                (
                    q.session_id.as_str(),
                    (q.queue_position, q.queue_reason.as_deref()),
                )
            })
            .collect();
        let mut order_rows: Vec<(String, Option<i64>, Option<String>)> = Vec::new();
        for q in &planned.queued {
            let id = q.session_id.to_string();
            let now_known = (Some(q.position), Some(q.reason.msg.as_str()));
            if known.get(id.as_str()) != Some(&now_known) {
                order_rows.push((id, Some(q.position), Some(q.reason.msg.clone())));
            }
        }
        for id in &attempted {
            if known
                .get(id.as_str())
                .is_some_and(|(position, _)| position.is_some())
            {
                order_rows.push((id.clone(), None, None));
            }
        }
        report.queued = planned.queued.len();
        PendingQueue.record_queue_order(db, &order_rows).await?;

        for (id, dep) in planned.doomed {
            let r = app
                .commands
                .execute::<Session>(
                    &id.to_string(),
                    SessionCommand::CancelPending {
                        reason: Reason::from_static(DEPENDENCY_FAILED),
                        now,
                    },
                    &meta,
                )
                .await;
            match r {
                Ok(_) => {
                    tracing::info!(session_id = %id, dependency = %dep, "cancelled: a dependency can never succeed");
                    report.cancelled = report.cancelled.saturating_add(1);
                }
                Err(CommandError::Rejected(_) | CommandError::Conflict { .. }) => {}
                Err(CommandError::Store(e)) => return Err(e.into()),
            }
        }
        stats::record_pass(&report);
        if report.scheduled > 0 || report.failures_recorded > 0 {
            tracing::info!(group, ?report, "scheduling pass");
        }
        Ok(report)
    }

    /// Places one session on one agent on freshly loaded state (the fallback after a
    /// batch conflict). Both events still go in one statement. Returns whether it landed.
    async fn place_one(
        &self,
        group: &GroupName,
        p: &Placement,
        meta: &EventMetadata,
        now: DateTime<Utc>,
    ) -> Result<bool, SchedulerError> {
        let app = &self.app;
        let sid = p.session_id.to_string();
        for _ in 0..4 {
            let agent: Agent = app.commands.load(p.agent_id.as_str()).await?;
            let session: Session = app.commands.load(&sid).await?;
            let Ok(agent_events) = agent.decide(AgentCommand::AllocateSlots {
                session_id: p.session_id,
                slots: p.slots.clone(),
                now,
            }) else {
                return Ok(false);
            };
            let session_events = match session.decide(SessionCommand::Schedule {
                scaling_group: group.clone(),
                agents: vec![AgentAllocation {
                    agent_id: p.agent_id.clone(),
                    slots: p.slots.clone(),
                }],
                now,
            }) {
                Ok(e) => e,
                Err(SessionError::IllegalTransition { .. } | SessionError::NotFound) => {
                    return Ok(false)
                }
                Err(_) => return Ok(false),
            };
            let rows = placement_rows(
                &Placement {
                    agent_version: agent.version,
                    agent_events,
                    session_version: session.version,
                    session_events,
                    ..p.clone()
                },
                meta,
            )?;
            match app.store.append(&rows).await {
                Ok(_) => return Ok(true),
                Err(e) if e.is_conflict() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(false)
    }
}
