//! `slot_releases`: the durable process manager that gives slots back (SPEC §1.4).
//!
//! Slots are held from SCHEDULED until the session reaches TERMINATED or CANCELLED, or
//! ERROR with `agent-lost`, or until its agent reports the kernel gone while it is in
//! ERROR (docs/adr/0008). This
//! projection keeps one row per ledger entry (agent, session) — inserted on
//! `SlotsAllocated`, deleted on `SlotsReleased` — and marks the rows of a session `due`
//! when the session ends. A worker (`sessiond`'s scheduler workers) reads the due rows
//! and sends `ReleaseSlots` to each agent; the resulting `SlotsReleased` deletes the row.
//! Because the checkpoint advances with these rows in one transaction, a terminal event
//! is never lost or handled twice, whatever crashes; `ReleaseSlots` is idempotent, so a
//! worker that repeats itself after a crash does no harm.
//!
//! The scheduler appends `SlotsAllocated` in the same statement as `SessionScheduled`,
//! so an allocation always precedes its session's terminal event in the log.

use async_trait::async_trait;
use domain::agent::AgentEvent;
use domain::session::reasons::AGENT_LOST;
use domain::session::SessionEvent;

use domain::agent::Agent;
use domain::session::Session;
use domain::Decider;
use store::db::{Db, Tx};
use store::{args, sql, RecordedEvent};

use super::SLOT_RELEASES;
use crate::{Projection, ProjectionError};

/// The slot-release process manager's projection.
#[derive(Debug, Clone, Copy)]
pub struct SlotReleases;

/// A ledger entry whose session has ended: its slots are to be released.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DueRelease {
    /// The agent holding the slots.
    pub agent_id: String,
    /// The ended session.
    pub session_id: String,
}

#[async_trait]
impl Projection for SlotReleases {
    fn name(&self) -> &'static str {
        SLOT_RELEASES
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_slot_holds"]
    }

    async fn apply(
        &self,
        tx: &mut Tx,
        generation: i64,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for e in events {
            match e.aggregate_type.as_str() {
                Agent::TYPE => match e.decode::<AgentEvent>()? {
                    AgentEvent::SlotsAllocated { session_id, .. } => {
                        tx.execute(
                            &sql!(common "slot_releases/hold"),
                            args![generation, &e.aggregate_id, session_id.to_string()],
                        )
                        .await?;
                    }
                    AgentEvent::SlotsReleased { session_id, .. } => {
                        tx.execute(
                            &sql!(common "slot_releases/released"),
                            args![generation, &e.aggregate_id, session_id.to_string()],
                        )
                        .await?;
                    }
                    _ => {}
                },
                Session::TYPE => {
                    let event = e.decode::<SessionEvent>()?;
                    if event.target_status().is_some_and(|s| s.is_terminal()) {
                        tx.execute(
                            &sql!(common "slot_releases/ended"),
                            args![generation, &e.aggregate_id],
                        )
                        .await?;
                    } else if matches!(&event, SessionEvent::SessionErrored { reason, .. } if reason == AGENT_LOST)
                    {
                        // Its agent was lost: nothing of it runs there any more (and a
                        // revived agent must not find its capacity taken by it).
                        tx.execute(
                            &sql!(common "slot_releases/ended"),
                            args![generation, &e.aggregate_id],
                        )
                        .await?;
                    } else if let SessionEvent::SessionErrored { ended_on, .. }
                    | SessionEvent::SessionKernelEnded { ended_on, .. } = &event
                    {
                        // An agent reported the kernel gone (an ERROR it reported, or
                        // the acknowledgement of a stop): nothing holds those slots.
                        for agent in ended_on {
                            tx.execute(
                                &sql!(common "slot_releases/ended_on_agent"),
                                args![generation, &e.aggregate_id, agent],
                            )
                            .await?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl SlotReleases {
    /// Up to `limit` releases to do, through the `due` index.
    pub async fn due(&self, db: &Db, limit: i64) -> Result<Vec<DueRelease>, ProjectionError> {
        Ok(db
            .fetch_all(
                &sql!(common "slot_releases/due"),
                args![SLOT_RELEASES, limit],
            )
            .await?)
    }

    /// Every ledger entry this projection knows of, as `(agent, session, due)`.
    pub async fn holds(&self, db: &Db) -> Result<Vec<(String, String, i64)>, ProjectionError> {
        Ok(db
            .fetch_all(&sql!(common "slot_releases/holds"), args![SLOT_RELEASES])
            .await?)
    }
}
