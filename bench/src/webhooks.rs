//! `sessiond-bench webhooks`: webhook delivery (SPEC §8, issue #15) end to end, through
//! the real service in process (`sessiond::server::start`, its HTTP API on port 0, its
//! projections and its dispatcher) and a loopback receiver in the same process that
//! answers 200 at once. Targets: at least 1,000 deliveries/s, and at a steady 100
//! status changes/s a p99 from commit to receipt of at most 250 ms.
//!
//! Every status change is a session enqueued over HTTP (`POST /v1/sessions`) into a
//! scaling group without agents: one `PENDING` change, one delivery to the bench's one
//! subscription (`POST /v1/webhooks`, every change), one chain per session. Four runs,
//! in this order, on one fresh database:
//!
//! 1. **latency**: a paced producer enqueues at `--rate` (default 100/s) for a warm-up
//!    and `--seconds`, each request sent at its scheduled time whatever the previous
//!    ones do; per change, the receipt minus the event's `recorded_at` (stamped in the
//!    append transaction; the outbox keeps it as `created_ms`), minus the moment the API
//!    answered the enqueue, and minus the payload's `timestamp` (the domain's
//!    `occurred_at`, taken before the append).
//! 2. **baseline**: as many plain POSTs of a real payload to the same receiver, by as
//!    many concurrent tasks as the dispatcher's `concurrency`, through one reqwest client
//!    and no store: the loopback HTTP ceiling of this process on this machine, which the
//!    throughput runs are divided by.
//! 3. **backlog drain**: the receiver's gate is closed (requests wait, unanswered),
//!    `--changes` changes are produced by `--clients` concurrent HTTP clients, the outbox
//!    is seen holding all of them, then the gate opens: deliveries/s from the gate
//!    opening to the last receipt, counting the requests that arrived after it (the
//!    dispatcher's capacity with nothing else to do; the target's figure).
//! 4. **live**: the same number of changes produced while the dispatcher delivers:
//!    deliveries/s from the first to the last receipt, beside the rate the changes were
//!    produced at (if the two are equal, the producer bounded it).
//!
//! # Layout
//! - this module: the options, the report and the four runs.
//! - [`receiver`]: the loopback receiver and its gate.

mod receiver;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::db::Statement;
use store::{args, sql};

use self::receiver::{Receipt, Receiver};
use crate::append::{CpuMeter, CpuUse};
use crate::clone::api::Server;
use crate::clone::{check_empty, load_average};
use crate::error::BenchError;

/// The bench's deliveries (id, recorded_at ms, delivered ms, attempts).
const DELIVERIES: Statement = sql!(common "webhooks/deliveries");
/// Open deliveries of the bench's subscription.
const OPEN_COUNT: Statement = sql!(common "webhooks/open_count");
/// Planner statistics of the outbox.
const ANALYZE: Statement = sql!(common "webhooks/analyze");

/// The key-encryption key of the bench's server (base64 of 32 bytes). Not a secret:
/// it encrypts the signing secret of a subscription on the bench's throwaway database.
const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The attempt timeout of the bench's dispatcher: long enough that the requests held
/// at the closed gate while the backlog is produced do not time out.
const ATTEMPT_TIMEOUT_MS: u64 = 300_000;
/// How long the bench waits for the last delivery of a run (beyond a floor of
/// 1 ms per change).
const DELIVERY_DEADLINE: Duration = Duration::from_secs(120);

/// Options of `sessiond-bench webhooks`.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhooksArgs {
    /// `postgres://...` or `sqlite://PATH`; an EMPTY database: the bench writes to it.
    #[arg(long, env = "SESSIOND_DATABASE_URL")]
    pub database_url: String,
    /// Status changes of each throughput run (backlog drain, live) [default: 5000; 300
    /// with --quick].
    #[arg(long)]
    pub changes: Option<usize>,
    /// Concurrent HTTP clients producing the throughput runs' changes.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Status changes per second of the latency run.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Measured seconds of the latency run, after its warm-up [default: 20; 3 with
    /// --quick].
    #[arg(long)]
    pub seconds: Option<f64>,
    /// The dispatcher's `webhooks.concurrency` [default: the server's].
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Run `ANALYZE webhook_deliveries` once the backlog is in the outbox, before the
    /// gate opens (by default the outbox keeps whatever statistics autovacuum gathered,
    /// on a fresh database none: the planner's plan for a table it believes empty).
    #[arg(long)]
    pub analyze: bool,
    /// Fewer changes and a short latency run, for CI (the numbers are not asserted).
    #[arg(long)]
    pub quick: bool,
}

/// One throughput run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThroughputFigure {
    /// What the run is.
    pub name: &'static str,
    /// Status changes produced.
    pub changes: usize,
    /// From the first enqueue sent to the last one answered, seconds.
    pub produce_seconds: f64,
    /// Distinct `webhook-id`s counted in the delivery window.
    pub deliveries: usize,
    /// The delivery window, seconds (backlog: gate open to the last receipt; live: the
    /// first receipt to the last).
    pub deliver_seconds: f64,
    /// Requests that repeated a `webhook-id` already received.
    pub duplicates: usize,
    /// Deliveries that had not arrived when the bench stopped waiting.
    pub missing: usize,
    /// The last receipt after the last enqueue answered, seconds (live only).
    pub tail_seconds: Option<f64>,
    /// Mean of the dispatcher's own `sessiond_webhook_attempt_duration_seconds` (sign
    /// and POST) over the run, ms.
    pub mean_attempt_ms: Option<f64>,
    /// CPU used during the delivery window.
    pub cpu: Option<CpuUse>,
}

impl ThroughputFigure {
    /// Changes produced per second.
    pub fn produce_rate(&self) -> f64 {
        self.changes as f64 / self.produce_seconds.max(1e-9)
    }

    /// Deliveries per second.
    pub fn deliver_rate(&self) -> f64 {
        self.deliveries as f64 / self.deliver_seconds.max(1e-9)
    }
}

/// Percentiles of one latency, ms.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Distribution {
    /// Median.
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// The latency run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencyFigure {
    /// The producer's target rate, changes/s.
    pub target_rate: f64,
    /// Measured changes over the span their enqueues were sent in, changes/s.
    pub achieved_rate: f64,
    /// Changes in the measured window.
    pub changes: usize,
    /// Measured changes whose delivery never arrived.
    pub missing: usize,
    /// The measured window, seconds.
    pub seconds: f64,
    /// The warm-up before it, seconds.
    pub warmup_seconds: f64,
    /// The latest an enqueue was sent after its scheduled time, ms.
    pub max_send_lag_ms: f64,
    /// Event `recorded_at` to receipt.
    pub from_commit: Distribution,
    /// The API's answer to the enqueue to receipt.
    pub from_answer: Distribution,
    /// The payload's `timestamp` (`occurred_at`) to receipt.
    pub from_occurred: Distribution,
    /// The enqueue itself (sent to answered).
    pub enqueue: Distribution,
    /// Mean of the dispatcher's `sessiond_webhook_dispatch_lag_seconds` (a delivery due,
    /// i.e. its event recorded, to its attempt starting), ms.
    pub mean_dispatch_lag_ms: Option<f64>,
    /// CPU used during the measured window.
    pub cpu: Option<CpuUse>,
}

/// The result of `sessiond-bench webhooks`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WebhooksReport {
    /// `PostgreSQL` or `SQLite`.
    pub backend: &'static str,
    /// The dispatcher's concurrency.
    pub concurrency: u32,
    /// Whether the outbox was analyzed before the backlog drain.
    pub analyzed: bool,
    /// The producers of the throughput runs.
    pub clients: usize,
    /// The plain-POST baseline, the backlog drain, the live run.
    pub throughput: Vec<ThroughputFigure>,
    /// The paced run.
    pub latency: LatencyFigure,
    /// The machine's 1-minute load average at the start and at the end.
    pub load: (Option<f64>, Option<f64>),
    /// How it was measured.
    pub notes: Vec<String>,
}

/// The server's volume directory (the scenario stores no files; the server wants one).
#[derive(Debug)]
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self, BenchError> {
        let dir =
            std::env::temp_dir().join(format!("sessiond-bench-webhooks-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| BenchError::Other(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Nearest-rank percentiles of signed milliseconds (zeros when empty).
fn distribution(mut ms: Vec<f64>) -> Distribution {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| {
        if ms.is_empty() {
            return 0.0;
        }
        let rank = (p * ms.len() as f64).ceil() as usize;
        ms.get(rank.clamp(1, ms.len()) - 1).copied().unwrap_or(0.0)
    };
    Distribution {
        p50: at(0.50),
        p99: at(0.99),
        max: ms.last().copied().unwrap_or(0.0),
    }
}

/// One enqueue as the producer saw it.
#[derive(Debug, Clone)]
struct Enqueued {
    session_id: String,
    sent: Instant,
    answered: Instant,
}

/// `sum` and `count` of a histogram (or summary) in `/metrics`.
async fn histogram_totals(server: &Server, name: &str) -> Option<(f64, f64)> {
    let resp = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .ok()?;
    if resp.status() != StatusCode::OK {
        return None;
    }
    let text = resp.text().await.ok()?;
    let value = |suffix: &str| {
        let prefix = format!("{name}_{suffix} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some((value("sum")?, value("count")?))
}

/// The mean (ms) of a histogram between two readings of its totals.
fn mean_ms(before: Option<(f64, f64)>, after: Option<(f64, f64)>) -> Option<f64> {
    let (s0, c0) = before.unwrap_or((0.0, 0.0));
    let (s1, c1) = after?;
    (c1 > c0).then(|| 1000.0 * (s1 - s0) / (c1 - c0))
}

const ATTEMPT_DURATION: &str = "sessiond_webhook_attempt_duration_seconds";
const DISPATCH_LAG: &str = "sessiond_webhook_dispatch_lag_seconds";

/// The scenario's server, subscription and receiver.
struct Bench {
    server: Server,
    receiver: Receiver,
    webhook_id: String,
    /// Sessions enqueued so far (their names are numbered).
    named: AtomicUsize,
}

impl Bench {
    async fn enqueue(&self) -> Result<Enqueued, BenchError> {
        let n = self.named.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let session_id = self.server.enqueue(&format!("wh-{n}")).await?;
        Ok(Enqueued {
            session_id,
            sent,
            answered: Instant::now(),
        })
    }

    /// Enqueues `changes` sessions with `clients` concurrent clients.
    async fn produce(
        self: &Arc<Self>,
        changes: usize,
        clients: usize,
        label: &str,
    ) -> Result<Vec<Enqueued>, BenchError> {
        let bar = crate::progress::bar(changes as u64, label);
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..clients.min(changes.max(1)) {
            let (this, next, bar) = (self.clone(), next.clone(), bar.clone());
            tasks.spawn(async move {
                let mut out = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < changes {
                    out.push(this.enqueue().await?);
                    bar.inc(1);
                }
                Ok::<_, BenchError>(out)
            });
        }
        let mut all = Vec::with_capacity(changes);
        let mut first_error = None;
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(v)) => all.extend(v),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(BenchError::Other(format!("producer task: {e}")));
                }
            }
        }
        bar.finish_and_clear();
        match first_error {
            Some(e) => Err(e),
            None => Ok(all),
        }
    }

    /// Waits until the receiver has recorded `total` requests (from its start), showing
    /// them on a bar from `from`, or until the deadline (what did not come is counted
    /// as missing by the caller).
    async fn wait_received(&self, from: u64, total: u64, label: &str) {
        let bar = crate::progress::bar(total.saturating_sub(from), label);
        let deadline =
            Instant::now() + DELIVERY_DEADLINE + Duration::from_millis(total.saturating_sub(from));
        loop {
            let got = self.receiver.count();
            bar.set_position(got.saturating_sub(from));
            if got >= total || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bar.finish_and_clear();
    }

    /// Waits until the outbox holds `open` open deliveries of the subscription.
    async fn wait_outbox(&self, open: i64) -> Result<(), BenchError> {
        let db = self
            .server
            .db()
            .ok_or_else(|| BenchError::Other("the server is stopped".into()))?;
        let deadline = Instant::now() + DELIVERY_DEADLINE;
        loop {
            let (n,): (i64,) = db
                .fetch_one(&OPEN_COUNT, args![self.webhook_id.as_str()])
                .await?;
            if n >= open {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchError::Other(format!(
                    "the outbox holds {n} open deliveries, not {open}, after {DELIVERY_DEADLINE:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The subscription's deliveries: id -> recorded_at (unix ms).
    async fn recorded_at(&self) -> Result<HashMap<String, i64>, BenchError> {
        let db = self
            .server
            .db()
            .ok_or_else(|| BenchError::Other("the server is stopped".into()))?;
        let rows: Vec<(String, i64, Option<i64>, i64)> = db
            .fetch_all(&DELIVERIES, args![self.webhook_id.as_str()])
            .await?;
        Ok(rows.into_iter().map(|(id, at, _, _)| (id, at)).collect())
    }
}

/// Distinct ids among `receipts` and the repeats.
fn distinct(receipts: &[&Receipt]) -> (usize, usize) {
    let mut seen = HashSet::new();
    let mut repeats = 0;
    for r in receipts {
        if !seen.insert(r.id.as_str()) {
            repeats += 1;
        }
    }
    (seen.len(), repeats)
}

fn span(enqueued: &[Enqueued]) -> f64 {
    let first = enqueued.iter().map(|e| e.sent).min();
    let last = enqueued.iter().map(|e| e.answered).max();
    match (first, last) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => 0.0,
    }
}

/// Run 2: the backlog drain.
async fn backlog(
    bench: &Arc<Bench>,
    changes: usize,
    clients: usize,
    analyze: bool,
) -> Result<ThroughputFigure, BenchError> {
    let from = bench.receiver.count();
    bench.receiver.set_gate(false);
    let enqueued = bench.produce(changes, clients, "backlog").await;
    let enqueued = match enqueued {
        Ok(e) => e,
        Err(e) => {
            bench.receiver.set_gate(true);
            return Err(e);
        }
    };
    let filled = async {
        bench.wait_outbox(changes as i64).await?;
        if analyze {
            if let Some(db) = bench.server.db() {
                db.execute(&ANALYZE, args![]).await?;
            }
        }
        Ok::<_, BenchError>(())
    }
    .await;
    let attempts_before = histogram_totals(&bench.server, ATTEMPT_DURATION).await;
    let cpu = CpuMeter::start();
    let opened = Instant::now();
    bench.receiver.set_gate(true);
    filled?;
    bench
        .wait_received(from, from + changes as u64, "drain")
        .await;
    let cpu = cpu.stop();
    let attempts_after = histogram_totals(&bench.server, ATTEMPT_DURATION).await;
    let got = bench
        .receiver
        .since(usize::try_from(from).unwrap_or(usize::MAX));
    let after: Vec<&Receipt> = got.iter().filter(|r| !r.held).collect();
    let (deliveries, duplicates) = distinct(&after);
    let (all, _) = distinct(&got.iter().collect::<Vec<_>>());
    let last = after.iter().map(|r| r.at).max().unwrap_or(opened);
    // The held attempts lasted from their arrival to the gate opening (and a little
    // more): that wait is not the dispatcher's, take it out of the mean.
    let held: Vec<&Receipt> = got.iter().filter(|r| r.held).collect();
    let held_wait: f64 = held
        .iter()
        .map(|r| opened.saturating_duration_since(r.at).as_secs_f64())
        .sum();
    let attempts_after = attempts_after.map(|(sum, count)| (sum - held_wait, count));
    Ok(ThroughputFigure {
        name: "backlog drain (gate open to last receipt)",
        changes,
        produce_seconds: span(&enqueued),
        deliveries,
        deliver_seconds: (last - opened).as_secs_f64(),
        duplicates,
        missing: changes.saturating_sub(all),
        tail_seconds: None,
        mean_attempt_ms: mean_ms(attempts_before, attempts_after),
        cpu,
    })
}

/// Run 3: produced while delivering.
async fn live(
    bench: &Arc<Bench>,
    changes: usize,
    clients: usize,
) -> Result<ThroughputFigure, BenchError> {
    let from = bench.receiver.count();
    bench.receiver.set_gate(true);
    let attempts_before = histogram_totals(&bench.server, ATTEMPT_DURATION).await;
    let cpu = CpuMeter::start();
    let enqueued = bench.produce(changes, clients, "live").await?;
    bench
        .wait_received(from, from + changes as u64, "delivered")
        .await;
    let cpu = cpu.stop();
    let attempts_after = histogram_totals(&bench.server, ATTEMPT_DURATION).await;
    let got = bench
        .receiver
        .since(usize::try_from(from).unwrap_or(usize::MAX));
    let refs: Vec<&Receipt> = got.iter().collect();
    let (deliveries, duplicates) = distinct(&refs);
    let first = got.iter().map(|r| r.at).min();
    let last = got.iter().map(|r| r.at).max();
    let last_answer = enqueued.iter().map(|e| e.answered).max();
    Ok(ThroughputFigure {
        name: "live (produced while delivering; first to last receipt)",
        changes,
        produce_seconds: span(&enqueued),
        deliveries,
        deliver_seconds: match (first, last) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => 0.0,
        },
        duplicates,
        missing: changes.saturating_sub(deliveries),
        tail_seconds: match (last, last_answer) {
            (Some(r), Some(a)) => Some(r.saturating_duration_since(a).as_secs_f64()),
            _ => None,
        },
        mean_attempt_ms: mean_ms(attempts_before, attempts_after),
        cpu,
    })
}

/// The baseline: the same receiver sent `requests` plain POSTs of `body` by `concurrency`
/// tasks of one reqwest client, no store involved (the loopback HTTP ceiling of this
/// machine and process).
async fn plain_posts(
    bench: &Arc<Bench>,
    requests: usize,
    concurrency: usize,
    body: Vec<u8>,
) -> Result<ThroughputFigure, BenchError> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| BenchError::Other(format!("cannot build the HTTP client: {e}")))?;
    let from = bench.receiver.count();
    let bar = crate::progress::bar(requests as u64, "plain POST");
    let next = Arc::new(AtomicUsize::new(0));
    let body = axum::body::Bytes::from(body);
    let cpu = CpuMeter::start();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(requests) {
        let (client, next, bar, body) = (client.clone(), next.clone(), bar.clone(), body.clone());
        let url = bench.receiver.url.clone();
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return Ok::<_, BenchError>(());
                }
                let resp = client
                    .post(&url)
                    .header("webhook-id", format!("baseline_{i}"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|e| BenchError::Other(format!("plain POST: {e}")))?;
                if resp.status() != StatusCode::OK {
                    return Err(BenchError::Other(format!("plain POST: {}", resp.status())));
                }
                bar.inc(1);
            }
        });
    }
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let outcome = done.map_err(|e| BenchError::Other(format!("plain POST task: {e}")));
        if let Err(e) = outcome.and_then(|r| r) {
            first_error.get_or_insert(e);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu.stop();
    bar.finish_and_clear();
    if let Some(e) = first_error {
        return Err(e);
    }
    let got = bench
        .receiver
        .since(usize::try_from(from).unwrap_or(usize::MAX));
    let (deliveries, duplicates) = distinct(&got.iter().collect::<Vec<_>>());
    Ok(ThroughputFigure {
        name: "baseline: plain POSTs to the receiver (one reqwest client, no store)",
        changes: requests,
        produce_seconds: 0.0,
        deliveries,
        deliver_seconds: seconds,
        duplicates,
        missing: requests.saturating_sub(deliveries),
        tail_seconds: None,
        mean_attempt_ms: None,
        cpu,
    })
}

/// Run 1: a paced producer; latencies per change.
async fn latency(
    bench: &Arc<Bench>,
    rate: f64,
    warmup: Duration,
    seconds: Duration,
) -> Result<LatencyFigure, BenchError> {
    let from = bench.receiver.count();
    let warm = (warmup.as_secs_f64() * rate).round() as usize;
    let measured = (seconds.as_secs_f64() * rate).round() as usize;
    let total = warm + measured;
    let bar = crate::progress::bar(total as u64, "paced");
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut send_lag = Duration::ZERO;
    let mut cpu = None;
    let lag_before = histogram_totals(&bench.server, DISPATCH_LAG).await;
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(at).await;
        if i == warm {
            cpu = Some(CpuMeter::start());
        }
        send_lag = send_lag.max(tokio::time::Instant::now().saturating_duration_since(at));
        let (this, bar) = (bench.clone(), bar.clone());
        tasks.spawn(async move {
            let e = this.enqueue().await;
            bar.inc(1);
            e.map(|e| (i, e))
        });
    }
    let mut enqueued = Vec::with_capacity(measured);
    while let Some(done) = tasks.join_next().await {
        let (i, e) = done.map_err(|e| BenchError::Other(format!("paced producer task: {e}")))??;
        if i >= warm {
            enqueued.push(e);
        }
    }
    bar.finish_and_clear();
    let cpu = cpu.and_then(CpuMeter::stop);
    bench
        .wait_received(from, from + total as u64, "delivered")
        .await;
    let lag_after = histogram_totals(&bench.server, DISPATCH_LAG).await;
    let recorded = bench.recorded_at().await?;
    // The first receipt of each session's change.
    let mut first: HashMap<String, Receipt> = HashMap::new();
    for r in bench
        .receiver
        .since(usize::try_from(from).unwrap_or(usize::MAX))
    {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let Some(session) = body["data"]["session_id"].as_str() else {
            continue;
        };
        first.entry(session.to_string()).or_insert(r);
    }
    let (mut from_commit, mut from_answer, mut from_occurred, mut enqueue) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut missing = 0;
    for e in &enqueued {
        enqueue.push((e.answered - e.sent).as_secs_f64() * 1e3);
        let Some(r) = first.get(&e.session_id) else {
            missing += 1;
            continue;
        };
        let wall_ms = r.wall.timestamp_nanos_opt().unwrap_or(0) as f64 / 1e6;
        if let Some(at) = recorded.get(&r.id) {
            from_commit.push(wall_ms - *at as f64);
        }
        let signed = |a: Instant, b: Instant| {
            if a >= b {
                (a - b).as_secs_f64() * 1e3
            } else {
                -(b - a).as_secs_f64() * 1e3
            }
        };
        from_answer.push(signed(r.at, e.answered));
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if let Some(occurred) = body["timestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        {
            from_occurred.push(wall_ms - occurred.timestamp_nanos_opt().unwrap_or(0) as f64 / 1e6);
        }
    }
    let sent_first = enqueued.iter().map(|e| e.sent).min();
    let sent_last = enqueued.iter().map(|e| e.sent).max();
    let achieved = match (sent_first, sent_last) {
        (Some(a), Some(b)) if b > a => {
            (enqueued.len().saturating_sub(1)) as f64 / (b - a).as_secs_f64()
        }
        _ => 0.0,
    };
    Ok(LatencyFigure {
        target_rate: rate,
        achieved_rate: achieved,
        changes: enqueued.len(),
        missing,
        seconds: seconds.as_secs_f64(),
        warmup_seconds: warmup.as_secs_f64(),
        max_send_lag_ms: send_lag.as_secs_f64() * 1e3,
        from_commit: distribution(from_commit),
        from_answer: distribution(from_answer),
        from_occurred: distribution(from_occurred),
        enqueue: distribution(enqueue),
        mean_dispatch_lag_ms: mean_ms(lag_before, lag_after),
        cpu,
    })
}

/// `sessiond-bench webhooks`: the latency run, the plain-POST baseline, the backlog
/// drain, the live run.
pub async fn webhooks(args: &WebhooksArgs) -> Result<WebhooksReport, BenchError> {
    let changes = args.changes.unwrap_or(if args.quick { 300 } else { 5000 });
    let seconds = args.seconds.unwrap_or(if args.quick { 3.0 } else { 20.0 });
    if changes == 0 || args.clients == 0 {
        return Err(BenchError::Other(
            "--changes and --clients must be >= 1".into(),
        ));
    }
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !positive(seconds) || !positive(args.rate) {
        return Err(BenchError::Other("--seconds and --rate must be > 0".into()));
    }
    let warmup = Duration::from_secs_f64(if args.quick { 0.5 } else { 2.0 });
    let load_start = load_average();
    let backend = check_empty(&args.database_url).await?;
    let scratch = Scratch::new()?;
    let receiver = Receiver::start(true).await?;
    let concurrency = args.concurrency;
    let server = Server::start_with(
        &args.database_url,
        &scratch.0,
        // The store's default pool: what `sessiond serve` runs with.
        sessiond::config::Settings::default().max_connections,
        |s| {
            s.secret_key = Some(sessiond::config::SecretText::new(KEK));
            s.webhooks.allow_networks = vec!["127.0.0.0/8".into()];
            s.webhooks.timeout_ms = ATTEMPT_TIMEOUT_MS;
            if let Some(c) = concurrency {
                s.webhooks.concurrency = c;
            }
        },
    )
    .await?;
    let concurrency = concurrency.unwrap_or(sessiond::config::WebhookConfig::default().concurrency);
    let outcome = async {
        server.create_group(0).await?;
        let created = server
            .expect(
                Method::POST,
                "/v1/webhooks",
                &server.admin_key,
                Some(&json!({"url": receiver.url, "description": "sessiond-bench"})),
                StatusCode::CREATED,
            )
            .await?;
        let webhook_id = created["webhook_id"]
            .as_str()
            .ok_or_else(|| BenchError::Other(format!("POST /v1/webhooks: {created}")))?
            .to_string();
        Ok::<_, BenchError>(webhook_id)
    }
    .await;
    let webhook_id = match outcome {
        Ok(id) => id,
        Err(e) => {
            let _ = server.stop().await;
            return Err(e);
        }
    };
    let bench = Arc::new(Bench {
        server,
        receiver,
        webhook_id,
        named: AtomicUsize::new(0),
    });
    let runs = async {
        let lat = latency(&bench, args.rate, warmup, Duration::from_secs_f64(seconds)).await?;
        eprintln!(
            "{:>28}: p99 commit -> receipt {:.1} ms at {:.1} changes/s",
            "latency", lat.from_commit.p99, lat.achieved_rate
        );
        let sample = bench
            .receiver
            .since(0)
            .first()
            .map(|r| r.body.to_vec())
            .unwrap_or_default();
        let baseline = plain_posts(
            &bench,
            changes,
            usize::try_from(concurrency).unwrap_or(64),
            sample,
        )
        .await?;
        eprintln!("{:>28}: {:.0} POSTs/s", "baseline", baseline.deliver_rate());
        let drain = backlog(&bench, changes, args.clients, args.analyze).await?;
        eprintln!(
            "{:>28}: {:.0} deliveries/s (changes produced at {:.0}/s)",
            "backlog drain",
            drain.deliver_rate(),
            drain.produce_rate()
        );
        let live = live(&bench, changes, args.clients).await?;
        eprintln!(
            "{:>28}: {:.0} deliveries/s (changes produced at {:.0}/s)",
            "live",
            live.deliver_rate(),
            live.produce_rate()
        );
        Ok::<_, BenchError>((lat, vec![baseline, drain, live]))
    }
    .await;
    // Every task holding a clone has ended (or, after a failure, been dropped).
    let (latency, throughput) = match Arc::into_inner(bench) {
        Some(bench) => {
            let stopped = bench.server.stop().await;
            let runs = runs?;
            stopped?;
            runs
        }
        None => {
            runs?;
            return Err(BenchError::Other(
                "the bench's server is still shared at its end".into(),
            ));
        }
    };
    drop(scratch);
    let notes = vec![
        format!(
            "one process: the service (HTTP API, projections, dispatcher with concurrency \
             {concurrency}, attempt timeout {ATTEMPT_TIMEOUT_MS} ms), the producers and the \
             loopback receiver (axum on 127.0.0.1, 200 at once, allowed by \
             webhooks.allow_networks 127.0.0.0/8) share the runtime and the machine with the \
             database; each status change is a session enqueued over HTTP into a scaling \
             group without agents (one PENDING change, one delivery, one chain per session)"
        ),
        format!(
            "latency: {} s warm-up, then {} s at {} changes/s, each enqueue sent at its \
             scheduled time (not after the previous answer); commit = the event's \
             recorded_at (in the append transaction; ms precision, so up to 1 ms is added), \
             receipt = the receiver's clock when the request arrived; runs first, on an \
             empty queue",
            latency.warmup_seconds, latency.seconds, latency.target_rate
        ),
        format!(
            "throughput: {changes} changes per run from {} concurrent HTTP clients; backlog \
             drain: the receiver held the dispatcher's first {concurrency} requests until \
             the outbox had all {changes} deliveries, then answered everything at once, and \
             only requests that arrived after the gate opened are counted; CPU is over the \
             delivery window, in cores of the machine's {}",
            args.clients,
            std::thread::available_parallelism()
                .map(|n| n.get().to_string())
                .unwrap_or_else(|_| "?".into())
        ),
    ];
    Ok(WebhooksReport {
        backend,
        concurrency,
        analyzed: args.analyze,
        clients: args.clients,
        throughput,
        latency,
        load: (load_start, load_average()),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_are_nearest_rank_and_keep_negative_latencies() {
        let ms: Vec<f64> = (1..=100).map(f64::from).collect();
        let d = distribution(ms);
        assert_eq!((d.p50, d.p99, d.max), (50.0, 99.0, 100.0));
        let d = distribution(vec![-2.0, 1.0]);
        assert_eq!((d.p50, d.p99, d.max), (-2.0, 1.0, 1.0));
        let d = distribution(Vec::new());
        assert_eq!((d.p50, d.p99, d.max), (0.0, 0.0, 0.0));
    }

    #[test]
    fn a_histogram_mean_is_taken_between_two_readings() {
        assert_eq!(mean_ms(Some((1.0, 10.0)), Some((2.0, 20.0))), Some(100.0));
        assert_eq!(mean_ms(None, Some((0.5, 5.0))), Some(100.0));
        assert_eq!(mean_ms(Some((1.0, 10.0)), Some((1.0, 10.0))), None);
        assert_eq!(mean_ms(Some((1.0, 10.0)), None), None);
    }
}
