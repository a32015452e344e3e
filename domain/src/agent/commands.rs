//! Commands on an agent. Every command carries `now`: time is an input.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::ids::{AgentAddr, AgentId, GroupName};
use crate::resources::ResourceSlots;

/// Commands on an agent.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentCommand {
    /// Register, or update address / group / capacity (also revives a LOST agent). The
    /// application checks that the group exists before it builds the command.
    Register {
        /// Id (the aggregate id).
        agent_id: AgentId,
        /// Group it serves.
        scaling_group: GroupName,
        /// Address.
        addr: AgentAddr,
        /// Capacity.
        available_slots: ResourceSlots,
        /// When.
        now: DateTime<Utc>,
    },
    /// Hold slots for a session.
    AllocateSlots {
        /// The session.
        session_id: Uuid,
        /// What it needs here.
        slots: ResourceSlots,
        /// When.
        now: DateTime<Utc>,
    },
    /// Give back a session's slots (idempotent).
    ReleaseSlots {
        /// The session.
        session_id: Uuid,
        /// When.
        now: DateTime<Utc>,
    },
    /// ALIVE -> LOST.
    MarkLost {
        /// When.
        now: DateTime<Utc>,
    },
}
