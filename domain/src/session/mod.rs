//! The Session aggregate: a compute session's lifecycle (SPEC §1.1, §1.2).
//!
//! [`Session::decide`] is the pure decision (state + command -> events or a typed
//! rejection) and [`Session::apply`] folds one event into the state; the
//! [`crate::Decider`] impl at the bottom of `aggregate.rs` exposes both.
//!
//! # Layout
//! - `spec.rs`: [`SessionSpec`] (what was requested, validated) and [`SessionType`].
//! - `commands.rs`: [`SessionCommand`].
//! - `events.rs`: [`SessionEvent`].
//! - `error.rs`: [`SessionError`].
//! - `status.rs`: [`SessionStatus`] and the transition table [`TRANSITIONS`].
//! - `aggregate.rs`: [`Session`], its `decide` and `apply`.
//! - `lifecycle.rs`: which command a DELETE or an agent's kernel event means
//!   ([`delete_command`], [`KernelEvent`]).
//! - `reasons.rs`: the reasons recorded in `status_info`.

mod aggregate;
pub mod commands;
pub mod error;
pub mod events;
pub mod lifecycle;
pub mod reasons;
pub mod spec;
pub mod status;
#[cfg(test)]
mod tests;

pub use aggregate::{Notice, Session};
pub use commands::{KernelEnd, SessionCommand};
pub use error::SessionError;
pub use events::{
    AgentAllocation, FailedPredicate, PassedPredicate, SessionEvent, SESSION_EVENT_VERSION,
};
pub use lifecycle::{delete_command, KernelEvent, KERNEL_EVENTS};
pub use reasons::PENDING_TIMEOUT;
pub use spec::{validate_spec, Labels, SessionSpec, SessionType};
pub use status::{SessionStatus, ALL_STATUSES, TRANSITIONS};
