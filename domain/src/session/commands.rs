//! Commands a session accepts. Every command carries `now`: time is an input.

use chrono::{DateTime, Utc};

use super::spec::SessionSpec;
use super::status::SessionStatus;
use crate::agent::AgentAllocation;
use crate::ids::{GroupName, Reason};
use crate::scheduler::outcome::{FailedPredicate, PassedPredicate};

/// A command on the Session aggregate.
#[derive(Debug, Clone, PartialEq)]
// A command lives for one decision; boxing the spec would buy nothing measurable.
#[allow(clippy::large_enum_variant)]
pub enum SessionCommand {
    /// Create the session in PENDING.
    Enqueue {
        /// What to run.
        spec: SessionSpec,
        /// When.
        now: DateTime<Utc>,
    },
    /// Record the predicate results of a failed scheduling attempt; appends an event
    /// only when the failure set differs from the last one recorded.
    RecordSchedulingFailure {
        /// Predicates that failed, with messages.
        failed: Vec<FailedPredicate>,
        /// Predicates that passed.
        passed: Vec<PassedPredicate>,
        /// When.
        now: DateTime<Utc>,
    },
    /// PENDING -> SCHEDULED.
    Schedule {
        /// The group it was scheduled in.
        scaling_group: GroupName,
        /// Agents and their slots.
        agents: Vec<AgentAllocation>,
        /// When.
        now: DateTime<Utc>,
    },
    /// Agent progress: -> PREPARING.
    MarkPreparing {
        /// When.
        now: DateTime<Utc>,
    },
    /// Agent progress: -> PULLING.
    MarkPulling {
        /// When.
        now: DateTime<Utc>,
    },
    /// Agent progress: -> PREPARED.
    MarkPrepared {
        /// When.
        now: DateTime<Utc>,
    },
    /// Agent progress: -> CREATING.
    MarkCreating {
        /// When.
        now: DateTime<Utc>,
    },
    /// Agent progress: -> RUNNING (also recovery from RESTARTING / RUNNING_DEGRADED).
    Start {
        /// When.
        now: DateTime<Utc>,
    },
    /// An agent's progress report (`preparing` .. `started`, see
    /// [`KernelEvent`](super::KernelEvent)): the transition to `to` (one of PREPARING,
    /// PULLING, PREPARED, CREATING, RUNNING), or nothing when the session is in `to`
    /// already — the same report sent again after its response was lost.
    ReportProgress {
        /// The status the report moves the session to.
        to: SessionStatus,
        /// When.
        now: DateTime<Utc>,
    },
    /// -> RESTARTING.
    Restart {
        /// When.
        now: DateTime<Utc>,
    },
    /// -> RUNNING_DEGRADED.
    Degrade {
        /// Why.
        reason: Reason,
        /// When.
        now: DateTime<Utc>,
    },
    /// -> TERMINATING.
    RequestTermination {
        /// Why, e.g. `user-requested`.
        reason: Reason,
        /// Who asked (actor id).
        requested_by: String,
        /// When.
        now: DateTime<Utc>,
    },
    /// -> TERMINATED.
    MarkTerminated {
        /// Why, e.g. `user-requested`, `force-terminated`.
        reason: Reason,
        /// Exit code of the main kernel, when known.
        exit_code: Option<i32>,
        /// When.
        now: DateTime<Utc>,
    },
    /// -> CANCELLED.
    Cancel {
        /// Why, e.g. `user-requested`, `pending_timeout`.
        reason: Reason,
        /// When.
        now: DateTime<Utc>,
    },
    /// PENDING -> CANCELLED, and only from PENDING (the scheduler's cancellations, e.g.
    /// `dependency-failed`: a session scheduled meanwhile is left alone).
    CancelPending {
        /// Why.
        reason: Reason,
        /// When.
        now: DateTime<Utc>,
    },
    /// The pending-timeout sweeper (SPEC §2.4): PENDING -> CANCELLED with
    /// `pending_timeout`, only while PENDING and only once `pending_timeout` seconds have
    /// passed since enqueue. The aggregate is the concurrency control: a session
    /// scheduled meanwhile rejects it; no lock is held.
    ExpirePending {
        /// The group's timeout in seconds at the time of the sweep (0 = disabled).
        pending_timeout: u64,
        /// When.
        now: DateTime<Utc>,
    },
    /// An agent's (or an admin's) report that the session's kernel ended (kernel events
    /// `terminated` and `failed`). What it does depends on the status at the time it is
    /// decided: a live session goes to TERMINATED or ERROR, one that was asked to stop
    /// goes to TERMINATED, and one that has already ended (or is in ERROR and reports a
    /// failure) records `SessionKernelEnded`, the acknowledgement of its abort notice
    /// (SPEC §9). Repeating a report that is already recorded appends nothing.
    EndKernel {
        /// The agents whose kernel ended: the reporting agent, or every agent of the
        /// session for an admin's report.
        agents: Vec<String>,
        /// What ended it.
        report: KernelEnd,
        /// When.
        now: DateTime<Utc>,
    },
    /// -> ERROR.
    Fail {
        /// Short machine-readable reason, e.g. `agent-lost`.
        reason: Reason,
        /// Human detail.
        detail: Option<String>,
        /// When.
        now: DateTime<Utc>,
    },
}

impl SessionCommand {
    /// The time the command happens at.
    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::Enqueue { now, .. }
            | Self::RecordSchedulingFailure { now, .. }
            | Self::Schedule { now, .. }
            | Self::MarkPreparing { now }
            | Self::MarkPulling { now }
            | Self::MarkPrepared { now }
            | Self::MarkCreating { now }
            | Self::Start { now }
            | Self::ReportProgress { now, .. }
            | Self::Restart { now }
            | Self::Degrade { now, .. }
            | Self::RequestTermination { now, .. }
            | Self::MarkTerminated { now, .. }
            | Self::Cancel { now, .. }
            | Self::CancelPending { now, .. }
            | Self::ExpirePending { now, .. }
            | Self::EndKernel { now, .. }
            | Self::Fail { now, .. } => *now,
        }
    }
}

/// How a kernel ended, as its agent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEnd {
    /// It exited (`terminated`): with 0 (or no code) it succeeded; with another code
    /// it failed unless the session was asked to stop.
    Terminated {
        /// Exit code, when known.
        exit_code: Option<i32>,
        /// Reason, when given.
        reason: Option<Reason>,
    },
    /// It failed (`failed`): killed by a signal, timed out, could not start, or gone
    /// after an agent restart.
    Failed {
        /// Exit code, when it exited with one.
        exit_code: Option<i32>,
        /// Reason, e.g. `signal-SIGKILL`, `batch-timeout`, `agent-restarted`.
        reason: Option<Reason>,
    },
}
