//! The BackgroundTask aggregate: state, decisions, fold.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::commands::BackgroundTaskCommand;
use super::error::BackgroundTaskError;
use super::events::BackgroundTaskEvent;
use super::spec::TaskParams;
use super::status::TaskStatus;
use crate::ids::Owner;

/// Folded state of a task. `Default`: it does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackgroundTask {
    /// Its id (`None`: it does not exist).
    pub task_id: Option<uuid::Uuid>,
    /// What it works on (`None`: it does not exist).
    pub params: Option<TaskParams>,
    /// Whose it is.
    pub owner: Option<Owner>,
    /// Its status (`None`: it does not exist).
    pub status: Option<TaskStatus>,
    /// Units done (bytes for a clone).
    pub current_progress: u64,
    /// Units in all.
    pub total_progress: u64,
    /// The last progress message, or the final message / reason.
    pub message: String,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Runs so far (1 for the first).
    pub attempts: u32,
    /// Who cancelled it.
    pub cancelled_by: Option<String>,
    /// Events folded (the stream's last sequence).
    pub version: u64,
}

impl BackgroundTask {
    fn running(&self) -> Result<&TaskParams, BackgroundTaskError> {
        match (self.status, &self.params) {
            (None, _) | (_, None) => Err(BackgroundTaskError::NotFound),
            (Some(TaskStatus::Running), Some(p)) => Ok(p),
            (Some(status), _) => Err(BackgroundTaskError::Finished { status }),
        }
    }

    /// Decides a command; nothing changes on refusal. Every command but `Start` needs
    /// a running task: a finished task never changes again.
    pub fn decide(
        &self,
        command: BackgroundTaskCommand,
    ) -> Result<Vec<BackgroundTaskEvent>, BackgroundTaskError> {
        match command {
            BackgroundTaskCommand::Start {
                task_id,
                params,
                owner,
                now,
            } => {
                if self.status.is_some() {
                    return Err(BackgroundTaskError::AlreadyExists);
                }
                Ok(vec![BackgroundTaskEvent::BackgroundTaskStarted {
                    task_id,
                    params,
                    owner,
                    total: 0,
                    occurred_at: now,
                }])
            }
            BackgroundTaskCommand::Progress {
                current,
                total,
                message,
                now,
            } => {
                self.running()?;
                Ok(vec![BackgroundTaskEvent::BackgroundTaskProgressed {
                    current: current.min(total),
                    total,
                    message,
                    occurred_at: now,
                }])
            }
            BackgroundTaskCommand::Complete { message, now } => {
                self.running()?;
                Ok(vec![BackgroundTaskEvent::BackgroundTaskCompleted {
                    message,
                    occurred_at: now,
                }])
            }
            BackgroundTaskCommand::Fail { reason, now } => {
                self.running()?;
                Ok(vec![BackgroundTaskEvent::BackgroundTaskFailed {
                    reason,
                    occurred_at: now,
                }])
            }
            BackgroundTaskCommand::Cancel { requested_by, now } => {
                let kind = self.running()?.kind();
                if !kind.cancellable() {
                    return Err(BackgroundTaskError::NotCancellable { kind });
                }
                Ok(vec![BackgroundTaskEvent::BackgroundTaskCancelled {
                    requested_by,
                    occurred_at: now,
                }])
            }
            BackgroundTaskCommand::Retry {
                reason,
                max_attempts,
                now,
            } => {
                self.running()?;
                if self.attempts >= max_attempts {
                    return Ok(vec![BackgroundTaskEvent::BackgroundTaskFailed {
                        reason,
                        occurred_at: now,
                    }]);
                }
                Ok(vec![BackgroundTaskEvent::BackgroundTaskResumed {
                    attempt: self.attempts.saturating_add(1),
                    reason,
                    occurred_at: now,
                }])
            }
        }
    }

    /// Folds one event.
    pub fn apply(&mut self, event: &BackgroundTaskEvent) {
        self.version = self.version.saturating_add(1);
        match event {
            BackgroundTaskEvent::BackgroundTaskStarted {
                task_id,
                params,
                owner,
                total,
                occurred_at,
            } => {
                self.task_id = Some(*task_id);
                self.params = Some(params.clone());
                self.owner = Some(owner.clone());
                self.status = Some(TaskStatus::Running);
                self.total_progress = *total;
                self.message = "Task started".to_string();
                self.started_at = Some(*occurred_at);
                self.attempts = 1;
            }
            BackgroundTaskEvent::BackgroundTaskProgressed {
                current,
                total,
                message,
                ..
            } => {
                self.current_progress = *current;
                self.total_progress = *total;
                self.message = message.clone();
            }
            BackgroundTaskEvent::BackgroundTaskCompleted {
                message,
                occurred_at,
            } => {
                self.status = Some(TaskStatus::Done);
                self.current_progress = self.total_progress;
                self.message = message.clone();
                self.finished_at = Some(*occurred_at);
            }
            BackgroundTaskEvent::BackgroundTaskFailed {
                reason,
                occurred_at,
            } => {
                self.status = Some(TaskStatus::Failed);
                self.message = reason.clone();
                self.finished_at = Some(*occurred_at);
            }
            BackgroundTaskEvent::BackgroundTaskCancelled {
                requested_by,
                occurred_at,
            } => {
                self.status = Some(TaskStatus::Cancelled);
                self.message = "Task cancelled".to_string();
                self.cancelled_by = Some(requested_by.clone());
                self.finished_at = Some(*occurred_at);
            }
            BackgroundTaskEvent::BackgroundTaskResumed { attempt, .. } => {
                self.attempts = *attempt;
            }
        }
    }

    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.status.is_some_and(TaskStatus::is_terminal)
    }
}

crate::aggregate!(
    BackgroundTask,
    "BackgroundTask",
    BackgroundTaskCommand,
    BackgroundTaskEvent,
    BackgroundTaskError,
    super::events::BACKGROUND_TASK_EVENT_VERSION,
    |e| BackgroundTaskEvent::event_type(e)
);
