//! Session statuses and the transition table (SPEC §1.1).
//!
//! The table is data: [`TRANSITIONS`] is the single source used by the aggregate,
//! by `sessionctl audit verify` and by the rendered table in `docs/ARCHITECTURE.md`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The lifecycle status of a compute session. Upper-case strings on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionStatus {
    /// Waiting for the scheduler.
    Pending,
    /// Placed on agent(s); slots are allocated from here on.
    Scheduled,
    /// The agent is preparing the kernel(s).
    Preparing,
    /// The agent is pulling the image.
    Pulling,
    /// Prepared; about to create the kernel(s).
    Prepared,
    /// Kernel(s) being created.
    Creating,
    /// Running.
    Running,
    /// Kernel(s) restarting.
    Restarting,
    /// Running with some kernels unhealthy.
    RunningDegraded,
    /// Termination requested and in progress.
    Terminating,
    /// Terminal: finished.
    Terminated,
    /// Failed; keeps its slots until cleaned up to TERMINATED.
    Error,
    /// Terminal: cancelled before it ran.
    Cancelled,
}

use SessionStatus::*;

/// Every status, in lifecycle order.
pub const ALL_STATUSES: [SessionStatus; 13] = [
    Pending,
    Scheduled,
    Preparing,
    Pulling,
    Prepared,
    Creating,
    Running,
    Restarting,
    RunningDegraded,
    Terminating,
    Terminated,
    Error,
    Cancelled,
];

/// The transition table of SPEC §1.1: `(from, allowed targets)`.
/// Any pair not listed here is rejected with `IllegalTransition`.
pub const TRANSITIONS: &[(SessionStatus, &[SessionStatus])] = &[
    (Pending, &[Scheduled, Cancelled, Error]),
    (Scheduled, &[Preparing, Pulling, Prepared, Cancelled, Error]),
    (Preparing, &[Pulling, Prepared, Cancelled, Error]),
    (Pulling, &[Prepared, Cancelled, Error]),
    (Prepared, &[Creating, Cancelled, Error]),
    (Creating, &[Running, Cancelled, Error]),
    (
        Running,
        &[Restarting, RunningDegraded, Terminating, Terminated, Error],
    ),
    (
        Restarting,
        &[Running, RunningDegraded, Terminating, Terminated, Error],
    ),
    (RunningDegraded, &[Running, Terminating, Terminated, Error]),
    (Terminating, &[Terminated, Error]),
    (Error, &[Terminating, Terminated]),
    (Terminated, &[]),
    (Cancelled, &[]),
];

impl SessionStatus {
    /// The statuses this one may move to.
    pub fn allowed_targets(self) -> &'static [SessionStatus] {
        TRANSITIONS
            .iter()
            .find(|(from, _)| *from == self)
            .map(|(_, to)| *to)
            .unwrap_or(&[])
    }

    /// Whether `self -> to` is in the table.
    pub fn can_transition_to(self, to: SessionStatus) -> bool {
        self.allowed_targets().contains(&to)
    }

    /// TERMINATED and CANCELLED: nothing follows.
    pub fn is_terminal(self) -> bool {
        matches!(self, Terminated | Cancelled)
    }

    /// Whether a session in this status holds slots on an agent (SCHEDULED up to, and
    /// including, ERROR; released on TERMINATED or CANCELLED).
    pub fn holds_slots(self) -> bool {
        !matches!(self, Pending | Terminated | Cancelled)
    }

    /// The wire name, e.g. `RUNNING_DEGRADED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pending => "PENDING",
            Scheduled => "SCHEDULED",
            Preparing => "PREPARING",
            Pulling => "PULLING",
            Prepared => "PREPARED",
            Creating => "CREATING",
            Running => "RUNNING",
            Restarting => "RESTARTING",
            RunningDegraded => "RUNNING_DEGRADED",
            Terminating => "TERMINATING",
            Terminated => "TERMINATED",
            Error => "ERROR",
            Cancelled => "CANCELLED",
        }
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returned when a string is not a session status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown session status '{0}'")]
pub struct UnknownStatus(pub String);

impl FromStr for SessionStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_STATUSES
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

/// Renders the transition table as a Markdown table (used for the docs).
pub fn transition_table_markdown() -> String {
    let mut out = String::from("| from | allowed to |\n|---|---|\n");
    for (from, to) in TRANSITIONS {
        let targets = if to.is_empty() {
            "(none: terminal)".to_string()
        } else {
            to.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        };
        out.push_str(&format!("| {from} | {targets} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_exactly_one_row_in_the_table() {
        for status in ALL_STATUSES {
            let rows = TRANSITIONS.iter().filter(|(f, _)| *f == status).count();
            assert_eq!(rows, 1, "{status}");
        }
    }

    #[test]
    fn terminal_statuses_allow_nothing() {
        for status in ALL_STATUSES.iter().filter(|s| s.is_terminal()) {
            assert!(status.allowed_targets().is_empty());
        }
    }

    #[test]
    fn statuses_round_trip_through_their_wire_names() {
        for status in ALL_STATUSES {
            assert_eq!(status.as_str().parse::<SessionStatus>(), Ok(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
    }

    #[test]
    fn an_unknown_status_name_is_rejected() {
        assert!("RUNNING_FAST".parse::<SessionStatus>().is_err());
    }
}
