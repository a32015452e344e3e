//! The storage conformance suite: every test here runs against PostgreSQL and SQLite
//! (the `conformance!` macro generates one test per backend).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::arithmetic_side_effects)]

#[macro_use]
mod late_commit;
mod migrations;
mod planner;
mod snapshots;
mod upgrades;

use chrono::{DateTime, Utc};
use domain::scaling_group::{ScalingGroup, ScalingGroupError, SchedulerKind, SchedulerOpts};
use domain::session::{Session, SessionCommand, SessionError, SessionSpec, SessionStatus};
use domain::Decider;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sessiond::command::{CommandError, CommandHandler, RetryPolicy};
use sessiond::store::{EventStore, LogPosition, NewEvent, StoreError};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use testkit::db::{fresh_store, Backend};
use uuid::Uuid;

testkit::conformance!(
    an_appended_session_loads_back_with_its_metadata_and_positions,
    an_unknown_stream_loads_empty,
    two_concurrent_writers_without_retry_exactly_one_wins,
    two_concurrent_writers_with_retry_both_land_in_some_order,
    an_append_of_a_taken_sequence_is_a_conflict_and_appends_nothing,
    the_global_log_is_read_in_order_in_batches_without_gaps_or_repeats,
    an_illegal_transition_changes_nothing_in_the_store,
    invalid_scheduler_opts_change_nothing_in_the_store,
    a_no_op_command_appends_nothing,
    creating_under_a_fresh_id_skips_the_load_and_an_existing_id_is_still_rejected,
    many_concurrent_appends_are_each_all_or_nothing_and_only_real_conflicts_fail,
);

use testkit::fixtures::{meta, reason};

fn now() -> DateTime<Utc> {
    testkit::fixtures::at(0)
}

fn spec(id: Uuid) -> SessionSpec {
    testkit::fixtures::spec_with(id, "default", 10, "alice")
}

async fn enqueue(handler: &CommandHandler, id: Uuid) {
    handler
        .execute::<Session>(
            &id.to_string(),
            SessionCommand::Enqueue {
                spec: spec(id),
                now: now(),
            },
            &meta("user:alice"),
        )
        .await
        .unwrap();
}

async fn an_appended_session_loads_back_with_its_metadata_and_positions(store: EventStore) {
    let handler = CommandHandler::new(store.clone());
    let id = Uuid::new_v4();
    let m = meta("user:alice");
    let committed = handler
        .execute::<Session>(
            &id.to_string(),
            SessionCommand::Enqueue {
                spec: spec(id),
                now: now(),
            },
            &m,
        )
        .await
        .unwrap();
    assert_eq!(committed.state.status, Some(SessionStatus::Pending));
    assert_eq!(committed.positions.len(), 1);

    let loaded: Session = handler.load(&id.to_string()).await.unwrap();
    assert_eq!(loaded, committed.state);

    let stream = store.read_stream("Session", &id.to_string()).await.unwrap();
    assert_eq!(stream.len(), 1);
    let e = &stream[0];
    assert_eq!(e.sequence, 1);
    assert_eq!(e.event_type, "SessionEnqueued");
    assert_eq!(e.event_version, "1");
    assert_eq!(e.log_position(), committed.positions[0]);
    assert_eq!(e.metadata["actor"], "user:alice");
    assert_eq!(e.metadata["correlation_id"], m.correlation_id.as_str());
    assert_eq!(e.metadata["causation_id"], m.causation_id.as_str());
    assert!(
        (Utc::now() - e.recorded_at).num_seconds().abs() < 60,
        "recorded_at is the store's clock"
    );
    assert_eq!(e.payload["SessionEnqueued"]["occurred_at"], json!(now()));
}

async fn an_unknown_stream_loads_empty(store: EventStore) {
    let handler = CommandHandler::new(store.clone());
    let s: Session = handler.load("no-such-session").await.unwrap();
    assert_eq!(s, Session::default());
    assert!(store
        .read_stream("Session", "no-such-session")
        .await
        .unwrap()
        .is_empty());
}

// ---- optimistic concurrency -----------------------------------------------------------

/// A test aggregate whose `decide` can be held at a barrier, so two writers are made to
/// decide on the same version of the stream before either appends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Counter {
    value: u64,
}

#[derive(Debug, Clone)]
struct Gate {
    barrier: Arc<Barrier>,
    calls: Arc<AtomicUsize>,
}

impl Gate {
    fn new(parties: usize) -> Self {
        Self {
            barrier: Arc::new(Barrier::new(parties)),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }
}

#[derive(Debug, Clone)]
struct Increment {
    by: u64,
    gate: Gate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum CounterEvent {
    Incremented { by: u64 },
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl domain::DomainEvent for CounterEvent {
    const EVENT_VERSION: &'static str = "1";
    fn event_type(&self) -> &'static str {
        "Incremented"
    }
}

impl Decider for Counter {
    const TYPE: &'static str = "Counter";
    type Command = Increment;
    type Event = CounterEvent;
    type Error = Never;
    fn decide(&self, c: Increment) -> Result<Vec<CounterEvent>, Never> {
        // Only the first decision of each writer waits; retries go straight through.
        if c.gate.calls.fetch_add(1, Ordering::SeqCst) < 2 {
            tokio::task::block_in_place(|| c.gate.barrier.wait());
        }
        Ok(vec![CounterEvent::Incremented { by: c.by }])
    }
    fn evolve(&mut self, e: &CounterEvent) {
        let CounterEvent::Incremented { by } = e;
        self.value += by;
    }
    fn occurred_at(_: &CounterEvent) -> DateTime<Utc> {
        now()
    }
}

async fn race(store: &EventStore, retry: RetryPolicy) -> Vec<Result<u32, CommandError<Never>>> {
    let gate = Gate::new(2);
    let mut tasks = Vec::new();
    for by in [1, 10] {
        let handler = CommandHandler::new(store.clone()).with_retry(retry.clone());
        let cmd = Increment {
            by,
            gate: gate.clone(),
        };
        tasks.push(tokio::spawn(async move {
            handler
                .execute::<Counter>("c1", cmd, &meta("test"))
                .await
                .map(|c| c.attempts)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

async fn two_concurrent_writers_without_retry_exactly_one_wins(store: EventStore) {
    let results = race(&store, RetryPolicy::none()).await;
    let wins = results.iter().filter(|r| matches!(r, Ok(1))).count();
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Err(CommandError::Conflict { attempts: 1 })))
        .count();
    assert_eq!((wins, conflicts), (1, 1), "{results:?}");
    let stream = store.read_stream("Counter", "c1").await.unwrap();
    assert_eq!(stream.len(), 1, "the loser appended nothing");
}

async fn two_concurrent_writers_with_retry_both_land_in_some_order(store: EventStore) {
    let results = race(&store, RetryPolicy::default()).await;
    let mut attempts: Vec<u32> = results.into_iter().map(|r| r.unwrap()).collect();
    attempts.sort();
    assert_eq!(
        attempts,
        vec![1, 2],
        "one landed at once, the other after one retry"
    );
    let handler = CommandHandler::new(store.clone());
    let counter: Counter = handler.load("c1").await.unwrap();
    assert_eq!(counter.value, 11, "both increments landed");
    let seqs: Vec<i64> = store
        .read_stream("Counter", "c1")
        .await
        .unwrap()
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(seqs, vec![1, 2]);
}

fn raw_event(id: &str, sequence: i64) -> NewEvent {
    NewEvent {
        aggregate_type: "Counter".into(),
        aggregate_id: id.into(),
        sequence,
        event_type: "Incremented".into(),
        event_version: "1".into(),
        payload: json!({"Incremented": {"by": 1}}),
        metadata: meta("test").to_json(),
    }
}

/// Concurrent appends may share one statement (PostgreSQL's group commit): each caller's
/// events must still land all-or-nothing, at the positions it is told, and only the
/// callers that really took a taken sequence may see a conflict.
async fn many_concurrent_appends_are_each_all_or_nothing_and_only_real_conflicts_fail(
    store: EventStore,
) {
    // 40 callers: caller i appends two events to its own stream "own-i"; callers 2k and
    // 2k+1 also both append sequence 1 of "shared-k" (one of each pair must lose).
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let own = format!("own-{i}");
            let shared = format!("shared-{}", i / 2);
            let events = vec![
                raw_event(&own, 1),
                raw_event(&shared, 1),
                raw_event(&own, 2),
            ];
            (i, store.append(&events).await)
        }));
    }
    let mut won = BTreeSet::new();
    for t in tasks {
        let (i, result) = t.await.unwrap();
        match result {
            Ok(positions) => {
                assert_eq!(positions.len(), 3);
                // The positions handed back are exactly where this caller's events are.
                let own = store
                    .read_stream("Counter", &format!("own-{i}"))
                    .await
                    .unwrap();
                let shared = store
                    .read_stream("Counter", &format!("shared-{}", i / 2))
                    .await
                    .unwrap();
                assert_eq!(own.len(), 2);
                assert_eq!(shared.len(), 1);
                assert_eq!(positions[0].global_position, own[0].global_position);
                assert_eq!(positions[1].global_position, shared[0].global_position);
                assert_eq!(positions[2].global_position, own[1].global_position);
                assert!(won.insert(i / 2), "two winners for shared-{}", i / 2);
            }
            Err(e) => {
                assert!(e.is_conflict(), "{e:?}");
                // The loser appended nothing, not even to its own stream.
                assert!(store
                    .read_stream("Counter", &format!("own-{i}"))
                    .await
                    .unwrap()
                    .is_empty());
            }
        }
    }
    assert_eq!(won.len(), 20, "every pair has exactly one winner");
    assert_eq!(store.count_events().await.unwrap(), 20 * 3);
}

async fn an_append_of_a_taken_sequence_is_a_conflict_and_appends_nothing(store: EventStore) {
    store.append(&[raw_event("c2", 1)]).await.unwrap();
    // A batch whose first event is fine but whose second collides: all or nothing.
    let err = store
        .append(&[raw_event("other", 1), raw_event("c2", 1)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert!(store
        .read_stream("Counter", "other")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.read_stream("Counter", "c2").await.unwrap().len(), 1);
}

async fn the_global_log_is_read_in_order_in_batches_without_gaps_or_repeats(store: EventStore) {
    let handler = CommandHandler::new(store.clone());
    let mut expected = Vec::new();
    for _ in 0..7 {
        let id = Uuid::new_v4();
        enqueue(&handler, id).await;
        let c = handler
            .execute::<Session>(
                &id.to_string(),
                SessionCommand::Cancel {
                    reason: reason("user-requested"),
                    now: now(),
                },
                &meta("user:alice"),
            )
            .await
            .unwrap();
        expected.push((id.to_string(), 1));
        expected.push((id.to_string(), 2));
        assert_eq!(c.positions.len(), 1);
    }
    let mut cursor = LogPosition::START;
    let seen: Vec<(String, i64)> = testkit::db::read_until(&store, &mut cursor, expected.len(), 3)
        .await
        .into_iter()
        .map(|e| (e.aggregate_id, e.sequence))
        .collect();
    assert!(
        store.read_log(cursor, 100).await.unwrap().is_empty(),
        "nothing more"
    );
    assert_eq!(
        seen, expected,
        "every event once, in the order the appends committed"
    );
}

async fn an_illegal_transition_changes_nothing_in_the_store(store: EventStore) {
    let handler = CommandHandler::new(store.clone());
    let id = Uuid::new_v4();
    enqueue(&handler, id).await;
    let before = store.read_stream("Session", &id.to_string()).await.unwrap();
    let err = handler
        .execute::<Session>(
            &id.to_string(),
            SessionCommand::Start { now: now() },
            &meta("agent:a1"),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        CommandError::Rejected(SessionError::IllegalTransition {
            from: SessionStatus::Pending,
            to: SessionStatus::Running
        })
    ));
    let after = store.read_stream("Session", &id.to_string()).await.unwrap();
    assert_eq!(before, after);
    assert!(store
        .read_log(before[0].log_position(), 100)
        .await
        .unwrap()
        .is_empty());
}

async fn invalid_scheduler_opts_change_nothing_in_the_store(store: EventStore) {
    let handler = CommandHandler::new(store.clone());
    // Create's opts are validated before any command exists.
    let err =
        SchedulerOpts::parse(&json!({"pending_timeout": -1}), SchedulerKind::Fifo).unwrap_err();
    assert_eq!(err.field, "scheduler_opts.pending_timeout");

    handler
        .execute::<ScalingGroup>(
            "gpu",
            testkit::fixtures::create_group("gpu", &json!({}), now()),
            &meta("admin"),
        )
        .await
        .unwrap();
    let before = store.read_stream("ScalingGroup", "gpu").await.unwrap();
    // PATCH's merged whole is validated by the aggregate.
    let update = testkit::fixtures::update_group(
        Some("changed"),
        Some(&json!({"allowed_session_types": ["batch", "gaming"]})),
        now(),
    );
    let err = handler
        .execute::<ScalingGroup>("gpu", update, &meta("admin"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, CommandError::Rejected(ScalingGroupError::Validation(v)) if v.field == "scheduler_opts.allowed_session_types")
    );
    assert_eq!(
        store.read_stream("ScalingGroup", "gpu").await.unwrap(),
        before,
        "not even the valid description change landed"
    );
}

async fn a_no_op_command_appends_nothing(store: EventStore) {
    let handler = CommandHandler::new(store.clone());
    let id = Uuid::new_v4();
    enqueue(&handler, id).await;
    let fail = || SessionCommand::RecordSchedulingFailure {
        failed: vec![domain::session::FailedPredicate {
            name: "concurrency".into(),
            msg: "limit 1".into(),
        }],
        passed: vec![],
        now: now(),
    };
    let first = handler
        .execute::<Session>(&id.to_string(), fail(), &meta("scheduler"))
        .await
        .unwrap();
    assert_eq!(first.events.len(), 1);
    for _ in 0..5 {
        let again = handler
            .execute::<Session>(&id.to_string(), fail(), &meta("scheduler"))
            .await
            .unwrap();
        assert!(again.events.is_empty() && again.positions.is_empty());
    }
    assert_eq!(
        store
            .read_stream("Session", &id.to_string())
            .await
            .unwrap()
            .len(),
        2
    );
}

/// The backends must agree on what they store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_store_the_same_events_for_the_same_commands() {
    let mut streams = Vec::new();
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let store = fresh_store(backend).await;
        let handler = CommandHandler::new(store.clone());
        let id = Uuid::nil();
        enqueue(&handler, id).await;
        handler
            .execute::<Session>(
                &id.to_string(),
                SessionCommand::Cancel {
                    reason: reason("pending_timeout"),
                    now: now(),
                },
                &meta("scheduler"),
            )
            .await
            .unwrap();
        let s: Session = handler.load(&id.to_string()).await.unwrap();
        assert_eq!(s.status_info.as_deref(), Some("pending_timeout"));
        let stream = store.read_stream("Session", &id.to_string()).await.unwrap();
        streams.push(
            stream
                .into_iter()
                .map(|e| (e.sequence, e.event_type, e.event_version, e.payload))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(streams[0], streams[1]);
}

async fn creating_under_a_fresh_id_skips_the_load_and_an_existing_id_is_still_rejected(
    store: EventStore,
) {
    let handler = CommandHandler::new(store.clone());
    let id = Uuid::new_v4();
    let enqueue = || SessionCommand::Enqueue {
        spec: spec(id),
        now: now(),
    };
    let first = handler
        .execute_new::<Session>(&id.to_string(), enqueue(), &meta("user:alice"))
        .await
        .unwrap();
    assert_eq!(first.state.status, Some(SessionStatus::Pending));
    // The id exists now: the blind append conflicts, the retry loads and rejects.
    let again = handler
        .execute_new::<Session>(&id.to_string(), enqueue(), &meta("user:alice"))
        .await
        .unwrap_err();
    assert!(
        matches!(again, CommandError::Rejected(SessionError::AlreadyExists)),
        "{again:?}"
    );
    assert_eq!(
        store
            .read_stream("Session", &id.to_string())
            .await
            .unwrap()
            .len(),
        1
    );
}
