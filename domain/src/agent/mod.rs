//! The Agent aggregate (SPEC §1.4): a compute node and its allocation ledger.
//!
//! Slots are allocated and released through this aggregate, so optimistic concurrency
//! on its stream guarantees no agent is ever allocated beyond capacity, whichever
//! replica decides. Heartbeats are not events; only ALIVE -> LOST is.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::error::ValidationError;
use crate::resources::ResourceSlots;

/// The current version of every agent event.
pub const AGENT_EVENT_VERSION: &str = "1";

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

/// Commands on an agent.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentCommand {
    /// Register, or update address / group / capacity (also revives a LOST agent).
    Register {
        /// Id (the aggregate id).
        agent_id: String,
        /// Group it serves.
        scaling_group: String,
        /// Address.
        addr: String,
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

/// Events of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AgentEvent {
    /// Registered or updated.
    AgentRegistered {
        /// Id.
        agent_id: String,
        /// Group.
        scaling_group: String,
        /// Address.
        addr: String,
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

/// Why an agent command was rejected.
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
    /// Invalid input.
    #[error(transparent)]
    Validation(#[from] ValidationError),
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
    pub fn occupied_slots(&self) -> ResourceSlots {
        self.allocations
            .values()
            .fold(ResourceSlots::new(), |acc, s| acc.add(s))
    }

    /// Capacity minus occupied.
    pub fn free_slots(&self) -> ResourceSlots {
        self.available_slots.sub(&self.occupied_slots())
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
                if agent_id.trim().is_empty() {
                    return Err(ValidationError::new("agent_id", "must not be empty").into());
                }
                if scaling_group.trim().is_empty() {
                    return Err(ValidationError::new("scaling_group", "must not be empty").into());
                }
                let unchanged = self.registered
                    && self.status == AgentStatus::Alive
                    && self.scaling_group == scaling_group
                    && self.addr == addr
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
                let free = self.free_slots();
                if !slots.fits_within(&free) {
                    return Err(AgentError::InsufficientCapacity {
                        requested: slots,
                        free,
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
        self.version += 1;
        match event {
            AgentEvent::AgentRegistered {
                agent_id,
                scaling_group,
                addr,
                available_slots,
                ..
            } => {
                self.registered = true;
                self.agent_id = agent_id.clone();
                self.scaling_group = scaling_group.clone();
                self.addr = addr.clone();
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

crate::cqrs_adapter!(
    Agent,
    "Agent",
    AgentCommand,
    AgentEvent,
    AgentError,
    AGENT_EVENT_VERSION,
    |e| AgentEvent::event_type(e).to_string()
);

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn cpu(n: i64) -> ResourceSlots {
        ResourceSlots::new().with("cpu", Decimal::from(n))
    }

    fn given(events: &[AgentEvent]) -> Agent {
        let mut a = Agent::default();
        events.iter().for_each(|e| a.apply(e));
        a
    }

    fn registered(capacity: i64) -> AgentEvent {
        AgentEvent::AgentRegistered {
            agent_id: "a1".into(),
            scaling_group: "default".into(),
            addr: "10.0.0.1:6001".into(),
            available_slots: cpu(capacity),
            occurred_at: now(),
        }
    }

    fn allocated(id: Uuid, n: i64) -> AgentEvent {
        AgentEvent::SlotsAllocated {
            session_id: id,
            slots: cpu(n),
            occurred_at: now(),
        }
    }

    #[test]
    fn given_an_agent_with_room_when_slots_are_allocated_then_they_are_recorded() {
        let agent = given(&[registered(8)]);
        let id = Uuid::new_v4();
        let events = agent.decide(AgentCommand::AllocateSlots {
            session_id: id,
            slots: cpu(8),
            now: now(),
        });
        assert_eq!(events, Ok(vec![allocated(id, 8)]));
    }

    #[test]
    fn given_a_full_agent_when_more_slots_are_requested_then_it_refuses_to_overcommit() {
        let agent = given(&[registered(8), allocated(Uuid::new_v4(), 6)]);
        let r = agent.decide(AgentCommand::AllocateSlots {
            session_id: Uuid::new_v4(),
            slots: cpu(3),
            now: now(),
        });
        assert!(matches!(r, Err(AgentError::InsufficientCapacity { .. })));
    }

    #[test]
    fn given_an_allocation_when_it_is_released_twice_then_the_second_release_is_a_no_op() {
        let id = Uuid::new_v4();
        let mut agent = given(&[registered(8), allocated(id, 4)]);
        let first = agent
            .decide(AgentCommand::ReleaseSlots {
                session_id: id,
                now: now(),
            })
            .unwrap();
        assert_eq!(first.len(), 1);
        first.iter().for_each(|e| agent.apply(e));
        assert_eq!(agent.free_slots(), cpu(8));
        let second = agent.decide(AgentCommand::ReleaseSlots {
            session_id: id,
            now: now(),
        });
        assert_eq!(second, Ok(vec![]));
    }

    #[test]
    fn given_an_alive_agent_when_marked_lost_then_it_allocates_nothing_more() {
        let mut agent = given(&[registered(8)]);
        for e in agent.decide(AgentCommand::MarkLost { now: now() }).unwrap() {
            agent.apply(&e);
        }
        let r = agent.decide(AgentCommand::AllocateSlots {
            session_id: Uuid::new_v4(),
            slots: cpu(1),
            now: now(),
        });
        assert_eq!(r, Err(AgentError::NotAlive(AgentStatus::Lost)));
        assert_eq!(
            agent.decide(AgentCommand::MarkLost { now: now() }),
            Err(AgentError::NotAlive(AgentStatus::Lost))
        );
    }

    #[test]
    fn given_an_unregistered_agent_when_slots_are_allocated_then_it_is_not_found() {
        let r = Agent::default().decide(AgentCommand::AllocateSlots {
            session_id: Uuid::new_v4(),
            slots: cpu(1),
            now: now(),
        });
        assert_eq!(r, Err(AgentError::NotFound));
    }
}
