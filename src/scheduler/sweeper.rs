//! The pending-timeout sweeper (SPEC §2.4): cancels sessions PENDING longer than their
//! group's `pending_timeout` (from enqueue) with `status_info = "pending_timeout"`.
//!
//! Candidates come from the pending queue's deadline index, so a sweep costs in
//! proportion to the expired sessions, not to every pending one. The cancellation is
//! the Session aggregate's `ExpirePending`, which refuses a session that is no longer
//! PENDING or not yet due: a session scheduled meanwhile is never cancelled, and no lock
//! is held. Expired sessions are cancelled in one append per batch, each decided on its
//! read-model copy at a known version; if any of them moved, the batch conflicts and is
//! redone one by one on loaded state.

use domain::scaling_group::ScalingGroup;
use domain::session::{Session, SessionCommand};
use projections::models::documents;
use projections::models::pending_queue::PendingQueue;

use super::{scheduler_metadata, SchedulerError};
use crate::app::App;
use crate::command::{new_events, CommandError};
use crate::store::NewEvent;

/// Sessions cancelled per sweep (the next tick continues).
pub const SWEEP_LIMIT: i64 = 5_000;

/// What a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Expired candidates found through the deadline index.
    pub expired: usize,
    /// Sessions cancelled.
    pub cancelled: usize,
}

/// Sweeps `group` once (reads the group from its read model).
pub async fn sweep_group(app: &App, group: &str) -> Result<SweepReport, SchedulerError> {
    match documents::scaling_groups().get(app.db(), group).await? {
        Some(sg) => sweep(app, &sg).await,
        None => Ok(SweepReport::default()),
    }
}

/// Sweeps the group `sg` once, with its timeout as it is now.
#[tracing::instrument(skip_all, fields(group = %sg.name), err)]
pub async fn sweep(app: &App, sg: &ScalingGroup) -> Result<SweepReport, SchedulerError> {
    let db = app.db();
    let group = sg.name.as_str();
    let timeout = sg.scheduler_opts.pending_timeout;
    if timeout == 0 {
        return Ok(SweepReport::default());
    }
    let now = app.clock.now();
    let expired = PendingQueue
        .expired_in_group(db, group, now.timestamp_millis(), SWEEP_LIMIT)
        .await?;
    let mut report = SweepReport {
        expired: expired.len(),
        cancelled: 0,
    };
    if expired.is_empty() {
        return Ok(report);
    }
    let ids: Vec<String> = expired.iter().map(|e| e.session_id.clone()).collect();
    let meta = scheduler_metadata();
    let mut rows: Vec<NewEvent> = Vec::new();
    let mut decided: Vec<String> = Vec::new();
    for s in documents::sessions().get_many(db, &ids).await? {
        let Some(spec) = &s.spec else { continue };
        let command = SessionCommand::ExpirePending {
            pending_timeout: timeout,
            now,
        };
        if let Ok(events) = s.decide(command) {
            let id = spec.session_id.to_string();
            rows.extend(new_events::<Session>(
                &id,
                s.version as i64,
                &events,
                &meta,
            )?);
            decided.push(id);
        }
    }
    match app.store.append(&rows).await {
        Ok(_) => report.cancelled = decided.len(),
        Err(e) if e.is_conflict() => {
            for id in decided {
                let command = SessionCommand::ExpirePending {
                    pending_timeout: timeout,
                    now,
                };
                match app.commands.execute::<Session>(&id, command, &meta).await {
                    Ok(c) if !c.events.is_empty() => {
                        report.cancelled = report.cancelled.saturating_add(1)
                    }
                    Ok(_) | Err(CommandError::Rejected(_) | CommandError::Conflict { .. }) => {}
                    Err(CommandError::Store(e)) => return Err(e.into()),
                }
            }
        }
        Err(e) => return Err(e.into()),
    }
    super::stats::timed_out(report.cancelled);
    if report.cancelled > 0 {
        tracing::info!(
            group,
            cancelled = report.cancelled,
            "pending sessions timed out"
        );
    }
    Ok(report)
}
