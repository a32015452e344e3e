//! VFolder and background-task commands as the API issues them (SPEC §7): create,
//! clone, delete, cancel. Each is one short append of several streams at once (no
//! transaction is held while deciding, and none while files are copied: the copy is a
//! background task, `crate::tasks`).
//!
//! # The invariants, and where each holds
//! - **A name** is unique among an owner's folders that are not deleted through the
//!   `NameClaim` stream `vfolder/<owner>/<name>`, appended with the folder's first event.
//! - **A clone** appends, in one statement, the target (`cloning`, with its task id),
//!   the target's name claim, `VFolderCloneStarted` on the source (decided at the
//!   source's version: a source deleted meanwhile makes the batch conflict and be
//!   decided again, which refuses it) and `BackgroundTaskStarted`. The task's lease is
//!   taken *before* the append, so no other runner can take a task that was just
//!   created for this process.
//! - **Ends** (done, failed, cancelled) append the task's terminal event, the target's
//!   `ready`/`error` and the source's `VFolderCloneEnded` together: a target never says
//!   `ready` while its task runs, nor `cloning` after it ended.
//! - **A source with clones running** cannot be deleted (the aggregate refuses).

use domain::bgtask::{BackgroundTask, BackgroundTaskCommand, BackgroundTaskError, TaskParams};
use domain::ids::{Owner, VFolderName};
use domain::name_claim::{ClaimName, NameClaim, NameClaimError};
use domain::vfolder::{
    reasons, vfolder_claim_id, VFolder, VFolderCommand, VFolderError, VFolderSpec,
};
use uuid::Uuid;

use crate::app::App;
use crate::command::{Batch, CommandError};
use crate::store::{EventMetadata, LogPosition, StoreError};

/// Why a vfolder or task command did not land. Each variant maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum VFolderCommandError {
    /// No such folder or task (or not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The owner has a folder of that name that is not deleted (409 `name_conflict`).
    #[error("you already have a vfolder named '{name}'")]
    NameConflict {
        /// The name.
        name: String,
    },
    /// The volume is not configured (422).
    #[error("host: no volume '{0}' is configured")]
    UnknownVolume(String),
    /// A folder refused the command (409).
    #[error(transparent)]
    Folder(#[from] VFolderError),
    /// A task refused the command (409).
    #[error(transparent)]
    Task(#[from] BackgroundTaskError),
    /// Still conflicting after every retry (409).
    #[error("the vfolder changed concurrently; retry")]
    Conflict,
    /// The volume could not be written (503).
    #[error("cannot prepare the vfolder's directory: {0}")]
    Volume(String),
    /// The store failed (503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the streams of one command refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A folder.
    #[error(transparent)]
    Folder(#[from] VFolderError),
    /// A task.
    #[error(transparent)]
    Task(#[from] BackgroundTaskError),
    /// The name claim.
    #[error(transparent)]
    Name(#[from] NameClaimError),
}

fn from_command(e: CommandError<Refusal>, name: &str) -> VFolderCommandError {
    match e {
        CommandError::Rejected(Refusal::Folder(f)) => f.into(),
        CommandError::Rejected(Refusal::Task(t)) => t.into(),
        CommandError::Rejected(Refusal::Name(_)) => VFolderCommandError::NameConflict {
            name: name.to_string(),
        },
        CommandError::Conflict { .. } => VFolderCommandError::Conflict,
        CommandError::Store(s) => s.into(),
    }
}

/// A folder and the position of its last event.
#[derive(Debug, Clone)]
pub struct Located {
    /// Its id.
    pub id: Uuid,
    /// Its state.
    pub folder: VFolder,
}

/// `owner`'s live folder named `name`, read from the claim and the folder's stream
/// (exact: reflects every acknowledged event, whatever the read model's lag).
pub async fn find(
    app: &App,
    owner: &Owner,
    name: &VFolderName,
) -> Result<Option<Located>, StoreError> {
    let claim_id = vfolder_claim_id(owner, name);
    let Some((_, last)) = app.store.load_last::<NameClaim>(&claim_id).await? else {
        return Ok(None);
    };
    let holder = NameClaim::from_last(1, &last).holder;
    let Some(id) = holder else { return Ok(None) };
    let folder: VFolder = app.commands.load(&id.to_string()).await?;
    Ok(folder.is_live().then_some(Located { id, folder }))
}

/// Adds the name claim of a new folder `id` to `batch`.
async fn claim_name(
    app: &App,
    batch: &mut Batch,
    owner: &Owner,
    name: &VFolderName,
    id: Uuid,
) -> Result<(), CommandError<Refusal>> {
    let claim_id = vfolder_claim_id(owner, name);
    let claim = match app.store.load_last::<NameClaim>(&claim_id).await? {
        Some((sequence, last)) => NameClaim::from_last(sequence, &last),
        None => NameClaim::default(),
    };
    let holder_ended = match claim.holder {
        Some(h) if h != id => {
            let holder: VFolder = app.commands.load(&h.to_string()).await?;
            !holder.is_live()
        }
        _ => true,
    };
    batch.decide_on::<NameClaim, Refusal>(
        &claim_id,
        claim.clone(),
        i64::try_from(claim.version).unwrap_or(i64::MAX),
        ClaimName {
            holder: id,
            current_holder_ended: holder_ended,
            now: app.clock.now(),
        },
    )?;
    Ok(())
}

/// Creates a ready, empty folder: its directory first (an empty directory under a new
/// id harms nothing if the append then fails; it is removed), then its events.
pub async fn create(
    app: &App,
    spec: VFolderSpec,
    meta: &EventMetadata,
) -> Result<(VFolder, LogPosition), VFolderCommandError> {
    let dir = app
        .volumes
        .folder_dir(spec.host.as_str(), spec.vfolder_id)
        .ok_or_else(|| VFolderCommandError::UnknownVolume(spec.host.to_string()))?;
    std::fs::create_dir(&dir).map_err(|e| VFolderCommandError::Volume(e.to_string()))?;
    let id = spec.vfolder_id.to_string();
    let result = app
        .commands
        .retry_conflicts(|| async {
            let mut batch = Batch::new(meta);
            claim_name(app, &mut batch, &spec.owner, &spec.name, spec.vfolder_id).await?;
            let folder = batch.decide_on::<VFolder, Refusal>(
                &id,
                VFolder::default(),
                0,
                VFolderCommand::Create {
                    spec: spec.clone(),
                    now: app.clock.now(),
                },
            )?;
            let positions = batch.commit(&app.store).await?;
            Ok((folder, positions))
        })
        .await;
    match result {
        Ok(((folder, positions), _)) => Ok((folder, last(&positions))),
        Err(e) => {
            let _ = std::fs::remove_dir(&dir);
            Err(from_command(e, spec.name.as_str()))
        }
    }
}

fn last(positions: &[LogPosition]) -> LogPosition {
    positions.last().copied().unwrap_or(LogPosition::START)
}

/// What a clone or a deletion started.
#[derive(Debug, Clone)]
pub struct Started {
    /// The folder (the clone target, or the folder being deleted).
    pub folder: VFolder,
    /// Its id.
    pub vfolder_id: Uuid,
    /// The background task.
    pub task_id: Uuid,
    /// Position of the last event appended.
    pub position: LogPosition,
}

/// Starts a clone of `source` into a new folder `target` (the caller has checked who may
/// clone what). Answers before a byte is copied.
pub async fn clone(
    app: &App,
    source: &Located,
    target: VFolderSpec,
    meta: &EventMetadata,
) -> Result<Started, VFolderCommandError> {
    let Some(source_spec) = source.folder.spec.clone() else {
        return Err(VFolderCommandError::NotFound("vfolder"));
    };
    if app.volumes.get(target.host.as_str()).is_none() {
        return Err(VFolderCommandError::UnknownVolume(target.host.to_string()));
    }
    let task_id = Uuid::new_v4();
    let reservation = app.tasks.reserve_on(app.db(), task_id).await?;
    let params = TaskParams::VfolderClone {
        source_id: source.id,
        source_host: source_spec.host.clone(),
        target_id: target.vfolder_id,
        target_host: target.host.clone(),
    };
    let result = app
        .commands
        .retry_conflicts(|| async {
            let now = app.clock.now();
            let mut batch = Batch::new(meta);
            claim_name(
                app,
                &mut batch,
                &target.owner,
                &target.name,
                target.vfolder_id,
            )
            .await?;
            batch
                .decide::<VFolder, Refusal>(
                    &app.store,
                    &source.id.to_string(),
                    VFolderCommand::BeginCloneFrom {
                        task_id,
                        target_id: target.vfolder_id,
                        now,
                    },
                )
                .await?;
            let folder = batch.decide_on::<VFolder, Refusal>(
                &target.vfolder_id.to_string(),
                VFolder::default(),
                0,
                VFolderCommand::CreateCloneTarget {
                    spec: target.clone(),
                    source_id: source.id,
                    task_id,
                    now,
                },
            )?;
            batch.decide_on::<BackgroundTask, Refusal>(
                &task_id.to_string(),
                BackgroundTask::default(),
                0,
                BackgroundTaskCommand::Start {
                    task_id,
                    params: params.clone(),
                    owner: target.owner.clone(),
                    now,
                },
            )?;
            let positions = batch.commit(&app.store).await?;
            Ok((folder, positions))
        })
        .await;
    match result {
        Ok(((folder, positions), _)) => {
            app.tasks.launch(reservation);
            metrics::counter!("sessiond_background_tasks_started_total", "kind" => "vfolder-clone")
                .increment(1);
            Ok(Started {
                folder,
                vfolder_id: target.vfolder_id,
                task_id,
                position: last(&positions),
            })
        }
        Err(e) => {
            app.tasks.release(reservation);
            Err(from_command(e, target.name.as_str()))
        }
    }
}

/// Deletes a folder: `delete-pending` at once, its files removed by a background task,
/// then `delete-complete`.
pub async fn delete(
    app: &App,
    folder: &Located,
    meta: &EventMetadata,
) -> Result<Started, VFolderCommandError> {
    let Some(spec) = folder.folder.spec.clone() else {
        return Err(VFolderCommandError::NotFound("vfolder"));
    };
    let task_id = Uuid::new_v4();
    let reservation = app.tasks.reserve_on(app.db(), task_id).await?;
    let result = app
        .commands
        .retry_conflicts(|| async {
            let now = app.clock.now();
            let mut batch = Batch::new(meta);
            let state = batch
                .decide::<VFolder, Refusal>(
                    &app.store,
                    &folder.id.to_string(),
                    VFolderCommand::RequestDelete { task_id, now },
                )
                .await?;
            batch.decide_on::<BackgroundTask, Refusal>(
                &task_id.to_string(),
                BackgroundTask::default(),
                0,
                BackgroundTaskCommand::Start {
                    task_id,
                    params: TaskParams::VfolderDelete {
                        vfolder_id: folder.id,
                        host: spec.host.clone(),
                    },
                    owner: spec.owner.clone(),
                    now,
                },
            )?;
            let positions = batch.commit(&app.store).await?;
            Ok((state, positions))
        })
        .await;
    match result {
        Ok(((state, positions), _)) => {
            app.tasks.launch(reservation);
            metrics::counter!("sessiond_background_tasks_started_total", "kind" => "vfolder-delete").increment(1);
            Ok(Started {
                folder: state,
                vfolder_id: folder.id,
                task_id,
                position: last(&positions),
            })
        }
        Err(e) => {
            app.tasks.release(reservation);
            Err(from_command(e, spec.name.as_str()))
        }
    }
}

/// How a task ends, with the effects on its folders.
#[derive(Debug, Clone)]
pub enum Ending {
    /// Done, with its message.
    Done(String),
    /// Failed for good, with its reason.
    Failed(String),
    /// Cancelled by `requested_by`.
    Cancelled(String),
    /// Its run ended (`reason`); another attempt, or failure after the last one.
    Retry(String),
}

/// Ends (or retries) task `task_id` and applies what that means to its folders, in one
/// append: a clone's target becomes `ready` or `error` and its source's clone ends; a
/// deletion's folder becomes `delete-complete`. Returns the task as it is after.
pub async fn end_task(
    app: &App,
    task_id: Uuid,
    ending: Ending,
    meta: &EventMetadata,
) -> Result<(BackgroundTask, LogPosition), VFolderCommandError> {
    let id = task_id.to_string();
    let result = app
        .commands
        .retry_conflicts(|| async {
            let now = app.clock.now();
            let mut batch = Batch::new(meta);
            let command = match &ending {
                Ending::Done(message) => BackgroundTaskCommand::Complete {
                    message: message.clone(),
                    now,
                },
                Ending::Failed(reason) => BackgroundTaskCommand::Fail {
                    reason: reason.clone(),
                    now,
                },
                Ending::Cancelled(by) => BackgroundTaskCommand::Cancel {
                    requested_by: by.clone(),
                    now,
                },
                Ending::Retry(reason) => BackgroundTaskCommand::Retry {
                    reason: reason.clone(),
                    max_attempts: domain::bgtask::MAX_ATTEMPTS,
                    now,
                },
            };
            let task = batch
                .decide::<BackgroundTask, Refusal>(&app.store, &id, command)
                .await?;
            let status = task.status;
            match (&task.params, status) {
                (
                    Some(TaskParams::VfolderClone {
                        source_id,
                        target_id,
                        ..
                    }),
                    Some(s),
                ) if s.is_terminal() => {
                    let target_command = match s {
                        domain::bgtask::TaskStatus::Done => VFolderCommand::MarkReady { now },
                        domain::bgtask::TaskStatus::Cancelled => VFolderCommand::MarkError {
                            reason: reasons::CLONE_CANCELLED.to_string(),
                            now,
                        },
                        _ => VFolderCommand::MarkError {
                            reason: format!("{}: {}", reasons::CLONE_FAILED, task.message),
                            now,
                        },
                    };
                    batch
                        .decide::<VFolder, Refusal>(
                            &app.store,
                            &target_id.to_string(),
                            target_command,
                        )
                        .await?;
                    batch
                        .decide::<VFolder, Refusal>(
                            &app.store,
                            &source_id.to_string(),
                            VFolderCommand::EndCloneFrom { task_id, now },
                        )
                        .await?;
                }
                (
                    Some(TaskParams::VfolderDelete { vfolder_id, .. }),
                    Some(domain::bgtask::TaskStatus::Done),
                ) => {
                    batch
                        .decide::<VFolder, Refusal>(
                            &app.store,
                            &vfolder_id.to_string(),
                            VFolderCommand::CompleteDelete { now },
                        )
                        .await?;
                }
                _ => {}
            }
            let positions = batch.commit(&app.store).await?;
            Ok((task, positions))
        })
        .await;
    match result {
        Ok(((task, positions), _)) => {
            if let (Some(status), Some(params)) = (task.status, &task.params) {
                if status.is_terminal() {
                    metrics::counter!(
                        "sessiond_background_tasks_finished_total",
                        "kind" => params.kind().as_str(),
                        "status" => status.as_str()
                    )
                    .increment(1);
                }
            }
            Ok((task, last(&positions)))
        }
        Err(e) => Err(from_command(e, "")),
    }
}
