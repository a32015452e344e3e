//! Owner resource policies (SPEC §1.5). A missing policy (or a missing limit) means
//! unlimited. Setting a policy is an event on the `ResourcePolicy` aggregate, keyed by
//! owner, so the audit trail shows who changed limits when.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::resources::ResourceSlots;

/// Current version of resource-policy events.
pub const RESOURCE_POLICY_EVENT_VERSION: &str = "1";

/// Limits for one owner.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// Max sessions that are neither PENDING nor terminal.
    pub max_concurrent_sessions: Option<u32>,
    /// Max PENDING sessions.
    pub max_pending_sessions: Option<u32>,
    /// Limit on summed allocated slots.
    pub total_resource_slots: Option<ResourceSlots>,
}

/// Command: replace an owner's policy.
#[derive(Debug, Clone, PartialEq)]
pub struct SetResourcePolicy {
    /// Owner (the aggregate id).
    pub owner: String,
    /// New limits.
    pub limits: ResourceLimits,
    /// When.
    pub now: DateTime<Utc>,
}

/// Events of a resource policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ResourcePolicyEvent {
    /// The policy was set.
    ResourcePolicySet {
        /// Owner.
        owner: String,
        /// Limits.
        limits: ResourceLimits,
        /// When.
        occurred_at: DateTime<Utc>,
    },
}

/// Folded policy of one owner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourcePolicy {
    /// Owner.
    pub owner: String,
    /// Current limits (default: unlimited).
    pub limits: ResourceLimits,
}

impl ResourcePolicy {
    /// Decides a policy change; setting the same limits appends nothing.
    pub fn decide(
        &self,
        command: SetResourcePolicy,
    ) -> Result<Vec<ResourcePolicyEvent>, ValidationError> {
        if command.owner.trim().is_empty() {
            return Err(ValidationError::new("owner", "must not be empty"));
        }
        if self.owner == command.owner && self.limits == command.limits {
            return Ok(vec![]);
        }
        Ok(vec![ResourcePolicyEvent::ResourcePolicySet {
            owner: command.owner,
            limits: command.limits,
            occurred_at: command.now,
        }])
    }

    /// Folds one event.
    pub fn apply(&mut self, event: &ResourcePolicyEvent) {
        let ResourcePolicyEvent::ResourcePolicySet { owner, limits, .. } = event;
        self.owner = owner.clone();
        self.limits = limits.clone();
    }
}

crate::cqrs_adapter!(
    ResourcePolicy,
    "ResourcePolicy",
    SetResourcePolicy,
    ResourcePolicyEvent,
    ValidationError,
    RESOURCE_POLICY_EVENT_VERSION,
    |_e| "ResourcePolicySet".to_string()
);
