//! `sessiond-bench scheduler`: the scheduler and the pending-timeout sweeper at the
//! sizes of SPEC §10 — 10k pending sessions placed onto 1k agents, and a sweep over
//! 100k pending sessions of which 1k have expired.
//!
//! The fixtures are appended as events in large statements (not through the API) and
//! the read models are caught up before the clock starts; the timed part is exactly
//! what a scheduler holding the group's lease does on a tick: one pass of
//! [`Scheduler::schedule_group`] (read queue, sessions, agents and owners; decide;
//! append placements in batches) and one [`sweep_group`].

use chrono::{Duration as ChronoDuration, Utc};
use domain::agent::{Agent, AgentEvent};
use domain::bounds::{ClusterSize, Priority};
use domain::ids::{AgentAddr, AgentId, GroupName, ImageRef, Owner, SessionName};
use domain::scaling_group::{
    GroupSettings, ScalingGroup, ScalingGroupCommand, SchedulerKind, SchedulerOpts,
};
use domain::session::{Session, SessionEvent, SessionSpec, SessionStatus, SessionType};
use domain::ResourceSlots;
use serde_json::json;
use sessiond::app::App;
use sessiond::command::new_events;
use sessiond::config::Settings;
use sessiond::scheduler::sweeper::sweep_group;
use sessiond::scheduler::{scheduler_metadata, Scheduler};
use std::time::Instant;
use store::{EventStore, NewEvent, StoreOptions};
use uuid::Uuid;

use crate::error::BenchError;
use crate::progress;

/// Options of `sessiond-bench scheduler`.
#[derive(Debug, Clone, clap::Args)]
pub struct SchedulerArgs {
    /// `sqlite://PATH` or `postgres://...` (an EMPTY database: the bench writes to it).
    #[arg(long, env = "SESSIOND_DATABASE_URL")]
    pub database_url: String,
    /// Pending sessions to place.
    #[arg(long, default_value_t = 10_000)]
    pub pending: usize,
    /// Agents to place them on.
    #[arg(long, default_value_t = 1_000)]
    pub agents: usize,
    /// Pending sessions in the sweep scenario.
    #[arg(long, default_value_t = 100_000)]
    pub sweep_pending: usize,
    /// Of those, how many have expired.
    #[arg(long, default_value_t = 1_000)]
    pub sweep_expired: usize,
    /// Small sizes, for CI (the numbers are not asserted).
    #[arg(long)]
    pub quick: bool,
}

/// One timed scheduler figure with its SPEC §10 target.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SchedulerFigure {
    /// What was measured.
    pub name: String,
    /// Sessions handled (scheduled or cancelled).
    pub handled: usize,
    /// Seconds taken.
    pub seconds: f64,
    /// The SPEC target in seconds (for these sizes).
    pub target_seconds: f64,
}

fn slots(cpu: i64, mem_gib: i64) -> ResourceSlots {
    ResourceSlots::parse(
        &json!({"cpu": cpu, "mem": format!("{mem_gib}g")}),
        "resources",
        domain::resources::SlotUse::Request,
    )
    .unwrap_or_default()
}

async fn create_group(app: &App, name: &str, opts: serde_json::Value) -> Result<(), BenchError> {
    app.commands
        .execute::<ScalingGroup>(
            name,
            ScalingGroupCommand::Create {
                name: GroupName::parse("name", name)
                    .map_err(|e| BenchError::Other(e.to_string()))?,
                settings: GroupSettings {
                    description: "bench".into(),
                    scheduler_opts: SchedulerOpts::parse(&opts, SchedulerKind::Fifo)
                        .map_err(|e| BenchError::Other(e.to_string()))?,
                    ..GroupSettings::default()
                },
                now: Utc::now(),
            },
            &scheduler_metadata(),
        )
        .await
        .map_err(|e| BenchError::Other(format!("cannot create group {name}: {e}")))?;
    Ok(())
}

async fn append_all(app: &App, rows: Vec<NewEvent>) -> Result<(), BenchError> {
    let bar = progress::bar(rows.len() as u64, "fixtures");
    for chunk in rows.chunks(500) {
        app.store.append(chunk).await?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Catches every read model up, with a spinner (100k enqueues take a while).
async fn catch_up(app: &App) -> Result<(), BenchError> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message("read models catching up");
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let applied = app.catch_up().await?;
    bar.finish_and_clear();
    tracing::debug!(applied, "read models caught up");
    Ok(())
}

fn enqueued(
    group: &str,
    n: usize,
    at: chrono::DateTime<Utc>,
    resources: &ResourceSlots,
) -> Result<Vec<NewEvent>, BenchError> {
    let meta = scheduler_metadata();
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let session_id = Uuid::new_v4();
        let event = SessionEvent::SessionEnqueued {
            spec: SessionSpec {
                callback_url: None,
                session_id,
                name: SessionName::from_stored(format!("{group}-{i}")),
                owner: Owner::from_stored(format!("user-{:03}", i % 100)),
                session_type: SessionType::Batch,
                image: ImageRef::from_stored("python:3.12"),
                scaling_group: GroupName::from_stored(group),
                resources: resources.clone(),
                cluster_size: ClusterSize::default(),
                priority: Priority::default(),
                starts_at: None,
                batch_timeout: None,
                startup_command: Some("true".into()),
                dependencies: vec![],
                labels: Default::default(),
            },
            occurred_at: at,
        };
        rows.extend(new_events::<Session>(
            &session_id.to_string(),
            0,
            &[event],
            &meta,
        )?);
    }
    Ok(rows)
}

/// Runs both scheduler figures on an empty database.
pub async fn scheduler(args: &SchedulerArgs) -> Result<Vec<SchedulerFigure>, BenchError> {
    let (pending, agents, sweep_pending, sweep_expired) = if args.quick {
        (1_000, 100, 10_000, 100)
    } else {
        (
            args.pending,
            args.agents,
            args.sweep_pending,
            args.sweep_expired,
        )
    };
    let store = EventStore::open(&args.database_url, &StoreOptions::default()).await?;
    if store.count_events().await? > 0 {
        return Err(BenchError::Other(
            "the database is not empty; the bench needs an empty one".into(),
        ));
    }
    let app = App::new(store.clone(), Settings::default());
    let meta = scheduler_metadata();
    let now = Utc::now();
    let mut figures = Vec::new();

    // 1. Placement: `pending` sessions of {cpu: 1, mem: 2g} onto `agents` agents of
    //    {cpu: 16, mem: 64g} (room for all of them).
    create_group(&app, "bench", json!({})).await?;
    let mut rows = Vec::new();
    for i in 0..agents {
        let agent_id = format!("agent-{i:05}");
        let event = AgentEvent::AgentRegistered {
            agent_id: AgentId::from_stored(agent_id.clone()),
            scaling_group: GroupName::from_stored("bench"),
            addr: AgentAddr::from_stored(format!("10.0.{}.{}:6001", i / 250, i % 250)),
            available_slots: slots(16, 64),
            occurred_at: now,
        };
        rows.extend(new_events::<Agent>(&agent_id, 0, &[event], &meta)?);
    }
    append_all(&app, rows).await?;
    append_all(&app, enqueued("bench", pending, now, &slots(1, 2))?).await?;
    catch_up(&app).await?;
    let scheduler = Scheduler::new(app.clone());
    let started = Instant::now();
    let report = scheduler
        .schedule_group("bench")
        .await
        .map_err(|e| BenchError::Other(e.to_string()))?;
    let seconds = started.elapsed().as_secs_f64();
    if report.scheduled != pending {
        return Err(BenchError::Other(format!(
            "scheduled {} of {pending} sessions in one pass: {report:?}",
            report.scheduled
        )));
    }
    figures.push(SchedulerFigure {
        name: format!("schedule {pending} pending sessions onto {agents} agents (one pass)"),
        handled: report.scheduled,
        seconds,
        target_seconds: 5.0 * pending as f64 / 10_000.0,
    });

    // 2. Sweep: `sweep_pending` sessions waiting in a group with a one-hour timeout, of
    //    which `sweep_expired` were enqueued two hours ago.
    create_group(&app, "sweep", json!({"pending_timeout": 3600})).await?;
    let old = now - ChronoDuration::hours(2);
    append_all(&app, enqueued("sweep", sweep_expired, old, &slots(1, 1))?).await?;
    append_all(
        &app,
        enqueued("sweep", sweep_pending - sweep_expired, now, &slots(1, 1))?,
    )
    .await?;
    catch_up(&app).await?;
    let started = Instant::now();
    let swept = sweep_group(&app, "sweep")
        .await
        .map_err(|e| BenchError::Other(e.to_string()))?;
    let seconds = started.elapsed().as_secs_f64();
    if swept.cancelled != sweep_expired {
        return Err(BenchError::Other(format!(
            "cancelled {} of {sweep_expired} expired sessions: {swept:?}",
            swept.cancelled
        )));
    }
    figures.push(SchedulerFigure {
        name: format!(
            "pending-timeout sweep over {sweep_pending} pending, {sweep_expired} expired"
        ),
        handled: swept.cancelled,
        seconds,
        target_seconds: 0.2,
    });

    // Sanity: nothing over-allocated, every placed session SCHEDULED.
    app.catch_up().await?;
    for agent in projections::models::documents::agent_occupancy()
        .all(app.db())
        .await?
    {
        if agent.over_capacity() {
            return Err(BenchError::Other(format!(
                "agent {} over-allocated",
                agent.agent_id
            )));
        }
    }
    let scheduled = projections::models::session_list::count_by_status(app.db())
        .await?
        .into_iter()
        .find(|(status, _)| status == SessionStatus::Scheduled.as_str())
        .map_or(0, |(_, n)| usize::try_from(n).unwrap_or(0));
    if scheduled != pending {
        return Err(BenchError::Other(format!(
            "{scheduled} sessions SCHEDULED, expected {pending}"
        )));
    }
    store.close().await;
    Ok(figures)
}
