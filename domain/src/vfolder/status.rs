//! A vfolder's statuses (Backend.AI's strings) and the reasons recorded with `error`.

use serde::{Deserialize, Serialize};

/// Where a vfolder is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VFolderStatus {
    /// Usable.
    Ready,
    /// A clone target that its background task is filling.
    Cloning,
    /// Unusable; `status_info` says why (`clone-failed: <reason>`, `clone-cancelled`).
    Error,
    /// Deletion requested; its files are being removed.
    DeletePending,
    /// Gone: its files are removed.
    DeleteComplete,
}

impl VFolderStatus {
    /// Every status.
    pub const ALL: [VFolderStatus; 5] = [
        VFolderStatus::Ready,
        VFolderStatus::Cloning,
        VFolderStatus::Error,
        VFolderStatus::DeletePending,
        VFolderStatus::DeleteComplete,
    ];

    /// Backend.AI's string.
    pub fn as_str(self) -> &'static str {
        match self {
            VFolderStatus::Ready => "ready",
            VFolderStatus::Cloning => "cloning",
            VFolderStatus::Error => "error",
            VFolderStatus::DeletePending => "delete-pending",
            VFolderStatus::DeleteComplete => "delete-complete",
        }
    }

    /// Parses Backend.AI's string.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Whether the folder is deleted or being deleted (its name is free again).
    pub fn is_deleted(self) -> bool {
        matches!(
            self,
            VFolderStatus::DeletePending | VFolderStatus::DeleteComplete
        )
    }
}

/// The reasons a vfolder records in `status_info`.
pub mod reasons {
    /// A clone target whose task was cancelled.
    pub const CLONE_CANCELLED: &str = "clone-cancelled";
    /// Prefix of a failed clone's reason: `clone-failed: <reason>`.
    pub const CLONE_FAILED: &str = "clone-failed";
}
