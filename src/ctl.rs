//! `sessionctl`: operator tooling that talks to the store directly.
//!
//! Output for people goes to stdout; progress bars and errors go to stderr. Every
//! failure is one line on stderr and a non-zero exit, never a panic.

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use projections::engine::{rebuild, reset, status_of};
use projections::{Engine, EngineConfig, Projection};
use std::sync::Arc;
use std::time::Duration;

use crate::cli::error_chain;
use crate::config::DEFAULT_DATABASE_URL;
use crate::store::{EventStore, StoreOptions};

/// sessionctl: replay, audit and maintenance tooling for sessiond.
#[derive(Debug, Parser)]
#[command(name = "sessionctl", version, about)]
pub struct Ctl {
    /// `sqlite://PATH` or `postgres://...`
    #[arg(long, global = true, env = "SESSIOND_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Read models: status, rebuild, reset.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
}

/// `sessionctl projections ...`
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Position, lag (events and seconds) and last error of every projection.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild read models from the whole log while the live ones keep serving, then
    /// swap them in.
    Rebuild(RebuildArgs),
    /// Delete a read model's rows and set its checkpoint back to the start; a running
    /// `sessiond serve` rebuilds it in place (reads see it fill up: prefer `rebuild`).
    Reset {
        /// Projection name.
        name: String,
    },
}

/// Arguments of `projections rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Projection name (see `projections status`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub name: Option<String>,
    /// Rebuild every projection.
    #[arg(long)]
    pub all: bool,
    /// Events per transaction.
    #[arg(long, default_value_t = 2000)]
    pub batch_size: i64,
}

/// A one-line failure.
#[derive(Debug, thiserror::Error)]
enum CtlError {
    #[error("cannot open the store: {0}")]
    Open(String),
    #[error(transparent)]
    Projection(#[from] projections::ProjectionError),
    #[error("{0}")]
    Other(String),
}

/// Runs `sessionctl`; returns the exit code.
pub async fn run(ctl: Ctl) -> i32 {
    match execute(ctl).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("sessionctl: {}", error_chain(&e));
            1
        }
    }
}

async fn execute(ctl: Ctl) -> Result<(), CtlError> {
    let store = EventStore::open(&ctl.database_url, &StoreOptions::default())
        .await
        .map_err(|e| CtlError::Open(error_chain(&e)))?;
    let engine = Engine::new(
        store.db(),
        projections::models::all(),
        EngineConfig::default(),
    );
    let result = match ctl.command {
        CtlCommand::Projections(cmd) => projections_command(&store, &engine, cmd).await,
    };
    store.close().await;
    result
}

async fn projections_command(
    store: &EventStore,
    engine: &Engine,
    cmd: ProjectionsCommand,
) -> Result<(), CtlError> {
    let db = store.db();
    match cmd {
        ProjectionsCommand::Status { json } => {
            let statuses = engine.status().await?;
            if json {
                let text = serde_json::to_string_pretty(&statuses)
                    .map_err(|e| CtlError::Other(e.to_string()))?;
                out(&text);
            } else {
                out(&format!(
                    "{:<16} {:>10} {:>4} {:>10} {:>9}  {:<32} last error",
                    "projection", "position", "gen", "lag", "lag (s)", "updated"
                ));
                for s in statuses {
                    out(&format!(
                        "{:<16} {:>10} {:>4} {:>10} {:>9.1}  {:<32} {}",
                        s.name,
                        s.position,
                        s.generation,
                        s.lag_events,
                        s.lag_seconds,
                        s.updated_at,
                        s.last_error.as_deref().unwrap_or("-")
                    ));
                }
            }
        }
        ProjectionsCommand::Rebuild(args) => {
            let targets: Vec<Arc<dyn Projection>> = match (&args.name, args.all) {
                (_, true) => projections::models::all(),
                (Some(name), false) => vec![engine.projection(name)?],
                (None, false) => {
                    return Err(CtlError::Other("name a projection or pass --all".into()))
                }
            };
            let (total, _) = db.lag_after(projections::LogPosition::START).await?;
            for p in targets {
                let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>16} [{bar:40}] {pos}/{len} events  {per_sec}  ETA {eta}",
                    )
                    .map_err(|e| CtlError::Other(e.to_string()))?
                    .progress_chars("=> "),
                );
                bar.set_prefix(p.name());
                bar.enable_steady_tick(Duration::from_millis(200));
                let replayed = rebuild(&db, p.as_ref(), args.batch_size, |pr| {
                    if pr.replayed > bar.length().unwrap_or(0) {
                        bar.set_length(pr.replayed);
                    }
                    bar.set_position(pr.replayed);
                })
                .await?;
                bar.finish();
                let elapsed = bar.elapsed().as_secs_f64().max(1e-9);
                out(&format!(
                    "{}: rebuilt from {replayed} events in {elapsed:.2}s ({:.0} events/s); swapped in",
                    p.name(),
                    replayed as f64 / elapsed
                ));
            }
        }
        ProjectionsCommand::Reset { name } => {
            let p = engine.projection(&name)?;
            reset(&db, p.as_ref()).await?;
            let s = status_of(&db, &name).await?;
            out(&format!(
                "{name}: reset; {} events to replay (a running sessiond catches it up)",
                s.lag_events
            ));
        }
    }
    Ok(())
}

/// Writes a line of command output to stdout.
#[allow(clippy::print_stdout)]
fn out(line: &str) {
    println!("{line}");
}
