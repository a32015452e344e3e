//! Events of a pending quota.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The current version of every pending-quota event.
pub const PENDING_QUOTA_EVENT_VERSION: &str = "1";

/// Something that happened to a pending quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PendingQuotaEvent {
    /// A new PENDING session was counted.
    PendingQuotaTaken {
        /// The new session.
        session_id: Uuid,
        /// Sessions counted by the quota that the read model did not show yet (the new
        /// one included): the whole state.
        unprojected: Vec<Uuid>,
        /// How many PENDING sessions the owner had with this one.
        pending: u32,
        /// The limit it was decided against.
        limit: u32,
        /// When.
        occurred_at: DateTime<Utc>,
    },
}

impl PendingQuotaEvent {
    /// When it happened.
    pub fn occurred_at(&self) -> chrono::DateTime<chrono::Utc> {
        match self {
            Self::PendingQuotaTaken { occurred_at, .. } => *occurred_at,
        }
    }

    /// The explicit event type string.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::PendingQuotaTaken { .. } => "PendingQuotaTaken",
        }
    }
}
