//! Agent liveness (SPEC §1.4): an ALIVE agent whose last heartbeat is older than
//! `agent_lost_after_secs` is marked LOST (one `AgentLost` event), and its live
//! sessions go to ERROR with `status_info = "agent-lost"`. Nothing of them runs on a
//! lost agent, so the slot-release worker gives their slots back (a restarted agent
//! comes back with its capacity; docs/adr/0008), but they keep their abort notices: an
//! agent that comes back stops whatever of them still runs and reports it. A session
//! that was not moved to ERROR before its agent came back keeps its slots, and the
//! agent reports it `agent-restarted`.
//!
//! The second half is a reconciliation, not a one-shot reaction: every check looks at
//! every LOST agent's sessions, so a crash between `AgentLost` and the sessions' errors
//! is repaired on the next check.

use domain::agent::{Agent, AgentCommand, AgentStatus};
use domain::ids::Reason;
use domain::session::reasons::AGENT_LOST;
use domain::session::{Session, SessionCommand, SessionStatus};
use projections::models::documents;

use super::{scheduler_metadata, SchedulerError};
use crate::app::App;
use crate::command::CommandError;

/// What a liveness check did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LivenessReport {
    /// Agents marked LOST now.
    pub lost: usize,
    /// Sessions moved to ERROR `agent-lost`.
    pub errored: usize,
}

/// Checks every agent once.
#[tracing::instrument(skip(app), err)]
pub async fn check_agents(app: &App) -> Result<LivenessReport, SchedulerError> {
    let now = app.clock.now();
    let now_ms = now.timestamp_millis();
    let lost_after_ms = i64::try_from(app.settings.agent_lost_after_secs)
        .unwrap_or(i64::MAX / 1000)
        .saturating_mul(1000);
    let heartbeats = app.store.heartbeats().await?;
    let meta = scheduler_metadata();
    let mut report = LivenessReport::default();
    let mut lost: Vec<Agent> = Vec::new();
    for agent in documents::agent_occupancy().all(app.db()).await? {
        match agent.status {
            AgentStatus::Alive => {
                let Some(last) = heartbeats.get(&agent.agent_id).copied() else {
                    // Never seen by this store's heartbeat table: start its clock now.
                    app.store.record_heartbeat(&agent.agent_id, now_ms).await?;
                    continue;
                };
                if now_ms.saturating_sub(last) <= lost_after_ms {
                    continue;
                }
                match app
                    .commands
                    .execute::<Agent>(&agent.agent_id, AgentCommand::MarkLost { now }, &meta)
                    .await
                {
                    Ok(c) => {
                        if !c.events.is_empty() {
                            report.lost = report.lost.saturating_add(1);
                            tracing::warn!(agent_id = %agent.agent_id, silent_ms = now_ms.saturating_sub(last), "agent LOST: missed heartbeats");
                        }
                        lost.push(c.state);
                    }
                    Err(CommandError::Rejected(_) | CommandError::Conflict { .. }) => {}
                    Err(CommandError::Store(e)) => return Err(e.into()),
                }
            }
            AgentStatus::Lost => lost.push(agent),
            AgentStatus::Terminated => {}
        }
    }
    for agent in lost {
        // Its live sessions, through the sessions' agent index (its ledger was emptied
        // with `AgentLost`).
        for s in documents::sessions_of_agent(app.db(), &agent.agent_id).await? {
            let (Some(spec), Some(status)) = (&s.spec, s.status) else {
                continue;
            };
            if status.is_terminal() || status == SessionStatus::Error {
                continue;
            }
            let command = SessionCommand::Fail {
                reason: Reason::from_static(AGENT_LOST),
                detail: Some(format!("agent '{}' missed its heartbeats", agent.agent_id)),
                now,
            };
            match app
                .commands
                .execute::<Session>(&spec.session_id.to_string(), command, &meta)
                .await
            {
                Ok(c) => report.errored = report.errored.saturating_add(c.events.len()),
                Err(CommandError::Rejected(_) | CommandError::Conflict { .. }) => {}
                Err(CommandError::Store(e)) => return Err(e.into()),
            }
        }
    }
    super::stats::agents_lost(report.lost, report.errored);
    Ok(report)
}
