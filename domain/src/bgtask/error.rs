//! Why a background-task command is refused.

use super::spec::TaskKind;
use super::status::TaskStatus;

/// A refused task command; nothing was appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackgroundTaskError {
    /// There is no such task.
    #[error("background task not found")]
    NotFound,
    /// The task exists already.
    #[error("background task already exists")]
    AlreadyExists,
    /// The task has finished.
    #[error("the background task has already finished ({})", status.as_str())]
    Finished {
        /// Its final status.
        status: TaskStatus,
    },
    /// Tasks of this kind cannot be cancelled.
    #[error("a {} task cannot be cancelled", kind.as_str())]
    NotCancellable {
        /// The kind.
        kind: TaskKind,
    },
}
