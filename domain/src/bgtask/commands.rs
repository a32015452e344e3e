//! Commands on a background task.

use chrono::{DateTime, Utc};

use super::spec::TaskParams;
use crate::ids::Owner;

/// A command on one task.
#[derive(Debug, Clone, PartialEq)]
pub enum BackgroundTaskCommand {
    /// Start a task (its first run is attempt 1).
    Start {
        /// The task's id.
        task_id: uuid::Uuid,
        /// What it works on.
        params: TaskParams,
        /// Whose it is.
        owner: Owner,
        /// When.
        now: DateTime<Utc>,
    },
    /// Record progress (the runner throttles how often).
    Progress {
        /// Units done (bytes for a clone).
        current: u64,
        /// Units in all.
        total: u64,
        /// What it is doing.
        message: String,
        /// When.
        now: DateTime<Utc>,
    },
    /// The work is done.
    Complete {
        /// What it did.
        message: String,
        /// When.
        now: DateTime<Utc>,
    },
    /// The work failed for good.
    Fail {
        /// Why.
        reason: String,
        /// When.
        now: DateTime<Utc>,
    },
    /// A user cancels it.
    Cancel {
        /// Who.
        requested_by: String,
        /// When.
        now: DateTime<Utc>,
    },
    /// Run it again (its runner died, or a run failed in a way worth retrying): another
    /// attempt, or — after `max_attempts` runs — a failure with `reason`.
    Retry {
        /// Why the last run ended (`interrupted`, or the transient failure).
        reason: String,
        /// Runs allowed in all.
        max_attempts: u32,
        /// When.
        now: DateTime<Utc>,
    },
}
