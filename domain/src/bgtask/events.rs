//! Events of a background task.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::spec::TaskParams;
use crate::ids::Owner;

/// Current version of background-task events.
pub const BACKGROUND_TASK_EVENT_VERSION: &str = "1";

/// Events of a background task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BackgroundTaskEvent {
    /// The task started (attempt 1).
    BackgroundTaskStarted {
        /// The task's id (also its stream id).
        task_id: uuid::Uuid,
        /// What it works on (its kind with it).
        params: TaskParams,
        /// Whose it is.
        owner: Owner,
        /// Units in all, as far as known (0: not yet).
        total: u64,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// Progress (persisted at most twice a second and on each 5% step).
    BackgroundTaskProgressed {
        /// Units done.
        current: u64,
        /// Units in all.
        total: u64,
        /// What it is doing.
        message: String,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// Finished successfully.
    BackgroundTaskCompleted {
        /// What it did.
        message: String,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// Finished unsuccessfully.
    BackgroundTaskFailed {
        /// Why.
        reason: String,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// Cancelled by a user.
    BackgroundTaskCancelled {
        /// Who.
        requested_by: String,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// Another run began.
    BackgroundTaskResumed {
        /// Its number (2 for the first resumption).
        attempt: u32,
        /// Why the previous run ended.
        reason: String,
        /// When.
        occurred_at: DateTime<Utc>,
    },
}

impl BackgroundTaskEvent {
    /// The stored event type.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::BackgroundTaskStarted { .. } => "BackgroundTaskStarted",
            Self::BackgroundTaskProgressed { .. } => "BackgroundTaskProgressed",
            Self::BackgroundTaskCompleted { .. } => "BackgroundTaskCompleted",
            Self::BackgroundTaskFailed { .. } => "BackgroundTaskFailed",
            Self::BackgroundTaskCancelled { .. } => "BackgroundTaskCancelled",
            Self::BackgroundTaskResumed { .. } => "BackgroundTaskResumed",
        }
    }

    /// When it happened.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            Self::BackgroundTaskStarted { occurred_at, .. }
            | Self::BackgroundTaskProgressed { occurred_at, .. }
            | Self::BackgroundTaskCompleted { occurred_at, .. }
            | Self::BackgroundTaskFailed { occurred_at, .. }
            | Self::BackgroundTaskCancelled { occurred_at, .. }
            | Self::BackgroundTaskResumed { occurred_at, .. } => *occurred_at,
        }
    }

    /// Whether it ends the task.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::BackgroundTaskCompleted { .. }
                | Self::BackgroundTaskFailed { .. }
                | Self::BackgroundTaskCancelled { .. }
        )
    }
}
