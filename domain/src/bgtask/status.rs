//! A task's statuses and the reasons tasks fail with.

use serde::{Deserialize, Serialize};

/// Where a task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskStatus {
    /// Not finished.
    Running,
    /// Finished successfully.
    Done,
    /// Finished unsuccessfully (`reason` says why).
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl TaskStatus {
    /// Every status.
    pub const ALL: [TaskStatus; 4] = [
        TaskStatus::Running,
        TaskStatus::Done,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    /// The API's string.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Running => "running",
            TaskStatus::Done => "done",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the API's string.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Whether the task has finished.
    pub fn is_terminal(self) -> bool {
        !matches!(self, TaskStatus::Running)
    }
}

/// Reasons a task fails with.
pub mod reasons {
    /// The runners holding it died [`super::super::MAX_ATTEMPTS`] times.
    pub const INTERRUPTED: &str = "interrupted";
    /// The target volume lacks the space for the copy.
    pub const INSUFFICIENT_SPACE: &str = "insufficient-space";
    /// The source folder's files are gone.
    pub const SOURCE_MISSING: &str = "source-missing";
}
