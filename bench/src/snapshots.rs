//! `sessiond-bench snapshots`: the cost of one command on an agent whose stream is
//! long (issue #18: streams grow with every allocation), with and without snapshots
//! (`store::snapshots`), at several stream lengths.
//!
//! For each length an agent's stream is written directly (a registration, then
//! allocations and releases decided by the domain on an in-memory state, appended in
//! large statements). Then the same commands — alternately `AllocateSlots` and
//! `ReleaseSlots`, each a full load-decide-append through
//! [`CommandHandler`] — are timed on two stores
//! over the same database: one that never snapshots (the baseline: every command folds
//! the whole stream) and one that snapshots every `--every` events. The first load on
//! the snapshotting store (it folds the stream once and writes the snapshot) is
//! reported on its own.

use std::time::Instant;

use chrono::{Duration as ChronoDuration, Utc};
use domain::agent::{Agent, AgentCommand};
use domain::ids::{AgentAddr, AgentId, GroupName};
use domain::resources::SlotUse;
use domain::{Decider, ResourceSlots};
use serde_json::json;
use sessiond::command::{new_events, CommandHandler};
use sessiond::scheduler::scheduler_metadata;
use store::{EventStore, StoreOptions};
use uuid::Uuid;

use crate::agents::percentile;
use crate::error::BenchError;
use crate::progress;

/// Options of `sessiond-bench snapshots`.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotsArgs {
    /// `sqlite://PATH` or `postgres://...` (an EMPTY database: the bench writes to it).
    #[arg(long, env = "SESSIOND_DATABASE_URL")]
    pub database_url: String,
    /// Stream lengths (events) to measure at.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    pub lengths: Vec<usize>,
    /// Timed commands per length and mode.
    #[arg(long, default_value_t = 100)]
    pub commands: usize,
    /// The snapshotting store's `snapshot_every`.
    #[arg(long, default_value_t = store::snapshots::DEFAULT_EVERY)]
    pub every: u64,
    /// Small sizes, for CI (the numbers are not asserted): lengths 500 and 5000, 20
    /// commands.
    #[arg(long)]
    pub quick: bool,
}

/// Command latencies at one stream length, in milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotFigure {
    /// Events in the stream before the timed commands.
    pub events: usize,
    /// Timed commands per mode.
    pub commands: usize,
    /// Without snapshots: p50 and p99 (ms).
    pub without_ms: (f64, f64),
    /// With snapshots: p50 and p99 (ms).
    pub with_ms: (f64, f64),
    /// The first load on the snapshotting store (folds the stream, writes the snapshot).
    pub first_load_ms: f64,
}

/// The report: one figure per length, and the snapshot interval.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotsReport {
    /// `snapshot_every` of the snapshotting store.
    pub every: u64,
    /// Per stream length.
    pub figures: Vec<SnapshotFigure>,
}

fn other(e: impl std::fmt::Display) -> BenchError {
    BenchError::Other(e.to_string())
}

async fn open(url: &str, snapshot_every: u64) -> Result<EventStore, BenchError> {
    let options = StoreOptions {
        snapshot_every,
        ..StoreOptions::default()
    };
    Ok(EventStore::open(url, &options).await?)
}

/// Runs the scenario.
pub async fn snapshots(args: &SnapshotsArgs) -> Result<SnapshotsReport, BenchError> {
    let (lengths, commands) = if args.quick {
        (vec![500, 5_000], 20)
    } else {
        (args.lengths.clone(), args.commands)
    };
    let plain = open(&args.database_url, 0).await?;
    if plain.count_events().await? > 0 {
        return Err(BenchError::Other(
            "the database holds events; the bench needs an empty one".into(),
        ));
    }
    let snapshotting = open(&args.database_url, args.every.max(1)).await?;
    let mut figures = Vec::new();
    for events in lengths {
        let id = format!("bench-agent-{events}");
        write_stream(&plain, &id, events).await?;
        let without = timed(&plain, &id, commands, 0).await?;
        let started = Instant::now();
        snapshotting.load_state::<Agent>(&id).await?;
        let first_load_ms = started.elapsed().as_secs_f64() * 1000.0;
        let with = timed(&snapshotting, &id, commands, commands).await?;
        figures.push(SnapshotFigure {
            events,
            commands,
            without_ms: (percentile(&without, 50.0), percentile(&without, 99.0)),
            with_ms: (percentile(&with, 50.0), percentile(&with, 99.0)),
            first_load_ms,
        });
    }
    Ok(SnapshotsReport {
        every: args.every.max(1),
        figures,
    })
}

fn cpu(n: i64) -> ResourceSlots {
    ResourceSlots::parse(&json!({ "cpu": n }), "slots", SlotUse::Capacity).unwrap_or_default()
}

/// Writes agent `id`'s stream of `events` events: registered, then sessions allocated
/// and released in turn (each release keeps the ledger small, as a busy agent's is).
async fn write_stream(store: &EventStore, id: &str, events: usize) -> Result<(), BenchError> {
    let now = Utc::now() - ChronoDuration::days(1);
    let mut state = Agent::default();
    let mut rows = Vec::with_capacity(events);
    let meta = scheduler_metadata();
    let mut i: u64 = 0;
    let bar = progress::bar(events as u64, "stream");
    while rows.len() < events {
        let command = if i == 0 {
            AgentCommand::Register {
                agent_id: AgentId::parse("agent_id", id).map_err(other)?,
                scaling_group: GroupName::parse("scaling_group", "default").map_err(other)?,
                addr: AgentAddr::parse("addr", "bench.example:6001").map_err(other)?,
                available_slots: cpu(1_000),
                now,
            }
        } else if i % 2 == 1 {
            AgentCommand::AllocateSlots {
                session_id: Uuid::from_u64_pair(0, i),
                slots: cpu(1),
                now,
            }
        } else {
            AgentCommand::ReleaseSlots {
                session_id: Uuid::from_u64_pair(0, i - 1),
                now,
            }
        };
        let decided = state.decide(command).map_err(other)?;
        let version = i64::try_from(rows.len()).map_err(other)?;
        rows.extend(new_events::<Agent>(id, version, &decided, &meta)?);
        for e in &decided {
            state.evolve(e);
        }
        i += 1;
    }
    for chunk in rows.chunks(1_000) {
        store.append(chunk).await?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Times `commands` commands on agent `id` (allocate, release, ...; sessions numbered
/// from `offset` so the two modes never collide), sorted milliseconds.
async fn timed(
    store: &EventStore,
    id: &str,
    commands: usize,
    offset: usize,
) -> Result<Vec<f64>, BenchError> {
    let handler = CommandHandler::new(store.clone());
    let meta = scheduler_metadata();
    let mut out = Vec::with_capacity(commands);
    let bar = progress::bar(commands as u64, "commands");
    for n in 0..commands {
        let session_id = Uuid::from_u64_pair(1, ((offset + n) / 2) as u64);
        let command = if n % 2 == 0 {
            AgentCommand::AllocateSlots {
                session_id,
                slots: cpu(1),
                now: Utc::now(),
            }
        } else {
            AgentCommand::ReleaseSlots {
                session_id,
                now: Utc::now(),
            }
        };
        let started = Instant::now();
        handler
            .execute::<Agent>(id, command, &meta)
            .await
            .map_err(other)?;
        out.push(started.elapsed().as_secs_f64() * 1000.0);
        bar.inc(1);
    }
    bar.finish_and_clear();
    out.sort_by(|a, b| a.total_cmp(b));
    Ok(out)
}
