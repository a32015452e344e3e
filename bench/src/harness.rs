//! `sessiond bench`: the repo's benchmark harness. Every figure is measured against a
//! baseline in the same run, on the same database, and reported as a ratio.
//!
//! Scenarios so far:
//! - `catchup`: projection catch-up into the `sessions` read model vs. the raw global-log
//!   read (the physical baseline: what reading the events alone costs), plus a full
//!   zero-downtime rebuild of the same log.
//! - `append`: the command append path under 1/4/16 concurrent clients for a fixed time
//!   per cell — raw single-row INSERTs into `events` (the physical baseline), the plain
//!   cqrs-es `CqrsFramework` on postgres-es, and ours (`CommandHandler::execute_new`) —
//!   plus the mutable-status-row design under SERIALIZABLE, without and with one long
//!   SERIALIZABLE reader (SPEC §10 baselines). Throughput and p50/p99 latency per cell.
//! - [`scheduler`]: one scheduling pass placing 10k pending sessions on 1k agents, and
//!   one pending-timeout sweep over 100k pending sessions with 1k expired.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use domain::bounds::{ClusterSize, Priority};
use domain::ids::{AgentId, GroupName, ImageRef, Owner, Reason, SessionName};
use domain::session::{AgentAllocation, Session, SessionCommand, SessionSpec, SessionType};
use domain::{Decider, ResourceSlots};
use indicatif::{ProgressBar, ProgressStyle};
use postgres_es::PostgresCqrs;
use projections::engine::{rebuild, reset};
use projections::{Engine, EngineConfig, LogPosition, Projection};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlite_es::SqliteCqrs;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::SqlitePool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub mod scheduler;

use crate::command::{CommandError, CommandHandler};
use crate::store::{EventMetadata, EventStore, NewEvent, StoreError, StoreOptions};

/// Options of `sessiond bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// `sqlite://PATH` or `postgres://...` (an EMPTY database: the bench writes to it).
    #[arg(long, env = "SESSIOND_DATABASE_URL")]
    pub database_url: String,
    /// Sessions to generate (7 events each).
    #[arg(long, default_value_t = 30_000)]
    pub sessions: usize,
    /// Events per projection transaction.
    #[arg(long, default_value_t = 2000)]
    pub batch_size: i64,
    /// Small sizes, for CI (the numbers are not asserted).
    #[arg(long)]
    pub quick: bool,
}

/// Why the bench failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Projection failure.
    #[error(transparent)]
    Projection(#[from] projections::ProjectionError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len}  {per_sec}  ETA {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what.to_string());
    bar
}

/// The spec of a generated batch session.
fn bench_spec(id: Uuid) -> SessionSpec {
    SessionSpec {
        session_id: id,
        name: SessionName::from_stored(format!("bench-{}", id.simple())),
        owner: Owner::from_stored(format!("user{}", id.as_u128() % 97)),
        session_type: SessionType::Batch,
        image: ImageRef::from_stored("python:3.12"),
        scaling_group: GroupName::from_stored("default"),
        resources: ResourceSlots::new().with("cpu", 1.into()),
        cluster_size: ClusterSize::default(),
        priority: Priority::default(),
        starts_at: None,
        batch_timeout: None,
        startup_command: Some("true".into()),
        dependencies: vec![],
        labels: Default::default(),
    }
}

/// The seven-event lifecycle of one session, decided by the real domain.
fn lifecycle(
    id: Uuid,
    t0: DateTime<Utc>,
) -> Result<Vec<domain::session::SessionEvent>, BenchError> {
    let spec = bench_spec(id);
    let at = |s: i64| t0 + ChronoDuration::seconds(s);
    let commands = vec![
        SessionCommand::Enqueue { spec, now: at(0) },
        SessionCommand::Schedule {
            scaling_group: GroupName::from_stored("default"),
            agents: vec![AgentAllocation {
                agent_id: AgentId::from_stored("a1"),
                slots: ResourceSlots::new().with("cpu", 1.into()),
            }],
            now: at(1),
        },
        SessionCommand::MarkPreparing { now: at(2) },
        SessionCommand::MarkPrepared { now: at(3) },
        SessionCommand::MarkCreating { now: at(4) },
        SessionCommand::Start { now: at(5) },
        SessionCommand::MarkTerminated {
            reason: Reason::from_static(domain::session::reasons::SELF_TERMINATED),
            exit_code: Some(0),
            now: at(6),
        },
    ];
    let mut state = Session::default();
    let mut out = Vec::new();
    for c in commands {
        let events = state
            .decide(c)
            .map_err(|e| BenchError::Other(format!("bench lifecycle rejected: {e}")))?;
        for e in &events {
            state.evolve(e);
        }
        out.extend(events);
    }
    Ok(out)
}

/// Appends `sessions` seven-event lifecycles in large batches (a progress bar on
/// stderr); returns the number of events. The lifecycles are interleaved phase by phase
/// (every session is enqueued, then every session is scheduled, ...), so a projection
/// batch touches many sessions that already have a row: the realistic, harder case.
pub async fn generate(store: &EventStore, sessions: usize) -> Result<u64, BenchError> {
    let meta = EventMetadata {
        actor: "bench".into(),
        correlation_id: Uuid::new_v4().to_string(),
        causation_id: Uuid::new_v4().to_string(),
    }
    .to_json();
    let t0 = Utc::now();
    let mut lifecycles = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        let id = Uuid::new_v4();
        lifecycles.push((id.to_string(), lifecycle(id, t0)?));
    }
    let phases = lifecycles.first().map(|(_, l)| l.len()).unwrap_or(0);
    let bar = progress((sessions * phases) as u64, "generate");
    let mut total = 0u64;
    let mut batch = Vec::new();
    for phase in 0..phases {
        for (i, (id, events)) in lifecycles.iter().enumerate() {
            let e = &events[phase];
            batch.push(NewEvent {
                aggregate_type: "Session".into(),
                aggregate_id: id.clone(),
                sequence: phase as i64 + 1,
                event_type: e.event_type().to_string(),
                event_version: domain::session::SESSION_EVENT_VERSION.to_string(),
                payload: serde_json::to_value(e).map_err(StoreError::Encode)?,
                metadata: meta.clone(),
            });
            if batch.len() >= 3500 || i + 1 == sessions {
                total += batch.len() as u64;
                store.append(&batch).await?;
                batch.clear();
                bar.set_position(total);
            }
        }
    }
    bar.finish_and_clear();
    Ok(total)
}

/// One measured figure.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// Events processed.
    pub events: u64,
    /// Seconds taken.
    pub seconds: f64,
    /// Events per second.
    pub events_per_sec: f64,
    /// Ratio to the scenario's baseline in the same run.
    pub ratio_to_baseline: Option<f64>,
}

fn figure(name: &str, events: u64, seconds: f64, baseline: Option<f64>) -> Figure {
    let eps = events as f64 / seconds.max(1e-9);
    Figure {
        name: name.to_string(),
        events,
        seconds,
        events_per_sec: eps,
        ratio_to_baseline: baseline.map(|b| eps / b),
    }
}

/// Projection catch-up and rebuild against the raw log read, in one run.
pub async fn catchup(args: &BenchArgs) -> Result<Vec<Figure>, BenchError> {
    let sessions = if args.quick { 2_000 } else { args.sessions };
    let store = EventStore::open(&args.database_url, &StoreOptions::default()).await?;
    let db = store.db();
    let (existing, _) = db.lag_after(LogPosition::START).await?;
    if existing > 0 {
        return Err(BenchError::Other(format!(
            "the bench database must be empty ({existing} events found)"
        )));
    }
    let events = generate(&store, sessions).await?;

    // Baseline: read the whole log in the same batch size, no projection work.
    let started = Instant::now();
    let mut cursor = LogPosition::START;
    let mut read = 0u64;
    loop {
        let batch = db.read_log(cursor, args.batch_size).await?;
        let Some(last) = batch.last() else { break };
        cursor = last.log_position();
        read += batch.len() as u64;
    }
    let baseline = figure(
        "raw global-log read (baseline)",
        read,
        started.elapsed().as_secs_f64(),
        None,
    );
    let base_eps = baseline.events_per_sec;

    let sessions_projection = projections::models::documents::sessions();
    let engine = Engine::new(
        db.clone(),
        vec![],
        EngineConfig {
            batch_size: args.batch_size,
            ..EngineConfig::default()
        },
    );
    reset(&db, &sessions_projection).await?;
    let bar = progress(events, "catch-up");
    let started = Instant::now();
    let mut applied = 0u64;
    loop {
        let n = engine.step(&sessions_projection).await?;
        if n == 0 {
            break;
        }
        applied += n as u64;
        bar.set_position(applied);
    }
    bar.finish_and_clear();
    let catch_up = figure(
        "sessions projection catch-up",
        applied,
        started.elapsed().as_secs_f64(),
        Some(base_eps),
    );

    let bar = progress(events, "rebuild");
    let started = Instant::now();
    let replayed = rebuild(
        &db,
        &sessions_projection as &dyn Projection,
        args.batch_size,
        |p| bar.set_position(p.replayed),
    )
    .await?;
    bar.finish_and_clear();
    let rebuilt = figure(
        "sessions rebuild (shadow generation + swap)",
        replayed,
        started.elapsed().as_secs_f64(),
        Some(base_eps),
    );
    store.close().await;
    Ok(vec![baseline, catch_up, rebuilt])
}

// ---------------------------------------------------------------------------------------
// `append`: the command append path against its baselines (SPEC §10).

/// Options of `sessiond bench append`.
#[derive(Debug, Clone, clap::Args)]
pub struct AppendArgs {
    /// `postgres://...` (the full set) or `sqlite://PATH`; an EMPTY database: the bench
    /// writes to it.
    #[arg(long, env = "SESSIOND_DATABASE_URL")]
    pub database_url: String,
    /// Measured seconds per cell [default: 10; 2 with --quick].
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Warm-up seconds per cell, run but excluded from the figures.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Concurrent clients (tokio tasks) per cell, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub clients: Vec<usize>,
    /// Paths to measure, comma-separated [default: all; with --quick all but
    /// raw-no-notify-no-ping, cqrs-no-notify and sessiond-no-notify].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub paths: Vec<AppendPath>,
    /// Rows in the mutable status table.
    #[arg(long, default_value_t = 10_000)]
    pub status_rows: usize,
    /// Short cells, for CI (the numbers are not asserted).
    #[arg(long)]
    pub quick: bool,
}

/// One measured path of `sessiond bench append`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppendPath {
    /// One autocommit single-row INSERT into `events` per op (the physical baseline).
    Raw,
    /// The plain cqrs-es `CqrsFramework` on postgres-es (sqlite-es on SQLite):
    /// `execute_with_metadata` of `SessionCommand::Enqueue` for a new session.
    Cqrs,
    /// Ours: `CommandHandler::execute_new` of the same command.
    Sessiond,
    /// `raw` with the `events_notify` trigger disabled (PostgreSQL).
    RawNoNotify,
    /// `raw-no-notify` through a pool that does not ping a connection on every
    /// checkout (`test_before_acquire(false)`; every other path uses the store's pool,
    /// which does, as sqlx does by default) (PostgreSQL).
    RawNoNotifyNoPing,
    /// `cqrs` with the `events_notify` trigger disabled (PostgreSQL).
    CqrsNoNotify,
    /// `sessiond` with the `events_notify` trigger disabled (PostgreSQL).
    SessiondNoNotify,
    /// A mutable status row per session: SERIALIZABLE SELECT + UPDATE (PostgreSQL).
    Status,
    /// `status` while one long SERIALIZABLE reader runs (PostgreSQL).
    StatusReader,
}

impl AppendPath {
    /// Every path, in the order a run measures them at each client count (the trigger
    /// is toggled once per client count).
    const ORDER: [AppendPath; 9] = [
        AppendPath::Raw,
        AppendPath::Cqrs,
        AppendPath::Sessiond,
        AppendPath::RawNoNotify,
        AppendPath::RawNoNotifyNoPing,
        AppendPath::CqrsNoNotify,
        AppendPath::SessiondNoNotify,
        AppendPath::Status,
        AppendPath::StatusReader,
    ];

    /// What the tables call it.
    pub fn label(self) -> &'static str {
        match self {
            AppendPath::Raw => "raw INSERT (baseline)",
            AppendPath::Cqrs => "plain cqrs-es CqrsFramework",
            AppendPath::Sessiond => "sessiond execute_new",
            AppendPath::RawNoNotify => "raw INSERT, NOTIFY trigger off",
            AppendPath::RawNoNotifyNoPing => "raw INSERT, NOTIFY trigger off, no checkout ping",
            AppendPath::CqrsNoNotify => "plain cqrs-es, NOTIFY trigger off",
            AppendPath::SessiondNoNotify => "sessiond, NOTIFY trigger off",
            AppendPath::Status => "status row, SERIALIZABLE",
            AppendPath::StatusReader => "status row, SERIALIZABLE + long reader",
        }
    }

    /// Whether this path runs with the `events_notify` trigger disabled.
    pub fn without_notify(self) -> bool {
        matches!(
            self,
            AppendPath::RawNoNotify
                | AppendPath::RawNoNotifyNoPing
                | AppendPath::CqrsNoNotify
                | AppendPath::SessiondNoNotify
        )
    }

    fn postgres_only(self) -> bool {
        self.without_notify() || matches!(self, AppendPath::Status | AppendPath::StatusReader)
    }

    fn is_status(self) -> bool {
        matches!(self, AppendPath::Status | AppendPath::StatusReader)
    }
}

/// One cell: a path at a client count.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AppendFigure {
    /// What was measured.
    pub path: AppendPath,
    /// Concurrent clients.
    pub clients: usize,
    /// Operations completed inside the measured window (status: committed transactions).
    pub ops: u64,
    /// Length of the measured window.
    pub seconds: f64,
    /// Operations per second.
    pub ops_per_sec: f64,
    /// Median latency of one operation (status: including its retries), ms.
    pub p50_ms: f64,
    /// 99th-percentile latency, ms.
    pub p99_ms: f64,
    /// SQLSTATE 40001 failures (status paths; each one retried).
    pub serialization_failures: u64,
    /// SQLSTATE 40P01 failures (status paths; each one retried).
    pub deadlocks: u64,
    /// Transactions the long reader committed during the cell (warm-up included).
    pub reader_transactions: u64,
    /// Reader transactions that failed with 40001.
    pub reader_failures: u64,
    /// CPU this process used during the measured window, in cores (Linux only).
    pub process_cpu_cores: Option<f64>,
    /// CPU the whole machine used during the window, in cores (Linux only).
    pub machine_cpu_cores: Option<f64>,
}

/// Ratios of throughput at one client count.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AppendRatios {
    /// Concurrent clients.
    pub clients: usize,
    /// Plain cqrs-es / raw.
    pub cqrs_to_raw: Option<f64>,
    /// sessiond / raw.
    pub sessiond_to_raw: Option<f64>,
    /// sessiond / plain cqrs-es.
    pub sessiond_to_cqrs: Option<f64>,
    /// raw with the NOTIFY trigger / raw without it.
    pub raw_notify_to_raw_no_notify: Option<f64>,
    /// raw without the trigger: through a pool that does not ping on checkout / the
    /// store's pool.
    pub raw_no_ping_to_raw_no_notify: Option<f64>,
    /// sessiond / raw, both without the NOTIFY trigger.
    pub sessiond_to_raw_no_notify: Option<f64>,
    /// sessiond / plain cqrs-es, both without the NOTIFY trigger.
    pub sessiond_to_cqrs_no_notify: Option<f64>,
    /// Status row with the long reader / without it.
    pub status_reader_to_status: Option<f64>,
}

/// A SPEC §10 target checked against this run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetVerdict {
    /// The target.
    pub target: String,
    /// Measured ratio.
    pub measured: f64,
    /// Required ratio.
    pub threshold: f64,
    /// Whether `measured >= threshold`.
    pub reached: bool,
}

/// The result of `sessiond bench append`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AppendReport {
    /// `PostgreSQL` or `SQLite`.
    pub backend: &'static str,
    /// Measured seconds per cell.
    pub seconds: f64,
    /// Warm-up seconds per cell (excluded).
    pub warmup: f64,
    /// Pool size (PostgreSQL: every path shares this pool).
    pub pool_size: u32,
    /// One per cell, in run order.
    pub figures: Vec<AppendFigure>,
    /// Per client count.
    pub ratios: Vec<AppendRatios>,
    /// SPEC §10 append-path targets (PostgreSQL, 16 clients).
    pub targets: Vec<TargetVerdict>,
    /// What was skipped or could not be done, and why.
    pub notes: Vec<String>,
}

/// The row the raw path inserts: the same event type, version, payload and metadata as
/// the commands of the other paths produce (only the aggregate id changes per op).
#[derive(Debug)]
struct RawRow {
    event_type: String,
    event_version: String,
    payload: serde_json::Value,
    metadata: serde_json::Value,
    payload_text: String,
    metadata_text: String,
}

const RAW_INSERT_PG: &str = "INSERT INTO events \
    (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
    VALUES ($1, $2, 1, $3, $4, $5, $6)";
const RAW_INSERT_SQLITE: &str = "INSERT INTO events \
    (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
    VALUES (?, ?, 1, ?, ?, ?, ?)";
/// A status op gives up (and fails the bench) after this many serialization failures.
const MAX_STATUS_ATTEMPTS: u32 = 1000;
/// How long the long reader keeps each SERIALIZABLE transaction open.
const READER_HOLD: Duration = Duration::from_secs(1);
const STATUSES: [&str; 4] = ["PENDING", "SCHEDULED", "RUNNING", "TERMINATED"];

/// What one client does per op. Cloned into every client task.
#[derive(Clone)]
enum Workload {
    RawPg(PgPool, Arc<RawRow>),
    RawSqlite(SqlitePool, Arc<RawRow>),
    CqrsPg(Arc<PostgresCqrs<Session>>, Arc<EventMetadata>),
    CqrsSqlite(Arc<SqliteCqrs<Session>>, Arc<EventMetadata>),
    Sessiond(CommandHandler, Arc<EventMetadata>),
    Status(PgPool, usize),
}

/// Retried failures of one op.
#[derive(Debug, Default, Clone, Copy)]
struct OpStats {
    serialization_failures: u64,
    deadlocks: u64,
}

impl OpStats {
    fn add(&mut self, other: OpStats) {
        self.serialization_failures += other.serialization_failures;
        self.deadlocks += other.deadlocks;
    }
}

fn db_err(e: sqlx::Error) -> BenchError {
    BenchError::Store(StoreError::Database(e))
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

fn enqueue(id: Uuid) -> SessionCommand {
    SessionCommand::Enqueue {
        spec: bench_spec(id),
        now: Utc::now(),
    }
}

impl Workload {
    /// One op; `Ok` only once it committed.
    async fn once(&self, rng: &mut StdRng) -> Result<OpStats, BenchError> {
        match self {
            Workload::RawPg(pool, row) => {
                sqlx::query(RAW_INSERT_PG)
                    .bind(<Session as domain::Decider>::TYPE)
                    .bind(Uuid::new_v4().to_string())
                    .bind(&row.event_type)
                    .bind(&row.event_version)
                    .bind(&row.payload)
                    .bind(&row.metadata)
                    .execute(pool)
                    .await
                    .map_err(db_err)?;
            }
            Workload::RawSqlite(pool, row) => {
                sqlx::query(RAW_INSERT_SQLITE)
                    .bind(<Session as domain::Decider>::TYPE)
                    .bind(Uuid::new_v4().to_string())
                    .bind(&row.event_type)
                    .bind(&row.event_version)
                    .bind(&row.payload_text)
                    .bind(&row.metadata_text)
                    .execute(pool)
                    .await
                    .map_err(db_err)?;
            }
            Workload::CqrsPg(cqrs, meta) => {
                let id = Uuid::new_v4();
                cqrs.execute_with_metadata(&id.to_string(), enqueue(id), meta.to_map())
                    .await
                    .map_err(|e| BenchError::Other(format!("postgres-es CqrsFramework: {e}")))?;
            }
            Workload::CqrsSqlite(cqrs, meta) => {
                let id = Uuid::new_v4();
                cqrs.execute_with_metadata(&id.to_string(), enqueue(id), meta.to_map())
                    .await
                    .map_err(|e| BenchError::Other(format!("sqlite-es CqrsFramework: {e}")))?;
            }
            Workload::Sessiond(handler, meta) => {
                let id = Uuid::new_v4();
                handler
                    .execute_new::<Session>(&id.to_string(), enqueue(id), meta)
                    .await
                    .map_err(|e| match e {
                        CommandError::Store(e) => BenchError::Store(e),
                        other => BenchError::Other(format!("sessiond execute_new: {other}")),
                    })?;
            }
            Workload::Status(pool, rows) => {
                let id = format!("s{}", rng.gen_range(0..*rows));
                let mut stats = OpStats::default();
                for _ in 0..MAX_STATUS_ATTEMPTS {
                    match status_transaction(pool, &id).await {
                        Ok(()) => return Ok(stats),
                        Err(e) => match sqlstate(&e).as_deref() {
                            Some("40001") => stats.serialization_failures += 1,
                            Some("40P01") => stats.deadlocks += 1,
                            _ => return Err(db_err(e)),
                        },
                    }
                }
                return Err(BenchError::Other(format!(
                    "status row {id}: still failing after {MAX_STATUS_ATTEMPTS} attempts"
                )));
            }
        }
        Ok(OpStats::default())
    }
}

/// Runs `body` in a SERIALIZABLE transaction on one pooled connection: BEGIN, the body,
/// COMMIT. The transaction is driven by plain statements rather than `sqlx::Transaction`
/// because a COMMIT that fails with 40001 has already ended the transaction on the
/// server, and the ROLLBACK `Transaction` would send after it only draws a warning.
async fn serializable<F>(pool: &PgPool, body: F) -> Result<(), sqlx::Error>
where
    F: for<'c> FnOnce(
        &'c mut sqlx::PgConnection,
    ) -> futures::future::BoxFuture<'c, Result<(), sqlx::Error>>,
{
    let mut conn = pool.acquire().await?;
    sqlx::query("BEGIN ISOLATION LEVEL SERIALIZABLE")
        .execute(&mut *conn)
        .await?;
    match body(&mut conn).await {
        Ok(()) => sqlx::query("COMMIT").execute(&mut *conn).await.map(|_| ()),
        Err(e) => {
            if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                // Never hand a connection back in an unknown transaction state.
                conn.close_on_drop();
            }
            Err(e)
        }
    }
}

/// The mutable-status-row baseline: read a row's status, write the next one, in one
/// SERIALIZABLE transaction (BEGIN, SELECT, UPDATE, COMMIT: four round trips).
async fn status_transaction(pool: &PgPool, id: &str) -> Result<(), sqlx::Error> {
    let id = id.to_string();
    serializable(pool, move |conn| {
        Box::pin(async move {
            let status: String =
                sqlx::query_scalar("SELECT status FROM bench_session_status WHERE id = $1")
                    .bind(&id)
                    .fetch_one(&mut *conn)
                    .await?;
            let next = STATUSES
                .iter()
                .position(|s| *s == status)
                .map(|i| STATUSES[(i + 1) % STATUSES.len()])
                .unwrap_or(STATUSES[0]);
            sqlx::query(
                "UPDATE bench_session_status SET status = $2, updated_at = now() WHERE id = $1",
            )
            .bind(&id)
            .bind(next)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
    })
    .await
}

/// One long SERIALIZABLE reader: an aggregate over the whole status table, then the
/// transaction is kept open for [`READER_HOLD`] before it commits; repeated until
/// `stop`. Returns (committed, failed with 40001).
async fn long_reader(pool: PgPool, stop: Arc<AtomicBool>) -> Result<(u64, u64), BenchError> {
    let (mut committed, mut failed) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let outcome = serializable(&pool, |conn| {
            Box::pin(async move {
                sqlx::query(
                    "SELECT status, count(*), max(updated_at) FROM bench_session_status \
                     GROUP BY status",
                )
                .fetch_all(&mut *conn)
                .await?;
                tokio::time::sleep(READER_HOLD).await;
                Ok(())
            })
        })
        .await;
        match outcome {
            Ok(()) => committed += 1,
            Err(e) if sqlstate(&e).as_deref() == Some("40001") => failed += 1,
            Err(e) => return Err(db_err(e)),
        }
    }
    Ok((committed, failed))
}

/// Latencies (ns) of the ops that completed inside the measured window, and their
/// retried failures.
struct CellOutcome {
    latencies_ns: Vec<u64>,
    stats: OpStats,
    cpu: Option<CpuUse>,
}

/// CPU used during the measured window, in cores (1.0 = one core busy throughout).
#[derive(Debug, Clone, Copy)]
struct CpuUse {
    /// This process (the clients, the pool, sqlx, tokio).
    process: f64,
    /// The whole machine (this process, PostgreSQL, anything else), not idle or iowait.
    machine: f64,
}

/// Cumulative CPU ticks (USER_HZ) of this process and of the machine (busy, total).
#[derive(Debug, Clone, Copy)]
struct CpuTicks {
    process: u64,
    machine_busy: u64,
    machine_total: u64,
    cores: usize,
}

/// Reads /proc (Linux only; `None` elsewhere or if unreadable).
fn cpu_ticks() -> Option<CpuTicks> {
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is the first, utime the 12th.
    let after = own.get(own.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut lines = stat.lines();
    let total_line = lines.next()?;
    let values: Vec<u64> = total_line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    let cores = lines
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    Some(CpuTicks {
        process: utime + stime,
        machine_busy: total.saturating_sub(idle),
        machine_total: total,
        cores,
    })
}

fn cpu_use(a: CpuTicks, b: CpuTicks) -> Option<CpuUse> {
    let total = b.machine_total.checked_sub(a.machine_total)? as f64;
    if total <= 0.0 {
        return None;
    }
    // `total` is the ticks of every core together; scale to cores.
    let per_core = total / a.cores.max(1) as f64;
    Some(CpuUse {
        process: b.process.saturating_sub(a.process) as f64 / per_core,
        machine: b.machine_busy.saturating_sub(a.machine_busy) as f64 / per_core,
    })
}

/// Runs `clients` tasks doing `work` back to back for `warmup + measure`; an op counts
/// if it completed inside the measured window (after the warm-up). No new op starts
/// after the window ends.
async fn run_cell(
    work: &Workload,
    clients: usize,
    warmup: Duration,
    measure: Duration,
) -> Result<CellOutcome, BenchError> {
    let start = Instant::now();
    let from = start + warmup;
    let until = from + measure;
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(from.into()).await;
        let a = cpu_ticks();
        tokio::time::sleep_until(until.into()).await;
        let b = cpu_ticks();
        a.zip(b).and_then(|(a, b)| cpu_use(a, b))
    });
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let work = work.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::from_entropy();
            let mut latencies = Vec::new();
            let mut stats = OpStats::default();
            loop {
                let t0 = Instant::now();
                if t0 >= until {
                    break;
                }
                let op = work.once(&mut rng).await?;
                let t1 = Instant::now();
                if t1 >= from && t1 <= until {
                    latencies.push(u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX));
                    stats.add(op);
                }
            }
            Ok::<_, BenchError>((latencies, stats))
        }));
    }
    let mut out = CellOutcome {
        latencies_ns: Vec::new(),
        stats: OpStats::default(),
        cpu: None,
    };
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok((latencies, stats))) => {
                out.latencies_ns.extend(latencies);
                out.stats.add(stats);
            }
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(BenchError::Other(format!("bench client task: {e}")));
            }
        }
    }
    out.cpu = sampler.await.ok().flatten();
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Nearest-rank percentile of sorted nanoseconds, in milliseconds.
fn percentile_ms(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted_ns.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted_ns.len()) - 1;
    sorted_ns[idx] as f64 / 1e6
}

async fn set_notify_trigger(pool: &PgPool, enabled: bool) -> Result<(), BenchError> {
    let sql = if enabled {
        "ALTER TABLE events ENABLE TRIGGER events_notify"
    } else {
        "ALTER TABLE events DISABLE TRIGGER events_notify"
    };
    sqlx::query(sql).execute(pool).await.map_err(db_err)?;
    Ok(())
}

/// Empties the status table and fills it with `rows` PENDING rows, then vacuums and
/// analyzes it, so every status cell starts from the same state.
async fn refill_status(pool: &PgPool, rows: usize) -> Result<(), BenchError> {
    sqlx::query("TRUNCATE bench_session_status")
        .execute(pool)
        .await
        .map_err(db_err)?;
    sqlx::query(
        "INSERT INTO bench_session_status (id, status, updated_at) \
         SELECT 's' || g, 'PENDING', now() FROM generate_series(0, $1 - 1) AS g",
    )
    .bind(i64::try_from(rows).unwrap_or(i64::MAX))
    .execute(pool)
    .await
    .map_err(db_err)?;
    sqlx::query("VACUUM ANALYZE bench_session_status")
        .execute(pool)
        .await
        .map_err(db_err)?;
    Ok(())
}

fn cells_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} cells  {msg}  {elapsed}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix("append");
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

fn default_paths(quick: bool) -> Vec<AppendPath> {
    AppendPath::ORDER
        .into_iter()
        .filter(|p| {
            !quick
                || !matches!(
                    p,
                    AppendPath::RawNoNotifyNoPing
                        | AppendPath::CqrsNoNotify
                        | AppendPath::SessiondNoNotify
                )
        })
        .collect()
}

/// The append path at 1/4/16 (`--clients`) concurrent clients, every path in one run on
/// one database and one connection pool; see [`AppendPath`].
pub async fn append(args: &AppendArgs) -> Result<AppendReport, BenchError> {
    let seconds = args.seconds.unwrap_or(if args.quick { 2.0 } else { 10.0 });
    if seconds.is_nan() || seconds <= 0.0 || args.warmup.is_nan() || args.warmup < 0.0 {
        return Err(BenchError::Other(
            "--seconds must be > 0 and --warmup >= 0".into(),
        ));
    }
    let clients: Vec<usize> = if args.clients.is_empty() {
        vec![1, 4, 16]
    } else {
        args.clients.clone()
    };
    if clients.contains(&0) {
        return Err(BenchError::Other("--clients must be >= 1".into()));
    }
    if args.status_rows == 0 {
        return Err(BenchError::Other("--status-rows must be >= 1".into()));
    }
    let max_clients = clients.iter().copied().max().unwrap_or(1);
    // Room for every client, the long reader and a few spare (SPEC: pool >= clients + a few).
    let pool_size = u32::try_from(max_clients + 4).unwrap_or(u32::MAX);
    let store = EventStore::open(
        &args.database_url,
        &StoreOptions {
            max_connections: pool_size,
            acquire_timeout: Duration::from_secs(30),
        },
    )
    .await?;
    let existing = store.count_events().await?;
    if existing > 0 {
        return Err(BenchError::Other(format!(
            "the bench database must be empty ({existing} events found)"
        )));
    }
    let (pg, lite) = match &store {
        EventStore::Postgres(s) => (Some(s.pool().clone()), None),
        EventStore::Sqlite(s) => (None, Some(s.writer().clone())),
    };
    let backend = if pg.is_some() { "PostgreSQL" } else { "SQLite" };

    let mut notes = Vec::new();
    let requested = if args.paths.is_empty() {
        default_paths(args.quick)
    } else {
        args.paths.clone()
    };
    let mut paths = Vec::new();
    let mut skipped = Vec::new();
    for p in AppendPath::ORDER {
        if !requested.contains(&p) {
            continue;
        }
        if pg.is_none() && p.postgres_only() {
            skipped.push(p.label());
            continue;
        }
        paths.push(p);
    }
    if !skipped.is_empty() {
        notes.push(format!(
            "skipped on SQLite: {} (PostgreSQL only: SQLite has no NOTIFY trigger, and with \
             one writer at a time no SERIALIZABLE conflicts to measure)",
            skipped.join("; ")
        ));
    }
    if lite.is_some() && paths.contains(&AppendPath::Cqrs) {
        notes.push(
            "SQLite: the plain sqlite-es CqrsFramework runs on the store's single writer \
             connection (SPEC §3: one writer), so its load and its transaction queue there; \
             raw and sessiond write through the same connection"
                .into(),
        );
    }

    let meta = EventMetadata {
        actor: "bench".into(),
        correlation_id: Uuid::new_v4().to_string(),
        causation_id: Uuid::new_v4().to_string(),
    };
    let template = Session::default()
        .decide(enqueue(Uuid::new_v4()))
        .map_err(|e| BenchError::Other(format!("bench enqueue rejected: {e}")))?;
    let Some(event) = template.first() else {
        return Err(BenchError::Other("bench enqueue produced no event".into()));
    };
    let payload = serde_json::to_value(event).map_err(StoreError::Encode)?;
    let metadata = meta.to_json();
    let row = Arc::new(RawRow {
        event_type: cqrs_es::DomainEvent::event_type(event),
        event_version: cqrs_es::DomainEvent::event_version(event),
        payload_text: payload.to_string(),
        metadata_text: metadata.to_string(),
        payload,
        metadata,
    });
    let meta = Arc::new(meta);
    let handler = CommandHandler::new(store.clone());
    let cqrs_pg = pg
        .as_ref()
        .map(|p| Arc::new(postgres_es::postgres_cqrs::<Session>(p.clone(), vec![], ())));
    let cqrs_lite = lite
        .as_ref()
        .map(|p| Arc::new(sqlite_es::sqlite_cqrs::<Session>(p.clone(), vec![], ())));
    // A second pool on the same database, for `raw-no-notify-no-ping` only.
    let ping_free = match (&pg, paths.contains(&AppendPath::RawNoNotifyNoPing)) {
        (Some(_), true) => Some(
            PgPoolOptions::new()
                .max_connections(pool_size)
                .acquire_timeout(Duration::from_secs(30))
                .test_before_acquire(false)
                .connect(&args.database_url)
                .await
                .map_err(db_err)?,
        ),
        _ => None,
    };
    let workload = |path: AppendPath| -> Result<Workload, BenchError> {
        let missing = || BenchError::Other(format!("{} needs PostgreSQL", path.label()));
        Ok(match path {
            AppendPath::RawNoNotifyNoPing => {
                Workload::RawPg(ping_free.clone().ok_or_else(missing)?, row.clone())
            }
            AppendPath::Raw | AppendPath::RawNoNotify => match (&pg, &lite) {
                (Some(p), _) => Workload::RawPg(p.clone(), row.clone()),
                (None, Some(l)) => Workload::RawSqlite(l.clone(), row.clone()),
                (None, None) => return Err(missing()),
            },
            AppendPath::Cqrs | AppendPath::CqrsNoNotify => match (&cqrs_pg, &cqrs_lite) {
                (Some(c), _) => Workload::CqrsPg(c.clone(), meta.clone()),
                (None, Some(c)) => Workload::CqrsSqlite(c.clone(), meta.clone()),
                (None, None) => return Err(missing()),
            },
            AppendPath::Sessiond | AppendPath::SessiondNoNotify => {
                Workload::Sessiond(handler.clone(), meta.clone())
            }
            AppendPath::Status | AppendPath::StatusReader => {
                Workload::Status(pg.clone().ok_or_else(missing)?, args.status_rows)
            }
        })
    };

    let warmup = Duration::from_secs_f64(args.warmup);
    let measure = Duration::from_secs_f64(seconds);
    let plan: Vec<(usize, AppendPath)> = clients
        .iter()
        .flat_map(|&c| paths.iter().map(move |&p| (c, p)))
        .collect();
    let bar = cells_bar(plan.len() as u64);
    let mut figures = Vec::with_capacity(plan.len());
    let mut trigger_disabled = false;
    let mut checkpoint_warned = false;
    let result: Result<(), BenchError> = async {
        for &(clients, path) in &plan {
            bar.set_message(format!("{} x {clients}", path.label()));
            if let Some(pool) = &pg {
                if path.without_notify() != trigger_disabled {
                    set_notify_trigger(pool, !path.without_notify()).await?;
                    trigger_disabled = path.without_notify();
                }
                if path.is_status() {
                    refill_status(pool, args.status_rows).await?;
                }
                // Every cell starts right after a checkpoint: none lands mid-cell by
                // chance, and each pays the same full-page writes after it.
                if let Err(e) = sqlx::query("CHECKPOINT").execute(pool).await {
                    if !checkpoint_warned {
                        notes.push(format!("CHECKPOINT before each cell failed ({e}); cells may overlap checkpoints"));
                        checkpoint_warned = true;
                    }
                }
            } else if let Some(writer) = &lite {
                // Same idea on SQLite: start each cell with an empty WAL.
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(writer)
                    .await
                    .map_err(db_err)?;
            }
            let work = workload(path)?;
            let stop = Arc::new(AtomicBool::new(false));
            let reader = match (&pg, path) {
                (Some(pool), AppendPath::StatusReader) => {
                    Some(tokio::spawn(long_reader(pool.clone(), stop.clone())))
                }
                _ => None,
            };
            let outcome = run_cell(&work, clients, warmup, measure).await;
            stop.store(true, Ordering::Relaxed);
            let (reader_transactions, reader_failures) = match reader {
                Some(task) => task
                    .await
                    .map_err(|e| BenchError::Other(format!("long reader task: {e}")))??,
                None => (0, 0),
            };
            let mut outcome = outcome?;
            outcome.latencies_ns.sort_unstable();
            let ops = outcome.latencies_ns.len() as u64;
            let figure = AppendFigure {
                path,
                clients,
                ops,
                seconds,
                ops_per_sec: ops as f64 / seconds,
                p50_ms: percentile_ms(&outcome.latencies_ns, 0.50),
                p99_ms: percentile_ms(&outcome.latencies_ns, 0.99),
                serialization_failures: outcome.stats.serialization_failures,
                deadlocks: outcome.stats.deadlocks,
                reader_transactions,
                reader_failures,
                process_cpu_cores: outcome.cpu.map(|c| c.process),
                machine_cpu_cores: outcome.cpu.map(|c| c.machine),
            };
            bar.suspend(|| {
                eprintln!(
                    "{:>40} x {:>2}: {:>8.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
                    path.label(),
                    clients,
                    figure.ops_per_sec,
                    figure.p50_ms,
                    figure.p99_ms
                )
            });
            figures.push(figure);
            bar.inc(1);
        }
        Ok(())
    }
    .await;
    bar.finish_and_clear();
    if let (Some(pool), true) = (&pg, trigger_disabled) {
        let restored = set_notify_trigger(pool, true).await;
        if result.is_ok() {
            restored?;
        }
    }
    result?;
    store.close().await;
    if let Some(pool) = &ping_free {
        pool.close().await;
    }

    let ratios = append_ratios(&clients, &figures);
    let mut targets = Vec::new();
    if pg.is_some() {
        if let Some(r) = ratios.iter().find(|r| r.clients == 16) {
            let mut check = |target: &str, measured: Option<f64>, threshold: f64| {
                if let Some(measured) = measured {
                    targets.push(TargetVerdict {
                        target: target.to_string(),
                        measured,
                        threshold,
                        reached: measured >= threshold,
                    });
                }
            };
            check(
                "sessiond >= 0.6 x raw insert, 16 clients",
                r.sessiond_to_raw,
                0.6,
            );
            check(
                "sessiond >= 2.5 x plain postgres-es, 16 clients",
                r.sessiond_to_cqrs,
                2.5,
            );
            check(
                "(NOTIFY trigger off on both) sessiond >= 0.6 x raw insert, 16 clients",
                r.sessiond_to_raw_no_notify,
                0.6,
            );
            check(
                "(NOTIFY trigger off on both) sessiond >= 2.5 x plain postgres-es, 16 clients",
                r.sessiond_to_cqrs_no_notify,
                2.5,
            );
        }
    }
    Ok(AppendReport {
        backend,
        seconds,
        warmup: args.warmup,
        pool_size,
        figures,
        ratios,
        targets,
        notes,
    })
}

fn append_ratios(clients: &[usize], figures: &[AppendFigure]) -> Vec<AppendRatios> {
    let mut out = Vec::new();
    for &c in clients {
        if out.iter().any(|r: &AppendRatios| r.clients == c) {
            continue;
        }
        let ops = |p: AppendPath| {
            figures
                .iter()
                .find(|f| f.clients == c && f.path == p)
                .map(|f| f.ops_per_sec)
        };
        let ratio = |a: AppendPath, b: AppendPath| match (ops(a), ops(b)) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        out.push(AppendRatios {
            clients: c,
            cqrs_to_raw: ratio(AppendPath::Cqrs, AppendPath::Raw),
            sessiond_to_raw: ratio(AppendPath::Sessiond, AppendPath::Raw),
            sessiond_to_cqrs: ratio(AppendPath::Sessiond, AppendPath::Cqrs),
            raw_notify_to_raw_no_notify: ratio(AppendPath::Raw, AppendPath::RawNoNotify),
            raw_no_ping_to_raw_no_notify: ratio(
                AppendPath::RawNoNotifyNoPing,
                AppendPath::RawNoNotify,
            ),
            sessiond_to_raw_no_notify: ratio(AppendPath::SessiondNoNotify, AppendPath::RawNoNotify),
            sessiond_to_cqrs_no_notify: ratio(
                AppendPath::SessiondNoNotify,
                AppendPath::CqrsNoNotify,
            ),
            status_reader_to_status: ratio(AppendPath::StatusReader, AppendPath::Status),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_in_milliseconds() {
        let ns: Vec<u64> = (1..=100).map(|i| i * 1_000_000).collect();
        assert_eq!(percentile_ms(&ns, 0.50), 50.0);
        assert_eq!(percentile_ms(&ns, 0.99), 99.0);
        assert_eq!(percentile_ms(&ns[..1], 0.99), 1.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }

    #[test]
    fn quick_runs_leave_out_the_extra_trigger_off_paths() {
        let quick = default_paths(true);
        assert!(quick.contains(&AppendPath::Raw));
        assert!(quick.contains(&AppendPath::RawNoNotify));
        assert!(quick.contains(&AppendPath::StatusReader));
        assert!(!quick.contains(&AppendPath::SessiondNoNotify));
        assert_eq!(default_paths(false).len(), AppendPath::ORDER.len());
    }

    #[test]
    fn ratios_pair_paths_at_the_same_client_count() {
        let fig = |path, clients, ops_per_sec| AppendFigure {
            path,
            clients,
            ops: 0,
            seconds: 1.0,
            ops_per_sec,
            p50_ms: 0.0,
            p99_ms: 0.0,
            serialization_failures: 0,
            deadlocks: 0,
            reader_transactions: 0,
            reader_failures: 0,
            process_cpu_cores: None,
            machine_cpu_cores: None,
        };
        let figures = vec![
            fig(AppendPath::Raw, 16, 1000.0),
            fig(AppendPath::Cqrs, 16, 250.0),
            fig(AppendPath::Sessiond, 16, 800.0),
            fig(AppendPath::Raw, 1, 100.0),
        ];
        let ratios = append_ratios(&[1, 16], &figures);
        assert_eq!(ratios.len(), 2);
        assert_eq!(ratios[1].sessiond_to_raw, Some(0.8));
        assert_eq!(ratios[1].sessiond_to_cqrs, Some(3.2));
        assert_eq!(ratios[0].sessiond_to_raw, None);
    }
}
