//! `sessiond bench`: the repo's benchmark harness. Every figure is measured against a
//! baseline in the same run, on the same database, and reported as a ratio.
//!
//! Scenarios so far:
//! - `catchup`: projection catch-up into the `sessions` read model vs. the raw global-log
//!   read (the physical baseline: what reading the events alone costs), plus a full
//!   zero-downtime rebuild of the same log.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use domain::session::{AgentAllocation, Session, SessionCommand, SessionSpec, SessionType};
use domain::{Decider, ResourceSlots};
use indicatif::{ProgressBar, ProgressStyle};
use projections::engine::{rebuild, reset};
use projections::{Engine, EngineConfig, LogPosition, Projection};
use std::time::Instant;
use uuid::Uuid;

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

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len}  {per_sec}  ETA {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(what.to_string());
    bar
}

/// The seven-event lifecycle of one session, decided by the real domain.
fn lifecycle(
    id: Uuid,
    t0: DateTime<Utc>,
) -> Result<Vec<domain::session::SessionEvent>, BenchError> {
    let spec = SessionSpec {
        session_id: id,
        name: format!("bench-{}", id.simple()),
        owner: format!("user{}", id.as_u128() % 97),
        session_type: SessionType::Batch,
        image: "python:3.12".into(),
        scaling_group: "default".into(),
        resources: ResourceSlots::new().with("cpu", 1.into()),
        cluster_size: 1,
        priority: 10,
        starts_at: None,
        batch_timeout: None,
        startup_command: Some("true".into()),
        dependencies: vec![],
        labels: Default::default(),
    };
    let at = |s: i64| t0 + ChronoDuration::seconds(s);
    let commands = vec![
        SessionCommand::Enqueue { spec, now: at(0) },
        SessionCommand::Schedule {
            scaling_group: "default".into(),
            agents: vec![AgentAllocation {
                agent_id: "a1".into(),
                slots: ResourceSlots::new().with("cpu", 1.into()),
            }],
            now: at(1),
        },
        SessionCommand::MarkPreparing { now: at(2) },
        SessionCommand::MarkPrepared { now: at(3) },
        SessionCommand::MarkCreating { now: at(4) },
        SessionCommand::Start { now: at(5) },
        SessionCommand::MarkTerminated {
            reason: String::new(),
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

    let sessions_projection = projections::models::docs::sessions();
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
