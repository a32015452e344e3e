//! A `sessiond serve` killed with SIGKILL in the middle of a scheduling pass (issue
//! #18's kill -9 matrix), on both backends: 1000 pending sessions onto 150 agents with
//! room for 600 are placed in appends of 200 placements; the server is killed each time
//! the first append of a pass has landed (the rest of the pass still to come), three
//! times, then restarted and left to finish. Each placement is one statement for the
//! agent's `SlotsAllocated` and the session's `SessionScheduled`, so whatever the
//! moment: every session is scheduled at most once, onto exactly the agent that holds its
//! slots, no agent holds more than its capacity, every placeable session is placed in
//! the end, and `audit verify` is clean.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use domain::agent::{Agent, AgentEvent};
use domain::session::{Session, SessionCommand, SessionEvent};
use domain::Decider;
use serde_json::json;
use sessiond::agents::{register, RegisterAgent};
use sessiond::app::App;
use sessiond::config::Settings;
use sessiond::store::{EventStore, RecordedEvent, StoreOptions};
use testkit::db::{fresh_url, scalar, Backend};
use testkit::fixtures::{cpu, meta};
use uuid::Uuid;

use crate::{serve_with, sessionctl, Killable};

const GROUP: &str = "killgroup";
const AGENTS: usize = 150;
/// Each agent has room for 4 sessions of 2 cpus.
const AGENT_CPUS: i64 = 8;
const SESSIONS: usize = 1000;
const PLACEABLE: i64 = (AGENTS as i64) * 4;

fn serve(url: &str) -> Killable {
    serve_with(
        url,
        &[
            // The agents are not running: their registration is their only heartbeat.
            ("SESSIOND_AGENT_LOST_AFTER_SECS", "3600"),
            ("SESSIOND_SCHEDULER_INTERVAL_MS", "50"),
        ],
    )
}

async fn count(store: &EventStore, sql: &'static str) -> i64 {
    scalar(&store.db(), sql).await
}

async fn scheduled(store: &EventStore) -> i64 {
    count(
        store,
        "SELECT count(*) FROM events WHERE event_type = 'SessionScheduled'",
    )
    .await
}

/// Waits until `SessionScheduled` events number more than `above` (60 s at most).
async fn wait_scheduled_above(store: &EventStore, above: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = scheduled(store).await;
        if n > above {
            return n;
        }
        assert!(Instant::now() < deadline, "nothing scheduled past {above}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The store with the group, the agents and the pending sessions.
async fn fixture(backend: Backend) -> (String, EventStore) {
    let url = fresh_url(backend).await;
    let store = EventStore::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    let app = App::new(store.clone(), Settings::default());
    let m = meta("admin");
    let now = chrono::Utc::now();
    app.commands
        .execute::<domain::scaling_group::ScalingGroup>(
            GROUP,
            testkit::fixtures::create_group(GROUP, &json!({}), now),
            &m,
        )
        .await
        .unwrap();
    for i in 0..AGENTS {
        let id = format!("agent-{i:03}");
        let req = RegisterAgent {
            agent_id: testkit::fixtures::agent_id(&id),
            scaling_group: testkit::fixtures::group(GROUP),
            addr: testkit::fixtures::addr(&format!("{id}.example:6001")),
            available_slots: cpu(AGENT_CPUS),
        };
        register(&app, req, &m).await.unwrap();
    }
    for i in 0..SESSIONS {
        let id = Uuid::from_u128(0x5e55_0000 + i as u128);
        let spec = testkit::fixtures::spec_with(id, GROUP, 10, "alice");
        app.commands
            .execute::<Session>(&id.to_string(), SessionCommand::Enqueue { spec, now }, &m)
            .await
            .unwrap();
    }
    (url, store)
}

fn full_log(
    events: Vec<RecordedEvent>,
) -> (BTreeMap<String, Vec<Uuid>>, BTreeMap<Uuid, Vec<String>>) {
    // session -> agents it was scheduled onto (one entry per SessionScheduled)
    let mut scheduled: BTreeMap<Uuid, Vec<String>> = BTreeMap::new();
    // agent -> sessions it allocated slots to
    let mut allocated: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
    for e in events {
        if e.aggregate_type == Session::TYPE && e.event_type == "SessionScheduled" {
            if let SessionEvent::SessionScheduled { agents, .. } = e.decode().unwrap() {
                let id: Uuid = e.aggregate_id.parse().unwrap();
                for a in agents {
                    scheduled
                        .entry(id)
                        .or_default()
                        .push(a.agent_id.to_string());
                }
            }
        }
        if e.aggregate_type == Agent::TYPE && e.event_type == "SlotsAllocated" {
            if let AgentEvent::SlotsAllocated { session_id, .. } = e.decode().unwrap() {
                allocated
                    .entry(e.aggregate_id.clone())
                    .or_default()
                    .push(session_id);
            }
        }
    }
    (allocated, scheduled)
}

async fn a_server_killed_mid_scheduling_pass_places_each_session_once_within_capacity(
    backend: Backend,
) {
    // Given 1000 pending sessions and 150 agents with room for 600 of them
    let (url, store) = fixture(backend).await;

    // When a server is killed each time the first append of a pass has landed
    let mut at_kill = Vec::new();
    let mut before = 0;
    for _ in 0..3 {
        let mut server = serve(&url);
        let seen = wait_scheduled_above(&store, before).await;
        server.0.kill().unwrap(); // SIGKILL
        server.0.wait().unwrap();
        before = scheduled(&store).await;
        at_kill.push((seen, before));
        if before >= PLACEABLE {
            break;
        }
    }
    // And a last server is left to place the rest
    let server = serve(&url);
    testkit::serve::wait_until(
        "every placeable session placed",
        Duration::from_secs(120),
        || async {
            let n = scheduled(&store).await;
            if n >= PLACEABLE {
                Ok(())
            } else {
                Err(format!("{n} scheduled"))
            }
        },
    )
    .await;
    drop(server);

    // Then every session was scheduled at most once, onto exactly the agent that
    // allocated its slots, and every agent allocated exactly what was scheduled onto it
    let (allocated, scheduled_onto) = full_log(super::store_copy::full_log(&url).await);
    assert_eq!(scheduled_onto.len() as i64, PLACEABLE, "{backend:?}");
    for (session, agents) in &scheduled_onto {
        assert_eq!(
            agents.len(),
            1,
            "{backend:?}: {session} scheduled {agents:?}"
        );
    }
    let mut from_agents: BTreeSet<(String, Uuid)> = BTreeSet::new();
    for (agent, sessions) in &allocated {
        for s in sessions {
            assert!(
                from_agents.insert((agent.clone(), *s)),
                "{backend:?}: {s} allocated twice on {agent}"
            );
        }
    }
    let from_sessions: BTreeSet<(String, Uuid)> = scheduled_onto
        .iter()
        .map(|(s, agents)| (agents[0].clone(), *s))
        .collect();
    assert_eq!(from_agents, from_sessions, "{backend:?}");
    // And no agent holds more than its capacity
    let handler = sessiond::command::CommandHandler::new(store.clone());
    for i in 0..AGENTS {
        let agent: Agent = handler.load(&format!("agent-{i:03}")).await.unwrap();
        let held = agent.occupied_slots().unwrap();
        assert!(
            held.fits_within(&agent.available_slots),
            "{backend:?}: agent-{i:03} holds {held:?}"
        );
    }
    // And the store is sound
    let (code, out, err) = sessionctl(&url, &["audit", "verify"]);
    assert_eq!(code, 0, "{backend:?}: audit verify\n{out}\n{err}");
    #[allow(clippy::print_stdout)]
    {
        println!("[{backend:?}] SessionScheduled (seen, at kill): {at_kill:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_scheduling_pass_on_postgres_places_each_session_once_within_capacity()
{
    a_server_killed_mid_scheduling_pass_places_each_session_once_within_capacity(Backend::Postgres)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_scheduling_pass_on_sqlite_places_each_session_once_within_capacity() {
    a_server_killed_mid_scheduling_pass_places_each_session_once_within_capacity(Backend::Sqlite)
        .await;
}
