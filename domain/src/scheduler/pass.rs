//! One scheduling pass over a group's queue, as a pure function (SPEC §2.2, §2.3):
//! order the pending sessions, evaluate the predicates, select an agent, and decide the
//! `AllocateSlots` / `Schedule` pair of every placement on the states given — without
//! I/O. The application gathers [`PassInput`] from the read models and appends what
//! [`plan`] returns; a stale input costs an optimistic conflict, never a wrong
//! allocation.
//!
//! A session whose decision fails (a request too large to compute, or a bug that
//! panics) is reported as waiting with a reason for that session alone; the pass goes
//! on for the others.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use uuid::Uuid;

use super::ordering::{order_queue, QueueItem};
use super::predicates::{
    evaluate, failed_dependency, overflow_message, requested_slots, DependencyState, OwnerUsage,
    PredicateInput, AGENT_SELECTION, RESOURCES,
};
use super::selection::{no_agent_message, select_agent, AgentCandidate};
use crate::agent::{Agent, AgentAllocation, AgentCommand, AgentEvent, AgentStatus};
use crate::ids::{AgentId, GroupName};
use crate::policy::ResourceLimits;
use crate::resources::ResourceSlots;
use crate::scaling_group::{ScalingGroup, SchedulerKind};
use crate::session::reasons::QUEUE_ORDER;
use crate::session::{
    FailedPredicate, PassedPredicate, Session, SessionCommand, SessionEvent, SessionStatus,
};

/// Name of the failure recorded for a session whose evaluation panicked.
pub const INTERNAL: &str = "internal";

/// A PENDING session as the pass sees it.
#[derive(Debug, Clone)]
pub struct PendingItem {
    /// Its folded state (from the read model, at a known version).
    pub session: Session,
    /// Global position of its `SessionEnqueued` (arrival order).
    pub enqueue_position: i64,
    /// Failed attempts so far (the queue's bookkeeping).
    pub retries: u32,
}

/// Everything one pass decides on.
#[derive(Debug, Clone)]
pub struct PassInput<'a> {
    /// The group's name.
    pub group: &'a GroupName,
    /// The group as it is now (`None`: gone; its sessions fail `scaling_group`).
    pub scaling_group: Option<&'a ScalingGroup>,
    /// The time of the pass.
    pub now: DateTime<Utc>,
    /// The group's pending sessions (any order; the group's scheduler orders them).
    pub pending: Vec<PendingItem>,
    /// The group's agents (only ALIVE agents of this group are used).
    pub agents: Vec<Agent>,
    /// Owners' limits (absent: unlimited).
    pub limits: &'a HashMap<String, ResourceLimits>,
    /// Owners' current usage (absent: none).
    pub usage: HashMap<String, OwnerUsage>,
    /// States of the sessions' dependencies (`None`: unknown, or another owner's).
    pub dependencies: &'a BTreeMap<Uuid, Option<DependencyState>>,
    /// The agent chosen last in this group (round robin continues after it).
    pub last_agent: Option<String>,
}

/// One decided placement: both streams' events, each at the version it was decided on.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// The session.
    pub session_id: Uuid,
    /// The agent.
    pub agent_id: AgentId,
    /// The slots allocated.
    pub slots: ResourceSlots,
    /// The agent stream's version the events follow.
    pub agent_version: u64,
    /// `SlotsAllocated`.
    pub agent_events: Vec<AgentEvent>,
    /// The session stream's version the events follow.
    pub session_version: u64,
    /// `SessionScheduled`.
    pub session_events: Vec<SessionEvent>,
}

/// A session that keeps waiting, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// The session.
    pub session_id: Uuid,
    /// Failed predicates with messages.
    pub failed: Vec<FailedPredicate>,
    /// Passed predicates.
    pub passed: Vec<PassedPredicate>,
}

/// A session that was not evaluated because a strict queue is blocked ahead of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The session.
    pub session_id: Uuid,
    /// Its 1-based position in the group's queue, in the scheduler's order.
    pub position: i64,
    /// Why it waits: the `queue_order` predicate, naming the blocking session and its
    /// failed predicate.
    pub reason: FailedPredicate,
}

/// What a pass decided.
#[derive(Debug, Clone, Default)]
pub struct PassPlan {
    /// PENDING sessions looked at.
    pub considered: usize,
    /// Placements, in the order they were decided (each assumes the ones before it).
    pub placements: Vec<Placement>,
    /// Sessions that keep waiting, with their reasons.
    pub waiting: Vec<Waiting>,
    /// Sessions not evaluated because of queue order (kept in the read model, not as
    /// events: their position changes whenever the queue moves).
    pub queued: Vec<Queued>,
    /// Sessions to cancel `dependency-failed`: (session, the dependency that failed).
    pub doomed: Vec<(Uuid, Uuid)>,
    /// The agent chosen last.
    pub last_agent: Option<String>,
    /// The agents' states after the planned placements.
    pub agents: Vec<Agent>,
}

/// What the pass decided for one session.
enum Outcome {
    Place {
        agent: usize,
        requested: ResourceSlots,
        agent_events: Vec<AgentEvent>,
        session_events: Vec<SessionEvent>,
    },
    Wait {
        failed: Vec<FailedPredicate>,
        passed: Vec<PassedPredicate>,
        /// Agent selection failed: a strict queue is blocked behind this session.
        no_agent: bool,
    },
    Doomed(Uuid),
    /// Not evaluated: a strict queue is blocked ahead of it.
    Queued,
    Skip,
}

/// The `queue_order` reason of a session of `owner`, `ahead` places behind the head of
/// a strict queue (`kind`), blocked by `blocker` (its failed predicate's message, and
/// whether it is the very head). The blocker is named only to its own owner's sessions:
/// a user is never told the name of another user's session.
pub fn queue_order_reason(
    group: &GroupName,
    kind: SchedulerKind,
    ahead: usize,
    owner: &str,
    blocker: &Blocker,
) -> FailedPredicate {
    let order = match kind {
        SchedulerKind::Lifo => "strict LIFO",
        _ => "strict FIFO",
    };
    let sessions = if ahead == 1 { "session" } else { "sessions" };
    let who = match (blocker.is_head, blocker.owner == owner) {
        (true, true) => format!("the head '{}'", blocker.name),
        (true, false) => "the head (another user's session)".to_string(),
        (false, true) => format!("'{}' ahead of it", blocker.name),
        (false, false) => "another user's session ahead of it".to_string(),
    };
    FailedPredicate {
        name: QUEUE_ORDER.into(),
        msg: format!(
            "waiting behind {ahead} {sessions} in '{group}' ({order}; {who} waits for: {})",
            blocker.msg
        ),
    }
}

/// The session that blocks a strict queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// Its name.
    pub name: String,
    /// Its owner (the name is shown to this owner's sessions only).
    pub owner: String,
    /// Its failed predicate's message.
    pub msg: String,
    /// Whether it is first in the queue.
    pub is_head: bool,
}

/// Plans one pass (see the module documentation).
pub fn plan(input: PassInput<'_>) -> PassPlan {
    let PassInput {
        group,
        scaling_group: sg,
        now,
        pending,
        agents,
        limits,
        mut usage,
        dependencies,
        last_agent,
    } = input;
    let mut agents: Vec<Agent> = agents
        .into_iter()
        .filter(|a| {
            a.registered && a.status == AgentStatus::Alive && a.scaling_group == group.as_str()
        })
        .collect();
    agents.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
    let kind = sg.map(|g| g.scheduler).unwrap_or_default();
    let strategy = sg
        .map(|g| g.scheduler_opts.agent_selection_strategy)
        .unwrap_or_default();
    let skip_after = sg
        .map(|g| g.scheduler_opts.config.num_retries_to_skip)
        .unwrap_or(0);

    let mut sessions: HashMap<Uuid, PendingItem> = pending
        .into_iter()
        .filter(|p| p.session.status == Some(SessionStatus::Pending))
        .filter_map(|p| {
            p.session
                .spec
                .as_ref()
                .map(|s| s.session_id)
                .map(|id| (id, p))
        })
        .collect();
    let mut out = PassPlan {
        considered: sessions.len(),
        last_agent,
        ..PassPlan::default()
    };

    // Order. A request that cannot be computed sorts as empty; it waits below.
    let items: Vec<QueueItem> = sessions
        .iter()
        .filter_map(|(id, p)| {
            let spec = p.session.spec.as_ref()?;
            Some(QueueItem {
                session_id: *id,
                owner: spec.owner.to_string(),
                priority: spec.priority.get(),
                enqueue_position: p.enqueue_position,
                requested: requested_slots(spec).unwrap_or_default(),
                retries: p.retries,
            })
        })
        .collect();
    let capacity = agents.iter().fold(ResourceSlots::new(), |acc, a| {
        acc.saturating_add(&a.available_slots)
    });
    let allocated: BTreeMap<String, ResourceSlots> = usage
        .iter()
        .map(|(o, u)| (o.clone(), u.allocated.clone()))
        .collect();
    let ordered = order_queue(kind, items, &allocated, &capacity);

    // What selection sees; kept in step with `agents` as placements are decided. An
    // agent whose ledger cannot be summed offers nothing.
    let mut candidates: Vec<AgentCandidate> = agents
        .iter()
        .map(|a| AgentCandidate {
            agent_id: a.agent_id.clone(),
            capacity: a.available_slots.clone(),
            occupied: a
                .occupied_slots()
                .unwrap_or_else(|_| a.available_slots.clone()),
        })
        .collect();
    let default_limits = ResourceLimits::default();
    let mut blocked = false;
    let mut blocker: Option<Blocker> = None;
    for (index, item) in ordered.into_iter().enumerate() {
        let Some(pending) = sessions.get_mut(&item.session_id) else {
            continue;
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            decide_one(
                &pending.session,
                &item,
                DecideContext {
                    group,
                    sg,
                    now,
                    strategy,
                    blocked,
                    limits,
                    default_limits: &default_limits,
                    usage: &usage,
                    dependencies,
                    candidates: &candidates,
                    agents: &agents,
                    last_agent: out.last_agent.as_deref(),
                },
            )
        }))
        .unwrap_or_else(|_| Outcome::Wait {
            failed: vec![FailedPredicate {
                name: INTERNAL.into(),
                msg: "the scheduler could not evaluate this session (the error is logged); it keeps waiting".into(),
            }],
            passed: vec![],
            no_agent: false,
        });
        match outcome {
            Outcome::Skip => {}
            Outcome::Queued => {
                if let Some(b) = &blocker {
                    out.queued.push(Queued {
                        session_id: item.session_id,
                        position: i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1),
                        reason: queue_order_reason(
                            group,
                            kind,
                            index,
                            pending
                                .session
                                .spec
                                .as_ref()
                                .map(|s| s.owner.as_str())
                                .unwrap_or_default(),
                            b,
                        ),
                    });
                }
            }
            Outcome::Doomed(dep) => out.doomed.push((item.session_id, dep)),
            Outcome::Wait {
                failed,
                passed,
                no_agent,
            } => {
                if no_agent {
                    let may_skip = skip_after > 0 && item.retries >= skip_after;
                    if kind != SchedulerKind::Drf && !may_skip && !blocked {
                        blocked = true;
                        let spec = pending.session.spec.as_ref();
                        blocker = Some(Blocker {
                            name: spec.map(|s| s.name.to_string()).unwrap_or_default(),
                            owner: spec.map(|s| s.owner.to_string()).unwrap_or_default(),
                            msg: failed.first().map(|f| f.msg.clone()).unwrap_or_default(),
                            is_head: index == 0,
                        });
                    }
                }
                out.waiting.push(Waiting {
                    session_id: item.session_id,
                    failed,
                    passed,
                });
            }
            Outcome::Place {
                agent: i,
                requested,
                agent_events,
                session_events,
            } => {
                let (Some(agent), Some(c)) = (agents.get_mut(i), candidates.get_mut(i)) else {
                    continue;
                };
                let agent_version = agent.version;
                for e in &agent_events {
                    agent.apply(e);
                }
                let session_version = pending.session.version;
                for e in &session_events {
                    pending.session.apply(e);
                }
                c.occupied = c.occupied.saturating_add(&requested);
                if let Some(spec) = pending.session.spec.as_ref() {
                    let u = usage.entry(spec.owner.to_string()).or_default();
                    u.concurrent = u.concurrent.saturating_add(1);
                    u.allocated = u.allocated.saturating_add(&requested);
                }
                out.last_agent = Some(agent.agent_id.clone());
                out.placements.push(Placement {
                    session_id: item.session_id,
                    agent_id: AgentId::from_stored(agent.agent_id.clone()),
                    slots: requested,
                    agent_version,
                    agent_events,
                    session_version,
                    session_events,
                });
            }
        }
    }
    out.agents = agents;
    out
}

struct DecideContext<'a> {
    group: &'a GroupName,
    sg: Option<&'a ScalingGroup>,
    now: DateTime<Utc>,
    strategy: crate::scaling_group::AgentSelectionStrategy,
    blocked: bool,
    limits: &'a HashMap<String, ResourceLimits>,
    default_limits: &'a ResourceLimits,
    usage: &'a HashMap<String, OwnerUsage>,
    dependencies: &'a BTreeMap<Uuid, Option<DependencyState>>,
    candidates: &'a [AgentCandidate],
    agents: &'a [Agent],
    last_agent: Option<&'a str>,
}

/// The decision for one session, read-only (so a panic in it leaves nothing half-done).
fn decide_one(session: &Session, item: &QueueItem, cx: DecideContext<'_>) -> Outcome {
    let Some(spec) = session.spec.as_ref() else {
        return Outcome::Skip;
    };
    if let Some(dep) = failed_dependency(spec, cx.dependencies) {
        return Outcome::Doomed(dep);
    }
    let Ok(requested) = requested_slots(spec) else {
        return Outcome::Wait {
            failed: vec![FailedPredicate {
                name: RESOURCES.into(),
                msg: overflow_message(spec),
            }],
            passed: vec![],
            no_agent: false,
        };
    };
    let no_usage = OwnerUsage::default();
    let evaluation = evaluate(&PredicateInput {
        spec,
        now: cx.now,
        group: cx.sg,
        limits: cx
            .limits
            .get(spec.owner.as_str())
            .unwrap_or(cx.default_limits),
        usage: cx.usage.get(spec.owner.as_str()).unwrap_or(&no_usage),
        dependencies: cx.dependencies,
    });
    if !evaluation.passed_all() {
        return Outcome::Wait {
            failed: evaluation.failed,
            passed: evaluation.passed,
            no_agent: false,
        };
    }
    if cx.blocked {
        // Strict ordering: nobody overtakes a head of line that does not fit.
        return Outcome::Queued;
    }
    let Some(i) = select_agent(cx.strategy, cx.candidates, &requested, cx.last_agent) else {
        return Outcome::Wait {
            failed: vec![FailedPredicate {
                name: AGENT_SELECTION.into(),
                msg: no_agent_message(cx.group, &requested),
            }],
            passed: evaluation.passed,
            no_agent: true,
        };
    };
    let Some(agent) = cx.agents.get(i) else {
        return Outcome::Skip;
    };
    let Ok(agent_events) = agent.decide(AgentCommand::AllocateSlots {
        session_id: item.session_id,
        slots: requested.clone(),
        now: cx.now,
    }) else {
        return Outcome::Skip;
    };
    let allocation = AgentAllocation {
        agent_id: AgentId::from_stored(agent.agent_id.clone()),
        slots: requested.clone(),
    };
    let Ok(session_events) = session.decide(SessionCommand::Schedule {
        scaling_group: cx.group.clone(),
        agents: vec![allocation],
        now: cx.now,
    }) else {
        return Outcome::Skip;
    };
    Outcome::Place {
        agent: i,
        requested,
        agent_events,
        session_events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{epoch, session_name, spec_in};

    fn group() -> ScalingGroup {
        ScalingGroup {
            exists: true,
            name: "g".into(),
            is_active: true,
            public: true,
            ..ScalingGroup::default()
        }
    }

    /// `n` PENDING sessions named `q1..qn`, enqueued in that order.
    fn queue(n: i64) -> Vec<PendingItem> {
        (1..=n)
            .map(|i| {
                let mut spec = spec_in(Uuid::new_v4(), "g", "alice");
                spec.name = session_name(&format!("q{i}"));
                let mut session = Session::default();
                for e in session
                    .decide(SessionCommand::Enqueue { spec, now: epoch() })
                    .unwrap_or_default()
                {
                    session.apply(&e);
                }
                PendingItem {
                    session,
                    enqueue_position: i,
                    retries: 0,
                }
            })
            .collect()
    }

    fn plan_of(sg: &ScalingGroup, pending: Vec<PendingItem>) -> PassPlan {
        let name = GroupName::from_stored("g");
        plan(PassInput {
            group: &name,
            scaling_group: Some(sg),
            now: epoch(),
            pending,
            agents: vec![],
            limits: &HashMap::new(),
            usage: HashMap::new(),
            dependencies: &BTreeMap::new(),
            last_agent: None,
        })
    }

    #[test]
    fn given_a_strict_fifo_queue_without_capacity_when_planned_then_the_head_waits_for_an_agent_and_everyone_behind_it_says_so(
    ) {
        let pending = queue(20);
        let head = pending[0].session.spec.as_ref().map(|s| s.session_id);
        let last = pending[19].session.spec.as_ref().map(|s| s.session_id);
        let planned = plan_of(&group(), pending);
        assert_eq!(planned.waiting.len(), 1);
        assert_eq!(Some(planned.waiting[0].session_id), head);
        assert_eq!(planned.queued.len(), 19);
        let q20 = planned.queued.iter().find(|q| Some(q.session_id) == last);
        let Some(q20) = q20 else {
            panic!("the last session is not reported as queued")
        };
        assert_eq!(q20.position, 20);
        assert_eq!(q20.reason.name, "queue_order");
        assert_eq!(
            q20.reason.msg,
            "waiting behind 19 sessions in 'g' (strict FIFO; the head 'q1' waits for: no agent in 'g' can host {cpu: 1})"
        );
        let q2 = planned.queued.iter().find(|q| q.position == 2);
        assert!(q2.is_some_and(|q| q.reason.msg.starts_with("waiting behind 1 session in 'g'")));
    }

    #[test]
    fn given_another_users_session_at_the_head_when_planned_then_those_behind_it_are_not_told_its_name(
    ) {
        let mut pending = queue(3);
        let mut spec = spec_in(Uuid::new_v4(), "g", "bob");
        spec.name = session_name("bobs-secret-project");
        let mut head = Session::default();
        for e in head
            .decide(SessionCommand::Enqueue { spec, now: epoch() })
            .unwrap_or_default()
        {
            head.apply(&e);
        }
        pending[0] = PendingItem {
            session: head,
            enqueue_position: 0,
            retries: 0,
        };
        let planned = plan_of(&group(), pending);
        assert_eq!(planned.queued.len(), 2);
        for q in &planned.queued {
            assert!(
                !q.reason.msg.contains("bobs-secret-project"),
                "{}",
                q.reason.msg
            );
            assert!(
                q.reason
                    .msg
                    .contains("the head (another user's session) waits for: no agent"),
                "{}",
                q.reason.msg
            );
        }
    }

    #[test]
    fn given_a_drf_queue_without_capacity_when_planned_then_every_session_is_evaluated_and_none_is_queued(
    ) {
        let mut sg = group();
        sg.scheduler = SchedulerKind::Drf;
        let planned = plan_of(&sg, queue(3));
        assert_eq!(planned.waiting.len(), 3);
        assert!(planned.queued.is_empty());
    }
}
