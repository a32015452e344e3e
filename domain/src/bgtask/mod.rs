//! The BackgroundTask aggregate: slow work (a vfolder clone, a vfolder's removal) run
//! by a task runner outside any request and any database transaction (SPEC §7.2).
//!
//! A task is `running` from its first event until exactly one terminal event: `done`,
//! `failed` or `cancelled`. `attempts` counts the runs: 1 for the first, one more for
//! each [`BackgroundTaskEvent::BackgroundTaskResumed`] (after the runner holding it died,
//! or after a transient failure). After [`MAX_ATTEMPTS`] runs a further retry fails the
//! task instead, so no task stays `running` without a runner for long.
//!
//! # Layout
//! - `spec.rs`: [`TaskKind`], [`TaskParams`] (what the task works on).
//! - `status.rs`: [`TaskStatus`] and the reasons tasks fail with.
//! - `commands.rs`: [`BackgroundTaskCommand`].
//! - `events.rs`: [`BackgroundTaskEvent`].
//! - `error.rs`: [`BackgroundTaskError`].
//! - `aggregate.rs`: [`BackgroundTask`], its `decide` and `apply`.

mod aggregate;
pub mod commands;
pub mod error;
pub mod events;
pub mod spec;
pub mod status;
#[cfg(test)]
mod tests;

pub use aggregate::BackgroundTask;
pub use commands::BackgroundTaskCommand;
pub use error::BackgroundTaskError;
pub use events::{BackgroundTaskEvent, BACKGROUND_TASK_EVENT_VERSION};
pub use spec::{TaskKind, TaskParams};
pub use status::{reasons, TaskStatus};

/// Runs a task gets before a further retry fails it.
pub const MAX_ATTEMPTS: u32 = 3;
