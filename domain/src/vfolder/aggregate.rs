//! The VFolder aggregate: state, decisions, fold.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use uuid::Uuid;

use super::commands::VFolderCommand;
use super::error::VFolderError;
use super::events::VFolderEvent;
use super::spec::VFolderSpec;
use super::status::VFolderStatus;
use crate::ids::{Owner, VFolderName};

/// The claim stream id of a vfolder name: `vfolder/<owner>/<name>` (neither an owner nor
/// a vfolder name can contain `/`). The claim is appended with the folder's first event,
/// so two folders of one owner never share a name that is not deleted.
pub fn vfolder_claim_id(owner: &Owner, name: &VFolderName) -> String {
    format!("vfolder/{owner}/{name}")
}

/// Folded state of a vfolder. `Default`: it does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VFolder {
    /// What it is (`None`: it does not exist).
    pub spec: Option<VFolderSpec>,
    /// Its status (`None`: it does not exist).
    pub status: Option<VFolderStatus>,
    /// Why it is in `error`.
    pub status_info: Option<String>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: Option<DateTime<Utc>>,
    /// For a clone target: its source.
    pub cloned_from: Option<Uuid>,
    /// The task filling (clone target) or removing (deletion) it.
    pub task_id: Option<Uuid>,
    /// The tasks cloning *from* this folder right now.
    pub active_clones: BTreeSet<Uuid>,
    /// Events folded (the stream's last sequence).
    pub version: u64,
}

impl VFolder {
    fn status_or_missing(&self) -> Result<VFolderStatus, VFolderError> {
        self.status.ok_or(VFolderError::NotFound)
    }

    fn require(&self, allowed: &[VFolderStatus]) -> Result<VFolderStatus, VFolderError> {
        let status = self.status_or_missing()?;
        if allowed.contains(&status) {
            Ok(status)
        } else {
            Err(VFolderError::WrongStatus { status })
        }
    }

    /// Decides a command; nothing changes on refusal. Repeating a command whose effect
    /// already holds (ending a clone that ended, marking ready what is ready) appends
    /// nothing, so a runner that retries after a crash is harmless.
    pub fn decide(&self, command: VFolderCommand) -> Result<Vec<VFolderEvent>, VFolderError> {
        use VFolderStatus as S;
        match command {
            VFolderCommand::Create { spec, now } => {
                if self.status.is_some() {
                    return Err(VFolderError::AlreadyExists);
                }
                Ok(vec![VFolderEvent::VFolderCreated {
                    spec,
                    occurred_at: now,
                }])
            }
            VFolderCommand::CreateCloneTarget {
                spec,
                source_id,
                task_id,
                now,
            } => {
                if self.status.is_some() {
                    return Err(VFolderError::AlreadyExists);
                }
                Ok(vec![VFolderEvent::VFolderCloneTargetCreated {
                    spec,
                    source_id,
                    task_id,
                    occurred_at: now,
                }])
            }
            VFolderCommand::BeginCloneFrom {
                task_id,
                target_id,
                now,
            } => {
                self.require(&[S::Ready])?;
                if self.active_clones.contains(&task_id) {
                    return Ok(vec![]);
                }
                Ok(vec![VFolderEvent::VFolderCloneStarted {
                    task_id,
                    target_id,
                    occurred_at: now,
                }])
            }
            VFolderCommand::EndCloneFrom { task_id, now } => {
                self.status_or_missing()?;
                if !self.active_clones.contains(&task_id) {
                    return Ok(vec![]);
                }
                Ok(vec![VFolderEvent::VFolderCloneEnded {
                    task_id,
                    occurred_at: now,
                }])
            }
            VFolderCommand::MarkReady { now } => {
                if self.require(&[S::Cloning, S::Ready])? == S::Ready {
                    return Ok(vec![]);
                }
                Ok(vec![VFolderEvent::VFolderReady { occurred_at: now }])
            }
            VFolderCommand::MarkError { reason, now } => {
                if self.require(&[S::Cloning, S::Error])? == S::Error {
                    return Ok(vec![]);
                }
                Ok(vec![VFolderEvent::VFolderErrored {
                    reason,
                    occurred_at: now,
                }])
            }
            VFolderCommand::RequestDelete { task_id, now } => {
                self.require(&[S::Ready, S::Error])?;
                if let Some(running) = self.active_clones.iter().next() {
                    return Err(VFolderError::CloneRunning { task_id: *running });
                }
                Ok(vec![VFolderEvent::VFolderDeleteRequested {
                    task_id,
                    occurred_at: now,
                }])
            }
            VFolderCommand::CompleteDelete { now } => {
                if self.require(&[S::DeletePending, S::DeleteComplete])? == S::DeleteComplete {
                    return Ok(vec![]);
                }
                Ok(vec![VFolderEvent::VFolderDeleted { occurred_at: now }])
            }
        }
    }

    /// Folds one event.
    pub fn apply(&mut self, event: &VFolderEvent) {
        self.version = self.version.saturating_add(1);
        self.updated_at = Some(event.occurred_at());
        match event {
            VFolderEvent::VFolderCreated { spec, occurred_at } => {
                self.spec = Some(spec.clone());
                self.status = Some(VFolderStatus::Ready);
                self.created_at = Some(*occurred_at);
            }
            VFolderEvent::VFolderCloneTargetCreated {
                spec,
                source_id,
                task_id,
                occurred_at,
            } => {
                self.spec = Some(spec.clone());
                self.status = Some(VFolderStatus::Cloning);
                self.created_at = Some(*occurred_at);
                self.cloned_from = Some(*source_id);
                self.task_id = Some(*task_id);
            }
            VFolderEvent::VFolderCloneStarted { task_id, .. } => {
                self.active_clones.insert(*task_id);
            }
            VFolderEvent::VFolderCloneEnded { task_id, .. } => {
                self.active_clones.remove(task_id);
            }
            VFolderEvent::VFolderReady { .. } => {
                self.status = Some(VFolderStatus::Ready);
                self.status_info = None;
            }
            VFolderEvent::VFolderErrored { reason, .. } => {
                self.status = Some(VFolderStatus::Error);
                self.status_info = Some(reason.clone());
            }
            VFolderEvent::VFolderDeleteRequested { task_id, .. } => {
                self.status = Some(VFolderStatus::DeletePending);
                self.task_id = Some(*task_id);
            }
            VFolderEvent::VFolderDeleted { .. } => {
                self.status = Some(VFolderStatus::DeleteComplete);
            }
        }
    }

    /// Whether the folder exists and is not deleted (or being deleted).
    pub fn is_live(&self) -> bool {
        self.status.is_some_and(|s| !s.is_deleted())
    }
}

crate::aggregate!(
    VFolder,
    "VFolder",
    VFolderCommand,
    VFolderEvent,
    VFolderError,
    super::events::VFOLDER_EVENT_VERSION,
    |e| VFolderEvent::event_type(e)
);
