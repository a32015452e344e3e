//! The slot-release worker: the acting half of the durable process manager whose
//! projection is `slot_releases` (see `projections::models::slot_releases`). For every
//! ledger entry whose session reached TERMINATED or CANCELLED it sends `ReleaseSlots`
//! to the agent. The command is idempotent, so repeating it after a crash is harmless,
//! and the resulting `SlotsReleased` removes the entry from the projection.

use domain::agent::{Agent, AgentCommand};
use projections::models::slot_releases::SlotReleases;
use uuid::Uuid;

use super::{scheduler_metadata, SchedulerError};
use crate::app::App;
use crate::command::CommandError;

/// Releases handled per call.
pub const RELEASE_BATCH: i64 = 1_000;

/// Releases the slots of ended sessions; returns how many releases were appended.
#[tracing::instrument(skip(app), err)]
pub async fn release_due(app: &App) -> Result<usize, SchedulerError> {
    let due = SlotReleases.due(app.db(), RELEASE_BATCH).await?;
    let meta = scheduler_metadata();
    let mut released: usize = 0;
    for d in due {
        let Ok(session_id) = Uuid::parse_str(&d.session_id) else {
            continue;
        };
        let command = AgentCommand::ReleaseSlots {
            session_id,
            now: app.clock.now(),
        };
        match app
            .commands
            .execute::<Agent>(&d.agent_id, command, &meta)
            .await
        {
            Ok(c) => released = released.saturating_add(c.events.len()),
            Err(CommandError::Rejected(_) | CommandError::Conflict { .. }) => {}
            Err(CommandError::Store(e)) => return Err(e.into()),
        }
    }
    super::stats::releases(released);
    Ok(released)
}
