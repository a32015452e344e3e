//! `sessiond-bench append`: the command append path under 1/4/16 concurrent clients for
//! a fixed time per cell — raw single-row INSERTs into `events` (the physical baseline),
//! the plain cqrs-es `CqrsFramework` on postgres-es (sqlite-es on SQLite) driving the
//! domain through `store::adapter::Adapted`, and ours (`CommandHandler::execute_new`) —
//! plus the mutable-status-row design under SERIALIZABLE, without and with one long
//! SERIALIZABLE reader (SPEC §10 baselines). Throughput and p50/p99 latency per cell.
//!
//! Every path runs in one process, on one database, through the store's connection pool
//! (`raw-no-notify-no-ping` through a second pool of its own). The bench creates its
//! baseline table itself (`sql/{postgres,sqlite}/schema.sql`) at the start.
//!
//! # Layout
//! - this module: the options, the paths, the report and the run over every cell.
//! - [`setup`]: the baseline table, the NOTIFY trigger, the status refill, checkpoints.
//! - [`workload`]: what one client does per op on each path; the long reader.
//! - [`cell`]: one cell's clients, measured window, latencies and CPU use.

mod cell;
pub(crate) mod setup;
mod workload;

use domain::session::Session;
use domain::DomainEvent;
use indicatif::{ProgressBar, ProgressStyle};
use sessiond::command::CommandHandler;
use sqlx::postgres::PgPoolOptions;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use store::adapter::Adapted;
use store::{EventStore, StoreError, StoreOptions};
use uuid::Uuid;

pub(crate) use self::cell::{percentile_ms, run_cell, CellOutcome};
pub use self::cell::{CpuMeter, CpuUse};
use self::workload::{enqueue, long_reader, RawRow};
pub(crate) use self::workload::{OpStats, Workload};
use crate::error::BenchError;

/// Options of `sessiond-bench append`.
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

/// One measured path of `sessiond-bench append`.
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

/// The result of `sessiond-bench append`.
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
            ..StoreOptions::default()
        },
    )
    .await?;
    let existing = store.count_events().await?;
    if existing > 0 {
        return Err(BenchError::Other(format!(
            "the bench database must be empty ({existing} events found)"
        )));
    }
    let db = store.db();
    setup::create_schema(&db).await?;
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

    let meta = testkit::fixtures::meta("bench");
    let template = Session::default()
        .decide(enqueue(Uuid::new_v4()))
        .map_err(|e| BenchError::Other(format!("bench enqueue rejected: {e}")))?;
    let Some(event) = template.first() else {
        return Err(BenchError::Other("bench enqueue produced no event".into()));
    };
    let payload = serde_json::to_value(event).map_err(StoreError::Encode)?;
    let metadata = meta.to_json();
    let row = Arc::new(RawRow {
        event_type: event.event_type(),
        event_version: event.event_version(),
        payload_text: payload.to_string(),
        metadata_text: metadata.to_string(),
        payload,
        metadata,
    });
    let meta = Arc::new(meta);
    let handler = CommandHandler::new(store.clone());
    let cqrs_pg = pg.as_ref().map(|p| {
        Arc::new(postgres_es::postgres_cqrs::<Adapted<Session>>(
            p.clone(),
            vec![],
            (),
        ))
    });
    let cqrs_lite = lite.as_ref().map(|p| {
        Arc::new(sqlite_es::sqlite_cqrs::<Adapted<Session>>(
            p.clone(),
            vec![],
            (),
        ))
    });
    // A second pool on the same database, for `raw-no-notify-no-ping` only.
    let ping_free = match (&pg, paths.contains(&AppendPath::RawNoNotifyNoPing)) {
        (Some(_), true) => Some(
            PgPoolOptions::new()
                .max_connections(pool_size)
                .acquire_timeout(Duration::from_secs(30))
                .test_before_acquire(false)
                .connect(&args.database_url)
                .await?,
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
            if pg.is_some() {
                if path.without_notify() != trigger_disabled {
                    setup::set_notify_trigger(&db, !path.without_notify()).await?;
                    trigger_disabled = path.without_notify();
                }
                if path.is_status() {
                    setup::refill_status(&db, args.status_rows).await?;
                }
                // Every cell starts right after a checkpoint: none lands mid-cell by
                // chance, and each pays the same full-page writes after it.
                if let Err(e) = setup::checkpoint(&db).await {
                    if !checkpoint_warned {
                        notes.push(format!("CHECKPOINT before each cell failed ({e}); cells may overlap checkpoints"));
                        checkpoint_warned = true;
                    }
                }
            } else {
                // Same idea on SQLite: start each cell with an empty WAL.
                setup::checkpoint(&db)
                    .await?;
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
    if pg.is_some() && trigger_disabled {
        let restored = setup::set_notify_trigger(&db, true).await;
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
