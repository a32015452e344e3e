//! Commands on a vfolder.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::spec::VFolderSpec;

/// A command on one vfolder.
#[derive(Debug, Clone, PartialEq)]
pub enum VFolderCommand {
    /// Create a ready, empty folder.
    Create {
        /// What it is.
        spec: VFolderSpec,
        /// When.
        now: DateTime<Utc>,
    },
    /// Create a clone target (`cloning`), to be filled by task `task_id` from `source_id`.
    CreateCloneTarget {
        /// What it is.
        spec: VFolderSpec,
        /// The folder it is a copy of.
        source_id: Uuid,
        /// The background task that copies it.
        task_id: Uuid,
        /// When.
        now: DateTime<Utc>,
    },
    /// On a source: a clone into `target_id` by task `task_id` begins (the source must
    /// be ready; it cannot be deleted until the clone ends).
    BeginCloneFrom {
        /// The copying task.
        task_id: Uuid,
        /// The target folder.
        target_id: Uuid,
        /// When.
        now: DateTime<Utc>,
    },
    /// On a source: the clone by `task_id` ended (however it ended).
    EndCloneFrom {
        /// The copying task.
        task_id: Uuid,
        /// When.
        now: DateTime<Utc>,
    },
    /// On a clone target: its copy is complete.
    MarkReady {
        /// When.
        now: DateTime<Utc>,
    },
    /// On a clone target: its copy failed or was cancelled.
    MarkError {
        /// Why (`clone-cancelled`, `clone-failed: <reason>`).
        reason: String,
        /// When.
        now: DateTime<Utc>,
    },
    /// Delete the folder: its files are removed by task `task_id`.
    RequestDelete {
        /// The removing task.
        task_id: Uuid,
        /// When.
        now: DateTime<Utc>,
    },
    /// The files of a folder being deleted are gone.
    CompleteDelete {
        /// When.
        now: DateTime<Utc>,
    },
}
