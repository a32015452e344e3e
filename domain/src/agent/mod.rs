//! The Agent aggregate (SPEC §1.4): a compute node and its allocation ledger.
//!
//! Slots are allocated and released through this aggregate, so optimistic concurrency
//! on its stream guarantees no agent is ever allocated beyond capacity, whichever
//! replica decides. Heartbeats are not events; only ALIVE -> LOST is.
//!
//! # Layout
//! - `commands.rs`: [`AgentCommand`].
//! - `events.rs`: [`AgentEvent`], [`AgentAllocation`].
//! - `error.rs`: [`AgentError`].
//! - `aggregate.rs`: [`Agent`], [`AgentStatus`], the decision and fold.

mod aggregate;
pub mod commands;
pub mod error;
pub mod events;
#[cfg(test)]
mod tests;

pub use aggregate::{Agent, AgentStatus};
pub use commands::AgentCommand;
pub use error::AgentError;
pub use events::{AgentAllocation, AgentEvent, AGENT_EVENT_VERSION};
