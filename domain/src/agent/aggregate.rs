//! The Agent aggregate: state, decision and fold.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

use super::commands::AgentCommand;
use super::error::AgentError;
use super::events::AgentEvent;
use crate::resources::{ResourceSlots, SlotOverflow};

/// Liveness of an agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentStatus {
    /// Heartbeating.
    #[default]
    Alive,
    /// Missed heartbeats for the configured period.
    Lost,
    /// Shut down.
    Terminated,
}

impl AgentStatus {
    /// The wire name (`ALIVE`, `LOST`, `TERMINATED`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alive => "ALIVE",
            Self::Lost => "LOST",
            Self::Terminated => "TERMINATED",
        }
    }
}

/// Folded state of an agent. `Default` is "not registered".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// Whether it was registered.
    pub registered: bool,
    /// Id.
    pub agent_id: String,
    /// Group.
    pub scaling_group: String,
    /// Address.
    pub addr: String,
    /// Capacity.
    pub available_slots: ResourceSlots,
    /// Liveness.
    pub status: AgentStatus,
    /// The ledger: session -> slots held.
    pub allocations: BTreeMap<Uuid, ResourceSlots>,
    /// Number of events folded (the stream's last sequence), so a decision made on a
    /// read-model copy can be appended with exact optimistic concurrency.
    #[serde(default)]
    pub version: u64,
}

impl Agent {
    /// Sum of allocated slots.
    pub fn occupied_slots(&self) -> Result<ResourceSlots, SlotOverflow> {
        ResourceSlots::checked_sum(self.allocations.values())
    }

    /// Capacity minus occupied (negative amounts when the agent re-registered with less
    /// capacity than it holds).
    pub fn free_slots(&self) -> Result<ResourceSlots, SlotOverflow> {
        self.available_slots.checked_sub(&self.occupied_slots()?)
    }

    /// Whether the agent holds more than its capacity: it re-registered with less than
    /// it had allocated (a device failed). Nothing new fits on it until sessions end
    /// (ADR 0003).
    pub fn over_capacity(&self) -> bool {
        self.occupied_slots()
            .map(|o| !o.fits_within(&self.available_slots))
            .unwrap_or(true)
    }

    /// Decides a command; nothing changes on rejection.
    pub fn decide(&self, command: AgentCommand) -> Result<Vec<AgentEvent>, AgentError> {
        match command {
            AgentCommand::Register {
                agent_id,
                scaling_group,
                addr,
                available_slots,
                now,
            } => {
                let unchanged = self.registered
                    && self.status == AgentStatus::Alive
                    && self.scaling_group == scaling_group.as_str()
                    && self.addr == addr.as_str()
                    && self.available_slots == available_slots;
                if unchanged {
                    return Ok(vec![]);
                }
                Ok(vec![AgentEvent::AgentRegistered {
                    agent_id,
                    scaling_group,
                    addr,
                    available_slots,
                    occurred_at: now,
                }])
            }
            AgentCommand::AllocateSlots {
                session_id,
                slots,
                now,
            } => {
                self.require_alive()?;
                if let Some(held) = self.allocations.get(&session_id) {
                    return if *held == slots {
                        Ok(vec![])
                    } else {
                        Err(AgentError::AlreadyAllocated(session_id))
                    };
                }
                let occupied = self
                    .occupied_slots()
                    .map_err(|_| AgentError::SlotOverflow)?;
                if !occupied.fits_with(&slots, &self.available_slots) {
                    return Err(AgentError::InsufficientCapacity {
                        requested: slots,
                        free: self.free_slots().map_err(|_| AgentError::SlotOverflow)?,
                    });
                }
                Ok(vec![AgentEvent::SlotsAllocated {
                    session_id,
                    slots,
                    occurred_at: now,
                }])
            }
            AgentCommand::ReleaseSlots { session_id, now } => {
                if !self.registered {
                    return Err(AgentError::NotFound);
                }
                Ok(self
                    .allocations
                    .get(&session_id)
                    .map(|slots| AgentEvent::SlotsReleased {
                        session_id,
                        slots: slots.clone(),
                        occurred_at: now,
                    })
                    .into_iter()
                    .collect())
            }
            AgentCommand::MarkLost { now } => {
                self.require_alive()?;
                Ok(vec![AgentEvent::AgentLost { occurred_at: now }])
            }
        }
    }

    fn require_alive(&self) -> Result<(), AgentError> {
        if !self.registered {
            return Err(AgentError::NotFound);
        }
        if self.status != AgentStatus::Alive {
            return Err(AgentError::NotAlive(self.status));
        }
        Ok(())
    }

    /// Folds one event.
    pub fn apply(&mut self, event: &AgentEvent) {
        self.version = self.version.saturating_add(1);
        match event {
            AgentEvent::AgentRegistered {
                agent_id,
                scaling_group,
                addr,
                available_slots,
                ..
            } => {
                self.registered = true;
                self.agent_id = agent_id.to_string();
                self.scaling_group = scaling_group.to_string();
                self.addr = addr.to_string();
                self.available_slots = available_slots.clone();
                self.status = AgentStatus::Alive;
            }
            AgentEvent::SlotsAllocated {
                session_id, slots, ..
            } => {
                self.allocations.insert(*session_id, slots.clone());
            }
            AgentEvent::SlotsReleased { session_id, .. } => {
                self.allocations.remove(session_id);
            }
            AgentEvent::AgentLost { .. } => self.status = AgentStatus::Lost,
        }
    }
}

crate::aggregate!(
    Agent,
    "Agent",
    AgentCommand,
    AgentEvent,
    AgentError,
    super::events::AGENT_EVENT_VERSION,
    |e| AgentEvent::event_type(e)
);
