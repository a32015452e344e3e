//! Given/when/then tests of the VFolder aggregate.

use uuid::Uuid;

use super::*;
use crate::fixtures::{epoch, owner};
use crate::ids::{VFolderName, VolumeName};

fn spec(id: u128) -> VFolderSpec {
    VFolderSpec {
        vfolder_id: Uuid::from_u128(id),
        name: VFolderName::parse("name", "data").unwrap(),
        owner: owner("alice"),
        host: VolumeName::parse("host", "local").unwrap(),
        usage_mode: UsageMode::General,
        permission: Permission::Rw,
        cloneable: false,
    }
}

fn given(commands: Vec<VFolderCommand>) -> VFolder {
    let mut v = VFolder::default();
    for c in commands {
        for e in v.decide(c).unwrap() {
            v.apply(&e);
        }
    }
    v
}

fn when(v: &VFolder, c: VFolderCommand) -> Result<VFolder, VFolderError> {
    let mut v = v.clone();
    for e in v.decide(c)? {
        v.apply(&e);
    }
    Ok(v)
}

fn created() -> VFolderCommand {
    VFolderCommand::Create {
        spec: spec(1),
        now: epoch(),
    }
}

fn clone_target() -> VFolderCommand {
    VFolderCommand::CreateCloneTarget {
        spec: spec(2),
        source_id: Uuid::from_u128(1),
        task_id: Uuid::from_u128(9),
        now: epoch(),
    }
}

fn task(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

#[test]
fn given_nothing_when_a_folder_is_created_then_it_is_ready() {
    let v = given(vec![created()]);
    assert_eq!(v.status, Some(VFolderStatus::Ready));
    assert!(v.is_live());
}

#[test]
fn given_a_folder_when_it_is_created_again_then_it_already_exists() {
    assert_eq!(
        given(vec![created()]).decide(created()),
        Err(VFolderError::AlreadyExists)
    );
}

#[test]
fn given_nothing_when_a_clone_target_is_created_then_it_is_cloning_with_its_task() {
    let v = given(vec![clone_target()]);
    assert_eq!(v.status, Some(VFolderStatus::Cloning));
    assert_eq!(v.task_id, Some(task(9)));
    assert_eq!(v.cloned_from, Some(task(1)));
}

#[test]
fn given_a_cloning_target_when_marked_ready_then_it_is_ready_and_marking_again_is_a_no_op() {
    let v = given(vec![
        clone_target(),
        VFolderCommand::MarkReady { now: epoch() },
    ]);
    assert_eq!(v.status, Some(VFolderStatus::Ready));
    assert_eq!(
        v.decide(VFolderCommand::MarkReady { now: epoch() }),
        Ok(vec![])
    );
}

#[test]
fn given_a_cancelled_target_when_the_runner_marks_it_ready_then_it_is_refused() {
    let v = given(vec![
        clone_target(),
        VFolderCommand::MarkError {
            reason: reasons::CLONE_CANCELLED.into(),
            now: epoch(),
        },
    ]);
    assert_eq!(v.status_info.as_deref(), Some("clone-cancelled"));
    assert_eq!(
        v.decide(VFolderCommand::MarkReady { now: epoch() }),
        Err(VFolderError::WrongStatus {
            status: VFolderStatus::Error
        })
    );
}

#[test]
fn given_a_source_with_a_running_clone_when_deleted_then_it_is_refused_until_the_clone_ends() {
    let begin = VFolderCommand::BeginCloneFrom {
        task_id: task(9),
        target_id: task(2),
        now: epoch(),
    };
    let v = given(vec![created(), begin]);
    let delete = VFolderCommand::RequestDelete {
        task_id: task(10),
        now: epoch(),
    };
    assert_eq!(
        v.decide(delete.clone()),
        Err(VFolderError::CloneRunning { task_id: task(9) })
    );
    let v = when(
        &v,
        VFolderCommand::EndCloneFrom {
            task_id: task(9),
            now: epoch(),
        },
    )
    .unwrap();
    let v = when(&v, delete).unwrap();
    assert_eq!(v.status, Some(VFolderStatus::DeletePending));
    assert!(!v.is_live());
}

#[test]
fn given_a_cloning_target_when_deleted_then_it_is_refused() {
    assert_eq!(
        given(vec![clone_target()]).decide(VFolderCommand::RequestDelete {
            task_id: task(10),
            now: epoch()
        }),
        Err(VFolderError::WrongStatus {
            status: VFolderStatus::Cloning
        })
    );
}

#[test]
fn given_a_clone_that_ended_when_it_ends_again_then_nothing_is_appended() {
    let v = given(vec![created()]);
    assert_eq!(
        v.decide(VFolderCommand::EndCloneFrom {
            task_id: task(9),
            now: epoch()
        }),
        Ok(vec![])
    );
}

#[test]
fn given_a_folder_being_deleted_when_a_clone_begins_from_it_then_it_is_refused() {
    let v = given(vec![
        created(),
        VFolderCommand::RequestDelete {
            task_id: task(10),
            now: epoch(),
        },
    ]);
    assert_eq!(
        v.decide(VFolderCommand::BeginCloneFrom {
            task_id: task(9),
            target_id: task(2),
            now: epoch()
        }),
        Err(VFolderError::WrongStatus {
            status: VFolderStatus::DeletePending
        })
    );
}

#[test]
fn given_a_pending_deletion_when_completed_then_it_is_delete_complete_and_completing_again_is_a_no_op(
) {
    let v = given(vec![
        created(),
        VFolderCommand::RequestDelete {
            task_id: task(10),
            now: epoch(),
        },
        VFolderCommand::CompleteDelete { now: epoch() },
    ]);
    assert_eq!(v.status, Some(VFolderStatus::DeleteComplete));
    assert_eq!(
        v.decide(VFolderCommand::CompleteDelete { now: epoch() }),
        Ok(vec![])
    );
}

#[test]
fn given_nothing_when_any_command_but_create_arrives_then_it_is_not_found() {
    let v = VFolder::default();
    for c in [
        VFolderCommand::MarkReady { now: epoch() },
        VFolderCommand::RequestDelete {
            task_id: task(1),
            now: epoch(),
        },
        VFolderCommand::EndCloneFrom {
            task_id: task(1),
            now: epoch(),
        },
    ] {
        assert_eq!(v.decide(c), Err(VFolderError::NotFound));
    }
}
