//! Why an agent command was rejected.

use uuid::Uuid;

use super::aggregate::AgentStatus;
use crate::error::ValidationError;
use crate::resources::ResourceSlots;

/// A rejected agent command; nothing is appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// Not registered.
    #[error("agent is not registered")]
    NotFound,
    /// Not ALIVE.
    #[error("agent is {0:?}, not ALIVE")]
    NotAlive(AgentStatus),
    /// The allocation would exceed capacity.
    #[error("agent cannot host {requested}: free {free}")]
    InsufficientCapacity {
        /// Requested slots.
        requested: ResourceSlots,
        /// Free slots.
        free: ResourceSlots,
    },
    /// The session already holds different slots here.
    #[error("session {0} already holds slots on this agent")]
    AlreadyAllocated(Uuid),
    /// The ledger's sums overflow (never with validated input; a typed error, not a
    /// panic, should a stored value be out of range).
    #[error("the agent's slot amounts overflow")]
    SlotOverflow,
    /// Invalid input.
    #[error(transparent)]
    Validation(#[from] ValidationError),
}
