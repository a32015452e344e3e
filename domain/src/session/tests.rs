//! Given/when/then tests of the Session aggregate (SPEC §1.1, §1.2) and property tests
//! over random command sequences.
//!
//! Time is always an input: every timestamp is derived from the fixed [`now`].

use super::{
    AgentAllocation, FailedPredicate, KernelEnd, Notice, PassedPredicate, Session, SessionCommand,
    SessionError, SessionEvent, SessionSpec, SessionStatus as S, SessionType, ALL_STATUSES,
    TRANSITIONS,
};
use crate::bounds::BatchTimeout;
use crate::fixtures::{self, agent_id, group, reason};
use crate::{ResourceSlots, ValidationError};
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The fixed instant every test starts from (2023-11-14T22:13:20Z).
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

/// `now()` plus `secs` seconds.
fn at(secs: i64) -> DateTime<Utc> {
    now() + TimeDelta::seconds(secs)
}

/// The instant the command under test happens at: later than any event of `reach`.
fn later() -> DateTime<Utc> {
    at(3_600)
}

/// A valid interactive session spec; tests change single fields with `..spec()`.
fn spec() -> SessionSpec {
    SessionSpec {
        name: fixtures::session_name("notebook-1"),
        image: fixtures::image("cr.example.com/python:3.12"),
        resources: ResourceSlots::new()
            .with("cpu", Decimal::new(15, 1))
            .with("mem", Decimal::from(4_294_967_296_u64)),
        ..fixtures::spec(Uuid::from_u128(0x5e55_1011))
    }
}

/// A valid batch session spec.
fn batch_spec() -> SessionSpec {
    SessionSpec {
        session_type: SessionType::Batch,
        starts_at: Some(at(600)),
        batch_timeout: Some(BatchTimeout::parse("batch_timeout", 3_600).unwrap()),
        startup_command: Some("python train.py".to_string()),
        ..spec()
    }
}

fn cpu(tenths: i64) -> ResourceSlots {
    ResourceSlots::new().with("cpu", Decimal::new(tenths, 1))
}

fn agents() -> Vec<AgentAllocation> {
    vec![
        AgentAllocation {
            agent_id: agent_id("agent-1"),
            slots: cpu(15),
        },
        AgentAllocation {
            agent_id: agent_id("agent-2"),
            slots: cpu(10),
        },
    ]
}

fn failed(name: &str, msg: &str) -> FailedPredicate {
    FailedPredicate {
        name: name.to_string(),
        msg: msg.to_string(),
    }
}

fn passed(name: &str) -> PassedPredicate {
    PassedPredicate {
        name: name.to_string(),
    }
}

/// Folds a history into a session.
fn given(events: &[SessionEvent]) -> Session {
    Session::fold(events)
}

/// Decides `command` on `session`, applies the events and returns them.
fn execute(session: &mut Session, command: SessionCommand) -> Vec<SessionEvent> {
    let events = session.decide(command).unwrap();
    events.iter().for_each(|e| session.apply(e));
    events
}

/// The command requesting a move to `to` (PENDING is requested by `Enqueue`).
fn command_for(to: S, now: DateTime<Utc>) -> SessionCommand {
    match to {
        S::Pending => SessionCommand::Enqueue { spec: spec(), now },
        S::Scheduled => SessionCommand::Schedule {
            scaling_group: group("default"),
            agents: agents(),
            now,
        },
        S::Preparing => SessionCommand::MarkPreparing { now },
        S::Pulling => SessionCommand::MarkPulling { now },
        S::Prepared => SessionCommand::MarkPrepared { now },
        S::Creating => SessionCommand::MarkCreating { now },
        S::Running => SessionCommand::Start { now },
        S::Restarting => SessionCommand::Restart { now },
        S::RunningDegraded => SessionCommand::Degrade {
            reason: reason("kernel-unhealthy"),
            now,
        },
        S::Terminating => SessionCommand::RequestTermination {
            reason: reason("user-requested"),
            requested_by: "key:alice".to_string(),
            now,
        },
        S::Terminated => SessionCommand::MarkTerminated {
            reason: reason("user-requested"),
            exit_code: Some(0),
            now,
        },
        S::Cancelled => SessionCommand::Cancel {
            reason: reason("user-requested"),
            now,
        },
        S::Error => SessionCommand::Fail {
            reason: reason("agent-lost"),
            detail: Some("agent-1 stopped sending heartbeats".to_string()),
            now,
        },
    }
}

/// The exact event `command_for(to, occurred_at)` must produce.
fn expected_event(to: S, occurred_at: DateTime<Utc>) -> SessionEvent {
    match to {
        S::Pending => SessionEvent::SessionEnqueued {
            spec: spec(),
            occurred_at,
        },
        S::Scheduled => SessionEvent::SessionScheduled {
            scaling_group: group("default"),
            agents: agents(),
            allocated_slots: cpu(25),
            occurred_at,
        },
        S::Preparing => SessionEvent::SessionPreparing { occurred_at },
        S::Pulling => SessionEvent::SessionPulling { occurred_at },
        S::Prepared => SessionEvent::SessionPrepared { occurred_at },
        S::Creating => SessionEvent::SessionCreating { occurred_at },
        S::Running => SessionEvent::SessionStarted { occurred_at },
        S::Restarting => SessionEvent::SessionRestarting { occurred_at },
        S::RunningDegraded => SessionEvent::SessionDegraded {
            reason: "kernel-unhealthy".to_string(),
            occurred_at,
        },
        S::Terminating => SessionEvent::SessionTerminating {
            reason: "user-requested".to_string(),
            requested_by: "key:alice".to_string(),
            occurred_at,
        },
        S::Terminated => SessionEvent::SessionTerminated {
            reason: "user-requested".to_string(),
            exit_code: Some(0),
            ended_on: vec![],
            occurred_at,
        },
        S::Cancelled => SessionEvent::SessionCancelled {
            reason: "user-requested".to_string(),
            occurred_at,
        },
        S::Error => SessionEvent::SessionErrored {
            reason: "agent-lost".to_string(),
            detail: Some("agent-1 stopped sending heartbeats".to_string()),
            exit_code: None,
            ended_on: vec![],
            occurred_at,
        },
    }
}

/// A legal path of statuses from PENDING to `status` (inclusive).
fn path_to(status: S) -> Vec<S> {
    let to_running = vec![
        S::Pending,
        S::Scheduled,
        S::Preparing,
        S::Pulling,
        S::Prepared,
        S::Creating,
        S::Running,
    ];
    match status {
        S::Pending
        | S::Scheduled
        | S::Preparing
        | S::Pulling
        | S::Prepared
        | S::Creating
        | S::Running => {
            let end = to_running.iter().position(|s| *s == status).unwrap();
            to_running[..=end].to_vec()
        }
        S::Restarting | S::RunningDegraded | S::Terminating | S::Terminated | S::Error => {
            let mut path = to_running;
            path.push(status);
            path
        }
        S::Cancelled => vec![S::Pending, S::Cancelled],
    }
}

/// The event stream reaching `status` along a legal path, produced by `decide` itself
/// (step `i` happens at `at(i)`).
fn reach(status: S) -> Vec<SessionEvent> {
    let mut session = Session::default();
    let mut events = vec![];
    for (i, step) in path_to(status).into_iter().enumerate() {
        let produced = execute(&mut session, command_for(step, at(i as i64)));
        assert_eq!(produced.len(), 1, "reaching {status} via {step}");
        events.extend(produced);
    }
    assert_eq!(session.status, Some(status));
    events
}

fn in_table(from: S, to: S) -> bool {
    TRANSITIONS
        .iter()
        .any(|(f, targets)| *f == from && targets.contains(&to))
}

/// Asserts that `from -> to` produces exactly the expected event and that applying it
/// moves the session to `to`, stamping `status_changed` and `status_history`.
fn assert_allowed(from: S, to: S) {
    let before = given(&reach(from));
    let events = before.decide(command_for(to, later())).unwrap();
    assert_eq!(events, vec![expected_event(to, later())]);

    let mut after = before.clone();
    after.apply(&events[0]);
    assert_eq!(after.status, Some(to));
    assert_eq!(after.status_changed, Some(later()));
    assert_eq!(after.status_history.get(&to), Some(&later()));
    assert_eq!(after.version, before.version + 1);
    assert_eq!(after.status_info, events[0].status_info());
    for (status, entered) in &before.status_history {
        if *status != to {
            assert_eq!(after.status_history.get(status), Some(entered), "{status}");
        }
    }
    let mut expected_keys: Vec<S> = before.status_history.keys().copied().collect();
    expected_keys.push(to);
    expected_keys.sort();
    expected_keys.dedup();
    assert_eq!(
        after.status_history.keys().copied().collect::<Vec<_>>(),
        expected_keys
    );
}

/// Asserts that `from -> to` is rejected with `IllegalTransition { from, to }`.
fn assert_rejected(from: S, to: S) {
    let session = given(&reach(from));
    assert_eq!(
        session.decide(command_for(to, later())),
        Err(SessionError::IllegalTransition { from, to })
    );
}

fn validation_field(result: Result<Vec<SessionEvent>, SessionError>) -> String {
    match result {
        Err(SessionError::Validation(ValidationError { field, .. })) => field,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn enqueue(spec: SessionSpec) -> Result<Vec<SessionEvent>, SessionError> {
    Session::default().decide(SessionCommand::Enqueue { spec, now: now() })
}

fn record_failure(
    failed: Vec<FailedPredicate>,
    passed: Vec<PassedPredicate>,
    now: DateTime<Utc>,
) -> SessionCommand {
    SessionCommand::RecordSchedulingFailure {
        failed,
        passed,
        now,
    }
}

// ---------------------------------------------------------------------------------------
// Every allowed transition of the table, one named test each
// ---------------------------------------------------------------------------------------

macro_rules! allowed_transitions {
    ($($name:ident: $from:ident -> $to:ident;)*) => {
        /// Every pair covered by a named test below.
        const NAMED_ALLOWED_TRANSITIONS: &[(S, S)] = &[$((S::$from, S::$to)),*];
        $(
            #[test]
            fn $name() {
                assert_allowed(S::$from, S::$to);
            }
        )*
    };
}

allowed_transitions! {
    given_a_pending_session_when_it_is_scheduled_then_it_becomes_scheduled:
        Pending -> Scheduled;
    given_a_pending_session_when_it_is_cancelled_then_it_becomes_cancelled:
        Pending -> Cancelled;
    given_a_pending_session_when_it_fails_then_it_becomes_error:
        Pending -> Error;

    given_a_scheduled_session_when_it_is_marked_preparing_then_it_becomes_preparing:
        Scheduled -> Preparing;
    given_a_scheduled_session_when_it_is_marked_pulling_then_it_becomes_pulling:
        Scheduled -> Pulling;
    given_a_scheduled_session_when_it_is_marked_prepared_then_it_becomes_prepared:
        Scheduled -> Prepared;
    given_a_scheduled_session_when_it_is_cancelled_then_it_becomes_cancelled:
        Scheduled -> Cancelled;
    given_a_scheduled_session_when_it_fails_then_it_becomes_error:
        Scheduled -> Error;

    given_a_preparing_session_when_it_is_marked_pulling_then_it_becomes_pulling:
        Preparing -> Pulling;
    given_a_preparing_session_when_it_is_marked_prepared_then_it_becomes_prepared:
        Preparing -> Prepared;
    given_a_preparing_session_when_it_is_cancelled_then_it_becomes_cancelled:
        Preparing -> Cancelled;
    given_a_preparing_session_when_it_fails_then_it_becomes_error:
        Preparing -> Error;

    given_a_pulling_session_when_it_is_marked_prepared_then_it_becomes_prepared:
        Pulling -> Prepared;
    given_a_pulling_session_when_it_is_cancelled_then_it_becomes_cancelled:
        Pulling -> Cancelled;
    given_a_pulling_session_when_it_fails_then_it_becomes_error:
        Pulling -> Error;

    given_a_prepared_session_when_it_is_marked_creating_then_it_becomes_creating:
        Prepared -> Creating;
    given_a_prepared_session_when_it_is_cancelled_then_it_becomes_cancelled:
        Prepared -> Cancelled;
    given_a_prepared_session_when_it_fails_then_it_becomes_error:
        Prepared -> Error;

    given_a_creating_session_when_it_is_started_then_it_becomes_running:
        Creating -> Running;
    given_a_creating_session_when_it_is_cancelled_then_it_becomes_cancelled:
        Creating -> Cancelled;
    given_a_creating_session_when_it_fails_then_it_becomes_error:
        Creating -> Error;

    given_a_running_session_when_it_is_restarted_then_it_becomes_restarting:
        Running -> Restarting;
    given_a_running_session_when_it_is_degraded_then_it_becomes_running_degraded:
        Running -> RunningDegraded;
    given_a_running_session_when_termination_is_requested_then_it_becomes_terminating:
        Running -> Terminating;
    given_a_running_session_when_it_is_marked_terminated_then_it_becomes_terminated:
        Running -> Terminated;
    given_a_running_session_when_it_fails_then_it_becomes_error:
        Running -> Error;

    given_a_restarting_session_when_it_is_started_then_it_becomes_running:
        Restarting -> Running;
    given_a_restarting_session_when_it_is_degraded_then_it_becomes_running_degraded:
        Restarting -> RunningDegraded;
    given_a_restarting_session_when_termination_is_requested_then_it_becomes_terminating:
        Restarting -> Terminating;
    given_a_restarting_session_when_it_is_marked_terminated_then_it_becomes_terminated:
        Restarting -> Terminated;
    given_a_restarting_session_when_it_fails_then_it_becomes_error:
        Restarting -> Error;

    given_a_degraded_session_when_it_is_started_then_it_becomes_running:
        RunningDegraded -> Running;
    given_a_degraded_session_when_termination_is_requested_then_it_becomes_terminating:
        RunningDegraded -> Terminating;
    given_a_degraded_session_when_it_is_marked_terminated_then_it_becomes_terminated:
        RunningDegraded -> Terminated;
    given_a_degraded_session_when_it_fails_then_it_becomes_error:
        RunningDegraded -> Error;

    given_a_terminating_session_when_it_is_marked_terminated_then_it_becomes_terminated:
        Terminating -> Terminated;
    given_a_terminating_session_when_it_fails_then_it_becomes_error:
        Terminating -> Error;

    given_an_errored_session_when_termination_is_requested_then_it_becomes_terminating:
        Error -> Terminating;
    given_an_errored_session_when_it_is_marked_terminated_then_it_becomes_terminated:
        Error -> Terminated;
}

#[test]
fn the_named_transition_tests_cover_exactly_the_transition_table() {
    let mut table: Vec<(S, S)> = TRANSITIONS
        .iter()
        .flat_map(|(from, targets)| targets.iter().map(move |to| (*from, *to)))
        .collect();
    let mut named = NAMED_ALLOWED_TRANSITIONS.to_vec();
    table.sort();
    named.sort();
    assert_eq!(table.len(), 39);
    assert_eq!(named, table);
}

#[test]
fn given_every_status_when_every_target_is_requested_then_only_the_table_pairs_are_accepted() {
    let mut accepted = 0;
    for from in ALL_STATUSES {
        let session = given(&reach(from));
        for to in ALL_STATUSES {
            let result = session.decide(command_for(to, later()));
            if to == S::Pending {
                // PENDING is only ever entered by Enqueue, which an existing session refuses.
                assert!(!in_table(from, to));
                assert_eq!(result, Err(SessionError::AlreadyExists), "{from} -> {to}");
            } else if in_table(from, to) {
                assert_eq!(
                    result,
                    Ok(vec![expected_event(to, later())]),
                    "{from} -> {to}"
                );
                accepted += 1;
            } else {
                assert_eq!(
                    result,
                    Err(SessionError::IllegalTransition { from, to }),
                    "{from} -> {to}"
                );
            }
        }
    }
    assert_eq!(accepted, 39);
}

#[test]
fn given_the_legal_paths_when_they_are_folded_then_every_status_is_reachable() {
    for status in ALL_STATUSES {
        let session = given(&reach(status));
        assert_eq!(session.status, Some(status));
        for step in path_to(status) {
            assert!(
                session.status_history.contains_key(&step),
                "{status}: {step}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// At least one rejected transition from every status
// ---------------------------------------------------------------------------------------

#[test]
fn given_a_pending_session_when_it_is_started_then_the_transition_is_rejected() {
    assert_rejected(S::Pending, S::Running);
}

#[test]
fn given_a_pending_session_when_termination_is_requested_then_the_transition_is_rejected() {
    assert_rejected(S::Pending, S::Terminating);
}

#[test]
fn given_a_scheduled_session_when_it_is_started_then_the_transition_is_rejected() {
    assert_rejected(S::Scheduled, S::Running);
}

#[test]
fn given_a_scheduled_session_when_it_is_scheduled_again_then_the_transition_is_rejected() {
    assert_rejected(S::Scheduled, S::Scheduled);
}

#[test]
fn given_a_preparing_session_when_it_is_marked_creating_then_the_transition_is_rejected() {
    assert_rejected(S::Preparing, S::Creating);
}

#[test]
fn given_a_pulling_session_when_it_is_marked_preparing_then_the_transition_is_rejected() {
    assert_rejected(S::Pulling, S::Preparing);
}

#[test]
fn given_a_prepared_session_when_it_is_started_then_the_transition_is_rejected() {
    assert_rejected(S::Prepared, S::Running);
}

#[test]
fn given_a_creating_session_when_it_is_degraded_then_the_transition_is_rejected() {
    assert_rejected(S::Creating, S::RunningDegraded);
}

#[test]
fn given_a_running_session_when_it_is_cancelled_then_the_transition_is_rejected() {
    assert_rejected(S::Running, S::Cancelled);
}

#[test]
fn given_a_running_session_when_it_is_started_again_then_the_transition_is_rejected() {
    assert_rejected(S::Running, S::Running);
}

#[test]
fn given_a_restarting_session_when_it_is_restarted_again_then_the_transition_is_rejected() {
    assert_rejected(S::Restarting, S::Restarting);
}

#[test]
fn given_a_degraded_session_when_it_is_restarted_then_the_transition_is_rejected() {
    assert_rejected(S::RunningDegraded, S::Restarting);
}

#[test]
fn given_a_terminating_session_when_it_is_started_then_the_transition_is_rejected() {
    assert_rejected(S::Terminating, S::Running);
}

#[test]
fn given_a_terminating_session_when_it_is_cancelled_then_the_transition_is_rejected() {
    assert_rejected(S::Terminating, S::Cancelled);
}

#[test]
fn given_a_terminated_session_when_it_is_started_then_the_transition_is_rejected() {
    assert_rejected(S::Terminated, S::Running);
}

#[test]
fn given_a_terminated_session_when_it_fails_then_the_transition_is_rejected() {
    assert_rejected(S::Terminated, S::Error);
}

#[test]
fn given_an_errored_session_when_it_is_started_then_the_transition_is_rejected() {
    assert_rejected(S::Error, S::Running);
}

#[test]
fn given_an_errored_session_when_it_is_cancelled_then_the_transition_is_rejected() {
    assert_rejected(S::Error, S::Cancelled);
}

#[test]
fn given_a_cancelled_session_when_it_is_scheduled_then_the_transition_is_rejected() {
    assert_rejected(S::Cancelled, S::Scheduled);
}

#[test]
fn given_a_cancelled_session_when_it_is_marked_terminated_then_the_transition_is_rejected() {
    assert_rejected(S::Cancelled, S::Terminated);
}

#[test]
fn given_a_terminal_session_when_any_transition_is_requested_then_every_one_is_rejected() {
    for from in [S::Terminated, S::Cancelled] {
        for to in ALL_STATUSES.into_iter().filter(|s| *s != S::Pending) {
            assert_rejected(from, to);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Enqueue
// ---------------------------------------------------------------------------------------

#[test]
fn given_no_session_when_it_is_enqueued_then_it_becomes_pending() {
    let events = enqueue(spec()).unwrap();
    assert_eq!(
        events,
        vec![SessionEvent::SessionEnqueued {
            spec: spec(),
            occurred_at: now(),
        }]
    );

    let session = given(&events);
    assert_eq!(session.status, Some(S::Pending));
    assert_eq!(session.spec, Some(spec()));
    assert_eq!(session.enqueued_at, Some(now()));
    assert_eq!(session.status_changed, Some(now()));
    assert_eq!(session.status_info, None);
    assert_eq!(
        session.status_history,
        BTreeMap::from([(S::Pending, now())])
    );
    assert_eq!(session.version, 1);
    assert!(!session.holds_slots());
}

#[test]
fn given_no_session_when_a_valid_batch_session_is_enqueued_then_it_becomes_pending() {
    let events = enqueue(batch_spec()).unwrap();
    assert_eq!(given(&events).status, Some(S::Pending));
}

#[test]
fn given_a_pending_session_when_it_is_enqueued_again_then_it_already_exists() {
    let session = given(&reach(S::Pending));
    let result = session.decide(SessionCommand::Enqueue {
        spec: spec(),
        now: later(),
    });
    assert_eq!(result, Err(SessionError::AlreadyExists));
}

#[test]
fn given_a_session_in_any_status_when_it_is_enqueued_again_then_it_already_exists() {
    for status in ALL_STATUSES {
        let session = given(&reach(status));
        let result = session.decide(SessionCommand::Enqueue {
            spec: spec(),
            now: later(),
        });
        assert_eq!(result, Err(SessionError::AlreadyExists), "{status}");
    }
}

#[test]
fn given_no_session_when_any_other_command_is_sent_then_it_is_not_found() {
    let none = Session::default();
    let mut commands: Vec<SessionCommand> = ALL_STATUSES
        .into_iter()
        .filter(|s| *s != S::Pending)
        .map(|to| command_for(to, now()))
        .collect();
    commands.push(record_failure(
        vec![failed("concurrency", "too many sessions")],
        vec![],
        now(),
    ));
    assert_eq!(commands.len(), 13);
    for command in commands {
        assert_eq!(
            none.decide(command.clone()),
            Err(SessionError::NotFound),
            "{command:?}"
        );
    }
}

#[test]
fn given_no_session_when_an_interactive_session_has_starts_at_then_starts_at_is_rejected() {
    let result = enqueue(SessionSpec {
        starts_at: Some(later()),
        ..spec()
    });
    assert_eq!(validation_field(result), "starts_at");
}

#[test]
fn given_no_session_when_an_inference_session_has_a_batch_timeout_then_it_is_rejected() {
    let result = enqueue(SessionSpec {
        session_type: SessionType::Inference,
        batch_timeout: Some(BatchTimeout::parse("batch_timeout", 60).unwrap()),
        ..spec()
    });
    assert_eq!(validation_field(result), "batch_timeout");
}

#[test]
fn given_no_session_when_an_interactive_session_has_a_startup_command_then_it_is_rejected() {
    let result = enqueue(SessionSpec {
        startup_command: Some("sleep 1".to_string()),
        ..spec()
    });
    assert_eq!(validation_field(result), "startup_command");
}

#[test]
fn given_no_session_when_it_depends_on_itself_then_dependencies_is_rejected() {
    let result = enqueue(SessionSpec {
        dependencies: vec![spec().session_id],
        ..spec()
    });
    assert_eq!(validation_field(result), "dependencies");
}

#[test]
fn given_no_session_when_it_requests_negative_resources_then_resources_is_rejected() {
    let result = enqueue(SessionSpec {
        resources: cpu(-10),
        ..spec()
    });
    assert_eq!(validation_field(result), "resources");
}

#[test]
fn given_no_session_when_it_requests_no_resources_then_resources_is_rejected() {
    let result = enqueue(SessionSpec {
        resources: ResourceSlots::new(),
        ..spec()
    });
    assert_eq!(validation_field(result), "resources");
}

#[test]
fn given_no_session_when_its_resources_times_cluster_size_overflow_then_resources_is_rejected() {
    let result = enqueue(SessionSpec {
        resources: ResourceSlots::new().with("cpu", Decimal::MAX),
        cluster_size: fixtures::cluster_size(128),
        ..spec()
    });
    assert_eq!(validation_field(result), "resources");
}

// ---------------------------------------------------------------------------------------
// Scheduling
// ---------------------------------------------------------------------------------------

#[test]
fn given_a_pending_session_when_it_is_scheduled_then_the_allocations_are_recorded() {
    let mut session = given(&reach(S::Pending));
    execute(&mut session, command_for(S::Scheduled, later()));
    assert_eq!(session.allocations, agents());
    assert!(session.holds_slots());
}

#[test]
fn given_a_pending_session_when_it_is_scheduled_on_no_agent_then_agents_is_rejected() {
    let session = given(&reach(S::Pending));
    let result = session.decide(SessionCommand::Schedule {
        scaling_group: group("default"),
        agents: vec![],
        now: later(),
    });
    assert_eq!(validation_field(result), "agents");
}

#[test]
fn given_a_pending_session_when_the_first_scheduling_failure_is_recorded_then_one_event_is_appended(
) {
    let session = given(&reach(S::Pending));
    let events = session
        .decide(record_failure(
            vec![failed("concurrency", "2 of 2 sessions running")],
            vec![passed("reserved_time")],
            later(),
        ))
        .unwrap();
    assert_eq!(
        events,
        vec![SessionEvent::SessionSchedulingFailed {
            failed_predicates: vec![failed("concurrency", "2 of 2 sessions running")],
            passed_predicates: vec![passed("reserved_time")],
            occurred_at: later(),
        }]
    );

    let mut after = session.clone();
    after.apply(&events[0]);
    assert_eq!(after.status, Some(S::Pending));
    assert_eq!(after.status_changed, session.status_changed);
    assert_eq!(after.status_history, session.status_history);
    assert_eq!(
        after.failed_predicates,
        vec![failed("concurrency", "2 of 2 sessions running")]
    );
    assert_eq!(after.passed_predicates, vec![passed("reserved_time")]);
}

#[test]
fn given_a_recorded_scheduling_failure_when_the_same_failure_is_recorded_then_no_event_is_appended()
{
    let mut session = given(&reach(S::Pending));
    let failure = vec![
        failed("concurrency", "2 of 2 sessions running"),
        failed("dependencies", "waiting for s-1"),
    ];
    assert_eq!(
        execute(
            &mut session,
            record_failure(failure.clone(), vec![], at(100))
        )
        .len(),
        1
    );
    for tick in 1..=5 {
        let result = session.decide(record_failure(failure.clone(), vec![], at(100 + tick)));
        assert_eq!(result, Ok(vec![]), "tick {tick}");
    }
}

#[test]
fn given_a_recorded_scheduling_failure_when_a_predicate_message_changes_then_a_new_event_is_appended(
) {
    let mut session = given(&reach(S::Pending));
    execute(
        &mut session,
        record_failure(
            vec![failed("concurrency", "2 of 2 sessions running")],
            vec![],
            at(100),
        ),
    );
    let events = execute(
        &mut session,
        record_failure(
            vec![failed("concurrency", "3 of 2 sessions running")],
            vec![],
            at(200),
        ),
    );
    assert_eq!(
        events,
        vec![SessionEvent::SessionSchedulingFailed {
            failed_predicates: vec![failed("concurrency", "3 of 2 sessions running")],
            passed_predicates: vec![],
            occurred_at: at(200),
        }]
    );
    assert_eq!(
        session.failed_predicates,
        vec![failed("concurrency", "3 of 2 sessions running")]
    );
}

#[test]
fn given_a_recorded_scheduling_failure_when_another_predicate_fails_then_a_new_event_is_appended() {
    let mut session = given(&reach(S::Pending));
    execute(
        &mut session,
        record_failure(vec![failed("concurrency", "full")], vec![], at(100)),
    );
    let events = execute(
        &mut session,
        record_failure(
            vec![
                failed("concurrency", "full"),
                failed("reserved_time", "later"),
            ],
            vec![],
            at(200),
        ),
    );
    assert_eq!(events.len(), 1);
}

#[test]
fn given_a_pending_session_when_a_failure_without_failed_predicates_is_recorded_then_it_is_rejected(
) {
    let session = given(&reach(S::Pending));
    let result = session.decide(record_failure(vec![], vec![passed("concurrency")], later()));
    assert_eq!(validation_field(result), "failed_predicates");
}

#[test]
fn given_a_non_pending_session_when_a_scheduling_failure_is_recorded_then_it_is_not_pending() {
    for status in ALL_STATUSES.into_iter().filter(|s| *s != S::Pending) {
        let session = given(&reach(status));
        let result = session.decide(record_failure(
            vec![failed("concurrency", "full")],
            vec![],
            later(),
        ));
        assert_eq!(result, Err(SessionError::NotPending(status)), "{status}");
    }
}

#[test]
fn given_a_session_with_failed_predicates_when_it_is_scheduled_then_the_predicates_are_cleared() {
    let mut session = given(&reach(S::Pending));
    execute(
        &mut session,
        record_failure(
            vec![failed("concurrency", "full")],
            vec![passed("dependencies")],
            at(100),
        ),
    );
    execute(&mut session, command_for(S::Scheduled, later()));
    assert!(session.failed_predicates.is_empty());
    assert!(session.passed_predicates.is_empty());
}

// ---------------------------------------------------------------------------------------
// status_info
// ---------------------------------------------------------------------------------------

#[test]
fn given_a_pending_session_when_it_is_cancelled_for_pending_timeout_then_status_info_says_so() {
    let mut session = given(&reach(S::Pending));
    execute(
        &mut session,
        SessionCommand::Cancel {
            reason: reason("pending_timeout"),
            now: later(),
        },
    );
    assert_eq!(session.status, Some(S::Cancelled));
    assert_eq!(session.status_info.as_deref(), Some("pending_timeout"));
    assert_eq!(session.status_history.get(&S::Pending), Some(&at(0)));
    assert_eq!(session.status_history.get(&S::Cancelled), Some(&later()));
    assert!(!session.holds_slots());
}

#[test]
fn given_a_running_session_when_a_termination_without_reason_and_exit_code_1_is_folded_then_status_info_is_exit_code_1(
) {
    // Commands always carry a reason now; streams written before that may not.
    let mut session = given(&reach(S::Running));
    session.apply(&SessionEvent::SessionTerminated {
        reason: String::new(),
        exit_code: Some(1),
        ended_on: vec![],
        occurred_at: later(),
    });
    assert_eq!(session.status, Some(S::Terminated));
    assert_eq!(session.status_info.as_deref(), Some("exit-code-1"));
    assert_eq!(session.exit_code, Some(1));
    assert!(!session.holds_slots());
}

#[test]
fn given_a_running_session_when_it_terminates_with_exit_code_137_and_a_reason_then_the_reason_wins()
{
    let mut session = given(&reach(S::Running));
    execute(
        &mut session,
        SessionCommand::MarkTerminated {
            reason: reason("force-terminated"),
            exit_code: Some(137),
            now: later(),
        },
    );
    assert_eq!(session.status_info.as_deref(), Some("force-terminated"));
    assert_eq!(session.exit_code, Some(137));
}

#[test]
fn given_a_running_session_when_it_fails_then_status_info_is_the_reason() {
    let mut session = given(&reach(S::Running));
    execute(&mut session, command_for(S::Error, later()));
    assert_eq!(session.status_info.as_deref(), Some("agent-lost"));
    assert!(
        !session.holds_slots(),
        "an agent-lost session's slots are released"
    );
}

#[test]
fn given_a_running_session_when_its_kernel_fails_then_it_holds_its_slots_no_more() {
    let mut session = given(&reach(S::Running));
    assert!(session.holds_slots());
    execute(&mut session, end("agent-1", failed_with("signal-SIGKILL")));
    assert!(session.holds_slots(), "agent-2 has not reported");
    execute(&mut session, end("agent-2", failed_with("signal-SIGKILL")));
    assert!(!session.holds_slots());
}

// ---------------------------------------------------------------------------------------
// Kernel reports and abort notices (SPEC §9)
// ---------------------------------------------------------------------------------------

fn end(agent: &str, report: KernelEnd) -> SessionCommand {
    SessionCommand::EndKernel {
        agents: vec![agent.to_string()],
        report,
        now: later(),
    }
}

fn exited(code: Option<i32>) -> KernelEnd {
    KernelEnd::Terminated {
        exit_code: code,
        reason: None,
    }
}

fn failed_with(reason_text: &str) -> KernelEnd {
    KernelEnd::Failed {
        exit_code: None,
        reason: Some(reason(reason_text)),
    }
}

#[test]
fn given_a_running_session_when_its_kernel_exits_zero_then_it_is_terminated_self_terminated_and_acknowledged(
) {
    let mut session = given(&reach(S::Running));
    execute(&mut session, end("agent-1", exited(Some(0))));
    assert_eq!(session.status, Some(S::Terminated));
    assert_eq!(session.status_info.as_deref(), Some("self-terminated"));
    assert_eq!(session.kernels_ended, vec!["agent-1".to_string()]);
    assert_eq!(session.notice_for("agent-1"), None);
}

#[test]
fn given_a_running_session_when_its_kernel_exits_non_zero_then_it_errors_with_the_exit_code() {
    let mut session = given(&reach(S::Running));
    execute(&mut session, end("agent-1", exited(Some(3))));
    assert_eq!(session.status, Some(S::Error));
    assert_eq!(session.status_info.as_deref(), Some("exit-code-3"));
    assert_eq!(session.exit_code, Some(3));
}

#[test]
fn given_a_running_session_when_a_failure_with_an_exit_code_and_no_reason_is_reported_then_status_info_is_exit_code_n(
) {
    let mut session = given(&reach(S::Running));
    let report = KernelEnd::Failed {
        exit_code: Some(7),
        reason: None,
    };
    execute(&mut session, end("agent-1", report));
    assert_eq!(session.status_info.as_deref(), Some("exit-code-7"));
    assert_eq!(session.exit_code, Some(7));
}

#[test]
fn given_a_creating_session_when_a_failure_without_reason_is_reported_then_it_is_kernel_failed() {
    let mut session = given(&reach(S::Creating));
    let report = KernelEnd::Failed {
        exit_code: None,
        reason: None,
    };
    execute(&mut session, end("agent-1", report));
    assert_eq!(session.status, Some(S::Error));
    assert_eq!(session.status_info.as_deref(), Some("kernel-failed"));
}

#[test]
fn given_a_terminating_session_when_its_kernel_exits_non_zero_then_it_is_terminated_user_requested()
{
    let mut session = given(&reach(S::Terminating));
    execute(&mut session, end("agent-1", exited(Some(143))));
    assert_eq!(session.status, Some(S::Terminated));
    assert_eq!(session.status_info.as_deref(), Some("user-requested"));
    assert_eq!(session.exit_code, Some(143));
}

#[test]
fn given_a_session_cancelled_while_preparing_then_both_its_agents_get_a_stop_notice_until_each_reports(
) {
    let mut session = given(&reach(S::Preparing));
    assert_eq!(session.notice_for("agent-1"), Some(Notice::Start));
    execute(&mut session, command_for(S::Cancelled, later()));
    assert_eq!(session.notice_for("agent-1"), Some(Notice::Stop));
    assert_eq!(session.notice_for("agent-2"), Some(Notice::Stop));
    assert_eq!(session.agent_to_notify(), Some("agent-1"));
    let events = execute(&mut session, end("agent-1", exited(None)));
    assert!(matches!(
        events.as_slice(),
        [SessionEvent::SessionKernelEnded { ref reason, .. }] if reason == "kernel-terminated"
    ));
    assert_eq!(session.status, Some(S::Cancelled), "not a status change");
    assert_eq!(session.status_info.as_deref(), Some("user-requested"));
    assert_eq!(session.notice_for("agent-1"), None);
    assert_eq!(session.notice_for("agent-2"), Some(Notice::Stop));
    assert_eq!(session.agent_to_notify(), Some("agent-2"));
}

fn progress(to: S) -> SessionCommand {
    SessionCommand::ReportProgress { to, now: later() }
}

#[test]
fn given_a_scheduled_session_when_its_agent_reports_preparing_then_it_is_preparing() {
    let mut session = given(&reach(S::Scheduled));
    let events = execute(&mut session, progress(S::Preparing));
    assert!(matches!(
        events.as_slice(),
        [SessionEvent::SessionPreparing { .. }]
    ));
    assert_eq!(session.status, Some(S::Preparing));
}

#[test]
fn given_a_session_in_each_reported_status_when_its_agent_sends_the_same_report_again_then_nothing_is_appended(
) {
    for status in [
        S::Preparing,
        S::Pulling,
        S::Prepared,
        S::Creating,
        S::Running,
    ] {
        let session = given(&reach(status));
        assert_eq!(session.decide(progress(status)), Ok(vec![]), "{status}");
    }
}

#[test]
fn given_a_running_session_when_its_agent_reports_preparing_then_the_transition_is_rejected() {
    let session = given(&reach(S::Running));
    assert_eq!(
        session.decide(progress(S::Preparing)),
        Err(SessionError::IllegalTransition {
            from: S::Running,
            to: S::Preparing
        })
    );
}

#[test]
fn given_a_scheduled_session_when_a_report_names_a_status_no_kernel_reports_then_it_is_a_validation_error(
) {
    for to in [
        S::Pending,
        S::Scheduled,
        S::Terminating,
        S::Terminated,
        S::Error,
        S::Cancelled,
    ] {
        assert_eq!(
            validation_field(given(&reach(S::Scheduled)).decide(progress(to))),
            "event",
            "{to}"
        );
    }
}

#[test]
fn given_an_acknowledged_stop_when_the_agent_reports_again_then_nothing_is_appended() {
    let mut session = given(&reach(S::Cancelled));
    execute(&mut session, end("agent-1", exited(None)));
    assert_eq!(
        session.decide(end("agent-1", exited(None))).unwrap(),
        vec![]
    );
}

#[test]
fn given_a_session_not_placed_anywhere_then_no_agent_is_told_anything() {
    let session = given(&reach(S::Cancelled)[..1]);
    assert_eq!(session.status, Some(S::Pending));
    assert_eq!(session.notice_for("agent-1"), None);
    assert_eq!(session.agent_to_notify(), None);
}

#[test]
fn given_a_session_failed_by_agent_lost_when_the_restarted_agent_reports_agent_restarted_then_the_notice_closes_and_its_slots_are_free(
) {
    let mut session = given(&reach(S::Error));
    assert_eq!(session.status_info.as_deref(), Some("agent-lost"));
    assert_eq!(session.notice_for("agent-1"), Some(Notice::Stop));
    assert!(!session.holds_slots(), "its agent is lost");
    let events = execute(&mut session, end("agent-1", failed_with("agent-restarted")));
    assert!(matches!(
        events.as_slice(),
        [SessionEvent::SessionKernelEnded { ref reason, .. }] if reason == "agent-restarted"
    ));
    assert_eq!(session.status_info.as_deref(), Some("agent-lost"));
    assert_eq!(session.notice_for("agent-1"), None);
    assert_eq!(session.notice_for("agent-2"), Some(Notice::Stop));
    execute(&mut session, end("agent-2", failed_with("agent-restarted")));
    assert!(session.kernels_gone());
    assert_eq!(session.agent_to_notify(), None);
}

#[test]
fn given_an_error_session_when_its_agent_reports_terminated_then_it_is_terminated() {
    let mut session = given(&reach(S::Error));
    execute(&mut session, end("agent-1", exited(Some(0))));
    assert_eq!(session.status, Some(S::Terminated));
}

#[test]
fn given_a_pending_session_when_a_kernel_end_is_reported_then_it_is_an_illegal_transition() {
    let session = given(&reach(S::Pending));
    assert_eq!(
        session.decide(end("agent-1", exited(Some(0)))),
        Err(SessionError::IllegalTransition {
            from: S::Pending,
            to: S::Terminated
        })
    );
}

#[test]
fn given_a_kernel_report_naming_no_agent_when_decided_then_it_is_rejected() {
    let session = given(&reach(S::Running));
    let command = SessionCommand::EndKernel {
        agents: vec![],
        report: exited(Some(0)),
        now: later(),
    };
    assert!(matches!(
        session.decide(command),
        Err(SessionError::Validation(_))
    ));
}

#[test]
fn given_a_forced_termination_of_a_running_session_then_its_agent_still_gets_a_stop_notice() {
    let mut session = given(&reach(S::Running));
    execute(
        &mut session,
        SessionCommand::MarkTerminated {
            reason: reason("force-terminated"),
            exit_code: None,
            now: later(),
        },
    );
    assert_eq!(session.notice_for("agent-1"), Some(Notice::Stop));
}

// ---------------------------------------------------------------------------------------
// Properties over random command sequences
// ---------------------------------------------------------------------------------------

mod properties {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::select;

    fn time() -> impl Strategy<Value = DateTime<Utc>> {
        (0_i64..1_000_000).prop_map(at)
    }

    fn reason() -> impl Strategy<Value = crate::ids::Reason> {
        select(vec![
            "user-requested",
            "pending_timeout",
            "agent-lost",
            "image-pull-failed",
            "batch-timeout",
        ])
        .prop_map(super::reason)
    }

    fn valid_spec() -> impl Strategy<Value = SessionSpec> {
        (
            "[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}",
            select(SessionType::ALL.to_vec()),
            1_u32..8,
            0_u8..=100,
            1_i64..640,
        )
            .prop_map(|(name, session_type, cluster_size, priority, cpu_tenths)| {
                let base = if session_type == SessionType::Batch {
                    batch_spec()
                } else {
                    spec()
                };
                SessionSpec {
                    name: fixtures::session_name(&name),
                    session_type,
                    cluster_size: fixtures::cluster_size(cluster_size),
                    priority: fixtures::priority(priority),
                    resources: cpu(cpu_tenths),
                    ..base
                }
            })
    }

    fn allocation() -> impl Strategy<Value = AgentAllocation> {
        (select(vec!["agent-1", "agent-2", "agent-3"]), 0_i64..640).prop_map(
            |(agent_id_text, tenths)| AgentAllocation {
                agent_id: agent_id(agent_id_text),
                slots: cpu(tenths),
            },
        )
    }

    fn failed_predicate() -> impl Strategy<Value = FailedPredicate> {
        (
            select(vec!["concurrency", "dependencies", "reserved_time"]),
            select(vec!["full", "waiting"]),
        )
            .prop_map(|(name, msg)| failed(name, msg))
    }

    fn passed_predicate() -> impl Strategy<Value = PassedPredicate> {
        select(vec!["concurrency", "dependencies", "reserved_time"]).prop_map(passed)
    }

    /// Any command, every variant (invalid payloads such as no agents included).
    fn command() -> impl Strategy<Value = SessionCommand> {
        prop_oneof![
            (valid_spec(), time()).prop_map(|(spec, now)| SessionCommand::Enqueue { spec, now }),
            (
                prop::collection::vec(failed_predicate(), 0..3),
                prop::collection::vec(passed_predicate(), 0..3),
                time()
            )
                .prop_map(|(failed, passed, now)| record_failure(failed, passed, now)),
            (
                select(vec!["default", "gpu"]),
                prop::collection::vec(allocation(), 0..3),
                time()
            )
                .prop_map(|(group_name, agents, now)| SessionCommand::Schedule {
                    scaling_group: group(group_name),
                    agents,
                    now,
                }),
            time().prop_map(|now| SessionCommand::MarkPreparing { now }),
            time().prop_map(|now| SessionCommand::MarkPulling { now }),
            time().prop_map(|now| SessionCommand::MarkPrepared { now }),
            time().prop_map(|now| SessionCommand::MarkCreating { now }),
            time().prop_map(|now| SessionCommand::Start { now }),
            (select(ALL_STATUSES.to_vec()), time())
                .prop_map(|(to, now)| SessionCommand::ReportProgress { to, now }),
            time().prop_map(|now| SessionCommand::Restart { now }),
            (reason(), time()).prop_map(|(reason, now)| SessionCommand::Degrade { reason, now }),
            (reason(), select(vec!["key:alice", "scheduler"]), time()).prop_map(
                |(reason, by, now)| SessionCommand::RequestTermination {
                    reason,
                    requested_by: by.to_string(),
                    now,
                }
            ),
            (reason(), prop::option::of(-2_i32..140), time()).prop_map(
                |(reason, exit_code, now)| SessionCommand::MarkTerminated {
                    reason,
                    exit_code,
                    now,
                }
            ),
            (reason(), time()).prop_map(|(reason, now)| SessionCommand::Cancel { reason, now }),
            (reason(), time())
                .prop_map(|(reason, now)| SessionCommand::CancelPending { reason, now }),
            (0u64..10_000, time()).prop_map(|(pending_timeout, now)| {
                SessionCommand::ExpirePending {
                    pending_timeout,
                    now,
                }
            }),
            (
                reason(),
                prop::option::of(Just("detail".to_string())),
                time()
            )
                .prop_map(|(reason, detail, now)| SessionCommand::Fail {
                    reason,
                    detail,
                    now,
                }),
            (
                prop::collection::vec(select(vec!["agent-1", "agent-2", "agent-9"]), 1..3),
                any::<bool>(),
                prop::option::of(-2_i32..140),
                prop::option::of(reason()),
                time()
            )
                .prop_map(|(agents, failed, exit_code, reason, now)| {
                    SessionCommand::EndKernel {
                        agents: agents.into_iter().map(String::from).collect(),
                        report: if failed {
                            KernelEnd::Failed { exit_code, reason }
                        } else {
                            KernelEnd::Terminated { exit_code, reason }
                        },
                        now,
                    }
                }),
        ]
    }

    /// Runs `commands` through decide + apply from `start`, checking properties (a), (b)
    /// and (d) at every step, then (c) on the whole history (`history` already holds the
    /// events that produced `start`).
    fn check_run(
        start: Session,
        mut history: Vec<SessionEvent>,
        commands: Vec<SessionCommand>,
    ) -> Result<(), TestCaseError> {
        let mut session = start;
        for command in commands {
            let before = session.clone();
            match session.decide(command.clone()) {
                Ok(events) => {
                    prop_assert!(events.len() <= 1, "{command:?} -> {events:?}");
                    if events.is_empty() {
                        prop_assert!(
                            matches!(
                                command,
                                SessionCommand::RecordSchedulingFailure { .. }
                                    | SessionCommand::EndKernel { .. }
                                    | SessionCommand::ReportProgress { .. }
                            ),
                            "only a repeated scheduling failure or kernel report may produce nothing: {command:?}"
                        );
                    }
                    for event in &events {
                        prop_assert_eq!(event.occurred_at(), command.now());
                        // (a) every status change follows the table (or is the creation).
                        let from = session.status;
                        match (from, event.target_status()) {
                            (None, to) => prop_assert_eq!(to, Some(S::Pending)),
                            (Some(from), Some(to)) => prop_assert!(
                                in_table(from, to),
                                "{from} -> {to} is not in the table ({command:?})"
                            ),
                            (Some(from), None) => match event {
                                // A late kernel report: the session has ended or failed.
                                SessionEvent::SessionKernelEnded { .. } => prop_assert!(
                                    from.is_terminal() || from == S::Error,
                                    "a kernel report in {from} is not a status change"
                                ),
                                _ => prop_assert_eq!(from, S::Pending),
                            },
                        }
                        // (d) JSON round trip.
                        let json = serde_json::to_string(event).unwrap();
                        let back: SessionEvent = serde_json::from_str(&json).unwrap();
                        prop_assert_eq!(&back, event);

                        session.apply(event);
                        if let Some(to) = event.target_status() {
                            prop_assert_eq!(session.status, Some(to));
                            prop_assert_eq!(session.status_changed, Some(event.occurred_at()));
                            prop_assert_eq!(
                                session.status_history.get(&to),
                                Some(&event.occurred_at())
                            );
                        }
                        history.push(event.clone());
                    }
                }
                Err(error) => {
                    // (b) a rejection changes nothing.
                    prop_assert_eq!(&session, &before, "{:?} rejected with {:?}", command, error);
                    if let SessionError::IllegalTransition { from, to } = error {
                        prop_assert_eq!(Some(from), session.status);
                        prop_assert!(!in_table(from, to));
                    }
                }
            }
        }
        // (c) folding the history reproduces the state exactly.
        prop_assert_eq!(session.version, history.len() as u64);
        prop_assert_eq!(Session::fold(&history), session);
        Ok(())
    }

    proptest! {
        #[test]
        fn random_command_sequences_on_a_fresh_session_respect_the_table_and_fold_back(
            commands in prop::collection::vec(command(), 0..60)
        ) {
            check_run(Session::default(), vec![], commands)?;
        }

        #[test]
        fn random_command_sequences_from_any_reachable_status_respect_the_table_and_fold_back(
            start in select(ALL_STATUSES.to_vec()),
            commands in prop::collection::vec(command(), 0..60)
        ) {
            let history = reach(start);
            check_run(given(&history), history, commands)?;
        }

        #[test]
        fn every_event_round_trips_through_json(
            commands in prop::collection::vec(command(), 0..60)
        ) {
            // Decide each command on the state that accepts it, so every event kind occurs.
            for command in commands {
                let session = match &command {
                    SessionCommand::Enqueue { .. } => Session::default(),
                    SessionCommand::RecordSchedulingFailure { .. }
                    | SessionCommand::Schedule { .. } => given(&reach(S::Pending)),
                    SessionCommand::MarkPreparing { .. }
                    | SessionCommand::MarkPulling { .. }
                    | SessionCommand::MarkPrepared { .. } => given(&reach(S::Scheduled)),
                    SessionCommand::MarkCreating { .. } => given(&reach(S::Prepared)),
                    SessionCommand::Start { .. } => given(&reach(S::Restarting)),
                    // The status just before the one reported (PREPARING and PULLING
                    // from SCHEDULED); a status no kernel reports is a validation error.
                    SessionCommand::ReportProgress { to, .. } => match to {
                        S::Preparing | S::Pulling | S::Prepared => given(&reach(S::Scheduled)),
                        S::Creating => given(&reach(S::Prepared)),
                        _ => given(&reach(S::Creating)),
                    },
                    SessionCommand::Restart { .. }
                    | SessionCommand::Degrade { .. }
                    | SessionCommand::RequestTermination { .. }
                    | SessionCommand::MarkTerminated { .. }
                    | SessionCommand::Fail { .. }
                    | SessionCommand::EndKernel { .. } => given(&reach(S::Running)),
                    SessionCommand::Cancel { .. }
                    | SessionCommand::CancelPending { .. }
                    | SessionCommand::ExpirePending { .. } => given(&reach(S::Pending)),
                };
                // Every command is decided on a state whose status accepts it: only a
                // command invalid in itself (a generated value the domain refuses, e.g.
                // a failure naming no predicate, or a deadline not yet reached) may be
                // refused; a refusal for the status is a failure, not a case to skip.
                let shown = format!("{command:?}");
                let events = match session.decide(command) {
                    Ok(events) => events,
                    Err(SessionError::Validation(_) | SessionError::NotExpired { .. }) => continue,
                    Err(e) => return Err(TestCaseError::fail(format!("{shown} refused: {e}"))),
                };
                for event in events {
                    let json = serde_json::to_value(&event).unwrap();
                    prop_assert!(json.get(event.event_type()).is_some(), "{json}");
                    let back: SessionEvent = serde_json::from_value(json).unwrap();
                    prop_assert_eq!(back, event);
                }
            }
        }
    }
}

#[test]
fn given_a_recorded_failure_when_the_same_predicates_fail_in_another_order_then_nothing_is_appended(
) {
    let mut session = given(&reach(S::Pending));
    let first = session
        .decide(SessionCommand::RecordSchedulingFailure {
            failed: vec![failed("concurrency", "a"), failed("dependencies", "b")],
            passed: vec![passed("reserved_time")],
            now: now(),
        })
        .unwrap();
    assert_eq!(first.len(), 1);
    first.iter().for_each(|e| session.apply(e));
    let again = session.decide(SessionCommand::RecordSchedulingFailure {
        failed: vec![failed("dependencies", "b"), failed("concurrency", "a")],
        passed: vec![passed("reserved_time")],
        now: later(),
    });
    assert_eq!(again, Ok(vec![]));
}

// ---------------------------------------------------------------------------------------
// The scheduler's guarded cancellations: only while PENDING.

#[test]
fn given_a_pending_session_past_its_timeout_when_expired_then_it_is_cancelled_with_pending_timeout()
{
    let session = given(&reach(S::Pending));
    let events = session.decide(SessionCommand::ExpirePending {
        pending_timeout: 60,
        now: now() + TimeDelta::seconds(60),
    });
    assert_eq!(
        events,
        Ok(vec![SessionEvent::SessionCancelled {
            reason: "pending_timeout".into(),
            occurred_at: now() + TimeDelta::seconds(60)
        }])
    );
}

#[test]
fn given_a_pending_session_before_its_timeout_when_expired_then_it_is_rejected_as_not_expired() {
    let session = given(&reach(S::Pending));
    let r = session.decide(SessionCommand::ExpirePending {
        pending_timeout: 60,
        now: now() + TimeDelta::seconds(59),
    });
    assert_eq!(
        r,
        Err(SessionError::NotExpired {
            pending_timeout: 60
        })
    );
}

#[test]
fn given_a_timeout_of_zero_when_expired_at_any_time_then_it_is_never_cancelled() {
    let session = given(&reach(S::Pending));
    let r = session.decide(SessionCommand::ExpirePending {
        pending_timeout: 0,
        now: now() + TimeDelta::days(365),
    });
    assert_eq!(r, Err(SessionError::NotExpired { pending_timeout: 0 }));
}

#[test]
fn given_a_session_scheduled_just_before_the_deadline_when_expired_then_it_is_not_cancelled() {
    let session = given(&reach(S::Scheduled));
    let r = session.decide(SessionCommand::ExpirePending {
        pending_timeout: 1,
        now: later(),
    });
    assert_eq!(r, Err(SessionError::NotPending(S::Scheduled)));
}

#[test]
fn given_a_scheduled_session_when_the_scheduler_cancels_a_pending_one_then_it_is_left_alone() {
    let session = given(&reach(S::Scheduled));
    let r = session.decide(SessionCommand::CancelPending {
        reason: reason("dependency-failed"),
        now: later(),
    });
    assert_eq!(r, Err(SessionError::NotPending(S::Scheduled)));
    let pending = given(&reach(S::Pending));
    let events = pending
        .decide(SessionCommand::CancelPending {
            reason: reason("dependency-failed"),
            now: later(),
        })
        .unwrap();
    assert_eq!(events[0].target_status(), Some(S::Cancelled));
}
