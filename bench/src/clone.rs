//! `sessiond-bench clone` and `sessiond-bench clone-latency`: the vfolder clone of SPEC
//! §7.3 against its SPEC §10 targets, each with a baseline measured in the same run.
//!
//! - `clone`: a generated tree (one large file of about 60% of the size, thousands of
//!   small files of 4-64 KiB in nested directories, a few symlinks) copied by `cp -a`
//!   and cloned by sessiond through the HTTP API of an in-process server, alternately
//!   (cp, clone, cp, clone), on the same volume; throughput of each run, best and
//!   median, and the ratio sessiond / `cp -a` (target >= 0.8).
//! - `clone-latency`: 16 HTTP/1.1 keep-alive clients alternating
//!   `GET /v1/sessions/{id}` and `POST /v1/sessions`, idle (before and after) and while a
//!   clone of a large tree runs (the window is the clone, from its POST to its task's
//!   `done`); p99 during / idle (target <= 1.2). Baseline: the original design, the copy
//!   (`cp -a` of the same tree) done while one SERIALIZABLE (SQLite: IMMEDIATE)
//!   transaction that touched the vfolder and session rows of the bench's own
//!   mutable-row tables stays open, against 16 writers of short transactions on the
//!   same tables.
//!
//! Both run on a fresh, empty database (they refuse one that holds events); the trees
//! live in a temporary directory under the system's temporary directory, removed at the
//! end (and on failure).
//!
//! # Layout
//! - this module: the options, the reports and the two runs.
//! - [`tree`]: the scratch directory, the size check, the generated tree, `cp -a`, sync.
//! - [`api`]: the in-process server and the few API calls the scenarios make (also
//!   used by the webhooks scenario).
//! - [`load`]: the 16 HTTP clients and their latency windows.
//! - [`baseline`]: the original design on the bench's own tables (`sql/*/clone/`).
//! - [`stats`]: samples, windows and percentiles.

pub mod api;
mod baseline;
mod load;
mod stats;
mod tree;

use std::time::{Duration, Instant};
use store::{EventStore, StoreOptions};

use self::api::Server;
pub use self::stats::WindowFigure;
use self::tree::Scratch;
pub use self::tree::TreeStats;
use crate::error::BenchError;

/// Options of `sessiond-bench clone`.
#[derive(Debug, Clone, clap::Args)]
pub struct CloneArgs {
    /// `postgres://...` or `sqlite://PATH`; an EMPTY database: the bench writes to it.
    #[arg(long, env = "SESSIOND_DATABASE_URL")]
    pub database_url: String,
    /// Size of the generated tree in MiB [default: 2048; 64 with --quick].
    #[arg(long)]
    pub size_mib: Option<u64>,
    /// Runs of each tool, alternating (cp -a, clone, cp -a, clone, ...).
    #[arg(long, default_value_t = 2)]
    pub runs: usize,
    /// The server's `clone_parallelism` (files copied at once) [default: the server's].
    #[arg(long)]
    pub clone_parallelism: Option<u32>,
    /// A small tree, for CI (the numbers are not asserted).
    #[arg(long)]
    pub quick: bool,
}

/// Options of `sessiond-bench clone-latency`.
#[derive(Debug, Clone, clap::Args)]
pub struct CloneLatencyArgs {
    /// `postgres://...` or `sqlite://PATH`; an EMPTY database: the bench writes to it.
    #[arg(long, env = "SESSIOND_DATABASE_URL")]
    pub database_url: String,
    /// Size of the tree being cloned in MiB [default: 2048; 128 with --quick].
    #[arg(long)]
    pub size_mib: Option<u64>,
    /// Length of each idle window (before and after the clone), seconds [default: 10;
    /// 1 with --quick].
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Concurrent HTTP clients (and baseline writers).
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// `pending_timeout` of the bench's scaling group, seconds (0: none). The group has
    /// no agents, so every session stays PENDING; the timeout keeps the queue the
    /// scheduler reads on every pass at a steady size instead of growing over the run.
    #[arg(long, default_value_t = 2)]
    pub pending_timeout: u64,
    /// The server's `clone_parallelism` (files copied at once) [default: the server's].
    #[arg(long)]
    pub clone_parallelism: Option<u32>,
    /// A small tree and short windows, for CI (the numbers are not asserted).
    #[arg(long)]
    pub quick: bool,
}

/// Which tool made a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Tool {
    /// `cp -a src dst`.
    CpA,
    /// `POST /v1/vfolders/{name}/clone` until the task is `done`.
    Sessiond,
}

impl Tool {
    /// What the tables call it.
    pub fn label(self) -> &'static str {
        match self {
            Tool::CpA => "cp -a (baseline)",
            Tool::Sessiond => "sessiond clone (HTTP API)",
        }
    }
}

/// One timed copy.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CloneRun {
    /// 1-based, in run order.
    pub run: usize,
    /// Who copied.
    pub tool: Tool,
    /// Bytes of regular files copied.
    pub bytes: u64,
    /// From the start (cp: spawn; sessiond: the POST) to the end (cp: exit; sessiond:
    /// the task seen `done`).
    pub seconds: f64,
    /// The `syncfs` of the volume right after (the copy's dirty pages written back).
    pub sync_seconds: f64,
    /// sessiond: the task's own `started_at` to `finished_at` (the rest of `seconds`
    /// is the POST, the hand-over to the runner and the polling).
    pub task_seconds: Option<f64>,
    /// CPU time (user + system) the copy took: cp's, or this process's (the
    /// in-process server: its copy threads, the runner, the API), seconds (Linux).
    pub cpu_seconds: Option<f64>,
}

impl CloneRun {
    /// Bytes per second, copy only.
    pub fn rate(&self) -> f64 {
        self.bytes as f64 / self.seconds.max(1e-9)
    }

    /// Bytes per second, copy and the sync after it.
    pub fn rate_with_sync(&self) -> f64 {
        self.bytes as f64 / (self.seconds + self.sync_seconds).max(1e-9)
    }
}

/// The result of `sessiond-bench clone`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CloneReport {
    /// `PostgreSQL` or `SQLite`.
    pub backend: &'static str,
    /// The tree.
    pub tree: TreeStats,
    /// The server's clone parallelism.
    pub parallelism: u32,
    /// Every copy, in run order.
    pub runs: Vec<CloneRun>,
    /// The machine's 1-minute load average at the start and at the end.
    pub load: (Option<f64>, Option<f64>),
    /// What was changed or could not be done, and why.
    pub notes: Vec<String>,
}

/// Best and median throughput of one tool, bytes/s.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Best run.
    pub best: f64,
    /// Median run.
    pub median: f64,
}

impl CloneReport {
    /// Best and median of `tool`'s runs (copy only, or with the sync after it).
    pub fn summary(&self, tool: Tool, with_sync: bool) -> Option<Summary> {
        let mut rates: Vec<f64> = self
            .runs
            .iter()
            .filter(|r| r.tool == tool)
            .map(|r| {
                if with_sync {
                    r.rate_with_sync()
                } else {
                    r.rate()
                }
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        let best = *rates.last()?;
        Some(Summary {
            best,
            median: stats::median(&rates),
        })
    }
}

/// The result of `sessiond-bench clone-latency`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CloneLatencyReport {
    /// `PostgreSQL` or `SQLite`.
    pub backend: &'static str,
    /// Concurrent clients (and baseline writers).
    pub clients: usize,
    /// The tree.
    pub tree: TreeStats,
    /// The server's clone parallelism.
    pub parallelism: u32,
    /// sessiond over HTTP: idle before, during the clone, idle after, idle pooled.
    pub sessiond: Vec<WindowFigure>,
    /// How long the clone took (the "during" window).
    pub clone_seconds: f64,
    /// The baseline's writers: idle, during the long transaction.
    pub baseline: Vec<WindowFigure>,
    /// How long the long transaction stayed open (the copy inside it).
    pub long_transaction_seconds: f64,
    /// How the long transaction ended.
    pub long_transaction_outcome: String,
    /// The machine's 1-minute load average at the start and at the end.
    pub load: (Option<f64>, Option<f64>),
    /// What was changed or could not be done, and why.
    pub notes: Vec<String>,
}

/// The 1-minute load average (Linux `/proc/loadavg`).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Opens the store (applying migrations), refuses a database that holds events, and
/// says which backend it is.
pub async fn check_empty(url: &str) -> Result<&'static str, BenchError> {
    let store = EventStore::open(url, &StoreOptions::default()).await?;
    let existing = store.count_events().await?;
    let backend = match &store {
        EventStore::Postgres(_) => "PostgreSQL",
        EventStore::Sqlite(_) => "SQLite",
    };
    store.close().await;
    if existing > 0 {
        return Err(BenchError::Other(format!(
            "the bench database must be empty ({existing} events found)"
        )));
    }
    Ok(backend)
}

/// `sessiond-bench clone`: `cp -a` and sessiond's clone of the same tree on the same
/// volume, alternately.
pub async fn clone(args: &CloneArgs) -> Result<CloneReport, BenchError> {
    if args.runs == 0 {
        return Err(BenchError::Other("--runs must be >= 1".into()));
    }
    let load_start = load_average();
    let backend = check_empty(&args.database_url).await?;
    let mut notes = Vec::new();
    let scratch = Scratch::new()?;
    let requested = args.size_mib.unwrap_or(if args.quick { 64 } else { 2048 });
    let size = scratch.fit_size(requested, &mut notes)?;
    let staging = scratch.path().join("staging");
    let tree = tree::generate_blocking(staging.clone(), size).await?;

    let server = Server::start(
        &args.database_url,
        &scratch.volume(),
        args.clone_parallelism,
        16,
    )
    .await?;
    let outcome = clone_runs(&server, &scratch, &staging, &tree, args.runs).await;
    let parallelism = server.clone_parallelism;
    let stopped = server.stop().await;
    let runs = outcome?;
    stopped?;
    scratch.remove().await?;
    notes.push(
        "an untimed warm-up cp -a runs first; each copy is timed to its end (cp: exit; sessiond: its task seen `done`, polled \
         every 20 ms; \"task's own seconds\": the task's started_at to finished_at as the \
         server records them; \"CPU s\": user + system time of cp, or of this process, the \
         in-process server, during the clone), then the volume is synced (timed apart: \"+ sync\"), the copy \
         removed and the volume synced again before the next run; the source stays in \
         the page cache (dropping it needs privileges)"
            .into(),
    );
    Ok(CloneReport {
        backend,
        tree,
        parallelism,
        runs,
        load: (load_start, load_average()),
        notes,
    })
}

async fn clone_runs(
    server: &Server,
    scratch: &Scratch,
    staging: &std::path::Path,
    tree: &TreeStats,
    runs: usize,
) -> Result<Vec<CloneRun>, BenchError> {
    let source_id = server.create_vfolder("bench-src").await?;
    let source = server.folder_dir(source_id);
    tree::move_into(staging, &source).await?;
    tree::sync(scratch.path()).await?;
    // A warm-up copy, not timed: the first timed copy would otherwise be the only one
    // writing into memory no copy has used and freed before (on this VM the later ones
    // pay for the host backing the freed page-cache memory again, about a second per
    // 2 GiB, which would favour whichever tool ran first).
    let warm = scratch.volume().join("warm-up");
    tree::cp_a(&source, &warm).await?;
    tree::remove(&warm).await?;
    tree::sync(scratch.path()).await?;
    let mut out = Vec::new();
    for i in 0..runs {
        // cp -a, on the same volume.
        let dst = scratch.volume().join(format!("cp-a-{i}"));
        let cpu = CpuTicks::now();
        let seconds = tree::cp_a(&source, &dst).await?;
        let cpu_seconds = cpu.and_then(|a| Some(CpuTicks::now()?.children_since(a)));
        let sync_seconds = tree::sync(scratch.path()).await?;
        out.push(CloneRun {
            run: out.len() + 1,
            tool: Tool::CpA,
            bytes: tree.bytes,
            seconds,
            sync_seconds,
            task_seconds: None,
            cpu_seconds,
        });
        report_run(out.last());
        tree::remove(&dst).await?;
        tree::sync(scratch.path()).await?;

        // sessiond: POST .../clone until the task is done.
        let target = format!("bench-copy-{i}");
        let cpu = CpuTicks::now();
        let started = Instant::now();
        let task = server.start_clone("bench-src", &target).await?;
        let bar = crate::progress::bar(tree.bytes, "clone");
        let done = server
            .wait_task(task.task_id, Duration::from_millis(20), Some(&bar))
            .await;
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        let cpu_seconds = cpu.and_then(|a| Some(CpuTicks::now()?.own_since(a)));
        let task_seconds = task_seconds(&done?);
        let sync_seconds = tree::sync(scratch.path()).await?;
        out.push(CloneRun {
            run: out.len() + 1,
            tool: Tool::Sessiond,
            bytes: tree.bytes,
            seconds,
            sync_seconds,
            task_seconds,
            cpu_seconds,
        });
        report_run(out.last());
        server.delete_vfolder(&target).await?;
        // The delete task removed the files; make sure, and write the removal back.
        tree::remove(&server.folder_dir(task.vfolder_id)).await?;
        tree::sync(scratch.path()).await?;
    }
    Ok(out)
}

/// CPU ticks of this process and of its waited-for children (`/proc/self/stat`).
#[derive(Debug, Clone, Copy)]
struct CpuTicks {
    own: u64,
    children: u64,
}

/// Ticks per second of `/proc/*/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

impl CpuTicks {
    fn now() -> Option<CpuTicks> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // After the parenthesised command name: state first, then utime (14th field of
        // the line) at index 11, stime 12, cutime 13, cstime 14.
        let after = stat.get(stat.rfind(')')? + 1..)?;
        let f: Vec<u64> = after
            .split_whitespace()
            .skip(11)
            .take(4)
            .filter_map(|v| v.parse().ok())
            .collect();
        match f.as_slice() {
            [utime, stime, cutime, cstime] => Some(CpuTicks {
                own: utime + stime,
                children: cutime + cstime,
            }),
            _ => None,
        }
    }

    fn own_since(self, before: CpuTicks) -> f64 {
        self.own.saturating_sub(before.own) as f64 / TICKS_PER_SEC
    }

    fn children_since(self, before: CpuTicks) -> f64 {
        self.children.saturating_sub(before.children) as f64 / TICKS_PER_SEC
    }
}

/// A task's `finished_at - started_at`, seconds.
fn task_seconds(task: &serde_json::Value) -> Option<f64> {
    let at = |name: &str| {
        task[name]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    };
    let (from, to) = (at("started_at")?, at("finished_at")?);
    (to - from).to_std().ok().map(|d| d.as_secs_f64())
}

fn report_run(run: Option<&CloneRun>) {
    if let Some(r) = run {
        eprintln!(
            "{:>28} run {}: {:>8.3} s  {:>8.1} MiB/s  (+ sync {:.3} s)",
            r.tool.label(),
            r.run,
            r.seconds,
            r.rate() / MIB,
            r.sync_seconds
        );
    }
}

/// Bytes in a MiB, as a float for rates.
pub const MIB: f64 = 1024.0 * 1024.0;

/// `sessiond-bench clone-latency`: API latency idle vs during a clone; the baseline's
/// writers idle vs during a copy inside one long transaction.
pub async fn clone_latency(args: &CloneLatencyArgs) -> Result<CloneLatencyReport, BenchError> {
    let seconds = args.seconds.unwrap_or(if args.quick { 1.0 } else { 10.0 });
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(BenchError::Other("--seconds must be > 0".into()));
    }
    if args.clients == 0 {
        return Err(BenchError::Other("--clients must be >= 1".into()));
    }
    let load_start = load_average();
    let backend = check_empty(&args.database_url).await?;
    let mut notes = Vec::new();
    let scratch = Scratch::new()?;
    let requested = args.size_mib.unwrap_or(if args.quick { 128 } else { 2048 });
    let size = scratch.fit_size(requested, &mut notes)?;
    let staging = scratch.path().join("staging");
    let tree = tree::generate_blocking(staging.clone(), size).await?;
    let window = Duration::from_secs_f64(seconds);

    // 1. sessiond over HTTP.
    let server = Server::start(
        &args.database_url,
        &scratch.volume(),
        args.clone_parallelism,
        // The store's default pool: what `sessiond serve` runs with.
        sessiond::config::Settings::default().max_connections,
    )
    .await?;
    let measured = async {
        let source_id = server.create_vfolder("bench-src").await?;
        let source = server.folder_dir(source_id);
        tree::move_into(&staging, &source).await?;
        tree::sync(scratch.path()).await?;
        let run = load::run(&server, args.clients, window, args.pending_timeout).await?;
        // Room for the baseline's copy: the disk holds the source and one copy at a time.
        server.delete_vfolder(load::TARGET).await?;
        Ok::<_, BenchError>((source, run))
    }
    .await;
    let parallelism = server.clone_parallelism;
    let stopped = server.stop().await;
    let (source, run) = measured?;
    stopped?;
    tree::sync(scratch.path()).await?;

    // 2. The original design, on the bench's own tables in the same database.
    let base = baseline::run(
        &args.database_url,
        args.clients,
        window,
        &source,
        &scratch.volume().join("baseline-copy"),
    )
    .await?;
    scratch.remove().await?;

    notes.push(format!(
        "sessiond: {} clients share one reqwest client (HTTP/1.1 keep-alive), each \
         alternating GET /v1/sessions/{{id}} (one of {} sessions created at set-up) and \
         POST /v1/sessions (a new interactive session in a scaling group with no agents, \
         pending_timeout {} s); 1 s warm-up, then {seconds} s idle, the clone (the window \
         is its POST to its task seen `done`, polled every 20 ms), {seconds} s idle; a \
         request that overlaps the clone belongs to its window, any other to the window \
         it started in; failures are non-2xx answers and \
         transport errors, their latencies included",
        args.clients,
        load::SETUP_SESSIONS,
        args.pending_timeout
    ));
    notes.push(baseline::DESCRIPTION.to_string());
    notes.extend(run.notes);
    Ok(CloneLatencyReport {
        backend,
        clients: args.clients,
        tree,
        parallelism,
        sessiond: run.windows,
        clone_seconds: run.clone_seconds,
        baseline: base.windows,
        long_transaction_seconds: base.long_seconds,
        long_transaction_outcome: base.outcome,
        load: (load_start, load_average()),
        notes,
    })
}
