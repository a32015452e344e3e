//! A workload driven through the command handler, and the checks that every read model
//! equals a fresh fold of the event streams.

use chrono::{DateTime, Utc};
use domain::agent::{Agent, AgentCommand};
use domain::scaling_group::ScalingGroup;
use domain::session::{
    AgentAllocation, FailedPredicate, PassedPredicate, Session, SessionCommand, SessionSpec,
    SessionStatus,
};
use domain::{Decider, ResourceSlots};
use projections::models::audit_log::{self, AuditLog};
use projections::models::documents;
use projections::models::pending_queue::{PendingEntry, PendingQueue};
use projections::RecordedEvent;
use serde_json::{json, Value};
use sessiond::command::{CommandHandler, Committed};
use sessiond::store::{EventStore, LogPosition};
use std::collections::{BTreeMap, BTreeSet};
use store::db::Db;
use uuid::Uuid;

use crate::fixtures::{agent_id, create_group, group, reason, register_agent, update_group};
pub use crate::fixtures::{at, meta, T0};

/// `n` cores.
pub fn cpu(n: i32) -> ResourceSlots {
    ResourceSlots::new().with("cpu", n.into())
}

/// A session of `owner` in `group` with `priority`, asking for 2 cpu.
pub fn spec(id: Uuid, group_name: &str, priority: u8, owner: &str) -> SessionSpec {
    crate::fixtures::spec_with(id, group_name, priority, owner)
}

pub async fn enqueue_session(
    handler: &CommandHandler,
    id: Uuid,
    group: &str,
    priority: u8,
    owner: &str,
    now: DateTime<Utc>,
) -> Committed<Session> {
    handler
        .execute::<Session>(
            &id.to_string(),
            SessionCommand::Enqueue {
                spec: spec(id, group, priority, owner),
                now,
            },
            &meta(&format!("user:{owner}")),
        )
        .await
        .unwrap()
}

/// The store, a handler, and what the test wrote (ids, actors, positions).
#[derive(Debug)]
pub struct World {
    pub store: EventStore,
    pub handler: CommandHandler,
    pub db: Db,
    /// Seconds after [`T0`] of the last command.
    pub clock: i64,
    pub sessions: Vec<Uuid>,
    pub groups: Vec<String>,
    pub agents: Vec<String>,
    /// global position -> actor of every event written.
    pub actors: BTreeMap<i64, String>,
    /// Session -> global position of its `SessionEnqueued`.
    pub enqueue_positions: BTreeMap<Uuid, i64>,
    /// The log position of the last event written (commands run one at a time, so it
    /// is the greatest).
    pub last: LogPosition,
}

impl World {
    pub fn new(store: EventStore) -> Self {
        Self {
            handler: CommandHandler::new(store.clone()),
            db: store.db(),
            store,
            clock: 0,
            sessions: vec![],
            groups: vec![],
            agents: vec![],
            actors: BTreeMap::new(),
            enqueue_positions: BTreeMap::new(),
            last: LogPosition::START,
        }
    }

    /// Advances the domain clock by a few seconds and returns it.
    pub fn now(&mut self) -> DateTime<Utc> {
        self.clock += 7;
        at(self.clock)
    }

    pub fn advance(&mut self, secs: i64) {
        self.clock += secs;
    }

    pub fn events(&self) -> usize {
        self.actors.len()
    }

    /// Remembers what a command appended.
    pub fn record<A: Decider>(&mut self, committed: &Committed<A>, actor: &str) {
        for p in &committed.positions {
            assert!(self
                .actors
                .insert(p.global_position, actor.to_string())
                .is_none());
            self.last = self.last.max(*p);
        }
    }

    pub async fn group(&mut self, name: &str, opts: Value) {
        let now = self.now();
        let c = self
            .handler
            .execute::<ScalingGroup>(name, create_group(name, &opts, now), &meta("admin"))
            .await
            .unwrap();
        self.record(&c, "admin");
        self.groups.push(name.into());
    }

    pub async fn update_group(
        &mut self,
        name: &str,
        description: Option<&str>,
        opts: Option<Value>,
    ) {
        let now = self.now();
        let c = self
            .handler
            .execute::<ScalingGroup>(
                name,
                update_group(description, opts.as_ref(), now),
                &meta("admin"),
            )
            .await
            .unwrap();
        assert!(!c.events.is_empty(), "the update changed something");
        self.record(&c, "admin");
    }

    pub async fn agent(&mut self, id: &str, group_name: &str) {
        let now = self.now();
        let actor = format!("agent:{id}");
        let c = self
            .handler
            .execute::<Agent>(
                id,
                register_agent(id, group_name, cpu(16), now),
                &meta(&actor),
            )
            .await
            .unwrap();
        self.record(&c, &actor);
        self.agents.push(id.into());
    }

    pub async fn mark_lost(&mut self, agent: &str) {
        let now = self.now();
        let c = self
            .handler
            .execute::<Agent>(agent, AgentCommand::MarkLost { now }, &meta("scheduler"))
            .await
            .unwrap();
        self.record(&c, "scheduler");
    }

    pub async fn enqueue(&mut self, group: &str, priority: u8, owner: &str) -> Uuid {
        let id = Uuid::new_v4();
        let now = self.now();
        let c = enqueue_session(&self.handler, id, group, priority, owner, now).await;
        self.record(&c, &format!("user:{owner}"));
        self.sessions.push(id);
        self.enqueue_positions
            .insert(id, c.positions[0].global_position);
        id
    }

    /// Runs one session command; returns how many events it appended.
    pub async fn session(
        &mut self,
        id: Uuid,
        actor: &str,
        command: impl FnOnce(DateTime<Utc>) -> SessionCommand,
    ) -> usize {
        let now = self.now();
        let c = self
            .handler
            .execute::<Session>(&id.to_string(), command(now), &meta(actor))
            .await
            .unwrap();
        self.record(&c, actor);
        c.events.len()
    }

    /// Allocates slots on `agent` (the ledger) and schedules the session there.
    pub async fn schedule(&mut self, id: Uuid, agent: &str, group_name: &str) {
        let now = self.now();
        let c = self
            .handler
            .execute::<Agent>(
                agent,
                AgentCommand::AllocateSlots {
                    session_id: id,
                    slots: cpu(2),
                    now,
                },
                &meta("scheduler"),
            )
            .await
            .unwrap();
        self.record(&c, "scheduler");
        let group_name = group(group_name);
        let agent = agent_id(agent);
        self.session(id, "scheduler", move |now| SessionCommand::Schedule {
            scaling_group: group_name,
            agents: vec![AgentAllocation {
                agent_id: agent,
                slots: cpu(2),
            }],
            now,
        })
        .await;
    }

    pub async fn release(&mut self, id: Uuid, agent: &str) {
        let now = self.now();
        let c = self
            .handler
            .execute::<Agent>(
                agent,
                AgentCommand::ReleaseSlots {
                    session_id: id,
                    now,
                },
                &meta("scheduler"),
            )
            .await
            .unwrap();
        assert_eq!(c.events.len(), 1, "the session held slots");
        self.record(&c, "scheduler");
    }

    pub async fn scheduling_failure(&mut self, id: Uuid, msg: &str) -> usize {
        let msg = msg.to_string();
        self.session(id, "scheduler", move |now| {
            SessionCommand::RecordSchedulingFailure {
                failed: vec![FailedPredicate {
                    name: "concurrency".into(),
                    msg,
                }],
                passed: vec![PassedPredicate {
                    name: "scaling_group".into(),
                }],
                now,
            }
        })
        .await
    }

    /// SCHEDULED -> ... -> RUNNING, as the agent reports it.
    pub async fn run_to_running(&mut self, id: Uuid, agent: &str) {
        let actor = format!("agent:{agent}");
        self.session(id, &actor, |now| SessionCommand::MarkPreparing { now })
            .await;
        self.session(id, &actor, |now| SessionCommand::MarkPulling { now })
            .await;
        self.session(id, &actor, |now| SessionCommand::MarkPrepared { now })
            .await;
        self.session(id, &actor, |now| SessionCommand::MarkCreating { now })
            .await;
        self.session(id, &actor, |now| SessionCommand::Start { now })
            .await;
    }

    pub async fn cancel(&mut self, id: Uuid, why: &str, actor: &str) {
        let why = reason(why);
        self.session(id, actor, move |now| SessionCommand::Cancel {
            reason: why,
            now,
        })
        .await;
    }

    // ---- fresh folds -------------------------------------------------------------------

    pub async fn fold_session(&self, id: Uuid) -> Session {
        self.handler.load::<Session>(&id.to_string()).await.unwrap()
    }

    pub async fn fold_group(&self, name: &str) -> ScalingGroup {
        self.handler.load::<ScalingGroup>(name).await.unwrap()
    }

    pub async fn fold_agent(&self, id: &str) -> Agent {
        self.handler.load::<Agent>(id).await.unwrap()
    }

    /// The whole global log (waits until every event the test wrote is readable).
    pub async fn full_log(&self) -> Vec<RecordedEvent> {
        let mut cursor = LogPosition::START;
        let log = crate::db::read_until(&self.store, &mut cursor, self.events(), 1000).await;
        assert_eq!(log.len(), self.events(), "every written event is readable");
        log
    }
}

/// A mixed workload: three groups with different `pending_timeout`s (one changed while
/// sessions wait), three agents (one lost), twenty sessions in every kind of state.
pub async fn mixed(store: EventStore) -> World {
    let mut w = World::new(store);
    w.group("alpha", json!({"pending_timeout": 120})).await;
    w.group("beta", json!({})).await;
    w.group("gamma", json!({"pending_timeout": 30})).await;
    w.agent("a1", "alpha").await;
    w.agent("a2", "beta").await;
    w.agent("a3", "alpha").await;

    let groups = ["alpha", "beta", "gamma"];
    let priorities = [10, 20, 10, 5, 90];
    let owners = ["alice", "bob", "carol"];
    let mut s = Vec::new();
    for i in 0..20 {
        if i == 10 {
            // Lowered while sessions wait: applies to them too.
            w.update_group("alpha", None, Some(json!({"pending_timeout": 90})))
                .await;
            w.update_group("beta", Some("renamed"), None).await;
        }
        let id = w
            .enqueue(groups[i % 3], priorities[i % 5], owners[i % 3])
            .await;
        s.push(id);
    }

    // Scheduling failures: news only when the failure set changes.
    assert_eq!(w.scheduling_failure(s[0], "limit 1").await, 1);
    assert_eq!(w.scheduling_failure(s[1], "limit 2").await, 1);
    assert_eq!(w.scheduling_failure(s[1], "limit 2").await, 0);
    assert_eq!(w.scheduling_failure(s[0], "limit 3").await, 1);
    assert_eq!(w.scheduling_failure(s[2], "limit 1").await, 1);

    // Schedule s3..=s9 on the agent of their group (gamma has none: those stay pending).
    let agent_of = |i: usize| match groups[i % 3] {
        "alpha" => Some(if i % 2 == 0 { "a1" } else { "a3" }),
        "beta" => Some("a2"),
        _ => None,
    };
    for (i, id) in s.iter().enumerate().take(12).skip(3) {
        if let Some(agent) = agent_of(i) {
            w.schedule(*id, agent, groups[i % 3]).await;
        }
    }
    // s3 (alpha, a3), s4 (beta, a2), s6 (alpha, a1), s7 (beta, a2), s9 (alpha, a3),
    // s10 (beta, a2) are SCHEDULED; s5, s8, s11 (gamma) are PENDING.

    // s3: the whole lifecycle to TERMINATED, then its slots are released.
    w.run_to_running(s[3], "a3").await;
    w.session(s[3], "user:alice", |now| {
        SessionCommand::RequestTermination {
            reason: reason("user-requested"),
            requested_by: "user:alice".into(),
            now,
        }
    })
    .await;
    w.session(s[3], "agent:a3", |now| SessionCommand::MarkTerminated {
        reason: reason("self-terminated"),
        exit_code: Some(0),
        now,
    })
    .await;
    w.release(s[3], "a3").await;

    // s4: restarts, degrades, is lost with its agent, is cleaned up.
    w.run_to_running(s[4], "a2").await;
    w.session(s[4], "agent:a2", |now| SessionCommand::Restart { now })
        .await;
    w.session(s[4], "agent:a2", |now| SessionCommand::Start { now })
        .await;
    w.session(s[4], "agent:a2", |now| SessionCommand::Degrade {
        reason: reason("kernel-unhealthy"),
        now,
    })
    .await;
    w.session(s[4], "scheduler", |now| SessionCommand::Fail {
        reason: reason("agent-lost"),
        detail: Some("missed heartbeats".into()),
        now,
    })
    .await;
    w.session(s[4], "scheduler", |now| SessionCommand::MarkTerminated {
        reason: reason("cleaned-up"),
        exit_code: Some(1),
        now,
    })
    .await;
    w.release(s[4], "a2").await;

    // s6: cancelled while SCHEDULED.
    w.cancel(s[6], "user-requested", "user:alice").await;
    w.release(s[6], "a1").await;

    // s7: left RUNNING; s9, s10: left SCHEDULED.
    w.run_to_running(s[7], "a2").await;

    // Pending ones: cancelled by the user, timed out, failed.
    w.cancel(s[12], "user-requested", "user:alice").await;
    w.cancel(s[13], "pending_timeout", "scheduler").await;
    w.session(s[14], "scheduler", |now| SessionCommand::Fail {
        reason: reason("dependency-failed"),
        detail: None,
        now,
    })
    .await;

    // A third agent goes away.
    w.agent("a4", "gamma").await;
    w.mark_lost("a4").await;
    w
}

// ---- comparisons ------------------------------------------------------------------------

pub async fn assert_sessions_match_fold(w: &World, ids: &[Uuid]) {
    let mut expected = BTreeMap::new();
    for id in ids {
        let fold = w.fold_session(*id).await;
        let stream = w
            .store
            .read_stream("Session", &id.to_string())
            .await
            .unwrap();
        assert_eq!(
            fold.version,
            stream.len() as u64,
            "the fold saw the whole stream"
        );
        let typed = documents::sessions()
            .get(&w.db, &id.to_string())
            .await
            .unwrap();
        assert_eq!(typed.as_ref(), Some(&fold), "sessions read model of {id}");
        expected.insert(id.to_string(), serde_json::to_value(&fold).unwrap());
    }
    let actual: BTreeMap<String, Value> = documents::sessions()
        .all_docs(&w.db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "one sessions row per stream"
    );
    assert_eq!(actual, expected, "sessions read model == fresh fold");
}

pub async fn assert_groups_match_fold(w: &World) {
    let mut expected = BTreeMap::new();
    for name in &w.groups {
        expected.insert(
            name.clone(),
            serde_json::to_value(w.fold_group(name).await).unwrap(),
        );
    }
    let actual: BTreeMap<String, Value> = documents::scaling_groups()
        .all_docs(&w.db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(actual, expected, "scaling_groups read model == fresh fold");
}

pub async fn assert_agents_match_fold(w: &World) {
    let mut expected = BTreeMap::new();
    for id in &w.agents {
        let fold = w.fold_agent(id).await;
        assert_eq!(
            documents::agent_occupancy()
                .get(&w.db, id)
                .await
                .unwrap()
                .as_ref(),
            Some(&fold)
        );
        expected.insert(id.clone(), serde_json::to_value(fold).unwrap());
    }
    let actual: BTreeMap<String, Value> = documents::agent_occupancy()
        .all_docs(&w.db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(actual, expected, "agent_occupancy read model == fresh fold");
}

/// What the pending queue of `group` must hold, in scheduler order, from fresh folds.
pub async fn expected_queue(w: &World, group: &str) -> Vec<(PendingEntry, DateTime<Utc>)> {
    let timeout = w.fold_group(group).await.scheduler_opts.pending_timeout as i64;
    let mut out = Vec::new();
    for id in &w.sessions {
        let s = w.fold_session(*id).await;
        let spec = s.spec.clone().unwrap();
        if s.status != Some(SessionStatus::Pending) || spec.scaling_group != group {
            continue;
        }
        let enqueued_at = s.enqueued_at.unwrap();
        let enqueued_ms = enqueued_at.timestamp_millis();
        out.push((
            PendingEntry {
                session_id: id.to_string(),
                scaling_group: group.to_string(),
                owner: spec.owner.to_string(),
                session_type: spec.session_type.as_str().to_string(),
                priority: i64::from(spec.priority.get()),
                enqueue_position: w.enqueue_positions[id],
                enqueued_at: String::new(),
                deadline_ms: (timeout > 0).then_some(enqueued_ms + timeout * 1000),
                retries: 0,
                last_try: None,
                queue_position: None,
                queue_reason: None,
            },
            enqueued_at,
        ));
    }
    out.sort_by_key(|(e, _)| (-e.priority, e.enqueue_position));
    out
}

pub async fn assert_pending_queue_matches_fold(w: &World) {
    let mut all_expected = BTreeSet::new();
    let mut deadlines = Vec::new();
    for group in &w.groups {
        let expected = expected_queue(w, group).await;
        let actual = PendingQueue.queue(&w.db, group).await.unwrap();
        assert_eq!(
            actual.iter().map(|e| &e.session_id).collect::<Vec<_>>(),
            expected
                .iter()
                .map(|(e, _)| &e.session_id)
                .collect::<Vec<_>>(),
            "queue of {group}: exactly the PENDING sessions, priority desc then enqueue order"
        );
        for (a, (e, enqueued_at)) in actual.iter().zip(&expected) {
            let parsed = DateTime::parse_from_rfc3339(&a.enqueued_at)
                .unwrap_or_else(|err| panic!("enqueued_at {:?}: {err}", a.enqueued_at));
            assert_eq!(parsed, *enqueued_at, "enqueued_at of {}", a.session_id);
            let a = PendingEntry {
                enqueued_at: String::new(),
                ..a.clone()
            };
            assert_eq!(&a, e, "pending entry of {}", e.session_id);
            if let Some(d) = e.deadline_ms {
                deadlines.push((d, e.session_id.clone()));
            }
            all_expected.insert(e.session_id.clone());
        }
    }
    let all: BTreeSet<String> = PendingQueue
        .all(&w.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.session_id)
        .collect();
    assert_eq!(
        all, all_expected,
        "pending_queue holds exactly the PENDING sessions"
    );

    // The sweeper's view: exactly the sessions whose deadline passed.
    deadlines.sort();
    if let Some((cut, _)) = deadlines.get(deadlines.len() / 2).cloned() {
        let want: BTreeSet<String> = deadlines
            .iter()
            .filter(|(d, _)| *d <= cut)
            .map(|(_, id)| id.clone())
            .collect();
        let got = PendingQueue.expired(&w.db, cut, 1000).await.unwrap();
        assert!(got.windows(2).all(|p| p[0].deadline_ms <= p[1].deadline_ms));
        let got: BTreeSet<String> = got.into_iter().map(|e| e.session_id).collect();
        assert_eq!(got, want, "expired({cut})");
    }
}

pub async fn assert_audit_log_matches(w: &World) {
    let log = w.full_log().await;
    let entries = AuditLog.entries(&w.db).await.unwrap();
    let positions: BTreeSet<i64> = entries.iter().map(|e| e.global_position).collect();
    assert_eq!(positions.len(), entries.len(), "no position twice");
    assert_eq!(entries.len(), log.len(), "one audit entry per event");
    for (entry, event) in entries.iter().zip(&log) {
        assert_eq!(
            entry.global_position, event.global_position,
            "audit log in log order"
        );
        assert_eq!(entry.aggregate_type, event.aggregate_type);
        assert_eq!(entry.aggregate_id, event.aggregate_id);
        assert_eq!(entry.sequence, event.sequence);
        assert_eq!(entry.event_type, event.event_type);
        assert_eq!(
            Some(&entry.actor),
            w.actors.get(&event.global_position),
            "actor of the event at {}",
            event.global_position
        );
        let occurred = entry.occurred_at.as_deref().expect("occurred_at");
        assert_eq!(
            Some(occurred.to_string()),
            audit_log::occurred_at(&event.payload)
        );
        let recorded = DateTime::parse_from_rfc3339(&entry.recorded_at).unwrap();
        assert!(
            (recorded.with_timezone(&Utc) - event.recorded_at)
                .num_milliseconds()
                .abs()
                < 1,
            "recorded_at {} vs {}",
            entry.recorded_at,
            event.recorded_at
        );
    }
}

/// Every read model equals a fresh fold of the streams.
pub async fn assert_all_match_fold(w: &World) {
    assert_sessions_match_fold(w, &w.sessions).await;
    assert_groups_match_fold(w).await;
    assert_agents_match_fold(w).await;
    assert_pending_queue_matches_fold(w).await;
    assert_audit_log_matches(w).await;
}

/// Appends `sessions` seven-event batch lifecycles ([`domain::fixtures::batch_lifecycle`])
/// in large batches, interleaved phase by phase (every session is enqueued, then every
/// session is scheduled, ...), so a projection batch touches many sessions that already
/// have a row; `progress` gets the events appended so far. Returns the event count.
pub async fn generate(
    store: &EventStore,
    sessions: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64, sessiond::store::StoreError> {
    use domain::DomainEvent;
    let metadata = crate::fixtures::meta("bench").to_json();
    let t0 = chrono::Utc::now();
    let lifecycles: Vec<(String, Vec<domain::session::SessionEvent>)> = (0..sessions)
        .map(|_| {
            let id = Uuid::new_v4();
            (id.to_string(), domain::fixtures::batch_lifecycle(id, t0))
        })
        .collect();
    let phases = lifecycles.first().map_or(0, |(_, l)| l.len());
    let mut total = 0u64;
    let mut batch = Vec::new();
    for phase in 0..phases {
        for (i, (id, events)) in lifecycles.iter().enumerate() {
            let e = &events[phase];
            batch.push(sessiond::store::NewEvent {
                aggregate_type: Session::TYPE.into(),
                aggregate_id: id.clone(),
                sequence: phase as i64 + 1,
                event_type: e.event_type().to_string(),
                event_version: e.event_version().to_string(),
                payload: serde_json::to_value(e).map_err(sessiond::store::StoreError::Encode)?,
                metadata: metadata.clone(),
            });
            if batch.len() >= 3500 || i + 1 == sessions {
                total += batch.len() as u64;
                store.append(&batch).await?;
                batch.clear();
                progress(total);
            }
        }
    }
    Ok(total)
}
