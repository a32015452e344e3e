//! The read models.
//!
//! - [`docs`]: `sessions`, `scaling_groups`, `agent_occupancy` — each row is an
//!   aggregate folded from its stream (`doc`, JSON) plus the columns queries filter on.
//! - [`pending_queue`]: PENDING sessions per scaling group, scheduler-ordered, with the
//!   pending-timeout deadline.
//! - [`audit_log`]: a flat timeline of every event.
//! - [`slot_releases`]: the durable process manager that releases an ended session's
//!   slots.

pub mod audit_log;
pub mod docs;
pub mod pending_queue;
pub mod session_list;
pub mod slot_releases;

use std::sync::Arc;

use crate::Projection;

/// Name of the `sessions` read model.
pub const SESSIONS: &str = "sessions";
/// Name of the `scaling_groups` read model.
pub const SCALING_GROUPS: &str = "scaling_groups";
/// Name of the `agent_occupancy` read model.
pub const AGENT_OCCUPANCY: &str = "agent_occupancy";
/// Name of the `pending_queue` read model.
pub const PENDING_QUEUE: &str = "pending_queue";
/// Name of the `audit_log` read model.
pub const AUDIT_LOG: &str = "audit_log";
/// Name of the `slot_releases` process manager's read model.
pub const SLOT_RELEASES: &str = "slot_releases";

/// A value bound into a read-model row.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// Text.
    Text(String),
    /// Integer.
    Int(i64),
    /// NULL.
    Null,
}

/// Pushes one [`SqlValue`] as a bind parameter of a `QueryBuilder` separator.
#[macro_export]
macro_rules! push_value {
    ($sep:expr, $v:expr) => {
        match $v {
            $crate::models::SqlValue::Text(s) => $sep.push_bind(s.clone()),
            $crate::models::SqlValue::Int(i) => $sep.push_bind(*i),
            $crate::models::SqlValue::Null => $sep.push_bind(None::<i64>),
        }
    };
}

/// Every read model, in the order the engine runs them.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(docs::sessions()),
        Arc::new(docs::scaling_groups()),
        Arc::new(docs::agent_occupancy()),
        Arc::new(pending_queue::PendingQueue),
        Arc::new(audit_log::AuditLog),
        Arc::new(slot_releases::SlotReleases),
    ]
}

/// SQL for "the live generation of projection $N".
pub(crate) fn live_generation(param: usize) -> String {
    format!("COALESCE((SELECT generation FROM projection_checkpoints WHERE name = ${param}), 1)")
}

/// Rows per multi-row statement (SQLite allows 32766 bind parameters).
pub(crate) const CHUNK: usize = 400;
