//! `sessionctl projections status | rebuild | reset`: the read models' checkpoints,
//! a rebuild beside the live tables (with a progress bar per projection), and a reset
//! that a running `sessiond serve` replays in place.

use indicatif::{ProgressBar, ProgressStyle};
use projections::engine::{rebuild, reset, status_of};
use projections::{Engine, EngineConfig, Projection};
use std::sync::Arc;
use std::time::Duration;

use super::{out, pretty_json, CtlError, ProjectionsCommand, RebuildArgs};
use crate::store::EventStore;

/// Runs one `projections` subcommand against every read model the service knows.
pub(super) async fn run(store: &EventStore, cmd: ProjectionsCommand) -> Result<(), CtlError> {
    let engine = Engine::new(
        store.db(),
        projections::models::all(),
        EngineConfig::default(),
    );
    match cmd {
        ProjectionsCommand::Status { json } => status(&engine, json).await,
        ProjectionsCommand::Rebuild(args) => rebuild_all(store, &engine, &args).await,
        ProjectionsCommand::Reset { name } => reset_one(store, &engine, &name).await,
    }
}

/// `projections status`: position, generation, lag and last error of each, as a table
/// or JSON.
async fn status(engine: &Engine, json: bool) -> Result<(), CtlError> {
    let statuses = engine.status().await?;
    if json {
        out(&pretty_json(&statuses)?);
        return Ok(());
    }
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
    Ok(())
}

/// `projections rebuild NAME | --all`: each target rebuilt from the whole log, then
/// swapped in; one progress bar (stderr) and one summary line (stdout) each.
async fn rebuild_all(
    store: &EventStore,
    engine: &Engine,
    args: &RebuildArgs,
) -> Result<(), CtlError> {
    let db = store.db();
    let targets: Vec<Arc<dyn Projection>> = match (&args.name, args.all) {
        (_, true) => projections::models::all(),
        (Some(name), false) => vec![engine.projection(name)?],
        (None, false) => return Err(CtlError::Other("name a projection or pass --all".into())),
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
    Ok(())
}

/// `projections reset NAME`: rows deleted, checkpoint back to the start.
async fn reset_one(store: &EventStore, engine: &Engine, name: &str) -> Result<(), CtlError> {
    let db = store.db();
    let p = engine.projection(name)?;
    reset(&db, p.as_ref()).await?;
    let s = status_of(&db, name).await?;
    out(&format!(
        "{name}: reset; {} events to replay (a running sessiond catches it up)",
        s.lag_events
    ));
    Ok(())
}
