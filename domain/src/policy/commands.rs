//! Commands on a resource policy, and the limits they set.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::bounds::PolicyCount;
use crate::ids::Owner;
use crate::resources::ResourceSlots;

/// Limits for one owner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// Max sessions that are neither PENDING nor terminal.
    pub max_concurrent_sessions: Option<PolicyCount>,
    /// Max PENDING sessions.
    pub max_pending_sessions: Option<PolicyCount>,
    /// Limit on summed allocated slots.
    pub total_resource_slots: Option<ResourceSlots>,
}

/// Command: replace an owner's policy.
#[derive(Debug, Clone, PartialEq)]
pub struct SetResourcePolicy {
    /// Owner (the aggregate id).
    pub owner: Owner,
    /// New limits.
    pub limits: ResourceLimits,
    /// When.
    pub now: DateTime<Utc>,
}
