//! `slot_releases`: the durable process manager that gives slots back (SPEC §1.4).
//!
//! Slots are held from SCHEDULED until the session reaches TERMINATED or CANCELLED. This
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
use domain::session::SessionEvent;

use super::live_generation;
use crate::db::{Db, Tx};
use crate::log::RecordedEvent;
use crate::{exec_tx, on_pool, Projection, ProjectionError};

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
        "slot_releases"
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
                "Agent" => match e.decode::<AgentEvent>()? {
                    AgentEvent::SlotsAllocated { session_id, .. } => {
                        exec_tx!(tx, c => sqlx::query(
                            "INSERT INTO rm_slot_holds (generation, agent_id, session_id, due) \
                             VALUES ($1, $2, $3, 0) ON CONFLICT (generation, agent_id, session_id) DO NOTHING")
                            .bind(generation).bind(&e.aggregate_id).bind(session_id.to_string())
                            .execute(c).await)?;
                    }
                    AgentEvent::SlotsReleased { session_id, .. } => {
                        exec_tx!(tx, c => sqlx::query(
                            "DELETE FROM rm_slot_holds WHERE generation = $1 AND agent_id = $2 AND session_id = $3")
                            .bind(generation).bind(&e.aggregate_id).bind(session_id.to_string())
                            .execute(c).await)?;
                    }
                    _ => {}
                },
                "Session" => {
                    let event = e.decode::<SessionEvent>()?;
                    if event.target_status().is_some_and(|s| s.is_terminal()) {
                        exec_tx!(tx, c => sqlx::query(
                            "UPDATE rm_slot_holds SET due = 1 WHERE generation = $1 AND session_id = $2")
                            .bind(generation).bind(&e.aggregate_id).execute(c).await)?;
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
        let sql = format!(
            "SELECT agent_id, session_id FROM rm_slot_holds \
             WHERE generation = {} AND due = 1 ORDER BY agent_id, session_id LIMIT $2",
            live_generation(1)
        );
        Ok(
            on_pool!(db, p => sqlx::query_as(&sql).bind("slot_releases").bind(limit).fetch_all(p).await)?,
        )
    }

    /// Every ledger entry this projection knows of, as `(agent, session, due)`.
    pub async fn holds(&self, db: &Db) -> Result<Vec<(String, String, i64)>, ProjectionError> {
        let sql = format!(
            "SELECT agent_id, session_id, due FROM rm_slot_holds \
             WHERE generation = {} ORDER BY agent_id, session_id",
            live_generation(1)
        );
        Ok(on_pool!(db, p => sqlx::query_as(&sql).bind("slot_releases").fetch_all(p).await)?)
    }
}
