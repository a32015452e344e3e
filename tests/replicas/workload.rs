//! Two schedulers racing on one store under a random, seeded workload (enqueue, delete,
//! kernel progress, agents lost and revived), and the allocation invariants checked
//! against the event streams afterwards.

use chrono::{DateTime, Duration as ChronoDuration};
use domain::agent::{Agent, AgentCommand, AgentEvent, AgentStatus};
use domain::scaling_group::{GroupSettings, SchedulerKind, SchedulerOpts};
use domain::scaling_group::{ScalingGroup, ScalingGroupCommand};
use domain::session::{AgentAllocation, Session, SessionStatus};
use domain::session::{KernelEnd, KernelEvent, SessionSpec};
use domain::ResourceSlots;
use projections::models::documents;
use projections::models::slot_releases::SlotReleases;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sessiond::agents::{self, RegisterAgent};
use sessiond::app::App;
use sessiond::clock::{Clock, ManualClock};
use sessiond::command::CommandError;
use sessiond::config::Settings;
use sessiond::scheduler::{releases, Scheduler};
use sessiond::sessions::{self, SessionCommandError};
use sessiond::store::{EventStore, StoreOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

use testkit::db::{fresh_url, Backend};

/// Seconds without a heartbeat after which the liveness check marks an agent LOST.
const LOST_AFTER_SECS: u64 = 30;

pub use testkit::fixtures::meta;

pub fn slots(cpu: i32, mem: i32) -> ResourceSlots {
    ResourceSlots::new()
        .with("cpu", cpu.into())
        .with("mem", mem.into())
}

/// Creates a public scaling group.
pub async fn create_group(app: &App, name: &str, scheduler: &str, opts: serde_json::Value) {
    app.commands
        .execute::<ScalingGroup>(
            name,
            {
                let kind: SchedulerKind = serde_json::from_value(json!(scheduler)).unwrap();
                ScalingGroupCommand::Create {
                    name: testkit::fixtures::group(name),
                    settings: GroupSettings {
                        description: format!("group {name}"),
                        scheduler: kind,
                        scheduler_opts: SchedulerOpts::parse(&opts, kind).unwrap(),
                        ..GroupSettings::default()
                    },
                    now: app.clock.now(),
                }
            },
            &meta("admin"),
        )
        .await
        .expect("create the scaling group");
}

/// Registers (or re-registers, reviving a LOST one) an agent.
pub async fn register_agent(app: &App, id: &str, group: &str, capacity: &ResourceSlots) {
    agents::register(
        app,
        RegisterAgent {
            agent_id: testkit::fixtures::agent_id(id),
            scaling_group: testkit::fixtures::group(group),
            addr: testkit::fixtures::addr(&format!("10.0.0.1:{}", 6000 + id.len())),
            available_slots: capacity.clone(),
        },
        &meta(&format!("agent:{id}")),
    )
    .await
    .expect("register the agent");
}

/// A new interactive session of `owner` in `group`.
pub fn request(name: String, owner: &str, group: &str, resources: ResourceSlots) -> SessionSpec {
    SessionSpec {
        name: testkit::fixtures::session_name(&name),
        resources,
        ..testkit::fixtures::spec_in(Uuid::new_v4(), group, owner)
    }
}

/// Folds an agent's stream event by event from the store, failing if the ledger ever
/// held more than the capacity at that point. Returns the final state.
pub async fn fold_checked(store: &EventStore, agent_id: &str, context: &str) -> Agent {
    let events = store.load::<Agent>(agent_id).await.expect("load the agent");
    let mut agent = Agent::default();
    for (i, e) in events.iter().enumerate() {
        agent.apply(e);
        assert!(
            !agent.over_capacity(),
            "{context}: agent {agent_id} over-allocated after its event #{}: occupied {:?}, capacity {:?}",
            i + 1,
            agent.occupied_slots(),
            agent.available_slots
        );
    }
    agent
}

/// Everything that can go wrong in the background without failing the test at once.
#[derive(Debug, Default, Clone)]
struct Errors(Arc<Mutex<Vec<String>>>);

impl Errors {
    fn push(&self, what: String) {
        self.0.lock().unwrap().push(what);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// What a racing scheduler did.
#[derive(Debug, Default, Clone, Copy)]
struct LoopStats {
    passes: usize,
    scheduled: usize,
    conflicts: usize,
}

/// Catches its projections up and runs a scheduling pass (every third one a full
/// `tick()`: sweeper, pass, liveness, releases) until told to stop.
async fn scheduler_loop(
    scheduler: Arc<Scheduler>,
    group: String,
    stop: Arc<AtomicBool>,
    errors: Errors,
    label: &'static str,
    passes: tokio::sync::watch::Sender<usize>,
) -> LoopStats {
    let mut stats = LoopStats::default();
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = scheduler.app().catch_up().await {
            errors.push(format!("{label}: catch_up: {e:?}"));
        }
        let reports = if stats.passes % 3 == 0 {
            scheduler.tick().await.map(|r| {
                r.into_iter()
                    .filter(|(g, _)| *g == group)
                    .map(|(_, r)| r)
                    .collect::<Vec<_>>()
            })
        } else {
            scheduler.schedule_group(&group).await.map(|r| vec![r])
        };
        match reports {
            Ok(reports) => {
                for r in reports {
                    stats.scheduled += r.scheduled;
                    stats.conflicts += r.conflicts;
                }
            }
            Err(e) => errors.push(format!("{label}: pass {}: {e:?}", stats.passes)),
        }
        stats.passes += 1;
        passes.send_replace(stats.passes);
        tokio::task::yield_now().await;
    }
    stats
}

/// The kernel event that moves a session in `status` one step along its life.
fn next_kernel_event(status: SessionStatus, rng: &mut StdRng) -> Option<KernelEvent> {
    use SessionStatus::*;
    Some(match status {
        Scheduled if rng.gen_bool(0.5) => KernelEvent::Prepared,
        Scheduled => KernelEvent::Preparing,
        Preparing => KernelEvent::Pulling,
        Pulling => KernelEvent::Prepared,
        Prepared => KernelEvent::Creating,
        Creating => KernelEvent::Started,
        Running | RunningDegraded | Restarting => match rng.gen_range(0..10) {
            0..=5 => KernelEvent::Ended(KernelEnd::Terminated {
                exit_code: Some(0),
                reason: None,
            }),
            6..=7 => KernelEvent::Ended(KernelEnd::Terminated {
                exit_code: Some(1),
                reason: None,
            }),
            _ => KernelEvent::Ended(KernelEnd::Failed {
                exit_code: None,
                reason: None,
            }),
        },
        Error | Terminating => KernelEvent::Ended(KernelEnd::Terminated {
            exit_code: None,
            reason: None,
        }),
        Pending | Terminated | Cancelled => return None,
    })
}

/// Parameters of one run.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub backend: Backend,
    pub seed: u64,
    pub steps: usize,
}

/// Runs the workload once; panics with the seed on any broken invariant.
/// Returns the optimistic conflicts the two schedulers ran into.
pub async fn run(cfg: Run) -> usize {
    let started = Instant::now();
    let ctx = format!("backend {:?}, seed {}", cfg.backend, cfg.seed);
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let url = fresh_url(cfg.backend).await;
    let clock = ManualClock::new(DateTime::from_timestamp(1_800_000_000, 0).unwrap());
    let settings = Settings {
        agent_lost_after_secs: LOST_AFTER_SECS,
        ..Settings::default()
    };
    let open = || async {
        let store = EventStore::open(&url, &StoreOptions::default())
            .await
            .expect("open the store");
        App::new(store, settings.clone()).with_clock(Arc::new(clock.clone()))
    };
    // PostgreSQL: two independent applications (two pools, two projection engines), as
    // two replicas would be. SQLite is single-process: two schedulers on one application.
    let apps: Vec<App> = match cfg.backend {
        Backend::Postgres => vec![open().await, open().await],
        Backend::Sqlite => {
            let app = open().await;
            vec![app.clone(), app]
        }
    };
    let app = apps[0].clone();

    // Arrange: a group with a per-seed scheduler and strategy, and small agents.
    let group = "racing";
    let (scheduler_kind, strategy) = [
        ("fifo", "dispersed"),
        ("lifo", "concentrated"),
        ("drf", "roundrobin"),
        ("fifo", "roundrobin"),
        ("drf", "dispersed"),
        ("lifo", "dispersed"),
        ("fifo", "concentrated"),
    ][cfg.seed as usize % 7];
    let pending_timeout = if cfg.seed % 2 == 0 { 90 } else { 0 };
    create_group(
        &app,
        group,
        scheduler_kind,
        if scheduler_kind == "fifo" {
            json!({
                "agent_selection_strategy": strategy,
                "pending_timeout": pending_timeout,
                "config": {"num_retries_to_skip": 2},
            })
        } else {
            json!({
                "agent_selection_strategy": strategy,
                "pending_timeout": pending_timeout,
            })
        },
    )
    .await;
    let agent_ids: Vec<String> = (0..4).map(|i| format!("agent-{i}")).collect();
    let capacities: BTreeMap<String, ResourceSlots> = agent_ids
        .iter()
        .map(|id| {
            (
                id.clone(),
                slots(rng.gen_range(4..=8), rng.gen_range(8..=16)),
            )
        })
        .collect();
    for (id, cap) in &capacities {
        register_agent(&app, id, group, cap).await;
    }
    for a in &apps {
        a.catch_up().await.expect("catch up");
    }

    // Act: both schedulers race while the workload runs.
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Errors::default();
    let mut passes = Vec::new();
    let loops: Vec<_> = apps
        .iter()
        .zip(["scheduler-A", "scheduler-B"])
        .map(|(a, label)| {
            let (tx, rx) = tokio::sync::watch::channel(0usize);
            passes.push(rx);
            tokio::spawn(scheduler_loop(
                Arc::new(Scheduler::new(a.clone())),
                group.to_string(),
                stop.clone(),
                errors.clone(),
                label,
                tx,
            ))
        })
        .collect();

    let owners = ["alice", "bob", "carol"];
    let mut sessions: Vec<Uuid> = Vec::new();
    let mut requested: BTreeMap<Uuid, ResourceSlots> = BTreeMap::new();
    let mut lost_events = 0usize;
    for step in 0..cfg.steps {
        let a = apps.choose(&mut rng).unwrap().clone();
        let roll = rng.gen_range(0..100);
        match roll {
            // Enqueue.
            0..=29 => {
                for n in 0..rng.gen_range(1..=3) {
                    let resources = slots(rng.gen_range(1..=3), rng.gen_range(1..=4));
                    let owner = owners.choose(&mut rng).unwrap();
                    let req = request(format!("s{step}-{n}"), owner, group, resources.clone());
                    match sessions::enqueue(&a, req, &meta(&format!("user:{owner}"))).await {
                        Ok(c) => {
                            let id = c.state.spec.as_ref().unwrap().session_id;
                            sessions.push(id);
                            requested.insert(id, resources);
                        }
                        Err(e) => errors.push(format!("step {step}: enqueue: {e:?}")),
                    }
                }
            }
            // Delete (cancel before RUNNING, terminate after), sometimes forced.
            // (Prefers, like the kernel events below, a session past PENDING.)
            30..=41 => {
                let mut picked = None;
                for _ in 0..4 {
                    let Some(id) = sessions.choose(&mut rng).copied() else {
                        break;
                    };
                    picked = Some(id);
                    let s: Session = a.commands.load(&id.to_string()).await.unwrap();
                    if s.status.is_some_and(|s| s.holds_slots()) {
                        break;
                    }
                }
                let Some(id) = picked else {
                    continue;
                };
                let forced = rng.gen_bool(0.3);
                match sessions::delete(&a, id, forced, &meta("user:admin")).await {
                    Ok(_)
                    | Err(SessionCommandError::Rejected(_))
                    | Err(SessionCommandError::Conflict) => {}
                    Err(e) => errors.push(format!("step {step}: delete {id}: {e:?}")),
                }
            }
            // An agent reports kernel progress on one of its sessions.
            // (Looks at a few sessions and takes the first one past PENDING.)
            42..=84 => {
                let mut picked = None;
                for _ in 0..6 {
                    let Some(id) = sessions.choose(&mut rng).copied() else {
                        break;
                    };
                    let session: Session = a.commands.load(&id.to_string()).await.unwrap();
                    if let Some(event) = session.status.and_then(|s| next_kernel_event(s, &mut rng))
                    {
                        picked = Some((id, session, event));
                        break;
                    }
                }
                let Some((id, session, event)) = picked else {
                    continue;
                };
                let reporter = session.allocations.first().map(|x| x.agent_id.clone());
                match sessions::kernel_event(
                    &a,
                    id,
                    reporter.as_deref(),
                    event,
                    None,
                    &meta(&format!("agent:{}", reporter.as_deref().unwrap_or("?"))),
                )
                .await
                {
                    Ok(_)
                    | Err(SessionCommandError::Rejected(_))
                    | Err(SessionCommandError::Conflict) => {}
                    Err(e) => errors.push(format!("step {step}: kernel event on {id}: {e:?}")),
                }
            }
            // An agent is lost: either marked so directly, or its heartbeats go stale and
            // the schedulers' liveness check notices.
            85..=88 => {
                let id = agent_ids.choose(&mut rng).unwrap().clone();
                if rng.gen_bool(0.5) {
                    match a
                        .commands
                        .execute::<Agent>(
                            &id,
                            AgentCommand::MarkLost { now: a.clock.now() },
                            &meta("scheduler"),
                        )
                        .await
                    {
                        Ok(c) => lost_events += c.events.len(),
                        Err(CommandError::Rejected(_) | CommandError::Conflict { .. }) => {}
                        Err(e) => errors.push(format!("step {step}: mark {id} lost: {e:?}")),
                    }
                } else {
                    let skip = ChronoDuration::seconds(LOST_AFTER_SECS as i64 + 1);
                    let fresh = (clock.now() + skip).timestamp_millis();
                    for other in agent_ids.iter().filter(|o| **o != id) {
                        a.store.record_heartbeat(other, fresh).await.unwrap();
                    }
                    clock.advance(skip);
                }
            }
            // A lost agent comes back (re-registering revives it, same capacity).
            89..=93 => {
                let id = agent_ids.choose(&mut rng).unwrap().clone();
                register_agent(&a, &id, group, &capacities[&id]).await;
            }
            // Let the schedulers and the projections run for a moment.
            _ => {
                a.catch_up().await.expect("catch up");
                for _ in 0..rng.gen_range(1..10) {
                    tokio::task::yield_now().await;
                }
            }
        }
        if step % 8 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Revive every agent, heartbeat them, and let the race go on for a little longer so
    // the queue drains as far as capacity allows.
    for id in &agent_ids {
        register_agent(&app, id, group, &capacities[id]).await;
    }
    // Each scheduler runs a few more whole passes (one of them a full tick) on the
    // revived agents before the race stops.
    for rx in &mut passes {
        let target = *rx.borrow_and_update() + 4;
        tokio::time::timeout(Duration::from_secs(60), rx.wait_for(|n| *n >= target))
            .await
            .expect("the schedulers keep passing")
            .expect("a scheduler loop is alive");
    }
    stop.store(true, Ordering::Relaxed);
    let mut stats = Vec::new();
    for l in loops {
        stats.push(l.await.expect("scheduler loop"));
    }
    let background = errors.take();
    assert!(
        background.is_empty(),
        "{ctx}: errors while racing: {background:#?}"
    );

    // Quiesce: projections caught up, every due release done.
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds <= 50, "{ctx}: releases never became quiescent");
        for a in &apps {
            a.catch_up().await.expect("catch up");
        }
        let released = releases::release_due(&app).await.expect("release due");
        app.catch_up().await.expect("catch up");
        let due = SlotReleases.due(app.db(), 10).await.expect("due releases");
        if released == 0 && due.is_empty() {
            break;
        }
    }
    for a in &apps {
        a.catch_up().await.expect("catch up");
    }

    // Assert.
    let mut ledgers: BTreeMap<String, Agent> = BTreeMap::new();
    for id in &agent_ids {
        // (a) within capacity now and after every single event of its stream.
        let agent = fold_checked(&app.store, id, &ctx).await;
        let loaded: Agent = app.commands.load(id).await.unwrap();
        assert_eq!(agent, loaded, "{ctx}");
        // (b) the read model equals the fresh fold, on each application.
        for a in &apps {
            let doc = documents::agent_occupancy().get(a.db(), id).await.unwrap();
            assert_eq!(
                doc.as_ref(),
                Some(&agent),
                "{ctx}: agent_occupancy of {id} differs from the fold"
            );
        }
        ledgers.insert(id.clone(), agent);
    }
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let all_sessions: BTreeSet<Uuid> = sessions.iter().copied().collect();
    for id in &sessions {
        let s: Session = app.commands.load(&id.to_string()).await.unwrap();
        let status = s.status.expect("enqueued");
        *by_status.entry(format!("{status:?}")).or_default() += 1;
        let holders: Vec<(&String, &ResourceSlots)> = ledgers
            .iter()
            .filter_map(|(a, l)| l.allocations.get(id).map(|x| (a, x)))
            .collect();
        if status.is_terminal() {
            // (c) ended sessions hold nothing anywhere.
            assert!(
                holders.is_empty(),
                "{ctx}: session {id} is {status:?} but still holds slots on {holders:?}"
            );
        } else if status == SessionStatus::Pending {
            assert!(
                holders.is_empty() && s.allocations.is_empty(),
                "{ctx}: PENDING session {id} holds slots on {holders:?}"
            );
        } else if holders.is_empty() && s.status_history.contains_key(&SessionStatus::Error) {
            // (d') a session that went to ERROR with its agent lost or its kernel reported
            // gone gave its slots back then (ADR 0008), and holds nothing in the
            // statuses that may follow (TERMINATING); it still names where it ran.
            assert_eq!(s.allocations.len(), 1, "{ctx}: session {id} ({status:?})");
        } else {
            // (d) exactly one ledger, with the slots it was scheduled with.
            assert!(status.holds_slots());
            let want = &requested[id];
            assert_eq!(
                s.allocations,
                vec![AgentAllocation {
                    agent_id: holders
                        .first()
                        .map(|h| domain::ids::AgentId::from_stored(h.0.clone()))
                        .unwrap_or_else(|| panic!(
                            "{ctx}: {status:?} session {id} is in no ledger"
                        )),
                    slots: want.clone(),
                }],
                "{ctx}: session {id} ({status:?})"
            );
            assert_eq!(
                holders.len(),
                1,
                "{ctx}: {status:?} session {id} is in several ledgers: {holders:?}"
            );
            assert_eq!(holders[0].1, want, "{ctx}: session {id}");
        }
    }
    // Nothing in a ledger that is not one of our sessions.
    for (a, l) in &ledgers {
        for sid in l.allocations.keys() {
            assert!(
                all_sessions.contains(sid),
                "{ctx}: agent {a} holds slots for unknown session {sid}"
            );
        }
    }
    // The projection of the process manager agrees: nothing left to release.
    let holds = SlotReleases.holds(app.db()).await.unwrap();
    let ledger_entries: usize = ledgers.values().map(|l| l.allocations.len()).sum();
    assert_eq!(holds.len(), ledger_entries, "{ctx}: {holds:?}");
    assert!(holds.iter().all(|h| h.2 == 0), "{ctx}: {holds:?}");

    // (e) the audit finds nothing.
    let report = sessiond::audit::verify(&app.store, |_| {})
        .await
        .expect("audit");
    assert!(
        report.findings.is_empty(),
        "{ctx}: audit findings: {:#?}",
        report.findings
    );

    let mut agent_lost_events = 0;
    for id in &agent_ids {
        let events = app.store.load::<Agent>(id).await.unwrap();
        agent_lost_events += events
            .iter()
            .filter(|e| matches!(e, AgentEvent::AgentLost { .. }))
            .count();
    }
    let lost_now = ledgers
        .values()
        .filter(|l| l.status != AgentStatus::Alive)
        .count();
    let scheduled_total: usize = stats.iter().map(|s| s.scheduled).sum();
    assert!(
        scheduled_total > 0,
        "{ctx}: the schedulers placed nothing: {stats:?}"
    );
    let conflicts = stats.iter().map(|s| s.conflicts).sum();
    eprintln!(
        "{ctx}: {} steps, {} sessions {by_status:?}, {scheduler_kind}/{strategy}/timeout {pending_timeout}, \
         schedulers {stats:?}, {lost_events} marked lost by the workload, {agent_lost_events} AgentLost in all, {lost_now} not alive at the end, \
         {} events audited, {:?}",
        cfg.steps,
        sessions.len(),
        report.events,
        started.elapsed()
    );
    conflicts
}
