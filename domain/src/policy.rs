//! Owner resource policies (SPEC §1.5). A missing policy (or a missing limit) means
//! unlimited. Setting a policy is an event on the `ResourcePolicy` aggregate, keyed by
//! owner, so the audit trail shows who changed limits when.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::bounds::PolicyCount;
use crate::error::ValidationError;
use crate::ids::Owner;
use crate::resources::ResourceSlots;

/// Current version of resource-policy events.
pub const RESOURCE_POLICY_EVENT_VERSION: &str = "1";

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
        if self.owner == command.owner.as_str() && self.limits == command.limits {
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
        self.owner = owner.to_string();
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
