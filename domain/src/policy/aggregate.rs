//! The folded resource policy of one owner and its decisions.

use serde::{Deserialize, Serialize};

use super::commands::{ResourceLimits, SetResourcePolicy};
use super::error::ResourcePolicyError;
use super::events::ResourcePolicyEvent;

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
    ) -> Result<Vec<ResourcePolicyEvent>, ResourcePolicyError> {
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

crate::aggregate!(
    ResourcePolicy,
    "ResourcePolicy",
    SetResourcePolicy,
    ResourcePolicyEvent,
    ResourcePolicyError,
    super::events::RESOURCE_POLICY_EVENT_VERSION,
    |_e| "ResourcePolicySet"
);
