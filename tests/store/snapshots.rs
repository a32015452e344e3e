//! Snapshots (`store::snapshots`), on both backends: a stream loads to the same state
//! with or without them, a load never folds more than `snapshot_every` events once a
//! snapshot exists, and a snapshot of another shape version or one that does not decode
//! is ignored and replaced.

use domain::agent::{Agent, AgentCommand};
use domain::resources::ResourceSlots;
use sessiond::command::CommandHandler;
use sessiond::store::{EventStore, Loaded, StoreOptions};
use testkit::db::{fresh_url, scalar, Backend};
use testkit::fixtures::{at, meta, register_agent};
use uuid::Uuid;

testkit::both_backends!(
    a_long_agent_stream_loads_the_same_state_with_and_without_snapshots_and_folds_at_most_n_events,
    a_snapshot_of_another_shape_version_or_that_does_not_decode_is_ignored_and_replaced,
    with_snapshot_every_zero_no_snapshot_is_written,
);

const EVERY: u64 = 10;

async fn open(url: &str, snapshot_every: u64) -> EventStore {
    EventStore::open(
        url,
        &StoreOptions {
            max_connections: 4,
            snapshot_every,
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap()
}

fn cpu(n: i64) -> ResourceSlots {
    testkit::fixtures::cpu(n)
}

async fn register(handler: &CommandHandler, id: &str) {
    let command = register_agent(id, "default", cpu(1000), at(0));
    handler
        .execute::<Agent>(id, command, &meta("system:test"))
        .await
        .unwrap();
}

/// Round `i` on agent `id`: allocate a session, and release it unless `i` is a
/// multiple of 3 (one or two events).
async fn round(handler: &CommandHandler, id: &str, i: u32) {
    let m = meta("system:test");
    let session_id = Uuid::from_u128(u128::from(i) + 1);
    let now = at(i64::from(i) + 1);
    let allocate = AgentCommand::AllocateSlots {
        session_id,
        slots: cpu(1),
        now,
    };
    handler.execute::<Agent>(id, allocate, &m).await.unwrap();
    if i % 3 != 0 {
        let release = AgentCommand::ReleaseSlots { session_id, now };
        handler.execute::<Agent>(id, release, &m).await.unwrap();
    }
}

/// Registers agent `id` and runs `rounds` rounds on it.
async fn drive(handler: &CommandHandler, id: &str, rounds: u32) {
    register(handler, id).await;
    for i in 0..rounds {
        round(handler, id, i).await;
    }
}

fn json<A: serde::Serialize>(state: &A) -> serde_json::Value {
    serde_json::to_value(state).unwrap()
}

async fn snapshot_rows(store: &EventStore, sql: &'static str) -> i64 {
    scalar(&store.db(), sql).await
}

async fn a_long_agent_stream_loads_the_same_state_with_and_without_snapshots_and_folds_at_most_n_events(
    backend: Backend,
) {
    // Given one database seen through a store that snapshots every 10 events and one
    // that never does
    let url = fresh_url(backend).await;
    let snapshotting = open(&url, EVERY).await;
    let plain = open(&url, 0).await;
    let handler = CommandHandler::new(snapshotting.clone());

    // When an agent's stream grows by 1-2 events per round for 60 rounds, loaded
    // through both after every round
    let id = "agent-long";
    register(&handler, id).await;
    let mut loads: Vec<(usize, Loaded<Agent>, Loaded<Agent>)> = Vec::new();
    for i in 0..60 {
        round(&handler, id, i).await;
        let events = plain.read_stream("Agent", id).await.unwrap().len();
        let with = snapshotting.load_state::<Agent>(id).await.unwrap();
        let without = plain.load_state::<Agent>(id).await.unwrap();
        loads.push((events, with, without));
    }

    // Then both give the same state and version, the plain one folds the whole stream
    // and the snapshotting one, once the stream is past 10 events, at most 10 events
    // on top of a snapshot
    for (events, with, without) in &loads {
        let events = *events;
        assert_eq!(json(&with.state), json(&without.state), "at {events}");
        assert_eq!(with.version, without.version);
        assert_eq!(with.version, i64::try_from(events).unwrap());
        assert_eq!(without.folded, events);
        assert_eq!(without.from_snapshot, None);
        assert!(
            with.folded <= EVERY as usize,
            "folded {} at {events}",
            with.folded
        );
        if events > EVERY as usize {
            assert!(with.from_snapshot.is_some(), "at {events}");
        }
    }
    // And the state is the one the commands built: a third of the sessions still hold a cpu
    let (events, last, _) = loads.last().unwrap();
    assert!(*events > 100, "{events} events");
    assert_eq!(last.state.allocations.len(), 20);
    assert_eq!(last.state.version, u64::try_from(*events).unwrap());
    assert_eq!(
        snapshot_rows(
            &plain,
            "SELECT count(*) FROM snapshots WHERE aggregate_id = 'agent-long'"
        )
        .await,
        1
    );
}

async fn execute(store: &EventStore, sql: &'static str) {
    let statement = sessiond::store::db::Statement::new("test", sql, sql);
    store.db().execute(&statement, vec![]).await.unwrap();
}

async fn a_snapshot_of_another_shape_version_or_that_does_not_decode_is_ignored_and_replaced(
    backend: Backend,
) {
    // Given an agent whose stream of 81 events was snapshotted
    let url = fresh_url(backend).await;
    let store = open(&url, EVERY).await;
    let plain = open(&url, 0).await;
    let id = "agent-bad";
    drive(&CommandHandler::new(store.clone()), id, 40).await;
    let truth = plain.load_state::<Agent>(id).await.unwrap();
    let version = truth.version;

    for (what, sql) in [
        (
            "another shape version",
            "UPDATE snapshots SET schema_version = 999, state = '{\"other\": true}' \
             WHERE aggregate_id = 'agent-bad'",
        ),
        (
            "a state that does not decode",
            "UPDATE snapshots SET state = 'not json' WHERE aggregate_id = 'agent-bad'",
        ),
        (
            "a state of another shape under this version",
            "UPDATE snapshots SET state = '{\"registered\": \"yes\"}' \
             WHERE aggregate_id = 'agent-bad'",
        ),
    ] {
        // When its snapshot is replaced by one with <what> and the stream is loaded
        execute(&store, sql).await;
        let loaded = store.load_state::<Agent>(id).await.unwrap();

        // Then the snapshot is ignored: the whole stream is folded into the true state
        assert_eq!(json(&loaded.state), json(&truth.state), "{what}");
        assert_eq!(loaded.version, version, "{what}");
        assert_eq!(loaded.from_snapshot, None, "{what}");
        assert_eq!(loaded.folded, usize::try_from(version).unwrap(), "{what}");
        // And replaced by a good one that the next load starts from
        let again = store.load_state::<Agent>(id).await.unwrap();
        assert_eq!(again.from_snapshot, Some(version), "{what}");
        assert_eq!(again.folded, 0, "{what}");
        assert_eq!(json(&again.state), json(&truth.state), "{what}");
    }
}

async fn with_snapshot_every_zero_no_snapshot_is_written(backend: Backend) {
    // Given a store that never snapshots
    let url = fresh_url(backend).await;
    let store = open(&url, 0).await;

    // When an agent's stream grows past 100 events
    drive(&CommandHandler::new(store.clone()), "agent-none", 60).await;

    // Then no snapshot exists and the stream still loads whole
    assert_eq!(
        snapshot_rows(&store, "SELECT count(*) FROM snapshots").await,
        0
    );
    let loaded = store.load_state::<Agent>("agent-none").await.unwrap();
    assert_eq!(loaded.folded, usize::try_from(loaded.version).unwrap());
    assert!(loaded.version > 100);
}
