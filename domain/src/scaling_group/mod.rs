//! The ScalingGroup aggregate (SPEC §1.3): a resource group with its scheduler and
//! strictly validated `scheduler_opts`. Opts changes are `SchedulerOptsChanged` events
//! carrying old and new values, so the audit trail shows who changed what when.
//!
//! # Layout
//! - `commands.rs`: [`ScalingGroupCommand`], [`GroupSettings`] (create's body),
//!   [`GroupPatch`] (PATCH), and the edge parsers of their fields.
//! - `events.rs`: [`ScalingGroupEvent`].
//! - `error.rs`: [`ScalingGroupError`].
//! - `aggregate.rs`: [`ScalingGroup`], its decision and fold.
//! - `opts.rs`: [`SchedulerOpts`] and its strict parser.

mod aggregate;
pub mod commands;
pub mod error;
pub mod events;
pub mod opts;

pub use aggregate::ScalingGroup;
pub use commands::{
    parse_description, parse_owners, GroupPatch, GroupSettings, ScalingGroupCommand,
};
pub use error::ScalingGroupError;
pub use events::{ScalingGroupEvent, SCALING_GROUP_EVENT_VERSION};
pub use opts::{AgentSelectionStrategy, SchedulerConfig, SchedulerKind, SchedulerOpts};
