//! Events of a resource policy.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::commands::ResourceLimits;
use crate::ids::Owner;

/// Current version of resource-policy events.
pub const RESOURCE_POLICY_EVENT_VERSION: &str = "1";

/// Events of a resource policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ResourcePolicyEvent {
    /// The policy was set.
    ResourcePolicySet {
        /// Owner.
        owner: Owner,
        /// Limits.
        limits: ResourceLimits,
        /// When.
        occurred_at: DateTime<Utc>,
    },
}

impl ResourcePolicyEvent {
    /// When it happened.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        let Self::ResourcePolicySet { occurred_at, .. } = self;
        *occurred_at
    }
}
