//! Events of a name claim.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The current version of every name-claim event.
pub const NAME_CLAIM_EVENT_VERSION: &str = "1";

/// Something that happened to a name claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NameClaimEvent {
    /// The name now belongs to `holder`.
    NameClaimed {
        /// The holder.
        holder: Uuid,
        /// When.
        occurred_at: DateTime<Utc>,
    },
}

impl NameClaimEvent {
    /// When it happened.
    pub fn occurred_at(&self) -> chrono::DateTime<chrono::Utc> {
        match self {
            Self::NameClaimed { occurred_at, .. } => *occurred_at,
        }
    }

    /// The explicit event type string.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::NameClaimed { .. } => "NameClaimed",
        }
    }
}
