//! Commands on a pending quota.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Count a new PENDING session against the owner's limit. The application reads, in
/// one snapshot, how many of the owner's sessions the `pending_queue` read model shows
/// and the checkpoint that count reflects, and finds which of the quota's `unprojected`
/// sessions were enqueued at or before that checkpoint, before it builds the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakePendingSlot {
    /// The new session.
    pub session_id: Uuid,
    /// The owner's `max_pending_sessions`.
    pub limit: u32,
    /// The owner's PENDING sessions in the read model (at most `limit` are counted).
    pub pending_in_read_model: u32,
    /// The quota's `unprojected` sessions the read model's count already reflects
    /// (enqueued at or before its checkpoint): counted by `pending_in_read_model`, or
    /// they have left PENDING.
    pub projected: Vec<Uuid>,
    /// When.
    pub now: DateTime<Utc>,
}
