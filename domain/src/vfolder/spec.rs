//! What a vfolder is: validated at the edge, recorded in its first event.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ValidationError;
use crate::ids::{Owner, VFolderName, VolumeName};

/// What a folder is for (Backend.AI's `usage_mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageMode {
    /// Anything (default).
    #[default]
    General,
    /// Model files.
    Model,
    /// Data sets.
    Data,
}

impl UsageMode {
    /// Every mode, as the API spells it.
    pub const ALL: [UsageMode; 3] = [UsageMode::General, UsageMode::Model, UsageMode::Data];

    /// The API's string.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageMode::General => "general",
            UsageMode::Model => "model",
            UsageMode::Data => "data",
        }
    }

    /// Parses the API's string; the error names `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == value)
            .ok_or_else(|| ValidationError::new(field, "must be one of general, model, data"))
    }
}

/// What the owner may do with the files (Backend.AI's `permission`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Read only: uploads and file deletions are refused.
    Ro,
    /// Read and write (default).
    #[default]
    Rw,
    /// Read, write and delete.
    Wd,
}

impl Permission {
    /// Every permission, as the API spells it.
    pub const ALL: [Permission; 3] = [Permission::Ro, Permission::Rw, Permission::Wd];

    /// The API's string.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Ro => "ro",
            Permission::Rw => "rw",
            Permission::Wd => "wd",
        }
    }

    /// Parses the API's string; the error names `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == value)
            .ok_or_else(|| ValidationError::new(field, "must be one of ro, rw, wd"))
    }

    /// Whether files may be written (uploaded, deleted).
    pub fn writable(self) -> bool {
        !matches!(self, Permission::Ro)
    }
}

/// A vfolder as created: every field checked by its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VFolderSpec {
    /// The id (also the name of its directory on the volume).
    pub vfolder_id: Uuid,
    /// The name, unique among the owner's folders that are not deleted.
    pub name: VFolderName,
    /// The owner.
    pub owner: Owner,
    /// The volume it lives on.
    pub host: VolumeName,
    /// What it is for.
    pub usage_mode: UsageMode,
    /// What may be done with its files.
    pub permission: Permission,
    /// Whether users other than the owner may clone it.
    pub cloneable: bool,
}
