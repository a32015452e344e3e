//! The decisions of the requests that move a session from outside (SPEC §4): what a
//! DELETE means for a session in a given status, and what an agent's kernel report
//! means. Pure functions; the application loads the status and executes the command.

use chrono::{DateTime, Utc};

use super::commands::{KernelEnd, SessionCommand};
use super::reasons::{FORCE_TERMINATED, USER_REQUESTED};
use super::status::SessionStatus;
use crate::ids::Reason;

/// The command DELETE issues for a session in `status` (SPEC §4): PENDING..CREATING are
/// cancelled (`user-requested`), RUNNING, RESTARTING, RUNNING_DEGRADED and ERROR go to
/// TERMINATING, TERMINATING is a no-op (`None`) and ended sessions are rejected by the
/// table. An ERROR session whose kernels are all gone (`kernels_gone`: its agents
/// reported them ended) has nothing to stop and goes to TERMINATED at once. `forced`
/// ends it at once: TERMINATED (`force-terminated`) where the table allows it,
/// otherwise (before RUNNING) CANCELLED with the same reason.
pub fn delete_command(
    status: SessionStatus,
    kernels_gone: bool,
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
        (false, false) if status == Error && kernels_gone => SessionCommand::MarkTerminated {
            reason: Reason::from_static(USER_REQUESTED),
            exit_code: None,
            now,
        },
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
    /// The kernel ended; see [`KernelEnd`] and [`SessionCommand::EndKernel`].
    Ended(KernelEnd),
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
            "terminated" => Self::Ended(KernelEnd::Terminated { exit_code, reason }),
            "failed" => Self::Ended(KernelEnd::Failed { exit_code, reason }),
            _ => return None,
        })
    }

    /// Whether this is a final report (`terminated`, `failed`).
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Ended(_))
    }

    /// The command this report means; `agents` are the agents whose kernel it is about
    /// (the reporting agent, or all of the session's for an admin).
    pub fn command(self, agents: Vec<String>, now: DateTime<Utc>) -> SessionCommand {
        let to = match self {
            Self::Preparing => SessionStatus::Preparing,
            Self::Pulling => SessionStatus::Pulling,
            Self::Prepared => SessionStatus::Prepared,
            Self::Creating => SessionStatus::Creating,
            Self::Started => SessionStatus::Running,
            Self::Ended(report) => {
                return SessionCommand::EndKernel {
                    agents,
                    report,
                    now,
                }
            }
        };
        SessionCommand::ReportProgress { to, now }
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
            let c = delete_command(s, false, false, "k", epoch());
            assert!(matches!(c, Some(SessionCommand::Cancel { .. })), "{s}");
            assert_eq!(reason_of(&c), Some(USER_REQUESTED));
        }
    }

    #[test]
    fn given_a_running_or_failed_session_when_deleted_then_termination_is_requested() {
        for s in [Running, Restarting, RunningDegraded, Error] {
            assert!(matches!(
                delete_command(s, false, false, "k", epoch()),
                Some(SessionCommand::RequestTermination { .. })
            ));
        }
    }

    #[test]
    fn given_a_terminating_session_when_deleted_then_nothing_is_to_be_done() {
        assert_eq!(
            delete_command(Terminating, false, false, "k", epoch()),
            None
        );
    }

    #[test]
    fn given_any_live_session_when_force_deleted_then_it_ends_at_once_force_terminated() {
        for s in [Running, Restarting, RunningDegraded, Error, Terminating] {
            let c = delete_command(s, false, true, "k", epoch());
            assert!(
                matches!(c, Some(SessionCommand::MarkTerminated { .. })),
                "{s}"
            );
            assert_eq!(reason_of(&c), Some(FORCE_TERMINATED));
        }
        let c = delete_command(Pending, false, true, "k", epoch());
        assert!(matches!(c, Some(SessionCommand::Cancel { .. })));
        assert_eq!(reason_of(&c), Some(FORCE_TERMINATED));
    }

    #[test]
    fn given_a_failed_session_whose_kernels_are_gone_when_deleted_then_it_is_terminated_at_once() {
        let c = delete_command(Error, true, false, "k", epoch());
        assert!(matches!(c, Some(SessionCommand::MarkTerminated { .. })));
        assert_eq!(reason_of(&c), Some(USER_REQUESTED));
    }

    #[test]
    fn given_a_final_report_when_parsed_then_it_ends_the_kernel_of_the_reporting_agents() {
        let ev = KernelEvent::parse("failed", Some(3), None);
        assert!(ev.as_ref().is_some_and(KernelEvent::is_final));
        let c = ev.map(|e| e.command(vec!["a1".into()], epoch()));
        assert!(matches!(
            c,
            Some(SessionCommand::EndKernel { ref agents, report: KernelEnd::Failed { exit_code: Some(3), .. }, .. }) if agents == &["a1".to_string()]
        ));
    }

    #[test]
    fn every_kernel_event_name_parses_and_nothing_else_does() {
        for name in KERNEL_EVENTS {
            assert!(KernelEvent::parse(name, None, None).is_some(), "{name}");
        }
        assert_eq!(KernelEvent::parse("exploded", None, None), None);
    }
}
