//! The Session aggregate: a compute session's lifecycle (SPEC §1.1, §1.2).
//!
//! [`Session::decide`] is the pure decision (state + command -> events or a typed
//! rejection) and [`Session::apply`] folds one event into the state. The cqrs-es
//! [`cqrs_es::Aggregate`] impl at the bottom is a thin adapter over both.

mod aggregate;
pub mod commands;
pub mod error;
pub mod events;
pub mod lifecycle;
pub mod reasons;
pub mod spec;
pub mod state;
#[cfg(test)]
mod tests;

pub use aggregate::Session;
pub use commands::SessionCommand;
pub use error::SessionError;
pub use events::{
    AgentAllocation, FailedPredicate, PassedPredicate, SessionEvent, SESSION_EVENT_VERSION,
};
pub use lifecycle::{delete_command, KernelEvent, KERNEL_EVENTS};
pub use reasons::PENDING_TIMEOUT;
pub use spec::{validate_spec, Labels, SessionSpec, SessionType};
pub use state::{SessionStatus, ALL_STATUSES, TRANSITIONS};
