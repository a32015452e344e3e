//! Every stored event type, decoded from mutated valid payloads, arbitrary JSON and
//! bytes (what a damaged row, an old version or a hand-edited export holds), as
//! `RecordedEvent::decode` reads it. A decoded event round-trips, and folding it into
//! its aggregate (fresh, or mid-lifecycle) never panics: one bad record must not stop
//! a projection or a worker. Also the export line format (`RecordedEvent` itself).

use domain::{Decider, DomainEvent};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};
use sessiond::store::log::RecordedEvent;
use uuid::Uuid;

use crate::gen::{body, mutated};
use crate::{check, fuzz};

const T: &str = "2023-11-14T22:13:20Z";
const U1: &str = "5e55a0b1-0000-4000-8000-00000000000a";
const U2: &str = "5e55a0b1-0000-4000-8000-00000000000b";

/// Decodes `bytes` as `A`'s event stored at `version`, as the store reads a row
/// (`RecordedEvent::decode`: the upcaster chain, then serde), checks the round trip,
/// and folds it into each state.
fn decode_case<A: Decider>(bytes: &[u8], version: &str, states: &[A]) -> Result<(), TestCaseError> {
    let Ok(payload) = serde_json::from_slice::<Value>(bytes) else {
        return Ok(());
    };
    let event_type = payload
        .as_object()
        .and_then(|m| m.keys().next().cloned())
        .unwrap_or_default();
    let row = RecordedEvent {
        global_position: 1,
        transaction_id: 0,
        aggregate_type: A::TYPE.to_string(),
        aggregate_id: U1.to_string(),
        sequence: 1,
        event_type,
        event_version: version.to_string(),
        payload,
        metadata: json!({}),
        recorded_at: domain::fixtures::epoch(),
    };
    let Ok(event) = row.decode::<A::Event>() else {
        // A typed DecodeError (its message names the type and position).
        return Ok(());
    };
    // (serde_json's text reader also takes a struct variant as an array, its value
    // reader does not: each is a typed error or the same event.)
    if let Ok(d) = serde_json::from_slice::<A::Event>(bytes) {
        check!(
            d == event,
            "text and value decode differently: {d:?} / {event:?}"
        );
    }
    let encoded = serde_json::to_value(&event).unwrap();
    let back: Result<A::Event, _> = serde_json::from_value(encoded.clone());
    check!(
        back.as_ref().ok() == Some(&event),
        "{encoded} does not round-trip: {back:?}"
    );
    let _ = (
        event.event_type(),
        event.event_version(),
        A::occurred_at(&event),
    );
    for (i, s) in states.iter().enumerate() {
        let mut s = s.clone();
        s.evolve(&event);
        if i + 1 == states.len() {
            // A read-model row is the state as JSON.
            let _ = serde_json::to_string(&s).unwrap();
        }
    }
    crate::accepted();
    Ok(())
}

fn seeds_decode<A: Decider>(seeds: &[Value]) {
    for s in seeds {
        if let Err(e) = A::Event::deserialize(s) {
            panic!("seed {s} of {} does not decode: {e}", A::TYPE);
        }
    }
}

/// The states a decoded event is folded into: fresh, and after each seed in order
/// (the seeds list a plausible stream).
fn states<A: Decider>(seeds: &[Value]) -> Vec<A> {
    let mut out = vec![A::default()];
    let mut s = A::default();
    for v in seeds {
        s.evolve(&A::Event::deserialize(v).unwrap());
        out.push(s.clone());
    }
    out
}

/// The frozen stored events (owned by tests/store/upgrades.rs).
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/events");

/// The payloads of `tests/fixtures/events/*.json` (every event type as stored today)
/// of aggregate `A`.
fn fixture_seeds<A: Decider>() -> Vec<Value> {
    let Ok(entries) = std::fs::read_dir(FIXTURES) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Value)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            let v: Value = serde_json::from_str(&text).ok()?;
            (v["aggregate_type"] == A::TYPE).then(|| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    v["payload"].clone(),
                )
            })
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter()
        .map(|(_, v)| v)
        .filter(|v| A::Event::deserialize(v).is_ok())
        .collect()
}

fn run<A: Decider>(name: &'static str, mut seeds: Vec<Value>) {
    seeds_decode::<A>(&seeds);
    let states = states::<A>(&seeds);
    let fixtures = fixture_seeds::<A>();
    assert!(
        !fixtures.is_empty() || !std::path::Path::new(FIXTURES).is_dir(),
        "no fixture of {} in {FIXTURES} decodes",
        A::TYPE
    );
    seeds.extend(fixtures);
    let version = prop_oneof![
        12 => Just(<A::Event as DomainEvent>::EVENT_VERSION.to_string()),
        1 => prop::sample::select(vec!["0", "2", "99", "", "1.0", " 1", "v1"]).prop_map(str::to_string),
    ];
    fuzz(name, (body(seeds), version), |(bytes, version)| {
        decode_case::<A>(&bytes, &version, &states)
    });
}

fn session_seeds() -> Vec<Value> {
    let mut seeds: Vec<Value> =
        domain::fixtures::batch_lifecycle(Uuid::from_u128(9), domain::fixtures::epoch())
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect();
    let mut spec = serde_json::to_value(domain::fixtures::spec(Uuid::from_u128(3))).unwrap();
    spec["callback_url"] = json!("https://hooks.example.com/x");
    spec["labels"] = json!({"team": "ml"});
    spec["dependencies"] = json!([U1]);
    spec["resources"] = json!({"cpu": "0.5", "mem": "1073741824", "cuda.device": "1"});
    seeds.extend([
        json!({"SessionEnqueued": {"spec": spec, "occurred_at": T}}),
        json!({"SessionSchedulingFailed": {"failed_predicates": [{"name": "concurrency", "msg": "m"}],
               "passed_predicates": [{"name": "x"}], "occurred_at": T}}),
        json!({"SessionPulling": {"occurred_at": T}}),
        json!({"SessionRestarting": {"occurred_at": T}}),
        json!({"SessionDegraded": {"reason": "r", "occurred_at": T}}),
        json!({"SessionTerminating": {"reason": "user-requested", "requested_by": "k1", "occurred_at": T}}),
        json!({"SessionCancelled": {"reason": "r", "occurred_at": T}}),
        json!({"SessionErrored": {"reason": "r", "detail": "d", "exit_code": 137, "ended_on": ["a1"], "occurred_at": T}}),
        json!({"SessionKernelEnded": {"ended_on": ["a1"], "reason": "r", "exit_code": 1, "occurred_at": T}}),
    ]);
    seeds
}

#[test]
fn session_events() {
    run::<domain::session::Session>("session_events", session_seeds());
}

#[test]
fn agent_events() {
    run::<domain::agent::Agent>(
        "agent_events",
        vec![
            json!({"AgentRegistered": {"agent_id": "a1", "scaling_group": "default", "addr": "10.0.0.1:6001",
                   "available_slots": {"cpu": "8", "mem": "34359738368"}, "occurred_at": T}}),
            json!({"SlotsAllocated": {"session_id": U1, "slots": {"cpu": "1"}, "occurred_at": T}}),
            json!({"SlotsAllocated": {"session_id": U2, "slots": {"cpu": "99", "mem": "1"}, "occurred_at": T}}),
            json!({"SlotsReleased": {"session_id": U1, "slots": {"cpu": "1"}, "occurred_at": T}}),
            json!({"AgentLost": {"occurred_at": T}}),
        ],
    );
}

#[test]
fn scaling_group_events() {
    let opts = domain::scaling_group::SchedulerOpts::default();
    run::<domain::scaling_group::ScalingGroup>(
        "scaling_group_events",
        vec![
            json!({"ScalingGroupCreated": {"name": "default", "description": "", "is_active": true,
                   "public": false, "owners": ["alice"], "scheduler": "fifo", "scheduler_opts": opts,
                   "occurred_at": T}}),
            json!({"ScalingGroupUpdated": {"description": "x", "is_active": false, "public": true,
                   "owners": ["bob"], "scheduler": "drf", "occurred_at": T}}),
            json!({"SchedulerOptsChanged": {"old": opts, "new": {"allowed_session_types": ["batch"],
                   "pending_timeout": 30, "agent_selection_strategy": "roundrobin",
                   "config": {"num_retries_to_skip": 2}}, "occurred_at": T}}),
        ],
    );
}

#[test]
fn policy_events() {
    run::<domain::policy::ResourcePolicy>(
        "policy_events",
        vec![
            json!({"ResourcePolicySet": {"owner": "alice", "limits": {"max_concurrent_sessions": 3,
                   "max_pending_sessions": 10, "total_resource_slots": {"cpu": "8"}}, "occurred_at": T}}),
            json!({"ResourcePolicySet": {"owner": "alice", "limits": {"max_concurrent_sessions": null,
                   "max_pending_sessions": null, "total_resource_slots": null}, "occurred_at": T}}),
        ],
    );
}

#[test]
fn name_claim_and_quota_events() {
    run::<domain::name_claim::NameClaim>(
        "name_claim_events",
        vec![json!({"NameClaimed": {"holder": U1, "occurred_at": T}})],
    );
    run::<domain::pending_quota::PendingQuota>(
        "pending_quota_events",
        vec![
            json!({"PendingQuotaTaken": {"session_id": U1, "unprojected": [U2], "pending": 2,
                    "limit": 10, "occurred_at": T}}),
        ],
    );
}

#[test]
fn vfolder_events() {
    let spec = json!({"vfolder_id": U1, "name": "data", "owner": "alice", "host": "local",
                      "usage_mode": "general", "permission": "rw", "cloneable": true});
    run::<domain::vfolder::VFolder>(
        "vfolder_events",
        vec![
            json!({"VFolderCreated": {"spec": spec, "occurred_at": T}}),
            json!({"VFolderCloneStarted": {"task_id": U2, "target_id": U1, "occurred_at": T}}),
            json!({"VFolderCloneEnded": {"task_id": U2, "occurred_at": T}}),
            json!({"VFolderCloneTargetCreated": {"spec": spec, "source_id": U2, "task_id": U1, "occurred_at": T}}),
            json!({"VFolderReady": {"occurred_at": T}}),
            json!({"VFolderErrored": {"reason": "clone-failed", "occurred_at": T}}),
            json!({"VFolderDeleteRequested": {"task_id": U2, "occurred_at": T}}),
            json!({"VFolderDeleted": {"occurred_at": T}}),
        ],
    );
}

#[test]
fn background_task_events() {
    run::<domain::bgtask::BackgroundTask>(
        "background_task_events",
        vec![
            json!({"BackgroundTaskStarted": {"task_id": U1, "params": {"kind": "vfolder-clone",
                   "source_id": U1, "source_host": "local", "target_id": U2, "target_host": "nfs"},
                   "owner": "alice", "total": 10, "occurred_at": T}}),
            json!({"BackgroundTaskProgressed": {"current": 3, "total": 10, "message": "m", "occurred_at": T}}),
            json!({"BackgroundTaskResumed": {"attempt": 2, "reason": "lease-expired", "occurred_at": T}}),
            json!({"BackgroundTaskCancelled": {"requested_by": "k1", "occurred_at": T}}),
            json!({"BackgroundTaskFailed": {"reason": "io", "occurred_at": T}}),
            json!({"BackgroundTaskCompleted": {"message": "ok", "occurred_at": T}}),
            json!({"BackgroundTaskStarted": {"task_id": U2, "params": {"kind": "vfolder-delete",
                   "vfolder_id": U1, "host": "local"}, "owner": "bob", "total": 0, "occurred_at": T}}),
        ],
    );
}

#[test]
fn webhook_events() {
    let settings = json!({"url": "https://hooks.example.com/x", "description": "d",
                          "filter": {"statuses": ["RUNNING"], "scaling_groups": ["default"], "owners": ["alice"]},
                          "enabled": true});
    run::<domain::webhook::WebhookSubscription>(
        "webhook_events",
        vec![
            json!({"WebhookSubscriptionCreated": {"webhook_id": U1, "settings": settings,
                   "secret_id": U2, "occurred_at": T}}),
            json!({"WebhookSubscriptionUpdated": {"settings": settings, "occurred_at": T}}),
            json!({"WebhookSecretRotated": {"secret_id": U1, "previous_secret_id": U2,
                   "previous_expires_at": T, "occurred_at": T}}),
            json!({"WebhookSubscriptionDisabled": {"reason": "gone", "occurred_at": T}}),
            json!({"WebhookSubscriptionDeleted": {"occurred_at": T}}),
        ],
    );
}

#[test]
fn recorded_events() {
    let line = json!({"global_position": 7, "aggregate_type": "Session", "aggregate_id": U1,
                      "sequence": 1, "event_type": "SessionPreparing", "event_version": "1",
                      "payload": {"SessionPreparing": {"occurred_at": T}},
                      "metadata": {"actor": "k1", "correlation_id": "c", "causation_id": "c"},
                      "recorded_at": T});
    let lifecycle =
        domain::fixtures::batch_lifecycle(Uuid::from_u128(9), domain::fixtures::epoch());
    let enqueued = domain::session::Session::fold(lifecycle[..1].iter());
    fuzz("recorded_events", mutated(vec![line]), |v| {
        let Ok(e) = serde_json::from_value::<RecordedEvent>(v) else {
            return Ok(());
        };
        let _ = (e.actor(), e.log_position());
        if let Ok(s) = e.decode::<domain::session::SessionEvent>() {
            let mut st = enqueued.clone();
            st.apply(&s);
        }
        let back: RecordedEvent =
            serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        check!(
            RecordedEvent {
                transaction_id: e.transaction_id,
                ..back
            } == e,
            "the export line does not round-trip"
        );
        crate::accepted();
        Ok(())
    });
}
