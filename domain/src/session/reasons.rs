//! The reasons sessiond itself gives a transition (a session's `status_info`). Reasons
//! reported by agents are validated [`crate::ids::Reason`]s; these are the ones the code
//! writes, in one place.

/// Cancelled or terminated on its owner's request (DELETE).
pub const USER_REQUESTED: &str = "user-requested";
/// Ended at once by an admin (DELETE `?forced=true`).
pub const FORCE_TERMINATED: &str = "force-terminated";
/// The kernel exited cleanly without being asked to stop.
pub const SELF_TERMINATED: &str = "self-terminated";
/// The agent reported a failure without a reason.
pub const KERNEL_FAILED: &str = "kernel-failed";
/// A dependency ended without success, so the session can never run.
pub const DEPENDENCY_FAILED: &str = "dependency-failed";
/// The agent it was placed on missed its heartbeats.
pub const AGENT_LOST: &str = "agent-lost";
/// Pending longer than its group's `pending_timeout` (SPEC §2.4).
pub const PENDING_TIMEOUT: &str = "pending_timeout";
/// A scheduling attempt failed; details are in `status_data.scheduler`.
pub const PREDICATE_CHECKS_FAILED: &str = "predicate-checks-failed";

/// Every reason above (tests check each is a valid [`crate::ids::Reason`]).
/// An agent stopped the kernel of a session that had already ended (its abort notice
/// acknowledged without another reason).
pub const KERNEL_TERMINATED: &str = "kernel-terminated";
/// The agent restarted and the session's process was gone (SPEC §9).
pub const AGENT_RESTARTED: &str = "agent-restarted";
/// The agent was stopped (SIGTERM) and stopped the session's process with it.
pub const AGENT_STOPPED: &str = "agent-stopped";
/// A batch session ran past its `batch_timeout`; the agent killed it (SPEC §9).
pub const BATCH_TIMEOUT: &str = "batch-timeout";
/// Queue order: evaluated behind a blocked head of a strict queue (read model only).
pub const QUEUE_ORDER: &str = "queue_order";

/// Every reason above, for the test that each parses.
pub const ALL: [&str; 13] = [
    USER_REQUESTED,
    FORCE_TERMINATED,
    SELF_TERMINATED,
    KERNEL_FAILED,
    DEPENDENCY_FAILED,
    AGENT_LOST,
    PENDING_TIMEOUT,
    PREDICATE_CHECKS_FAILED,
    KERNEL_TERMINATED,
    AGENT_RESTARTED,
    AGENT_STOPPED,
    BATCH_TIMEOUT,
    QUEUE_ORDER,
];

#[cfg(test)]
mod tests {
    #[test]
    fn every_reason_the_code_gives_is_a_valid_reason() {
        for r in super::ALL {
            assert!(crate::ids::Reason::parse("reason", r).is_ok(), "{r}");
        }
    }
}
