//! Event upgrades (docs/adr/0010-event-upgrades.md): every event type as stored today is
//! frozen in `tests/fixtures/events/<EventType>.v<version>[.<shape>].json`, and every
//! fixture must keep loading through the upcaster chain (`store::upcast`) and folding as
//! its aggregate. The fixtures are static files: nothing here writes them, so a change to
//! an event's shape that old stored events no longer decode into fails here until an
//! upcaster (and a new version) is added.

use chrono::{DateTime, Utc};
use domain::agent::Agent;
use domain::bgtask::BackgroundTask;
use domain::name_claim::NameClaim;
use domain::pending_quota::PendingQuota;
use domain::policy::ResourcePolicy;
use domain::scaling_group::ScalingGroup;
use domain::session::{Session, SessionEvent};
use domain::vfolder::VFolder;
use domain::webhook::WebhookSubscription;
use domain::{Decider, DomainEvent, Until};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sessiond::store::{
    DecodeError, EventStore, NewEvent, RecordedEvent, StoreError, Unreadable, UpcastError,
    Upcaster, Upcasters,
};
use std::collections::{BTreeMap, BTreeSet};

testkit::conformance!(
    every_fixture_appended_to_a_store_loads_back_through_the_chain,
    a_stored_event_of_an_unknown_version_fails_every_load_with_a_typed_error,
);

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/events");

/// One fixture file: an event exactly as the store keeps it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    #[serde(skip)]
    file: String,
    aggregate_type: String,
    event_type: String,
    event_version: String,
    payload: Value,
    metadata: Value,
}

impl Fixture {
    /// As the log reader returns it, at `global_position` / `sequence` of a stream
    /// (whose id is the file name, for messages).
    fn recorded(&self, global_position: i64, sequence: i64) -> RecordedEvent {
        RecordedEvent {
            global_position,
            transaction_id: 0,
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.file.clone(),
            sequence,
            event_type: self.event_type.clone(),
            event_version: self.event_version.clone(),
            payload: self.payload.clone(),
            metadata: self.metadata.clone(),
            recorded_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }
}

/// Every fixture, by file name.
fn fixtures() -> Vec<Fixture> {
    let mut out: Vec<Fixture> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let mut f: Fixture = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{file} is not a fixture: {e}"));
            f.file = file;
            f
        })
        .collect();
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

fn fixture(file: &str) -> Fixture {
    fixtures()
        .into_iter()
        .find(|f| f.file == file)
        .unwrap_or_else(|| panic!("no fixture {file}"))
}

/// An aggregate of the domain: its event types in lifecycle order, the variant names
/// its event enum (de)serialises, and how to read and fold a stream of its fixtures.
struct Aggregate {
    type_name: &'static str,
    event_types: &'static [&'static str],
    version: &'static str,
    variants: fn() -> BTreeSet<String>,
    read_and_fold: fn(&[RecordedEvent]) -> Result<(), String>,
}

fn aggregate<A: Decider>(event_types: &'static [&'static str]) -> Aggregate {
    Aggregate {
        type_name: A::TYPE,
        event_types,
        version: A::Event::EVENT_VERSION,
        variants: variants::<A::Event>,
        read_and_fold: read_and_fold::<A>,
    }
}

/// Every aggregate. A new aggregate without a row here fails
/// `every_aggregate_of_the_domain_has_fixtures`; a new variant without its name here
/// fails `every_serialized_variant_of_every_aggregate_has_a_fixture`.
fn aggregates() -> Vec<Aggregate> {
    vec![
        aggregate::<Session>(&[
            "SessionEnqueued",
            "SessionSchedulingFailed",
            "SessionScheduled",
            "SessionPreparing",
            "SessionPulling",
            "SessionPrepared",
            "SessionCreating",
            "SessionStarted",
            "SessionRestarting",
            "SessionDegraded",
            "SessionTerminating",
            "SessionTerminated",
            "SessionCancelled",
            "SessionErrored",
            "SessionKernelEnded",
        ]),
        aggregate::<Agent>(&[
            "AgentRegistered",
            "SlotsAllocated",
            "SlotsReleased",
            "AgentLost",
        ]),
        aggregate::<ScalingGroup>(&[
            "ScalingGroupCreated",
            "ScalingGroupUpdated",
            "SchedulerOptsChanged",
        ]),
        aggregate::<ResourcePolicy>(&["ResourcePolicySet"]),
        aggregate::<NameClaim>(&["NameClaimed"]),
        aggregate::<PendingQuota>(&["PendingQuotaTaken"]),
        aggregate::<VFolder>(&[
            "VFolderCreated",
            "VFolderCloneTargetCreated",
            "VFolderCloneStarted",
            "VFolderCloneEnded",
            "VFolderReady",
            "VFolderErrored",
            "VFolderDeleteRequested",
            "VFolderDeleted",
        ]),
        aggregate::<BackgroundTask>(&[
            "BackgroundTaskStarted",
            "BackgroundTaskProgressed",
            "BackgroundTaskCompleted",
            "BackgroundTaskFailed",
            "BackgroundTaskCancelled",
            "BackgroundTaskResumed",
        ]),
        aggregate::<WebhookSubscription>(&[
            "WebhookSubscriptionCreated",
            "WebhookSubscriptionUpdated",
            "WebhookSecretRotated",
            "WebhookSubscriptionDisabled",
            "WebhookSubscriptionDeleted",
        ]),
    ]
}

/// The variant names `E` deserialises, as serde itself lists them: asked for a variant
/// that does not exist, it answers "expected one of `A`, `B`, ...".
fn variants<E: DomainEvent>() -> BTreeSet<String> {
    let err = serde_json::from_value::<E>(json!({"NoSuchVariant": {}}))
        .expect_err("no event has a variant NoSuchVariant")
        .to_string();
    let (_, expected) = err
        .split_once("expected")
        .unwrap_or_else(|| panic!("not an unknown-variant error: {err}"));
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Reads a stream of fixtures as `A`'s events (through the standard chain), checks each
/// names its stored type, and folds them.
fn read_and_fold<A: Decider>(stream: &[RecordedEvent]) -> Result<(), String> {
    let mut events = Vec::new();
    for e in stream {
        let event: A::Event = e
            .decode()
            .map_err(|err| format!("{}: {err}", e.aggregate_id))?;
        if event.event_type() != e.event_type {
            return Err(format!(
                "{}: stored as {} but decodes as {}",
                e.aggregate_id,
                e.event_type,
                event.event_type()
            ));
        }
        // Folding one event alone must not panic either (a stream may start anywhere
        // for the fold's purposes: `?at=` folds prefixes).
        let _alone: A = domain::fold_until(std::slice::from_ref(&event), Until::default());
        events.push(event);
    }
    let _state: A = domain::fold_until(&events, Until::default());
    snapshots_round_trip::<A>(&events)
}

/// A snapshot of the state after every prefix of `events`, written and read back as
/// the store does (`store::snapshots`: JSON text), is the same state, and folding the
/// next event on it gives the same state as folding it on the original.
fn snapshots_round_trip<A: Decider>(events: &[A::Event]) -> Result<(), String> {
    let mut state = A::default();
    for (i, event) in events.iter().enumerate() {
        state.evolve(event);
        let text = serde_json::to_string(&state).map_err(|e| format!("{}: {e}", A::TYPE))?;
        let mut back: A = serde_json::from_str(&text)
            .map_err(|e| format!("{} snapshot after {} events: {e}", A::TYPE, i + 1))?;
        let same = |a: &A, b: &A| serde_json::to_value(a).ok() == serde_json::to_value(b).ok();
        if !same(&back, &state) {
            return Err(format!(
                "{} snapshot after {} events differs",
                A::TYPE,
                i + 1
            ));
        }
        if let Some(next) = events.get(i + 1) {
            let mut folded = state.clone();
            folded.evolve(next);
            back.evolve(next);
            if !same(&back, &folded) {
                return Err(format!("{} folds differently on a snapshot", A::TYPE));
            }
        }
    }
    Ok(())
}

/// Each aggregate's fixtures in lifecycle order (then by file name).
fn streams() -> BTreeMap<&'static str, Vec<Fixture>> {
    let all = fixtures();
    aggregates()
        .iter()
        .map(|a| {
            let stream = a
                .event_types
                .iter()
                .flat_map(|ty| {
                    all.iter()
                        .filter(|f| f.aggregate_type == a.type_name && f.event_type == *ty)
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .collect();
            (a.type_name, stream)
        })
        .collect()
}

fn as_recorded(stream: &[Fixture]) -> Vec<RecordedEvent> {
    stream
        .iter()
        .zip(1..)
        .map(|(f, i)| f.recorded(i, i))
        .collect()
}

#[test]
fn every_fixture_loads_through_the_upcaster_chain_and_folds_as_its_aggregate() {
    // Given every aggregate's fixtures as one stream each
    let streams = streams();
    for a in aggregates() {
        let stream = as_recorded(&streams[a.type_name]);
        assert!(!stream.is_empty(), "{} has no fixtures", a.type_name);
        // When it is read through the chain and folded
        let result = (a.read_and_fold)(&stream);
        // Then every event decodes as the aggregate's event type and folds
        assert_eq!(result, Ok(()), "{}", a.type_name);
    }
}

#[test]
fn every_serialized_variant_of_every_aggregate_has_a_fixture() {
    // Given the fixtures and each aggregate's event enum
    let all = fixtures();
    for a in aggregates() {
        let listed: BTreeSet<String> = a.event_types.iter().map(|s| s.to_string()).collect();
        // Then the enum has exactly the listed variants (a new one must be listed) ...
        assert_eq!(
            (a.variants)(),
            listed,
            "{}: the event enum's variants differ from the list in tests/store/upgrades.rs",
            a.type_name
        );
        // ... and every listed variant has a fixture of this build's version
        let covered: BTreeSet<String> = all
            .iter()
            .filter(|f| f.aggregate_type == a.type_name && f.event_version == a.version)
            .map(|f| f.event_type.clone())
            .collect();
        let missing: Vec<_> = listed.difference(&covered).collect();
        assert!(
            missing.is_empty(),
            "{} v{}: no fixture in tests/fixtures/events for {missing:?}",
            a.type_name,
            a.version
        );
    }
}

#[test]
fn every_aggregate_of_the_domain_has_fixtures() {
    // Given the aggregates of the domain: one `*_EVENT_VERSION` per events module
    let domain_src = concat!(env!("CARGO_MANIFEST_DIR"), "/domain/src");
    let mut versions = 0;
    for entry in std::fs::read_dir(domain_src).unwrap() {
        let events = entry.unwrap().path().join("events.rs");
        if let Ok(text) = std::fs::read_to_string(&events) {
            versions += text
                .lines()
                .filter(|l| l.starts_with("pub const ") && l.contains("_EVENT_VERSION: &str"))
                .count();
        }
    }
    // Then each has a row in the fixture table
    assert_eq!(
        versions,
        aggregates().len(),
        "an aggregate of domain/src/*/events.rs is missing from aggregates() here"
    );
}

#[test]
fn every_fixture_names_a_known_event_and_is_filed_under_its_type_and_version() {
    let table = aggregates();
    for f in fixtures() {
        let a = table
            .iter()
            .find(|a| a.type_name == f.aggregate_type)
            .unwrap_or_else(|| panic!("{}: unknown aggregate {}", f.file, f.aggregate_type));
        assert!(
            a.event_types.contains(&f.event_type.as_str()),
            "{}: {} is not an event of {}",
            f.file,
            f.event_type,
            a.type_name
        );
        let stem = format!("{}.v{}", f.event_type, f.event_version);
        assert!(
            f.file == format!("{stem}.json")
                || (f.file.starts_with(&format!("{stem}.")) && f.file.ends_with(".json")),
            "{}: expected {stem}.json or {stem}.<shape>.json",
            f.file
        );
        // The body is tagged with its type, as the store writes it.
        let tags: Vec<_> = f.payload.as_object().unwrap().keys().collect();
        assert_eq!(tags, [&f.event_type], "{}", f.file);
        for key in ["actor", "correlation_id", "causation_id"] {
            assert!(f.metadata[key].is_string(), "{}: metadata.{key}", f.file);
        }
    }
}

#[test]
fn a_fixture_of_the_current_version_is_exactly_what_this_build_writes() {
    // A fixture at the current version re-encodes byte for byte (as JSON values): the
    // build still writes what it froze, so a shape change cannot slip in silently.
    fn reencode<E: DomainEvent>(f: &Fixture) -> Value {
        let e: E = f.recorded(1, 1).decode().unwrap();
        assert_eq!(e.event_version(), f.event_version, "{}", f.file);
        serde_json::to_value(e).unwrap()
    }
    for f in fixtures() {
        let out = match f.aggregate_type.as_str() {
            Session::TYPE => reencode::<SessionEvent>(&f),
            Agent::TYPE => reencode::<<Agent as Decider>::Event>(&f),
            ScalingGroup::TYPE => reencode::<<ScalingGroup as Decider>::Event>(&f),
            ResourcePolicy::TYPE => reencode::<<ResourcePolicy as Decider>::Event>(&f),
            NameClaim::TYPE => reencode::<<NameClaim as Decider>::Event>(&f),
            PendingQuota::TYPE => reencode::<<PendingQuota as Decider>::Event>(&f),
            VFolder::TYPE => reencode::<<VFolder as Decider>::Event>(&f),
            BackgroundTask::TYPE => reencode::<<BackgroundTask as Decider>::Event>(&f),
            WebhookSubscription::TYPE => reencode::<<WebhookSubscription as Decider>::Event>(&f),
            other => panic!("{}: unknown aggregate {other}", f.file),
        };
        assert_eq!(out, f.payload, "{}", f.file);
    }
}

// ---- the v2 mechanism ---------------------------------------------------------------

/// A would-be v2 of the agent's events: `AgentRegistered.addr` (`host:port`) split into
/// `host` and `port`; the other events unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum AgentEventV2 {
    AgentRegistered {
        agent_id: String,
        scaling_group: String,
        host: String,
        port: u16,
        available_slots: BTreeMap<String, String>,
        occurred_at: DateTime<Utc>,
    },
    AgentLost {
        occurred_at: DateTime<Utc>,
    },
}

impl DomainEvent for AgentEventV2 {
    const EVENT_VERSION: &'static str = "2";
    fn event_type(&self) -> &'static str {
        match self {
            Self::AgentRegistered { .. } => "AgentRegistered",
            Self::AgentLost { .. } => "AgentLost",
        }
    }
}

/// The one function a v2 adds: agent events v1 -> v2.
fn agent_v1_to_v2(event_type: &str, mut payload: Value) -> Result<Value, String> {
    if event_type == "AgentRegistered" {
        let body = payload
            .get_mut(event_type)
            .and_then(Value::as_object_mut)
            .ok_or("not an AgentRegistered body")?;
        let addr = body.remove("addr").ok_or("no addr")?;
        let (host, port) = addr
            .as_str()
            .and_then(|a| a.rsplit_once(':'))
            .ok_or_else(|| format!("addr {addr} is not host:port"))?;
        let port: u16 = port.parse().map_err(|e| format!("port {port}: {e}"))?;
        body.insert("host".into(), json!(host));
        body.insert("port".into(), json!(port));
    }
    Ok(payload)
}

const AGENT_V1_TO_V2: Upcaster = Upcaster {
    aggregate_type: "Agent",
    from: "1",
    to: "2",
    upcast: agent_v1_to_v2,
};

#[test]
fn a_v1_fixture_reads_as_a_v2_shape_through_one_registered_upcaster() {
    // Given this build's chain plus a v1 -> v2 step for agents
    let registry = Upcasters::standard().clone().with(AGENT_V1_TO_V2);
    let registered = fixture("AgentRegistered.v1.json").recorded(7, 1);
    let lost = fixture("AgentLost.v1.json").recorded(8, 2);

    // When the v1 events are read as the v2 type
    let registered: AgentEventV2 = registered.decode_with(&registry).unwrap();
    let lost: AgentEventV2 = lost.decode_with(&registry).unwrap();

    // Then the changed event has the new shape and the other passed through unchanged
    assert_eq!(
        registered,
        AgentEventV2::AgentRegistered {
            agent_id: "i-0a1b2c3d".into(),
            scaling_group: "gpu-a100".into(),
            host: "10.0.3.17".into(),
            port: 6001,
            available_slots: BTreeMap::from([
                ("cpu".into(), "64".into()),
                ("cuda.shares".into(), "8".into()),
                ("mem".into(), "549755813888".into()),
            ]),
            occurred_at: "2026-03-14T09:26:53Z".parse().unwrap(),
        }
    );
    assert_eq!(
        lost,
        AgentEventV2::AgentLost {
            occurred_at: "2026-03-14T09:26:53Z".parse().unwrap()
        }
    );
}

#[test]
fn a_v2_event_is_read_as_stored_and_a_v1_one_without_the_step_is_an_unknown_version() {
    // Given a v2 body as a v2 build would store it
    let mut v2 = fixture("AgentLost.v1.json").recorded(1, 1);
    v2.event_version = "2".into();
    // Then the v2 type reads it without any step
    assert!(v2.decode_with::<AgentEventV2>(&Upcasters::empty()).is_ok());

    // But a v1 body read as v2 without the v1 -> v2 step is a typed error
    let v1 = fixture("AgentRegistered.v1.json").recorded(2, 2);
    let err = v1
        .decode_with::<AgentEventV2>(&Upcasters::empty())
        .unwrap_err();
    assert_eq!(
        err.source.upcast_error(),
        Some(&UpcastError::UnknownVersion {
            aggregate_type: "Agent".into(),
            event_type: "AgentRegistered".into(),
            event_version: "1".into(),
            current: "2".into(),
        }),
        "{err:?}"
    );
}

#[test]
fn an_upcaster_that_refuses_a_body_is_a_typed_error_naming_the_step() {
    // Given an AgentRegistered v1 whose addr is not host:port
    let mut e = fixture("AgentRegistered.v1.json").recorded(3, 1);
    e.payload["AgentRegistered"]["addr"] = json!("nowhere");
    // When it is read as v2
    let err = e
        .decode_with::<AgentEventV2>(&Upcasters::empty().with(AGENT_V1_TO_V2))
        .unwrap_err();
    // Then the error names the step and its reason
    assert_eq!(
        err.source.upcast_error(),
        Some(&UpcastError::Failed {
            aggregate_type: "Agent".into(),
            event_type: "AgentRegistered".into(),
            from: "1".into(),
            to: "2".into(),
            reason: "addr \"nowhere\" is not host:port".into(),
        }),
        "{err:?}"
    );
}

// ---- unreadable versions --------------------------------------------------------------

fn assert_unknown_version(err: &DecodeError, stored: &str) {
    assert_eq!(
        err.source.upcast_error(),
        Some(&UpcastError::UnknownVersion {
            aggregate_type: "Session".into(),
            event_type: "SessionEnqueued".into(),
            event_version: stored.into(),
            current: domain::session::SESSION_EVENT_VERSION.into(),
        }),
        "{err:?}"
    );
}

#[test]
fn an_event_of_a_future_or_unregistered_version_is_a_typed_error_not_a_panic() {
    for version in ["99", "2", "0", "", "v1"] {
        // Given a stored session event of a version this build has no path from
        let mut e = fixture("SessionEnqueued.v1.json").recorded(1, 1);
        e.event_version = version.into();
        // When it is decoded
        let err = e.decode::<SessionEvent>().unwrap_err();
        // Then it is an unknown version, naming what was stored and what is read
        assert_unknown_version(&err, version);
    }
}

#[test]
fn a_body_that_does_not_match_its_event_type_is_a_payload_error() {
    let mut e = fixture("SessionEnqueued.v1.json").recorded(1, 1);
    e.payload = json!({"SessionEnqueued": {"spec": 7}});
    let err = e.decode::<SessionEvent>().unwrap_err();
    assert!(matches!(err.source, Unreadable::Payload(_)), "{err:?}");
}

// ---- end to end, on both backends -----------------------------------------------------

fn new_events(aggregate_id: &str, stream: &[Fixture]) -> Vec<NewEvent> {
    stream
        .iter()
        .zip(1..)
        .map(|(f, sequence)| NewEvent {
            aggregate_type: f.aggregate_type.clone(),
            aggregate_id: aggregate_id.to_string(),
            sequence,
            event_type: f.event_type.clone(),
            event_version: f.event_version.clone(),
            payload: f.payload.clone(),
            metadata: f.metadata.clone(),
        })
        .collect()
}

/// Loads `A` `id` through `EventStore::load` / `load_first` / `load_last` and compares
/// with the fixtures decoded directly.
async fn loads_back<A: Decider>(store: &EventStore, id: &str, stream: &[Fixture]) {
    let expected: Vec<A::Event> = as_recorded(stream)
        .iter()
        .map(|e| e.decode().unwrap())
        .collect();
    let loaded = store.load::<A>(id).await.unwrap();
    assert_eq!(loaded, expected, "{}", A::TYPE);
    let first = store.load_first::<A>(id).await.unwrap();
    assert_eq!(first.as_ref(), expected.first(), "{}", A::TYPE);
    let last = store.load_last::<A>(id).await.unwrap();
    let n = u64::try_from(expected.len()).unwrap();
    assert_eq!(
        last,
        expected.last().cloned().map(|e| (n, e)),
        "{}",
        A::TYPE
    );
    for e in store.read_stream(A::TYPE, id).await.unwrap() {
        e.decode::<A::Event>().unwrap();
    }
}

async fn every_fixture_appended_to_a_store_loads_back_through_the_chain(store: EventStore) {
    // Given every aggregate's fixtures appended as one stream each
    let streams = streams();
    let mut rows = Vec::new();
    for (ty, stream) in &streams {
        rows.extend(new_events(&format!("fixture-{ty}"), stream));
    }
    store.append(&rows).await.unwrap();

    // Then each stream loads back, through every reader, as the fixtures decode
    loads_back::<Session>(&store, "fixture-Session", &streams["Session"]).await;
    loads_back::<Agent>(&store, "fixture-Agent", &streams["Agent"]).await;
    loads_back::<ScalingGroup>(&store, "fixture-ScalingGroup", &streams["ScalingGroup"]).await;
    loads_back::<ResourcePolicy>(&store, "fixture-ResourcePolicy", &streams["ResourcePolicy"])
        .await;
    loads_back::<NameClaim>(&store, "fixture-NameClaim", &streams["NameClaim"]).await;
    loads_back::<PendingQuota>(&store, "fixture-PendingQuota", &streams["PendingQuota"]).await;
    loads_back::<VFolder>(&store, "fixture-VFolder", &streams["VFolder"]).await;
    loads_back::<BackgroundTask>(&store, "fixture-BackgroundTask", &streams["BackgroundTask"])
        .await;
    loads_back::<WebhookSubscription>(
        &store,
        "fixture-WebhookSubscription",
        &streams["WebhookSubscription"],
    )
    .await;
    assert_eq!(streams.len(), aggregates().len());
}

async fn a_stored_event_of_an_unknown_version_fails_every_load_with_a_typed_error(
    store: EventStore,
) {
    // Given a session stream whose only event is stored as v99
    let mut f = fixture("SessionEnqueued.v1.json");
    f.event_version = "99".into();
    store.append(&new_events("s-99", &[f])).await.unwrap();

    // Then every reader answers with the typed error
    let is_unknown_version = |e: &StoreError| {
        matches!(
            e,
            StoreError::Decode { event_version, sequence: 1, source, .. }
                if event_version == "99"
                    && matches!(source.upcast_error(), Some(UpcastError::UnknownVersion { .. }))
        )
    };
    let err = store.load::<Session>("s-99").await.unwrap_err();
    assert!(is_unknown_version(&err), "{err:?}");
    let err = store.load_first::<Session>("s-99").await.unwrap_err();
    assert!(is_unknown_version(&err), "{err:?}");
    let err = store.load_last::<Session>("s-99").await.unwrap_err();
    assert!(is_unknown_version(&err), "{err:?}");
    let stream = store.read_stream("Session", "s-99").await.unwrap();
    assert_unknown_version(&stream[0].decode::<SessionEvent>().unwrap_err(), "99");
}
