//! Events of an agent (explicit `event_type`, `event_version` "1"), and the allocation
//! value other aggregates refer to.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::{AgentAddr, AgentId, GroupName};
use crate::resources::ResourceSlots;

/// The current version of every agent event.
pub const AGENT_EVENT_VERSION: &str = "1";

/// Slots allocated on one agent (part of a session's `SessionScheduled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentAllocation {
    /// The agent.
    pub agent_id: AgentId,
    /// What it holds for this session.
    pub slots: ResourceSlots,
}

/// Events of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentEvent {
    /// Registered or updated.
    AgentRegistered {
        /// Id.
        agent_id: AgentId,
        /// Group.
        scaling_group: GroupName,
        /// Address.
        addr: AgentAddr,
        /// Capacity.
        available_slots: ResourceSlots,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// Slots held for a session.
    SlotsAllocated {
        /// Session.
        session_id: Uuid,
        /// Slots.
        slots: ResourceSlots,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// Slots given back.
    SlotsReleased {
        /// Session.
        session_id: Uuid,
        /// Slots.
        slots: ResourceSlots,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// Missed heartbeats.
    AgentLost {
        /// When.
        occurred_at: DateTime<Utc>,
    },
}

impl AgentEvent {
    /// When it happened.
    pub fn occurred_at(&self) -> chrono::DateTime<chrono::Utc> {
        match self {
            Self::AgentRegistered { occurred_at, .. }
            | Self::SlotsAllocated { occurred_at, .. }
            | Self::SlotsReleased { occurred_at, .. }
            | Self::AgentLost { occurred_at } => *occurred_at,
        }
    }

    /// The explicit event type string.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::AgentRegistered { .. } => "AgentRegistered",
            Self::SlotsAllocated { .. } => "SlotsAllocated",
            Self::SlotsReleased { .. } => "SlotsReleased",
            Self::AgentLost { .. } => "AgentLost",
        }
    }
}
