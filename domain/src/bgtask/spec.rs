//! What a background task works on.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ids::VolumeName;

/// The kind of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskKind {
    /// Copy a vfolder's tree into a new clone target.
    VFolderClone,
    /// Remove a deleted vfolder's files.
    VFolderDelete,
}

impl TaskKind {
    /// Every kind.
    pub const ALL: [TaskKind; 2] = [TaskKind::VFolderClone, TaskKind::VFolderDelete];

    /// The API's string.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::VFolderClone => "vfolder-clone",
            TaskKind::VFolderDelete => "vfolder-delete",
        }
    }

    /// Whether a task of this kind may be cancelled (a removal may not: half a
    /// deletion is worth nothing).
    pub fn cancellable(self) -> bool {
        matches!(self, TaskKind::VFolderClone)
    }
}

/// What a task works on; the kind follows from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TaskParams {
    /// Copy `source_id` (on `source_host`) into `target_id` (on `target_host`).
    VfolderClone {
        /// The source folder.
        source_id: Uuid,
        /// Its volume.
        source_host: VolumeName,
        /// The target folder.
        target_id: Uuid,
        /// Its volume.
        target_host: VolumeName,
    },
    /// Remove the files of `vfolder_id` on `host`.
    VfolderDelete {
        /// The folder.
        vfolder_id: Uuid,
        /// Its volume.
        host: VolumeName,
    },
}

impl TaskParams {
    /// The kind of work.
    pub fn kind(&self) -> TaskKind {
        match self {
            TaskParams::VfolderClone { .. } => TaskKind::VFolderClone,
            TaskParams::VfolderDelete { .. } => TaskKind::VFolderDelete,
        }
    }
}
