//! The scheduler at the application layer (issue #6): commands in, events and read
//! models out, on both backends. Time is a [`ManualClock`]: "ten minutes of scheduler
//! ticks" are ticks at clock times ten minutes apart, with no real sleeping.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::arithmetic_side_effects)]

use chrono::{DateTime, Duration, Utc};
use domain::agent::{Agent, AgentCommand};
use domain::scaling_group::{
    GroupSettings, ScalingGroup, ScalingGroupCommand, SchedulerKind, SchedulerOpts,
};
use domain::scheduler::ResolveError;
use domain::session::{Session, SessionSpec, SessionStatus, SessionType};
use domain::ResourceSlots;
use projections::models::documents;
use projections::models::pending_queue::PendingQueue;
use serde_json::{json, Value};
use sessiond::agents::{register, RegisterAgent};
use sessiond::app::App;
use sessiond::clock::ManualClock;
use sessiond::config::Settings;
use sessiond::http::sessions::SessionView;
use sessiond::scheduler::Scheduler;
use sessiond::sessions::{enqueue, resolve_group, SessionCommandError};
use sessiond::store::{EventStore, StoreOptions};
use testkit::db::{fresh_url, Backend};

use std::sync::Arc;
use uuid::Uuid;

const BACKENDS: [Backend; 2] = [Backend::Postgres, Backend::Sqlite];

struct World {
    app: App,
    clock: ManualClock,
    scheduler: Scheduler,
}

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

use testkit::fixtures::meta;

fn cpu(n: i64) -> ResourceSlots {
    testkit::fixtures::cpu(n)
}

async fn world(backend: Backend) -> World {
    let url = fresh_url(backend).await;
    let store = EventStore::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    let clock = ManualClock::new(start());
    let app = App::new(store, Settings::default()).with_clock(Arc::new(clock.clone()));
    World {
        scheduler: Scheduler::new(app.clone()),
        app,
        clock,
    }
}

impl World {
    async fn group(&self, name: &str, scheduler: &str, opts: Value) {
        self.app
            .commands
            .execute::<ScalingGroup>(
                name,
                {
                    let kind: SchedulerKind = serde_json::from_value(json!(scheduler)).unwrap();
                    ScalingGroupCommand::Create {
                        name: testkit::fixtures::group(name),
                        settings: GroupSettings {
                            scheduler: kind,
                            scheduler_opts: SchedulerOpts::parse(&opts, kind).unwrap(),
                            ..GroupSettings::default()
                        },
                        now: self.clock.now_utc(),
                    }
                },
                &meta("admin"),
            )
            .await
            .unwrap();
    }

    async fn change_opts(&self, name: &str, opts: Value) {
        self.app
            .commands
            .execute::<ScalingGroup>(
                name,
                testkit::fixtures::update_group(None, Some(&opts), self.clock.now_utc()),
                &meta("admin"),
            )
            .await
            .unwrap();
    }

    async fn agent(&self, id: &str, group: &str, cpus: i64) {
        register(
            &self.app,
            RegisterAgent {
                agent_id: testkit::fixtures::agent_id(id),
                scaling_group: testkit::fixtures::group(group),
                addr: testkit::fixtures::addr(&format!("{id}:6001")),
                available_slots: cpu(cpus),
            },
            &meta("admin"),
        )
        .await
        .unwrap();
    }

    async fn enqueue(
        &self,
        name: &str,
        session_type: SessionType,
        group: Option<&str>,
        cpus: i64,
    ) -> Result<Uuid, SessionCommandError> {
        self.app.catch_up().await.unwrap();
        let owner = testkit::fixtures::owner("alice");
        let requested = group.map(testkit::fixtures::group);
        let resolved = resolve_group(&self.app, &owner, session_type, requested.as_ref()).await?;
        let spec = SessionSpec {
            name: testkit::fixtures::session_name(name),
            session_type,
            scaling_group: resolved,
            resources: cpu(cpus),
            ..testkit::fixtures::spec_in(Uuid::new_v4(), "default", "alice")
        };
        let c = enqueue(&self.app, spec, &meta("alice")).await?;
        Ok(c.state.spec.unwrap().session_id)
    }

    /// One scheduler tick on read models that have caught up, then catch up again.
    async fn tick(&self) {
        self.app.catch_up().await.unwrap();
        self.scheduler.tick().await.unwrap();
        self.app.catch_up().await.unwrap();
    }

    async fn session(&self, id: Uuid) -> Session {
        self.app.commands.load(&id.to_string()).await.unwrap()
    }

    async fn view(&self, id: Uuid) -> Value {
        self.app.catch_up().await.unwrap();
        let db = self.app.db();
        let session = documents::sessions()
            .get(db, &id.to_string())
            .await
            .unwrap()
            .unwrap();
        let queue = PendingQueue.get(db, &id.to_string()).await.unwrap();
        serde_json::to_value(SessionView::of(&session, queue.as_ref()).unwrap()).unwrap()
    }

    async fn event_types(&self, id: Uuid) -> Vec<String> {
        self.app
            .store
            .read_stream("Session", &id.to_string())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }
}

trait NowUtc {
    fn now_utc(&self) -> DateTime<Utc>;
}

impl NowUtc for ManualClock {
    fn now_utc(&self) -> DateTime<Utc> {
        sessiond::clock::Clock::now(self)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_pending_past_its_timeout_is_cancelled_with_pending_timeout_on_both_backends() {
    for backend in BACKENDS {
        let w = world(backend).await;
        w.group("gpu", "fifo", json!({"pending_timeout": 60})).await;
        // No agent: nothing can be scheduled.
        let id = w
            .enqueue("late", SessionType::Interactive, None, 1)
            .await
            .unwrap();
        w.clock.advance(Duration::seconds(59));
        w.tick().await;
        assert_eq!(
            w.session(id).await.status,
            Some(SessionStatus::Pending),
            "{backend:?}"
        );
        w.clock.advance(Duration::seconds(1));
        w.tick().await;
        let s = w.session(id).await;
        assert_eq!(s.status, Some(SessionStatus::Cancelled), "{backend:?}");
        assert_eq!(s.status_info.as_deref(), Some("pending_timeout"));
        let v = w.view(id).await;
        assert_eq!(v["status_info"], "pending_timeout");
        let history = v["status_history"].as_object().unwrap();
        assert!(
            history.contains_key("PENDING") && history.contains_key("CANCELLED"),
            "{v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_scheduled_a_moment_before_the_deadline_is_not_cancelled_on_both_backends() {
    for backend in BACKENDS {
        let w = world(backend).await;
        w.group("gpu", "fifo", json!({"pending_timeout": 60})).await;
        let id = w
            .enqueue("lucky", SessionType::Interactive, None, 4)
            .await
            .unwrap();
        w.clock.advance(Duration::seconds(59));
        w.tick().await;
        // Capacity appears a moment before the deadline; the scheduler places it.
        w.agent("a1", "gpu", 8).await;
        w.tick().await;
        assert_eq!(w.session(id).await.status, Some(SessionStatus::Scheduled));
        // The sweeper runs after the deadline on a pending queue that still lists it
        // (the read model has not caught up): the aggregate refuses; nothing changes.
        w.clock.advance(Duration::seconds(5));
        sessiond::scheduler::sweeper::sweep_group(&w.app, "gpu")
            .await
            .unwrap();
        w.tick().await;
        let s = w.session(id).await;
        assert_eq!(s.status, Some(SessionStatus::Scheduled), "{backend:?}");
        assert!(!w
            .event_types(id)
            .await
            .contains(&"SessionCancelled".to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_of_zero_never_cancels_and_lowering_the_timeout_applies_to_waiting_sessions() {
    for backend in BACKENDS {
        let w = world(backend).await;
        w.group("gpu", "fifo", json!({"pending_timeout": 0})).await;
        let id = w
            .enqueue("patient", SessionType::Batch, None, 1)
            .await
            .unwrap();
        w.clock.advance(Duration::days(30));
        w.tick().await;
        assert_eq!(
            w.session(id).await.status,
            Some(SessionStatus::Pending),
            "{backend:?}"
        );
        // Lowering the timeout (from disabled to 1 h) applies to the session already waiting.
        w.change_opts("gpu", json!({"pending_timeout": 3600})).await;
        w.tick().await;
        let s = w.session(id).await;
        assert_eq!(s.status, Some(SessionStatus::Cancelled), "{backend:?}");
        assert_eq!(s.status_info.as_deref(), Some("pending_timeout"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_session_types_resolve_per_group_and_a_group_accepting_nothing_affects_no_other_group(
) {
    for backend in BACKENDS {
        let w = world(backend).await;
        w.group("a", "fifo", json!({"allowed_session_types": ["batch"]}))
            .await;
        w.group("b", "fifo", json!({"allowed_session_types": []}))
            .await;
        w.group(
            "c",
            "fifo",
            json!({"allowed_session_types": ["interactive", "batch"]}),
        )
        .await;
        w.agent("c1", "c", 8).await;

        let in_c = w
            .enqueue("in-c", SessionType::Interactive, Some("c"), 1)
            .await
            .unwrap();
        let rejected = w
            .enqueue("in-a", SessionType::Interactive, Some("a"), 1)
            .await;
        match rejected {
            Err(SessionCommandError::Resolve(e @ ResolveError::SessionTypeNotAllowed { .. })) => {
                assert_eq!(
                    e.to_string(),
                    "scaling group 'a' does not accept 'interactive' sessions (allowed: batch)"
                );
            }
            other => panic!("{backend:?}: expected session_type_not_allowed, got {other:?}"),
        }
        let unnamed = w
            .enqueue("anywhere", SessionType::Interactive, None, 1)
            .await
            .unwrap();
        assert_eq!(
            w.session(unnamed).await.spec.unwrap().scaling_group,
            "c",
            "{backend:?}"
        );
        w.tick().await;
        assert_eq!(w.session(in_c).await.status, Some(SessionStatus::Scheduled));
        assert_eq!(
            w.session(unnamed).await.status,
            Some(SessionStatus::Scheduled)
        );
        // Nothing was appended for the rejected request: 3 groups, 1 agent, 2 sessions
        // each with its name claim, 2 placements of 2 events.
        assert_eq!(
            w.app.store.count_events().await.unwrap(),
            3 + 1 + 2 * 2 + 2 * 2
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_waits_on_the_scaling_group_predicate_while_its_type_is_disallowed_and_runs_once_allowed(
) {
    for backend in BACKENDS {
        let w = world(backend).await;
        w.group("gpu-batch", "fifo", json!({})).await;
        let id = w
            .enqueue("notebook", SessionType::Interactive, Some("gpu-batch"), 2)
            .await
            .unwrap();
        // The group stops accepting interactive sessions while it waits.
        w.change_opts("gpu-batch", json!({"allowed_session_types": ["batch"]}))
            .await;
        w.agent("g1", "gpu-batch", 8).await;
        w.tick().await;
        assert_eq!(w.session(id).await.status, Some(SessionStatus::Pending));
        let v = w.view(id).await;
        let sched = &v["status_data"]["scheduler"];
        assert_eq!(
            sched["failed_predicates"],
            json!([{"name": "scaling_group", "msg": "scaling group 'gpu-batch' no longer accepts 'interactive' sessions (allowed: batch)"}]),
            "{backend:?}: {v}"
        );
        assert!(sched["retries"].as_i64().unwrap() >= 1);
        assert!(sched["last_try"].is_string());
        // Changing the opts back is all it takes.
        w.change_opts(
            "gpu-batch",
            json!({"allowed_session_types": ["batch", "interactive"]}),
        )
        .await;
        w.tick().await;
        let s = w.session(id).await;
        assert_eq!(s.status, Some(SessionStatus::Scheduled), "{backend:?}");
        assert_eq!(s.allocations[0].agent_id, "g1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_minutes_of_ticks_with_an_unchanged_reason_write_one_scheduling_failure() {
    for backend in BACKENDS {
        let w = world(backend).await;
        w.group("gpu", "fifo", json!({})).await;
        w.agent("small", "gpu", 2).await;
        let id = w.enqueue("big", SessionType::Batch, None, 8).await.unwrap();
        w.app.catch_up().await.unwrap();
        for _ in 0..600 {
            w.scheduler.schedule_group("gpu").await.unwrap();
            w.clock.advance(Duration::seconds(1));
        }
        w.app.catch_up().await.unwrap();
        let types = w.event_types(id).await;
        assert_eq!(
            types,
            vec!["SessionEnqueued", "SessionSchedulingFailed"],
            "{backend:?}"
        );
        let v = w.view(id).await;
        let sched = &v["status_data"]["scheduler"];
        assert_eq!(sched["retries"], 600);
        assert_eq!(
            sched["failed_predicates"][0]["msg"],
            "no agent in 'gpu' can host {cpu: 8}"
        );
        // A changed reason is news: one more event.
        w.app
            .commands
            .execute::<Agent>(
                "small",
                AgentCommand::MarkLost {
                    now: w.clock.now_utc(),
                },
                &meta("admin"),
            )
            .await
            .unwrap();
        w.app.catch_up().await.unwrap();
        w.scheduler.schedule_group("gpu").await.unwrap();
        w.scheduler.schedule_group("gpu").await.unwrap();
        assert_eq!(
            w.event_types(id).await.len(),
            2,
            "same message: no new event"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_follows_the_strategy_and_ended_sessions_give_their_slots_back() {
    for backend in BACKENDS {
        let w = world(backend).await;
        w.group(
            "gpu",
            "fifo",
            json!({"agent_selection_strategy": "concentrated"}),
        )
        .await;
        w.agent("a1", "gpu", 8).await;
        w.agent("a2", "gpu", 8).await;
        let first = w.enqueue("s1", SessionType::Batch, None, 3).await.unwrap();
        let second = w.enqueue("s2", SessionType::Batch, None, 3).await.unwrap();
        w.tick().await;
        let a = w.session(first).await.allocations[0].agent_id.clone();
        let b = w.session(second).await.allocations[0].agent_id.clone();
        assert_eq!(a, b, "{backend:?}: concentrated packs onto one agent");
        let ledger: Agent = w.app.commands.load(&a).await.unwrap();
        assert_eq!(ledger.occupied_slots(), Ok(cpu(6)));
        // Cancel one: the process manager releases its slots.
        sessiond::sessions::delete(&w.app, first, false, &meta("alice"))
            .await
            .unwrap();
        w.tick().await;
        w.tick().await;
        let ledger: Agent = w.app.commands.load(&a).await.unwrap();
        assert_eq!(ledger.occupied_slots(), Ok(cpu(3)), "{backend:?}");
        assert!(!ledger.allocations.contains_key(&first));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_agent_errors_its_sessions_once_its_slots_are_released_with_it_and_the_sessions_keep_their_stop_notices(
) {
    for backend in BACKENDS {
        let w = world(backend).await;
        w.group("gpu", "fifo", json!({})).await;
        w.agent("a1", "gpu", 8).await;
        let id = w.enqueue("s", SessionType::Batch, None, 2).await.unwrap();
        w.tick().await;
        assert_eq!(w.session(id).await.status, Some(SessionStatus::Scheduled));
        // Heartbeats stop; past the timeout the agent is LOST (one event) and its
        // session goes to ERROR agent-lost.
        w.clock.advance(Duration::seconds(31));
        w.tick().await;
        w.tick().await;
        let agent_events: Vec<String> = w
            .app
            .store
            .read_stream("Agent", "a1")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(
            agent_events.iter().filter(|t| *t == "AgentLost").count(),
            1,
            "{backend:?}"
        );
        let s = w.session(id).await;
        assert_eq!(s.status, Some(SessionStatus::Error));
        assert_eq!(s.status_info.as_deref(), Some("agent-lost"));
        // Nothing runs on a lost agent: its ERROR agent-lost sessions' slots are
        // released (ADR 0008).
        let ledger: Agent = w.app.commands.load("a1").await.unwrap();
        assert!(ledger.allocations.is_empty(), "{backend:?}");
        assert_eq!(
            agent_events
                .iter()
                .filter(|t| *t == "SlotsReleased")
                .count(),
            1,
            "{backend:?}"
        );
        // The session still tells the agent to stop, should it come back.
        assert_eq!(
            s.notice_for("a1"),
            Some(domain::session::Notice::Stop),
            "{backend:?}"
        );
        // Cleaned up (forced) -> TERMINATED; releasing again appends nothing.
        sessiond::sessions::delete(&w.app, id, true, &meta("admin"))
            .await
            .unwrap();
        w.tick().await;
        w.tick().await;
        let after: Vec<String> = w
            .app
            .store
            .read_stream("Agent", "a1")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect();
        assert_eq!(after, agent_events, "{backend:?}");
    }
}
