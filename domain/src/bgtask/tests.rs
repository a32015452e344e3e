//! Given/when/then tests of the BackgroundTask aggregate.

use uuid::Uuid;

use super::*;
use crate::fixtures::{epoch, owner};
use crate::ids::VolumeName;

fn clone_params() -> TaskParams {
    TaskParams::VfolderClone {
        source_id: Uuid::from_u128(1),
        source_host: VolumeName::parse("host", "local").unwrap(),
        target_id: Uuid::from_u128(2),
        target_host: VolumeName::parse("host", "local").unwrap(),
    }
}

fn delete_params() -> TaskParams {
    TaskParams::VfolderDelete {
        vfolder_id: Uuid::from_u128(1),
        host: VolumeName::parse("host", "local").unwrap(),
    }
}

fn started(params: TaskParams) -> BackgroundTask {
    let mut t = BackgroundTask::default();
    for e in t
        .decide(BackgroundTaskCommand::Start {
            task_id: Uuid::from_u128(7),
            params,
            owner: owner("alice"),
            now: epoch(),
        })
        .unwrap()
    {
        t.apply(&e);
    }
    t
}

fn when(
    t: &BackgroundTask,
    c: BackgroundTaskCommand,
) -> Result<BackgroundTask, BackgroundTaskError> {
    let mut t = t.clone();
    for e in t.decide(c)? {
        t.apply(&e);
    }
    Ok(t)
}

fn retry() -> BackgroundTaskCommand {
    BackgroundTaskCommand::Retry {
        reason: reasons::INTERRUPTED.into(),
        max_attempts: MAX_ATTEMPTS,
        now: epoch(),
    }
}

#[test]
fn given_nothing_when_a_task_starts_then_it_is_running_on_its_first_attempt() {
    let t = started(clone_params());
    assert_eq!(t.status, Some(TaskStatus::Running));
    assert_eq!(t.attempts, 1);
    assert_eq!(t.message, "Task started");
}

#[test]
fn given_a_running_task_when_progress_is_recorded_then_current_never_exceeds_total() {
    let t = when(
        &started(clone_params()),
        BackgroundTaskCommand::Progress {
            current: 150,
            total: 100,
            message: "copying".into(),
            now: epoch(),
        },
    )
    .unwrap();
    assert_eq!((t.current_progress, t.total_progress), (100, 100));
}

#[test]
fn given_a_task_interrupted_twice_when_interrupted_a_third_time_then_it_fails_interrupted() {
    let t = when(&started(clone_params()), retry()).unwrap();
    assert_eq!(t.attempts, 2);
    let t = when(&t, retry()).unwrap();
    assert_eq!(t.attempts, 3);
    let t = when(&t, retry()).unwrap();
    assert_eq!(t.status, Some(TaskStatus::Failed));
    assert_eq!(t.message, "interrupted");
    assert_eq!(t.attempts, 3);
}

#[test]
fn given_a_finished_task_when_anything_is_decided_then_it_is_refused_as_finished() {
    let done = when(
        &started(clone_params()),
        BackgroundTaskCommand::Complete {
            message: "ok".into(),
            now: epoch(),
        },
    )
    .unwrap();
    assert_eq!(done.current_progress, done.total_progress);
    for c in [
        retry(),
        BackgroundTaskCommand::Cancel {
            requested_by: "alice".into(),
            now: epoch(),
        },
        BackgroundTaskCommand::Fail {
            reason: "x".into(),
            now: epoch(),
        },
    ] {
        assert_eq!(
            done.decide(c),
            Err(BackgroundTaskError::Finished {
                status: TaskStatus::Done
            })
        );
    }
}

#[test]
fn given_a_running_clone_when_cancelled_then_it_is_cancelled_by_that_user() {
    let t = when(
        &started(clone_params()),
        BackgroundTaskCommand::Cancel {
            requested_by: "alice".into(),
            now: epoch(),
        },
    )
    .unwrap();
    assert_eq!(t.status, Some(TaskStatus::Cancelled));
    assert_eq!(t.cancelled_by.as_deref(), Some("alice"));
    assert_eq!(t.message, "Task cancelled");
}

#[test]
fn given_a_running_deletion_when_cancelled_then_it_is_refused() {
    assert_eq!(
        started(delete_params()).decide(BackgroundTaskCommand::Cancel {
            requested_by: "alice".into(),
            now: epoch()
        }),
        Err(BackgroundTaskError::NotCancellable {
            kind: TaskKind::VFolderDelete
        })
    );
}

#[test]
fn given_nothing_when_progress_arrives_then_the_task_is_not_found() {
    assert_eq!(
        BackgroundTask::default().decide(retry()),
        Err(BackgroundTaskError::NotFound)
    );
}

#[test]
fn task_params_serialise_with_their_kind_as_the_api_spells_it() {
    let v = serde_json::to_value(clone_params()).unwrap();
    assert_eq!(v["kind"], "vfolder-clone");
    assert_eq!(clone_params().kind().as_str(), "vfolder-clone");
    assert_eq!(delete_params().kind().as_str(), "vfolder-delete");
}
