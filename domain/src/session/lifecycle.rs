//! The decisions of the requests that move a session from outside (SPEC §4): what a
//! DELETE means for a session in a given status, and what an agent's kernel report
//! means. Pure functions; the application loads the status and executes the command.

use chrono::{DateTime, Utc};

use super::commands::SessionCommand;
use super::reasons::{FORCE_TERMINATED, KERNEL_FAILED, SELF_TERMINATED, USER_REQUESTED};
use super::status::SessionStatus;
use crate::ids::Reason;

/// The command DELETE issues for a session in `status` (SPEC §4): PENDING..CREATING are
/// cancelled (`user-requested`), RUNNING, RESTARTING, RUNNING_DEGRADED and ERROR go to
/// TERMINATING, TERMINATING is a no-op (`None`) and ended sessions are rejected by the
/// table. `forced` ends it at once: TERMINATED (`force-terminated`) where the table
/// allows it, otherwise (before RUNNING) CANCELLED with the same reason.
pub fn delete_command(
    status: SessionStatus,
    forced: bool,
    actor: &str,
    now: DateTime<Utc>,
) -> Option<SessionCommand> {
    use SessionStatus::*;
    let before_running = matches!(
        status,
        Pending | Scheduled | Preparing | Pulling | Prepared | Creating
    );
    Some(match (forced, before_running) {
        (true, true) => SessionCommand::Cancel {
            reason: Reason::from_static(FORCE_TERMINATED),
            now,
        },
        (true, false) => SessionCommand::MarkTerminated {
            reason: Reason::from_static(FORCE_TERMINATED),
            exit_code: None,
            now,
        },
        (false, true) => SessionCommand::Cancel {
            reason: Reason::from_static(USER_REQUESTED),
            now,
        },
        (false, false) if status == Terminating => return None,
        // Ended sessions: the table rejects this (409).
        (false, false) if status.is_terminal() => SessionCommand::Cancel {
            reason: Reason::from_static(USER_REQUESTED),
            now,
        },
        (false, false) => SessionCommand::RequestTermination {
            reason: Reason::from_static(USER_REQUESTED),
            requested_by: actor.to_string(),
            now,
        },
    })
}

/// What an agent reports about a session's kernel (SPEC §4 kernel-events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// -> PREPARING.
    Preparing,
    /// -> PULLING.
    Pulling,
    /// -> PREPARED.
    Prepared,
    /// -> CREATING.
    Creating,
    /// -> RUNNING.
    Started,
    /// The kernel exited: TERMINATED when it was asked to stop or exited with 0,
    /// ERROR `exit-code-N` otherwise.
    Terminated {
        /// Exit code, when known.
        exit_code: Option<i32>,
        /// Reason, when given.
        reason: Option<Reason>,
    },
    /// The kernel failed: ERROR.
    Failed {
        /// Short reason, e.g. `image-pull-failed`.
        reason: Option<Reason>,
    },
}

/// The wire names of the kernel events, in lifecycle order.
pub const KERNEL_EVENTS: [&str; 7] = [
    "preparing",
    "pulling",
    "prepared",
    "creating",
    "started",
    "terminated",
    "failed",
];

impl KernelEvent {
    /// Builds a report from its wire form `{event, exit_code?, reason?}`; `None` for an
    /// unknown event name.
    pub fn parse(event: &str, exit_code: Option<i32>, reason: Option<Reason>) -> Option<Self> {
        Some(match event {
            "preparing" => Self::Preparing,
            "pulling" => Self::Pulling,
            "prepared" => Self::Prepared,
            "creating" => Self::Creating,
            "started" => Self::Started,
            "terminated" => Self::Terminated { exit_code, reason },
            "failed" => Self::Failed { reason },
            _ => return None,
        })
    }

    /// The command this report means for a session in `status`.
    pub fn command(self, status: SessionStatus, now: DateTime<Utc>) -> SessionCommand {
        match self {
            Self::Preparing => SessionCommand::MarkPreparing { now },
            Self::Pulling => SessionCommand::MarkPulling { now },
            Self::Prepared => SessionCommand::MarkPrepared { now },
            Self::Creating => SessionCommand::MarkCreating { now },
            Self::Started => SessionCommand::Start { now },
            Self::Terminated { exit_code, reason } => {
                let asked_to_stop =
                    matches!(status, SessionStatus::Terminating | SessionStatus::Error);
                match exit_code {
                    Some(code) if code != 0 && !asked_to_stop => SessionCommand::Fail {
                        reason: Reason::from_stored(format!("exit-code-{code}")),
                        detail: reason.map(String::from),
                        now,
                    },
                    _ => SessionCommand::MarkTerminated {
                        reason: reason.unwrap_or_else(|| {
                            Reason::from_static(if asked_to_stop {
                                USER_REQUESTED
                            } else {
                                SELF_TERMINATED
                            })
                        }),
                        exit_code,
                        now,
                    },
                }
            }
            Self::Failed { reason } => SessionCommand::Fail {
                reason: reason.unwrap_or_else(|| Reason::from_static(KERNEL_FAILED)),
                detail: None,
                now,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::epoch;
    use SessionStatus::*;

    fn reason_of(c: &Option<SessionCommand>) -> Option<&str> {
        match c {
            Some(SessionCommand::Cancel { reason, .. })
            | Some(SessionCommand::MarkTerminated { reason, .. })
            | Some(SessionCommand::RequestTermination { reason, .. }) => Some(reason.as_str()),
            _ => None,
        }
    }

    #[test]
    fn given_a_session_before_running_when_deleted_then_it_is_cancelled_user_requested() {
        for s in [Pending, Scheduled, Preparing, Pulling, Prepared, Creating] {
            let c = delete_command(s, false, "k", epoch());
            assert!(matches!(c, Some(SessionCommand::Cancel { .. })), "{s}");
            assert_eq!(reason_of(&c), Some(USER_REQUESTED));
        }
    }

    #[test]
    fn given_a_running_or_failed_session_when_deleted_then_termination_is_requested() {
        for s in [Running, Restarting, RunningDegraded, Error] {
            assert!(matches!(
                delete_command(s, false, "k", epoch()),
                Some(SessionCommand::RequestTermination { .. })
            ));
        }
    }

    #[test]
    fn given_a_terminating_session_when_deleted_then_nothing_is_to_be_done() {
        assert_eq!(delete_command(Terminating, false, "k", epoch()), None);
    }

    #[test]
    fn given_any_live_session_when_force_deleted_then_it_ends_at_once_force_terminated() {
        for s in [Running, Restarting, RunningDegraded, Error, Terminating] {
            let c = delete_command(s, true, "k", epoch());
            assert!(
                matches!(c, Some(SessionCommand::MarkTerminated { .. })),
                "{s}"
            );
            assert_eq!(reason_of(&c), Some(FORCE_TERMINATED));
        }
        let c = delete_command(Pending, true, "k", epoch());
        assert!(matches!(c, Some(SessionCommand::Cancel { .. })));
        assert_eq!(reason_of(&c), Some(FORCE_TERMINATED));
    }

    #[test]
    fn given_a_running_session_when_the_kernel_exits_non_zero_then_it_errors_with_the_exit_code() {
        let ev = KernelEvent::Terminated {
            exit_code: Some(1),
            reason: None,
        };
        assert!(
            matches!(ev.command(Running, epoch()), SessionCommand::Fail { ref reason, .. } if reason == "exit-code-1")
        );
    }

    #[test]
    fn given_a_terminating_session_when_the_kernel_exits_non_zero_then_it_is_terminated() {
        let ev = KernelEvent::Terminated {
            exit_code: Some(137),
            reason: None,
        };
        assert!(
            matches!(ev.command(Terminating, epoch()), SessionCommand::MarkTerminated { ref reason, .. } if reason == USER_REQUESTED)
        );
    }

    #[test]
    fn given_a_running_session_when_the_kernel_exits_zero_then_it_self_terminated() {
        let ev = KernelEvent::Terminated {
            exit_code: Some(0),
            reason: None,
        };
        assert!(matches!(
            ev.command(Running, epoch()),
            SessionCommand::MarkTerminated {
                exit_code: Some(0),
                ref reason,
                ..
            } if reason == SELF_TERMINATED
        ));
    }

    #[test]
    fn given_a_failure_without_reason_when_reported_then_it_is_kernel_failed() {
        assert!(
            matches!(KernelEvent::Failed { reason: None }.command(Creating, epoch()), SessionCommand::Fail { ref reason, .. } if reason == KERNEL_FAILED)
        );
    }

    #[test]
    fn every_kernel_event_name_parses_and_nothing_else_does() {
        for name in KERNEL_EVENTS {
            assert!(KernelEvent::parse(name, None, None).is_some(), "{name}");
        }
        assert_eq!(KernelEvent::parse("exploded", None, None), None);
    }
}
