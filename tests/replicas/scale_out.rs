//! Issue #18, scale-out on PostgreSQL: three `sessiond serve` replicas on one database,
//! a client spreading enqueues over them round-robin and three simulated agents (one
//! per replica) run a load of batch sessions, while the replica holding the scheduler
//! lease is killed with SIGKILL and restarted a few seconds later. Completions keep
//! coming while it is down, the lease moves, no acknowledged enqueue is lost or
//! duplicated (a request cut off by the kill is retried on another replica with the
//! same `Idempotency-Key`), no agent is ever over-allocated, and the read models equal
//! a fresh fold (`sessionctl audit verify`).
//!
//! `SCALE_OUT_SESSIONS=N` changes the number of sessions (default 1000: about 90 s in a
//! debug build on two shared cores; 2000 took 165 s there).

use crate::servers::{sessionctl, Replica};
use crate::workload::fold_checked;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sessiond::store::{EventStore, LogPosition, RecordedEvent, StoreOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use testkit::db::{fresh_url, Backend};
use testkit::http::call;
use testkit::serve::{echo_lines, wait_until, Proc};

const REPLICAS: [&str; 3] = ["replica-1", "replica-2", "replica-3"];
const AGENTS: [&str; 3] = ["agent-1", "agent-2", "agent-3"];
/// Each agent runs at most 16 sessions at once (each asks for one cpu).
const AGENT_SLOTS: &str = "cpu=16,mem=16g";
const GROUP: &str = "g";
const LEASE: &str = "sessiond.scheduler.g";
const ADMIN_KEY: &str = "scale-out-admin-key-0123456789abcdef";
/// Concurrent enqueueing clients.
const CLIENTS: usize = 4;
/// The clients hold back while this many acknowledged sessions have not terminated:
/// sessions queue (twice what the agents run at once), and enqueues go on for the whole
/// run, so some are in flight on the replica when it is killed.
const BACKLOG: usize = 96;
/// How long the killed replica stays down.
const DOWN_FOR: Duration = Duration::from_secs(4);
/// The longest a phase of the load may take: a deadline, not an expectation (a debug
/// build on two cores shared with other work completes 10-15 sessions a second).
const LOAD_DEADLINE: Duration = Duration::from_secs(300);

fn session_count() -> usize {
    match std::env::var("SCALE_OUT_SESSIONS") {
        Ok(s) => s.trim().parse().expect("SCALE_OUT_SESSIONS: a number"),
        Err(_) => 1000,
    }
}

/// A fixed address in front of one replica, as a service name or a load balancer would
/// give it: an agent keeps its `--server` while the replica behind restarts on another
/// port. A connection it cannot forward is closed at once.
struct Front {
    addr: String,
    target: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Front {
    async fn to(target: &str) -> Front {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let target = Arc::new(Mutex::new(target.to_string()));
        let current = target.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = current.lock().unwrap().clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Front { addr, target, task }
    }

    fn point_at(&self, target: &str) {
        *self.target.lock().unwrap() = target.to_string();
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A simulated `sessiond agent` of group `g` talking to `server`, and its log lines.
fn agent(
    server: &str,
    key: &str,
    id: &'static str,
    work_dir: &Path,
) -> (Proc, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["agent", "--server", server, "--key", key, "--agent-id", id])
        .args(["--scaling-group", GROUP, "--slots", AGENT_SLOTS])
        .args(["--heartbeat-secs", "1", "--work-dir"])
        .arg(work_dir)
        .args(["--simulate", "--step-delay-ms", "10", "--run-ms", "100"])
        .env_remove("SESSIOND_KEY")
        .env_remove("SESSIOND_SERVER")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("sessiond agent starts");
    let lines = echo_lines(id, child.stderr.take().unwrap());
    (Proc(child), lines)
}

/// Sessions that reached TERMINATED, as the global log (commit order) shows them.
#[derive(Default)]
struct Completions {
    ids: Mutex<BTreeSet<String>>,
    count: AtomicUsize,
    /// (when, how many had terminated by then), every 100 ms.
    samples: Mutex<Vec<(Instant, usize)>>,
}

impl Completions {
    /// How many had terminated at `t` (by the last sample before it).
    fn at(&self, t: Instant) -> usize {
        let samples = self.samples.lock().unwrap();
        samples
            .iter()
            .take_while(|(when, _)| *when <= t)
            .last()
            .map_or(0, |(_, n)| *n)
    }

    /// When the count first reached `n`.
    fn reached(&self, n: usize) -> Option<Instant> {
        let samples = self.samples.lock().unwrap();
        samples.iter().find(|(_, c)| *c >= n).map(|(t, _)| *t)
    }

    /// Adds the sessions that terminated and takes a sample.
    fn record(&self, terminated: impl Iterator<Item = String>) {
        let mut ids = self.ids.lock().unwrap();
        ids.extend(terminated);
        self.count.store(ids.len(), Ordering::SeqCst);
        self.samples
            .lock()
            .unwrap()
            .push((Instant::now(), ids.len()));
    }

    /// Completions per second between `from` and `to`.
    fn rate(&self, from: Instant, to: Instant) -> f64 {
        let done = self.at(to).saturating_sub(self.at(from));
        done as f64 / to.saturating_duration_since(from).as_secs_f64()
    }
}

/// Reads the log as it grows until `stop`, counting the sessions that terminated.
async fn follow(store: EventStore, done: Arc<Completions>, stop: Arc<AtomicBool>) {
    let mut cursor = LogPosition::START;
    while !stop.load(Ordering::SeqCst) {
        let batch = store.read_log(cursor, 5000).await.expect("read the log");
        if let Some(last) = batch.last() {
            cursor = last.log_position();
        }
        done.record(
            batch
                .iter()
                .filter(|e| e.event_type == "SessionTerminated")
                .map(|e| e.aggregate_id.clone()),
        );
        if batch.len() < 5000 {
            // The poll interval of the reader, not a synchronisation.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn full_log(store: &EventStore) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut cursor = LogPosition::START;
    loop {
        let batch = store.read_log(cursor, 5000).await.unwrap();
        let Some(last) = batch.last() else { break };
        cursor = last.log_position();
        all.extend(batch);
    }
    all
}

/// The enqueueing side: the replicas' addresses (round-robin), what was acknowledged,
/// and why requests were retried.
struct Load {
    bases: RwLock<Vec<String>>,
    next: AtomicUsize,
    issued: AtomicUsize,
    user: String,
    acknowledged: Mutex<Vec<String>>,
    retries: Mutex<BTreeMap<String, usize>>,
}

impl Load {
    fn pick(&self) -> String {
        let bases = self.bases.read().unwrap();
        bases[self.next.fetch_add(1, Ordering::SeqCst) % bases.len()].clone()
    }

    fn retried(&self, why: String) {
        *self.retries.lock().unwrap().entry(why).or_insert(0) += 1;
    }
}

/// Enqueues batch session `name` until a replica acknowledges it; every retry (on the
/// next replica) carries the same `Idempotency-Key`. The session's id.
async fn enqueue(http: &reqwest::Client, load: &Load, name: &str) -> String {
    let key = format!("scale-out-{name}");
    let body = json!({"name": name, "type": "batch", "image": "sh", "scaling_group": GROUP,
                      "resources": {"cpu": 1, "mem": "64m"}, "startup_command": "true"});
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let base = load.pick();
        let sent = http
            .post(format!("{base}/v1/sessions"))
            .bearer_auth(&load.user)
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await;
        let answer = match sent {
            Ok(r) => {
                let status = r.status();
                r.bytes().await.map(|b| (status, b))
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok((StatusCode::CREATED, b)) => {
                let v: Value = serde_json::from_slice(&b).unwrap();
                return v["session_id"].as_str().unwrap().to_string();
            }
            Ok((status, b)) => {
                let text = String::from_utf8_lossy(&b);
                // The first request with this key was cut off by the kill: its record
                // stays in flight until it is stale.
                let in_flight =
                    status == StatusCode::CONFLICT && text.contains("still being processed");
                assert!(
                    in_flight || status.is_server_error(),
                    "{name} on {base}: {status} {text}"
                );
                load.retried(format!("{status}"));
            }
            Err(e) => load.retried(if e.is_connect() {
                "connection refused".to_string()
            } else {
                "connection lost".to_string()
            }),
        }
        assert!(Instant::now() < deadline, "{name}: never acknowledged");
        // Back off a little before the next replica (a refused connection is instant).
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One client: enqueues until `total` were issued, holding back while the backlog is full.
async fn client(load: Arc<Load>, done: Arc<Completions>, total: usize) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    loop {
        let i = load.issued.fetch_add(1, Ordering::SeqCst);
        if i >= total {
            return;
        }
        while load.acknowledged.lock().unwrap().len() > done.count.load(Ordering::SeqCst) + BACKLOG
        {
            // Pacing of the load, not a synchronisation.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let id = enqueue(&http, &load, &format!("s-{i}")).await;
        load.acknowledged.lock().unwrap().push(id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stdout, clippy::cast_precision_loss)]
async fn three_postgres_replicas_keep_sessions_flowing_while_the_scheduler_lease_holder_is_killed()
{
    let started = Instant::now();
    let total = session_count();

    // Arrange: three replicas on one fresh database, a group, keys, three agents.
    let url = fresh_url(Backend::Postgres).await;
    let env = vec![("SESSIOND_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY.to_string())];
    let mut replicas: Vec<Replica> = REPLICAS
        .iter()
        .map(|&name| Replica::start_with_env(name, &url, &env))
        .collect();
    let bases: Vec<String> = replicas
        .iter()
        .map(|r| format!("http://{}", r.addr()))
        .collect();
    let http = reqwest::Client::new();
    let (s, b) = call(
        &http,
        Method::POST,
        format!("{}/v1/scaling-groups", bases[0]),
        ADMIN_KEY,
        Some(json!({"name": GROUP, "description": "scale-out", "scheduler_opts": {}})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let user = sessionctl(
        &url,
        &["keys", "create", "--role", "user", "--owner", "alice"],
    );
    for base in &bases {
        wait_until(
            "every replica accepts the user key",
            Duration::from_secs(30),
            || async {
                let (s, b) = call(
                    &http,
                    Method::GET,
                    format!("{base}/v1/scaling-groups"),
                    &user,
                    None,
                )
                .await;
                if s == StatusCode::UNAUTHORIZED {
                    Err(b.to_string())
                } else {
                    Ok(())
                }
            },
        )
        .await;
    }
    let mut fronts = Vec::new();
    for r in &replicas {
        fronts.push(Front::to(&r.addr()).await);
    }
    let work = std::env::temp_dir().join(format!("sessiond-scale-out-{}", uuid::Uuid::new_v4()));
    let mut agents = Vec::new();
    for (&id, front) in AGENTS.iter().zip(&fronts) {
        let key = sessionctl(
            &url,
            &["keys", "create", "--role", "agent", "--agent-id", id],
        );
        agents.push(agent(
            &format!("http://{}", front.addr),
            &key,
            id,
            &work.join(id),
        ));
    }
    wait_until(
        "the three agents registered",
        Duration::from_secs(30),
        || async {
            let (s, b) = call(
                &http,
                Method::GET,
                format!("{}/v1/agents", bases[1]),
                ADMIN_KEY,
                None,
            )
            .await;
            match b["items"].as_array() {
                Some(items) if s == StatusCode::OK && items.len() == AGENTS.len() => Ok(()),
                _ => Err(format!("{s} {b}")),
            }
        },
    )
    .await;
    let store = EventStore::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    let done = Arc::new(Completions::default());
    let stop = Arc::new(AtomicBool::new(false));
    let follower = tokio::spawn(follow(store.clone(), done.clone(), stop.clone()));
    let load = Arc::new(Load {
        bases: RwLock::new(bases),
        next: AtomicUsize::new(0),
        issued: AtomicUsize::new(0),
        user: user.clone(),
        acknowledged: Mutex::new(Vec::new()),
        retries: Mutex::new(BTreeMap::new()),
    });
    let set_up = started.elapsed();
    let progress = {
        let (load, done) = (load.clone(), done.clone());
        tokio::spawn(async move {
            let t0 = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                eprintln!(
                    "scale-out: {:>5.1?}: {} acknowledged, {} terminated",
                    t0.elapsed(),
                    load.acknowledged.lock().unwrap().len(),
                    done.count.load(Ordering::SeqCst)
                );
            }
        })
    };

    // Act: the load runs; once it is flowing, the lease holder is killed with SIGKILL.
    let load_started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(client(load.clone(), done.clone(), total)))
        .collect();
    let warm_at = wait_until(
        "5% of the sessions terminated",
        Duration::from_secs(60),
        || async {
            let n = done.count.load(Ordering::SeqCst);
            if n >= total / 20 {
                Ok(Instant::now())
            } else {
                Err(format!("{n} terminated"))
            }
        },
    )
    .await;
    wait_until("40% of the sessions terminated", LOAD_DEADLINE, || async {
        let n = done.count.load(Ordering::SeqCst);
        if n >= total * 2 / 5 {
            Ok(())
        } else {
            Err(format!("{n} terminated"))
        }
    })
    .await;
    let holders: Vec<usize> = (0..replicas.len())
        .filter(|&i| replicas[i].took(LEASE))
        .collect();
    assert_eq!(holders.len(), 1, "one holder of {LEASE}: {holders:?}");
    let victim = holders[0];
    let killed_at = Instant::now();
    replicas[victim].kill();
    let survivors: Vec<usize> = (0..replicas.len()).filter(|&i| i != victim).collect();
    // The lease moves: a survivor logs taking it (none had before the kill).
    let new_holder = loop {
        if let Some(&i) = survivors.iter().find(|&&i| replicas[i].took(LEASE)) {
            break i;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(20),
            "no survivor took {LEASE}: {:#?}",
            survivors
                .iter()
                .map(|&i| &replicas[i].log)
                .collect::<Vec<_>>()
        );
        for &i in &survivors {
            assert!(replicas[i].running(), "{} died", replicas[i].name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lease_moved_after = killed_at.elapsed();
    // The replica stays down for a few seconds (time passing under load).
    tokio::time::sleep(DOWN_FOR.saturating_sub(killed_at.elapsed())).await;
    let (restart_url, restart_env) = (url.clone(), env.clone());
    let restarted = tokio::task::spawn_blocking(move || {
        Replica::start_with_env(REPLICAS[victim], &restart_url, &restart_env)
    })
    .await
    .unwrap();
    let up_at = Instant::now();
    load.bases.write().unwrap()[victim] = format!("http://{}", restarted.addr());
    fronts[victim].point_at(&restarted.addr());
    replicas[victim] = restarted;

    wait_until("every enqueue acknowledged", LOAD_DEADLINE, || async {
        let acked = load.acknowledged.lock().unwrap().len();
        if acked == total {
            Ok(())
        } else {
            Err(format!(
                "{acked} acknowledged, {} terminated, retries {:?}",
                done.count.load(Ordering::SeqCst),
                load.retries.lock().unwrap()
            ))
        }
    })
    .await;
    for c in clients {
        c.await.unwrap();
    }
    let acknowledged: Vec<String> = load.acknowledged.lock().unwrap().clone();
    let wanted: BTreeSet<String> = acknowledged.iter().cloned().collect();
    wait_until(
        "every acknowledged session terminated",
        Duration::from_secs(60),
        || async {
            let missing: Vec<String> = {
                let ids = done.ids.lock().unwrap();
                wanted.difference(&ids).take(5).cloned().collect()
            };
            if missing.is_empty() {
                return Ok(());
            }
            // Where each missing session stopped, as stored (and so whether the
            // follower's commit-order read missed an event the stream has).
            let mut report = Vec::new();
            for id in &missing {
                let events = store
                    .read_stream(<domain::session::Session as domain::Decider>::TYPE, id)
                    .await
                    .unwrap_or_default();
                let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
                report.push(format!("{id}: {types:?}"));
            }
            Err(format!(
                "missing (up to 5), with their streams: {}",
                report.join("; ")
            ))
        },
    )
    .await;
    let finished_at = done
        .reached(total)
        .expect("the last completion was sampled");
    stop.store(true, Ordering::SeqCst);
    follower.await.unwrap();
    progress.abort();

    // Assert: throughput stayed up while the replica was down.
    let before = done.rate(warm_at, killed_at);
    let during = done.rate(killed_at, up_at);
    let after = done.rate(up_at, finished_at);
    let load_took = finished_at.saturating_duration_since(load_started);
    println!(
        "scale-out: {total} sessions in {load_took:.1?} ({:.1}/s overall; set-up {set_up:.1?}); \
         completed/s before the kill {before:.1}, while {} was down ({:.1?}) {during:.1}, \
         after its restart {after:.1}; {} took {LEASE} {lease_moved_after:.1?} after the kill; \
         retries: {:?}",
        total as f64 / load_took.as_secs_f64(),
        REPLICAS[victim],
        up_at.saturating_duration_since(killed_at),
        REPLICAS[new_holder],
        load.retries.lock().unwrap()
    );
    assert!(
        during > 0.0,
        "nothing completed while {} was down",
        REPLICAS[victim]
    );
    assert!(
        during >= before / 3.0,
        "throughput fell from {before:.1}/s to {during:.1}/s while {} was down",
        REPLICAS[victim]
    );

    // Nothing lost, nothing duplicated: each request acknowledged once, with its own
    // session, and exactly the acknowledged sessions were enqueued.
    assert_eq!(acknowledged.len(), total);
    assert_eq!(
        wanted.len(),
        total,
        "two requests acknowledged with one session"
    );
    let log = full_log(&store).await;
    let enqueued: Vec<&str> = log
        .iter()
        .filter(|e| e.event_type == "SessionEnqueued")
        .map(|e| e.aggregate_id.as_str())
        .collect();
    assert_eq!(enqueued.len(), total, "SessionEnqueued events");
    let enqueued: BTreeSet<String> = enqueued.into_iter().map(str::to_string).collect();
    assert_eq!(enqueued, wanted);
    assert_eq!(*done.ids.lock().unwrap(), wanted, "terminated sessions");

    // No agent was ever over-allocated (folded event by event), and every slot came back.
    for id in AGENTS {
        let ledger = wait_until(
            &format!("{id}'s slots released"),
            Duration::from_secs(30),
            || async {
                let ledger = fold_checked(&store, id, "scale-out").await;
                if ledger.allocations.is_empty() {
                    Ok(ledger)
                } else {
                    Err(format!("{} still allocated", ledger.allocations.len()))
                }
            },
        )
        .await;
        assert!(!ledger.over_capacity(), "{id}");
    }

    // The read models say so too, and equal a fresh fold of the log.
    wait_until(
        "the read models show every session TERMINATED",
        Duration::from_secs(30),
        || async {
            let (s, b) = call(
                &http,
                Method::GET,
                format!("{}/v1/session-counts?scaling_group={GROUP}", load.pick()),
                &user,
                None,
            )
            .await;
            let terminated = b["items"]
                .as_array()
                .and_then(|items| items.iter().find(|i| i["status"] == "TERMINATED"))
                .and_then(|i| i["count"].as_u64());
            if s == StatusCode::OK
                && terminated == Some(total as u64)
                && b["items"].as_array().map(Vec::len) == Some(1)
            {
                Ok(())
            } else {
                Err(format!("{s} {b}"))
            }
        },
    )
    .await;
    sessionctl(&url, &["audit", "verify"]);
    store.close().await;
    drop(agents);
    drop(replicas);
    let _ = std::fs::remove_dir_all(&work);
    println!("scale-out: the whole test took {:.1?}", started.elapsed());
}
