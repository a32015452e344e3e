//! Several schedulers on one store (SPEC §1.4, §2.3): no agent is ever allocated beyond
//! its capacity, even when two replicas both schedule the same group, and a replica
//! killed with SIGKILL hands its scheduler lease over to the other.
//!
//! # Layout
//! - this file: the tests, and two schedulers deciding on one snapshot at once.
//! - `workload`: two racing schedulers under a seeded random workload, and the
//!   invariants checked against the event streams.
//! - `servers`: real `sessiond serve` processes (stderr lines, SIGKILL).
//! - `revocation`: a key revoked by `sessionctl` loses its streams on every replica.
//! - `scale_out`: three replicas under a load of sessions through their lifecycle while
//!   the scheduler lease holder is killed with SIGKILL and restarted (issue #18).
//!
//! `REPLICAS_SEEDS=7,8` replays chosen seeds of the racing tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::arithmetic_side_effects)]

mod clone_failover;
mod revocation;
mod scale_out;
mod servers;
mod workload;

use domain::agent::Agent;
use domain::session::{Session, SessionStatus};
use serde_json::json;
use servers::Replica;
use sessiond::agents;
use sessiond::app::App;
use sessiond::config::Settings;
use sessiond::sessions;
use sessiond::store::{EventStore, StoreOptions};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use testkit::db::{fresh_url, Backend};
use uuid::Uuid;
use workload::{create_group, fold_checked, meta, register_agent, request, slots, Run};

fn seeds(default: &[u64]) -> Vec<u64> {
    match std::env::var("REPLICAS_SEEDS") {
        Ok(s) => s
            .split(',')
            .map(|x| {
                x.trim()
                    .parse()
                    .expect("REPLICAS_SEEDS: comma-separated u64")
            })
            .collect(),
        Err(_) => default.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_racing_on_postgres_never_over_allocate_and_release_every_ended_session() {
    let mut conflicts = 0;
    for seed in seeds(&[1, 2, 3, 4]) {
        conflicts += workload::run(Run {
            backend: Backend::Postgres,
            seed,
            steps: 300,
        })
        .await;
    }
    assert!(
        conflicts > 0,
        "the two schedulers never collided: the race was not exercised"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_racing_on_sqlite_never_over_allocate_and_release_every_ended_session() {
    let mut conflicts = 0;
    for seed in seeds(&[11, 12]) {
        conflicts += workload::run(Run {
            backend: Backend::Sqlite,
            seed,
            steps: 300,
        })
        .await;
    }
    assert!(
        conflicts > 0,
        "the two schedulers never collided: the race was not exercised"
    );
}

async fn statuses(app: &App, ids: &[Uuid]) -> Vec<SessionStatus> {
    let mut out = Vec::new();
    for id in ids {
        let s: Session = app.commands.load(&id.to_string()).await.unwrap();
        out.push(s.status.expect("enqueued"));
    }
    out
}

fn count(statuses: &[SessionStatus], status: SessionStatus) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

async fn enqueue_n(app: &App, group: &str, prefix: &str, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for i in 0..n {
        let c = sessions::enqueue(
            app,
            request(format!("{prefix}-{i}"), "alice", group, slots(1, 1)),
            &meta("user:alice"),
        )
        .await
        .expect("enqueue");
        ids.push(c.state.spec.unwrap().session_id);
    }
    ids
}

const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_with_sigkill_hands_its_scheduler_lease_to_the_other() {
    // Arrange: two replicas on one database; the test process writes through the
    // library (no workers of its own).
    let url = fresh_url(Backend::Postgres).await;
    let mut replicas = [
        Replica::start("replica-1", &url),
        Replica::start("replica-2", &url),
    ];
    let store = EventStore::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    let app = App::new(store, Settings::default());
    let group = "shared";
    let agent = "agent-0";
    let capacity = slots(4, 16);
    create_group(&app, group, "fifo", json!(null)).await;
    register_agent(&app, agent, group, &capacity).await;
    let lease = format!("sessiond.scheduler.{group}");

    // One replica takes the group's lease and schedules.
    let first = enqueue_n(&app, group, "first", 2).await;
    let started = Instant::now();
    let holder = loop {
        assert!(
            started.elapsed() < DEADLINE,
            "nobody took {lease}: {:#?} / {:#?}",
            replicas[0].log,
            replicas[1].log
        );
        agents::heartbeat(&app, agent).await.unwrap();
        let took: Vec<usize> = (0..2).filter(|&i| replicas[i].took(&lease)).collect();
        let s = statuses(&app, &first).await;
        if !took.is_empty() && count(&s, SessionStatus::Scheduled) == first.len() {
            assert_eq!(took.len(), 1, "one scheduler per group: {took:?}");
            break took[0];
        }
        tokio::time::sleep(POLL).await;
    };
    let survivor = 1 - holder;
    eprintln!(
        "{} holds {lease} after {:?}",
        replicas[holder].name,
        started.elapsed()
    );

    // Act: kill -9 the holder, then ask for more than is left.
    replicas[holder].kill();
    let second = enqueue_n(&app, group, "second", 4).await;

    // Assert: the other replica takes the lease and schedules what fits (2 of 4).
    let killed_at = Instant::now();
    loop {
        assert!(
            killed_at.elapsed() < DEADLINE,
            "{} never took over: {:?}; log: {:#?}",
            replicas[survivor].name,
            statuses(&app, &second).await,
            replicas[survivor].log
        );
        assert!(replicas[survivor].running(), "the survivor died");
        agents::heartbeat(&app, agent).await.unwrap();
        let s = statuses(&app, &second).await;
        if replicas[survivor].took(&lease) && count(&s, SessionStatus::Scheduled) == 2 {
            assert_eq!(count(&s, SessionStatus::Pending), 2, "{s:?}");
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    eprintln!(
        "{} took over {lease} {:?} after the kill",
        replicas[survivor].name,
        killed_at.elapsed()
    );

    // Cancelling the first two frees their slots (the survivor's release worker, which
    // may also have to take over the liveness lease), and the rest gets scheduled.
    for id in &first {
        sessions::delete(&app, *id, false, &meta("user:alice"))
            .await
            .expect("cancel");
    }
    let freed_at = Instant::now();
    loop {
        assert!(
            freed_at.elapsed() < DEADLINE,
            "the released slots were never reused: {:?}; log: {:#?}",
            statuses(&app, &second).await,
            replicas[survivor].log
        );
        agents::heartbeat(&app, agent).await.unwrap();
        if count(&statuses(&app, &second).await, SessionStatus::Scheduled) == second.len() {
            break;
        }
        tokio::time::sleep(POLL).await;
    }

    // No over-allocation at any point, and the ledger is exactly the live sessions.
    let ledger: Agent = fold_checked(&app.store, agent, "multi-replica").await;
    assert_eq!(ledger.available_slots, capacity);
    let held: BTreeSet<Uuid> = ledger.allocations.keys().copied().collect();
    assert_eq!(held, second.iter().copied().collect::<BTreeSet<_>>());
    assert_eq!(
        statuses(&app, &first).await,
        vec![SessionStatus::Cancelled; 2]
    );
    for id in &second {
        let s: Session = app.commands.load(&id.to_string()).await.unwrap();
        assert_eq!(s.allocations.len(), 1);
        assert_eq!(s.allocations[0].agent_id, agent);
        assert_eq!(s.allocations[0].slots, slots(1, 1));
    }
    app.catch_up().await.unwrap();
    let report = sessiond::audit::verify(&app.store, |_| {}).await.unwrap();
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

/// Both schedulers read the same snapshot (read models caught up, then no catch-up
/// between them) and decide the same placements at once, as two replicas that both
/// believe they hold the lease would: every slot is still handed out exactly once.
async fn same_snapshot(backend: Backend) {
    let url = fresh_url(backend).await;
    let open = || async {
        App::new(
            EventStore::open(&url, &StoreOptions::default())
                .await
                .unwrap(),
            Settings::default(),
        )
    };
    let apps = match backend {
        Backend::Postgres => [open().await, open().await],
        Backend::Sqlite => {
            let app = open().await;
            [app.clone(), app]
        }
    };
    let app = &apps[0];
    let group = "contended";
    create_group(app, group, "fifo", json!(null)).await;
    let agent_ids = ["agent-a", "agent-b", "agent-c"];
    let capacity = slots(4, 100);
    for id in agent_ids {
        register_agent(app, id, group, &capacity).await;
    }
    let ids = enqueue_n(app, group, "s", 20).await;
    let schedulers = [
        sessiond::scheduler::Scheduler::new(apps[0].clone()),
        sessiond::scheduler::Scheduler::new(apps[1].clone()),
    ];
    let mut expected_scheduled = 0;
    let mut cancelled: BTreeSet<Uuid> = BTreeSet::new();
    for round in 0..4 {
        // Arrange: both see the same state.
        for a in &apps {
            a.catch_up().await.unwrap();
        }
        let pending = ids.len() - expected_scheduled - cancelled.len();
        let free = 12 - expected_scheduled;
        let fits = free.min(pending);

        // Act: both decide on it at once.
        let (ra, rb) = tokio::join!(
            schedulers[0].schedule_group(group),
            schedulers[1].schedule_group(group)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());

        // Assert: together they placed exactly what fits, and one of them collided.
        assert_eq!(
            ra.scheduled + rb.scheduled,
            fits,
            "round {round}: {ra:?} {rb:?}"
        );
        if fits > 0 {
            assert!(
                ra.conflicts + rb.conflicts >= 1,
                "round {round}: {ra:?} {rb:?}"
            );
        }
        expected_scheduled += fits;
        let s = statuses(app, &ids).await;
        assert_eq!(count(&s, SessionStatus::Scheduled), expected_scheduled);
        let mut held = 0;
        for id in agent_ids {
            let ledger = fold_checked(&app.store, id, &format!("round {round}")).await;
            held += ledger.allocations.len();
        }
        assert_eq!(held, expected_scheduled, "round {round}");

        // Free a few slots for the next round: cancel three scheduled sessions and let
        // the release worker give their slots back.
        let victims: Vec<Uuid> = ids
            .iter()
            .zip(&s)
            .filter(|(_, st)| **st == SessionStatus::Scheduled)
            .map(|(id, _)| *id)
            .take(3)
            .collect();
        for id in &victims {
            sessions::delete(app, *id, false, &meta("user:alice"))
                .await
                .unwrap();
            cancelled.insert(*id);
        }
        expected_scheduled -= victims.len();
        app.catch_up().await.unwrap();
        let released = sessiond::scheduler::releases::release_due(app)
            .await
            .unwrap();
        assert_eq!(released, victims.len(), "round {round}");
    }
    for a in &apps {
        a.catch_up().await.unwrap();
    }
    let report = sessiond::audit::verify(&app.store, |_| {}).await.unwrap();
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_schedulers_deciding_on_the_same_snapshot_hand_out_each_slot_once() {
    same_snapshot(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sqlite_schedulers_deciding_on_the_same_snapshot_hand_out_each_slot_once() {
    same_snapshot(Backend::Sqlite).await;
}
