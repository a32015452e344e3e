//! Why a vfolder command is refused.

use super::status::VFolderStatus;

/// A refused vfolder command; nothing was appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VFolderError {
    /// There is no such folder.
    #[error("vfolder not found")]
    NotFound,
    /// The folder exists already (its id is taken).
    #[error("vfolder already exists")]
    AlreadyExists,
    /// The command needs another status.
    #[error("the vfolder is {}, which does not allow this", status.as_str())]
    WrongStatus {
        /// The folder's status.
        status: VFolderStatus,
    },
    /// Clones from this folder are running; it cannot be deleted until they end.
    #[error("a clone from this vfolder is running (task {task_id}); it cannot be deleted until the clone ends")]
    CloneRunning {
        /// One of the running clones' tasks.
        task_id: uuid::Uuid,
    },
}
