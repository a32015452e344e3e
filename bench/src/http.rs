//! `sessiond-bench http`: what a user of the HTTP API feels. A real `sessiond serve`
//! process (the binary beside this one, or `--sessiond`) on the given database, driven by
//! an in-repo keep-alive load generator (reqwest, `clients` concurrent tasks, a fixed
//! window after a warm-up, the same cell runner as `append`):
//!
//! - `POST /v1/sessions`, `GET /v1/sessions/{id}` and
//!   `GET /v1/sessions?status=PENDING&limit=100` at 1, 4 and 16 clients, with req/s and
//!   p50/p99/p999;
//! - the baseline, measured first in the same run on the same database: the in-process
//!   append path (`CommandHandler::execute_new` of the same enqueue, the `append`
//!   scenario's `sessiond` path) at the same client counts;
//! - the slope: `POST` again at the largest client count after `--pending` more PENDING
//!   sessions exist for the same owner (appended in-process while the server is down).
//!
//! The sessions wait in a scaling group without agents, so they stay PENDING. The
//! server runs with the per-key rate limit off (`SESSIOND_RATE_LIMIT_PER_SEC=0`: one key
//! sends every request) and logs at `--server-log` (default `info`, one line per request
//! as in production), which the bench drains and discards.

use domain::ids::{GroupName, Owner};
use domain::session::{Session, SessionCommand};
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::json;
use sessiond::auth::{create_key, Role};
use sessiond::command::CommandHandler;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use store::{EventStore, StoreOptions};
use uuid::Uuid;

use crate::append::{percentile_ms, run_cell, CellOutcome, OpStats, Workload};
use crate::error::BenchError;

/// Options of `sessiond-bench http`.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// `postgres://...` or `sqlite://PATH`; an EMPTY database: the bench writes to it.
    #[arg(long, env = "SESSIOND_DATABASE_URL")]
    pub database_url: String,
    /// The `sessiond` binary [default: `sessiond` beside `sessiond-bench`].
    #[arg(long)]
    pub sessiond: Option<PathBuf>,
    /// Measured seconds per cell [default: 10; 1 with --quick].
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Warm-up seconds per cell, run but excluded from the figures [default: 1; 0.5
    /// with --quick].
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Concurrent clients per cell, comma-separated [default: 1,4,16; 1,16 with
    /// --quick].
    #[arg(long, value_delimiter = ',')]
    pub clients: Vec<usize>,
    /// PENDING sessions added for the owner before the slope run [default: 100000; 2000
    /// with --quick].
    #[arg(long)]
    pub pending: Option<u64>,
    /// `RUST_LOG` of the server.
    #[arg(long, default_value = "info")]
    pub server_log: String,
    /// Short cells and a small slope, for CI (the numbers are not asserted).
    #[arg(long)]
    pub quick: bool,
}

/// What one HTTP cell sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum HttpKind {
    /// `POST /v1/sessions` of a new batch session.
    Post,
    /// `GET /v1/sessions/{id}` of one the POSTs created, at random.
    GetById,
    /// `GET /v1/sessions?status=PENDING&limit=100`.
    ListPending,
    /// The in-process append path (`CommandHandler::execute_new`), the baseline.
    InProcess,
}

impl HttpKind {
    /// What the tables call it.
    pub fn label(self) -> &'static str {
        match self {
            HttpKind::Post => "POST /v1/sessions",
            HttpKind::GetById => "GET /v1/sessions/{id}",
            HttpKind::ListPending => "GET /v1/sessions?status=PENDING&limit=100",
            HttpKind::InProcess => "in-process execute_new (baseline)",
        }
    }
}

/// The scaling group the bench's sessions wait in (it has no agents).
const GROUP: &str = "http-bench";
/// The owner of every session the HTTP cells create.
const OWNER: &str = "http-bench-user";
/// Ids kept for the GET-by-id cells.
const KEEP_IDS: usize = 10_000;

/// One HTTP request of a cell, against a running server.
pub struct HttpOp {
    client: reqwest::Client,
    base: String,
    key: String,
    kind: HttpKind,
    /// Session ids the POSTs created (at most [`KEEP_IDS`]), read by GET-by-id.
    ids: Arc<Mutex<Vec<String>>>,
}

impl HttpOp {
    /// One request; `Ok` only for a 2xx answer.
    pub async fn once(&self, rng: &mut StdRng) -> Result<OpStats, BenchError> {
        let failed =
            |e: &dyn std::fmt::Display| BenchError::Other(format!("{}: {e}", self.kind.label()));
        let request = match self.kind {
            HttpKind::Post => self
                .client
                .post(format!("{}/v1/sessions", self.base))
                .json(&json!({
                    "name": format!("h-{}", Uuid::new_v4().simple()),
                    "type": "batch",
                    "image": "python:3.12",
                    "scaling_group": GROUP,
                    "resources": {"cpu": 1, "mem": "1g"},
                    "startup_command": "true",
                })),
            HttpKind::GetById => {
                let id = {
                    let ids = self.ids.lock().map_err(|e| failed(&e))?;
                    if ids.is_empty() {
                        return Err(failed(&"no session ids to read (the POST cells ran none)"));
                    }
                    ids[rng.gen_range(0..ids.len())].clone()
                };
                self.client.get(format!("{}/v1/sessions/{id}", self.base))
            }
            HttpKind::ListPending => self.client.get(format!(
                "{}/v1/sessions?status=PENDING&limit=100",
                self.base
            )),
            HttpKind::InProcess => return Err(failed(&"not an HTTP request")),
        };
        let resp = request
            .bearer_auth(&self.key)
            .send()
            .await
            .map_err(|e| failed(&e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| failed(&e))?;
        if !status.is_success() {
            return Err(failed(&format!(
                "answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        if self.kind == HttpKind::Post {
            let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| failed(&e))?;
            if let Some(id) = v["session_id"].as_str() {
                let mut ids = self.ids.lock().map_err(|e| failed(&e))?;
                if ids.len() < KEEP_IDS {
                    ids.push(id.to_string());
                }
            }
        }
        Ok(OpStats::default())
    }
}

/// One measured cell.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HttpFigure {
    /// What was sent.
    pub kind: HttpKind,
    /// Concurrent clients.
    pub clients: usize,
    /// PENDING sessions of the owner when the cell started (POST cells).
    pub pending_before: Option<u64>,
    /// Whether this is the slope run (after the PENDING fill).
    pub after_fill: bool,
    /// Requests (ops) per second.
    pub per_sec: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// CPU this bench process (the load generator) used, cores (Linux).
    pub bench_cpu_cores: Option<f64>,
    /// CPU the machine used, cores (Linux).
    pub machine_cpu_cores: Option<f64>,
}

/// A SPEC §10 / issue #19 target checked against this run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HttpTarget {
    /// The target.
    pub target: String,
    /// What was measured.
    pub measured: f64,
    /// What is required.
    pub threshold: f64,
    /// Whether it was reached (`measured >= threshold`, or `<=` for latencies).
    pub reached: bool,
}

/// The result of `sessiond-bench http`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HttpReport {
    /// `PostgreSQL` or `SQLite`.
    pub backend: &'static str,
    /// Measured seconds per cell.
    pub seconds: f64,
    /// Every cell, in run order.
    pub figures: Vec<HttpFigure>,
    /// The targets.
    pub targets: Vec<HttpTarget>,
    /// Remarks (what was left out and why).
    pub notes: Vec<String>,
}

impl HttpReport {
    fn rate(&self, kind: HttpKind, clients: usize, slope: bool) -> Option<&HttpFigure> {
        self.figures
            .iter()
            .find(|f| f.kind == kind && f.clients == clients && f.after_fill == slope)
    }
}

/// A `sessiond serve` child process, killed on drop.
struct Serve {
    child: Child,
    base: String,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `bin serve` on `url` and answers once it listens.
    async fn start(bin: &PathBuf, url: &str, admin: &str, log: &str) -> Result<Self, BenchError> {
        let mut child = Command::new(bin)
            .args(["serve", "--database-url", url, "--listen", "127.0.0.1:0"])
            .env_remove("SESSIOND_DATABASE_URL")
            .env("RUST_LOG", log)
            .env("SESSIOND_LOG_FORMAT", "json")
            .env("SESSIOND_BOOTSTRAP_ADMIN_KEY", admin)
            .env("SESSIOND_RATE_LIMIT_PER_SEC", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| BenchError::Other(format!("cannot start {}: {e}", bin.display())))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| BenchError::Other("sessiond serve: no stderr".into()))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let kept = tail.clone();
        std::thread::spawn(move || {
            let mut announced = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !announced {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let addr: String = rest
                            .chars()
                            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                            .collect();
                        announced = tx.send(addr).is_ok();
                    }
                }
                if let Ok(mut t) = kept.lock() {
                    if t.len() >= 40 {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            }
        });
        let mut serve = Serve {
            child,
            base: String::new(),
            tail,
        };
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(120)))
            .await
            .map_err(|e| BenchError::Other(e.to_string()))?;
        match addr {
            Ok(addr) => {
                serve.base = format!("http://{addr}");
                Ok(serve)
            }
            Err(_) => Err(BenchError::Other(format!(
                "sessiond serve did not announce its address; its last lines:\n{}",
                serve.last_lines()
            ))),
        }
    }

    fn last_lines(&self) -> String {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// Waits until the session read models hold every event up to `head`.
    async fn caught_up(
        &self,
        client: &reqwest::Client,
        admin: &str,
        head: Option<i64>,
    ) -> Result<(), BenchError> {
        let Some(head) = head else { return Ok(()) };
        let deadline = std::time::Instant::now() + Duration::from_secs(600);
        loop {
            let r = client
                .get(format!(
                    "{}/v1/sessions?limit=1&min_position={head}",
                    self.base
                ))
                .bearer_auth(admin)
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().as_u16() == 503 => {} // still catching up
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    return Err(BenchError::Other(format!(
                        "waiting for the read models: {status} {body}"
                    )));
                }
                Err(e) => {
                    return Err(BenchError::Other(format!(
                        "waiting for the read models: {e}"
                    )))
                }
            }
            if std::time::Instant::now() > deadline {
                return Err(BenchError::Other(format!(
                    "the read models did not reach position {head} within 600 s; server log:\n{}",
                    self.last_lines()
                )));
            }
        }
    }
}

fn sessiond_binary(args: &HttpArgs) -> Result<PathBuf, BenchError> {
    if let Some(p) = &args.sessiond {
        return Ok(p.clone());
    }
    let me = std::env::current_exe()
        .map_err(|e| BenchError::Other(format!("cannot find this binary: {e}")))?;
    let beside = me.with_file_name("sessiond");
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(BenchError::Other(format!(
            "no sessiond binary at {} (build it: cargo build --release -p sessiond, or pass --sessiond)",
            beside.display()
        )))
    }
}

fn figure(
    kind: HttpKind,
    clients: usize,
    pending_before: Option<u64>,
    seconds: f64,
    mut outcome: CellOutcome,
) -> HttpFigure {
    outcome.latencies_ns.sort_unstable();
    let n = outcome.latencies_ns.len();
    HttpFigure {
        kind,
        clients,
        pending_before,
        after_fill: false,
        per_sec: n as f64 / seconds,
        p50_ms: percentile_ms(&outcome.latencies_ns, 0.50),
        p99_ms: percentile_ms(&outcome.latencies_ns, 0.99),
        p999_ms: percentile_ms(&outcome.latencies_ns, 0.999),
        bench_cpu_cores: outcome.cpu.map(|c| c.process),
        machine_cpu_cores: outcome.cpu.map(|c| c.machine),
    }
}

fn print_cell(f: &HttpFigure) {
    eprintln!(
        "{:>44} x {:>2}: {:>8.0} /s  p50 {:>7.2} ms  p99 {:>7.2} ms  p999 {:>7.2} ms",
        f.kind.label(),
        f.clients,
        f.per_sec,
        f.p50_ms,
        f.p99_ms,
        f.p999_ms
    );
}

/// Appends `n` PENDING sessions of [`OWNER`] in [`GROUP`] in-process (16 at a time).
async fn fill_pending(store: &EventStore, n: u64) -> Result<(), BenchError> {
    let handler = CommandHandler::new(store.clone());
    let meta = Arc::new(testkit::fixtures::meta("bench"));
    let bar = crate::progress::bar(n, "pending");
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (handler, meta, next, bar) = (handler.clone(), meta.clone(), next.clone(), bar.clone());
        tasks.spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                let id = Uuid::new_v4();
                let mut spec = domain::fixtures::batch_spec(id);
                spec.owner = Owner::from_stored(OWNER.to_string());
                spec.scaling_group = GroupName::from_stored(GROUP.to_string());
                let command = SessionCommand::Enqueue {
                    spec,
                    now: chrono::Utc::now(),
                };
                handler
                    .execute_new::<Session>(&id.to_string(), command, &meta)
                    .await
                    .map_err(|e| BenchError::Other(format!("filling PENDING sessions: {e}")))?;
                bar.inc(1);
            }
            Ok::<_, BenchError>(())
        });
    }
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(BenchError::Other(e.to_string()));
            }
        }
    }
    bar.finish_and_clear();
    first_error.map_or(Ok(()), Err)
}

/// The HTTP path against the in-process append path; see the module documentation.
pub async fn http(args: &HttpArgs) -> Result<HttpReport, BenchError> {
    let seconds = args.seconds.unwrap_or(if args.quick { 1.0 } else { 10.0 });
    let warmup = args.warmup.unwrap_or(if args.quick { 0.5 } else { 1.0 });
    if seconds.is_nan() || seconds <= 0.0 || warmup.is_nan() || warmup < 0.0 {
        return Err(BenchError::Other(
            "--seconds must be > 0 and --warmup >= 0".into(),
        ));
    }
    let clients: Vec<usize> = if args.clients.is_empty() && args.quick {
        vec![1, 16]
    } else if args.clients.is_empty() {
        vec![1, 4, 16]
    } else {
        args.clients.clone()
    };
    if clients.contains(&0) {
        return Err(BenchError::Other("--clients must be >= 1".into()));
    }
    let max_clients = clients.iter().copied().max().unwrap_or(1);
    let pending = args
        .pending
        .unwrap_or(if args.quick { 2_000 } else { 100_000 });
    let bin = sessiond_binary(args)?;
    let warmup = Duration::from_secs_f64(warmup);
    let measure = Duration::from_secs_f64(seconds);
    let open = || async {
        EventStore::open(
            &args.database_url,
            &StoreOptions {
                max_connections: u32::try_from(max_clients + 4).unwrap_or(u32::MAX),
                acquire_timeout: Duration::from_secs(30),
                ..StoreOptions::default()
            },
        )
        .await
    };

    // The baseline, in-process, before the server exists (one writer on SQLite).
    let store = open().await?;
    let existing = store.count_events().await?;
    if existing > 0 {
        return Err(BenchError::Other(format!(
            "the bench database must be empty ({existing} events found)"
        )));
    }
    let backend = match &store {
        EventStore::Postgres(_) => "PostgreSQL",
        EventStore::Sqlite(_) => "SQLite",
    };
    let mut figures = Vec::new();
    let baseline = Workload::Sessiond(
        CommandHandler::new(store.clone()),
        Arc::new(testkit::fixtures::meta("bench")),
    );
    for &c in &clients {
        let f = figure(
            HttpKind::InProcess,
            c,
            None,
            seconds,
            run_cell(&baseline, c, warmup, measure).await?,
        );
        print_cell(&f);
        figures.push(f);
    }
    let (_, user_key) = create_key(
        &store.db(),
        Role::User {
            owner: OWNER.into(),
        },
        "sessiond-bench http",
    )
    .await
    .map_err(|e| BenchError::Other(e.to_string()))?;
    let user_key = user_key.expose().to_string();
    let head = store.db().head().await?;
    store.close().await;

    let admin = format!("bench-admin-{}", Uuid::new_v4().simple());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(max_clients * 2)
        .build()
        .map_err(|e| BenchError::Other(e.to_string()))?;
    let server = Serve::start(&bin, &args.database_url, &admin, &args.server_log).await?;
    server.caught_up(&client, &admin, head).await?;
    let r = client
        .post(format!("{}/v1/scaling-groups", server.base))
        .bearer_auth(&admin)
        .json(&json!({"name": GROUP, "description": "sessiond-bench http (no agents)"}))
        .send()
        .await
        .map_err(|e| BenchError::Other(format!("creating the group: {e}")))?;
    if r.status().as_u16() != 201 {
        let body = r.text().await.unwrap_or_default();
        return Err(BenchError::Other(format!(
            "cannot create the group: {body}"
        )));
    }
    let ids = Arc::new(Mutex::new(Vec::new()));
    let op = |kind, base: &str| {
        Workload::Http(Arc::new(HttpOp {
            client: client.clone(),
            base: base.to_string(),
            key: user_key.clone(),
            kind,
            ids: ids.clone(),
        }))
    };
    let mut posted: u64 = 0;
    for &c in &clients {
        for kind in [HttpKind::Post, HttpKind::GetById, HttpKind::ListPending] {
            let outcome = run_cell(&op(kind, &server.base), c, warmup, measure).await;
            let outcome = outcome.map_err(|e| {
                BenchError::Other(format!("{e}; server log:\n{}", server.last_lines()))
            })?;
            let f = figure(
                kind,
                c,
                (kind == HttpKind::Post).then_some(posted),
                seconds,
                outcome,
            );
            print_cell(&f);
            figures.push(f);
        }
        // Every POST of the cell, warm-up included, left a PENDING session behind.
        posted = pending_of_owner(&client, &server.base, &user_key).await?;
    }
    drop(server);

    // The slope: the same POST with `pending` more PENDING sessions for the owner.
    let store = open().await?;
    fill_pending(&store, pending).await?;
    let head = store.db().head().await?;
    store.close().await;
    let server = Serve::start(&bin, &args.database_url, &admin, &args.server_log).await?;
    server.caught_up(&client, &admin, head).await?;
    let before = pending_of_owner(&client, &server.base, &user_key).await?;
    let outcome = run_cell(
        &op(HttpKind::Post, &server.base),
        max_clients,
        warmup,
        measure,
    )
    .await
    .map_err(|e| BenchError::Other(format!("{e}; server log:\n{}", server.last_lines())))?;
    if outcome.latencies_ns.is_empty() {
        return Err(BenchError::Other(format!(
            "no POST completed inside the window after the fill; server log:\n{}",
            server.last_lines()
        )));
    }
    let mut f = figure(HttpKind::Post, max_clients, Some(before), seconds, outcome);
    f.after_fill = true;
    print_cell(&f);
    figures.push(f);
    drop(server);

    let mut report = HttpReport {
        backend,
        seconds,
        figures,
        targets: Vec::new(),
        notes: vec![format!(
            "server: `{} serve` with RUST_LOG={} and the per-key rate limit off; \
             load generator: this process, reqwest with keep-alive, on the same machine",
            bin.display(),
            args.server_log
        )],
    };
    report.targets = targets(&report, max_clients);
    Ok(report)
}

/// PENDING sessions of the owner, from `GET /v1/session-counts`.
async fn pending_of_owner(
    client: &reqwest::Client,
    base: &str,
    key: &str,
) -> Result<u64, BenchError> {
    let r = client
        .get(format!("{base}/v1/session-counts"))
        .bearer_auth(key)
        .send()
        .await
        .map_err(|e| BenchError::Other(format!("GET /v1/session-counts: {e}")))?;
    let v: serde_json::Value = r
        .json()
        .await
        .map_err(|e| BenchError::Other(format!("GET /v1/session-counts: {e}")))?;
    Ok(v["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|i| i["status"] == "PENDING")
                .filter_map(|i| i["count"].as_u64())
                .sum()
        })
        .unwrap_or(0))
}

fn targets(report: &HttpReport, max_clients: usize) -> Vec<HttpTarget> {
    let mut out = Vec::new();
    let mut check = |target: String, measured: Option<f64>, threshold: f64, at_most: bool| {
        if let Some(measured) = measured {
            out.push(HttpTarget {
                target,
                measured,
                threshold,
                reached: if at_most {
                    measured <= threshold
                } else {
                    measured >= threshold
                },
            });
        }
    };
    let post = report.rate(HttpKind::Post, max_clients, false);
    let base = report.rate(HttpKind::InProcess, max_clients, false);
    check(
        format!("HTTP POST >= 0.5 x in-process append, {max_clients} clients"),
        post.zip(base)
            .filter(|(_, b)| b.per_sec > 0.0)
            .map(|(p, b)| p.per_sec / b.per_sec),
        0.5,
        false,
    );
    check(
        format!("HTTP POST p99 <= 20 ms, {max_clients} clients"),
        post.map(|p| p.p99_ms),
        20.0,
        true,
    );
    check(
        format!("GET by id >= 10k/s, {max_clients} clients"),
        report
            .rate(HttpKind::GetById, max_clients, false)
            .map(|g| g.per_sec),
        10_000.0,
        false,
    );
    let slope = report.rate(HttpKind::Post, max_clients, true);
    check(
        format!("POST after the PENDING fill >= 0.9 x the first POST, {max_clients} clients"),
        slope
            .zip(post)
            .filter(|(_, p)| p.per_sec > 0.0)
            .map(|(s, p)| s.per_sec / p.per_sec),
        0.9,
        false,
    );
    out
}
