//! Owner resource policies (SPEC §1.5). A missing policy (or a missing limit) means
//! unlimited. Setting a policy is an event on the `ResourcePolicy` aggregate, keyed by
//! owner, so the audit trail shows who changed limits when.
//!
//! # Layout
//! - `commands.rs`: [`SetResourcePolicy`] and the [`ResourceLimits`] it sets.
//! - `events.rs`: [`ResourcePolicyEvent`].
//! - `error.rs`: [`ResourcePolicyError`] (a policy change is never refused).
//! - `aggregate.rs`: [`ResourcePolicy`].

mod aggregate;
pub mod commands;
pub mod error;
pub mod events;

pub use aggregate::ResourcePolicy;
pub use commands::{ResourceLimits, SetResourcePolicy};
pub use error::ResourcePolicyError;
pub use events::{ResourcePolicyEvent, RESOURCE_POLICY_EVENT_VERSION};
