//! `sessiond-bench catchup`: projection catch-up into the `sessions` read model vs. the
//! raw global-log read (the physical baseline: what reading the events alone costs),
//! plus a full zero-downtime rebuild of the same log.
//!
//! The log is a synthetic one ([`testkit::world::generate`]: seven-event batch-session
//! lifecycles, interleaved phase by phase), appended before the clock starts.

use projections::engine::{rebuild, reset};
use projections::{Engine, EngineConfig, LogPosition, Projection};
use std::time::Instant;
use store::{EventStore, StoreOptions};

use crate::error::BenchError;
use crate::progress;

/// Options of `sessiond-bench catchup`.
#[derive(Debug, Clone, clap::Args)]
pub struct CatchupArgs {
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
pub async fn catchup(args: &CatchupArgs) -> Result<Vec<Figure>, BenchError> {
    let sessions = if args.quick { 2_000 } else { args.sessions };
    let store = EventStore::open(&args.database_url, &StoreOptions::default()).await?;
    let db = store.db();
    let (existing, _) = db.lag_after(LogPosition::START).await?;
    if existing > 0 {
        return Err(BenchError::Other(format!(
            "the bench database must be empty ({existing} events found)"
        )));
    }
    let per_session =
        domain::fixtures::batch_lifecycle(uuid::Uuid::nil(), chrono::Utc::now()).len();
    let bar = progress::bar((sessions * per_session) as u64, "generate");
    let events =
        testkit::world::generate(&store, sessions, &|appended| bar.set_position(appended)).await?;
    bar.finish_and_clear();

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
    // The same read once more after a checkpoint (PostgreSQL `CHECKPOINT`, SQLite: the
    // WAL folded into the database file and truncated): how much of the baseline is
    // the state the generator left the store in rather than reading itself.
    crate::append::setup::checkpoint(&db).await?;
    let started = Instant::now();
    let mut cursor = LogPosition::START;
    let mut reread = 0u64;
    loop {
        let batch = db.read_log(cursor, args.batch_size).await?;
        let Some(last) = batch.last() else { break };
        cursor = last.log_position();
        reread += batch.len() as u64;
    }
    let after_checkpoint = figure(
        "raw global-log read after a checkpoint",
        reread,
        started.elapsed().as_secs_f64(),
        Some(base_eps),
    );

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
    let bar = progress::bar(events, "catch-up");
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

    let bar = progress::bar(events, "rebuild");
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
    Ok(vec![baseline, after_checkpoint, catch_up, rebuilt])
}
