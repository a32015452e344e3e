//! Events of a vfolder.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::spec::VFolderSpec;

/// Current version of vfolder events.
pub const VFOLDER_EVENT_VERSION: &str = "1";

/// Events of a vfolder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VFolderEvent {
    /// A ready, empty folder was created.
    VFolderCreated {
        /// What it is.
        spec: VFolderSpec,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// A clone target was created (`cloning`).
    VFolderCloneTargetCreated {
        /// What it is.
        spec: VFolderSpec,
        /// Its source.
        source_id: Uuid,
        /// The copying task.
        task_id: Uuid,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// On a source: a clone from it began.
    VFolderCloneStarted {
        /// The copying task.
        task_id: Uuid,
        /// The target folder.
        target_id: Uuid,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// On a source: a clone from it ended.
    VFolderCloneEnded {
        /// The copying task.
        task_id: Uuid,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// A clone target's copy is complete: `ready`.
    VFolderReady {
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// A clone target failed: `error`.
    VFolderErrored {
        /// Why.
        reason: String,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// Deletion requested: `delete-pending`.
    VFolderDeleteRequested {
        /// The removing task.
        task_id: Uuid,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// Its files are gone: `delete-complete`.
    VFolderDeleted {
        /// When.
        occurred_at: DateTime<Utc>,
    },
}

impl VFolderEvent {
    /// The stored event type.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::VFolderCreated { .. } => "VFolderCreated",
            Self::VFolderCloneTargetCreated { .. } => "VFolderCloneTargetCreated",
            Self::VFolderCloneStarted { .. } => "VFolderCloneStarted",
            Self::VFolderCloneEnded { .. } => "VFolderCloneEnded",
            Self::VFolderReady { .. } => "VFolderReady",
            Self::VFolderErrored { .. } => "VFolderErrored",
            Self::VFolderDeleteRequested { .. } => "VFolderDeleteRequested",
            Self::VFolderDeleted { .. } => "VFolderDeleted",
        }
    }

    /// When it happened.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            Self::VFolderCreated { occurred_at, .. }
            | Self::VFolderCloneTargetCreated { occurred_at, .. }
            | Self::VFolderCloneStarted { occurred_at, .. }
            | Self::VFolderCloneEnded { occurred_at, .. }
            | Self::VFolderReady { occurred_at }
            | Self::VFolderErrored { occurred_at, .. }
            | Self::VFolderDeleteRequested { occurred_at, .. }
            | Self::VFolderDeleted { occurred_at } => *occurred_at,
        }
    }
}
