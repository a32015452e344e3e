//! Events of the Session aggregate (past tense, explicit `event_type`, `event_version` "1").
//!
//! `event_type` strings are the variant names and are never renamed; a change of shape
//! gets a new `event_version` and an upcaster for the old one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::reasons::PREDICATE_CHECKS_FAILED;
use super::spec::SessionSpec;
pub use crate::agent::AgentAllocation;
use crate::ids::GroupName;
use crate::resources::ResourceSlots;
pub use crate::scheduler::outcome::{FailedPredicate, PassedPredicate};

/// The current version of every session event.
pub const SESSION_EVENT_VERSION: &str = "1";

/// Something that happened to a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SessionEvent {
    /// Accepted into PENDING.
    SessionEnqueued {
        /// What was requested (scaling group resolved).
        spec: SessionSpec,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// A scheduling attempt failed with a new set of predicate results.
    SessionSchedulingFailed {
        /// Failed predicates.
        failed_predicates: Vec<FailedPredicate>,
        /// Passed predicates.
        passed_predicates: Vec<PassedPredicate>,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// Placed on agents.
    SessionScheduled {
        /// The group.
        scaling_group: GroupName,
        /// Per-agent allocations.
        agents: Vec<AgentAllocation>,
        /// Sum of allocated slots.
        allocated_slots: ResourceSlots,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// -> PREPARING.
    SessionPreparing {
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// -> PULLING.
    SessionPulling {
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// -> PREPARED.
    SessionPrepared {
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// -> CREATING.
    SessionCreating {
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// -> RUNNING.
    SessionStarted {
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// -> RESTARTING.
    SessionRestarting {
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// -> RUNNING_DEGRADED.
    SessionDegraded {
        /// Why.
        reason: String,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// -> TERMINATING.
    SessionTerminating {
        /// Why.
        reason: String,
        /// Who asked.
        requested_by: String,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// -> TERMINATED.
    SessionTerminated {
        /// Why.
        reason: String,
        /// Exit code, when known.
        exit_code: Option<i32>,
        /// The agents that reported the session's kernel gone with this event (its
        /// `terminated` report; every agent of the session for an admin's report).
        /// Empty when nobody reported it (a forced termination): those agents are
        /// still told to stop (SPEC §9). Absent in events written before it existed.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ended_on: Vec<String>,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// -> CANCELLED.
    SessionCancelled {
        /// Why, e.g. `pending_timeout`.
        reason: String,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// -> ERROR.
    SessionErrored {
        /// Short machine-readable reason.
        reason: String,
        /// Human detail.
        detail: Option<String>,
        /// The kernel's exit code, when it exited with one (`exit-code-N`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// The agents that reported the kernel gone with this event (see
        /// `SessionTerminated::ended_on`); empty when the error was not an agent's
        /// report (e.g. `agent-lost`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ended_on: Vec<String>,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// An agent reported that the session's kernel ended, after the session had already
    /// ended (it was cancelled, or terminated without waiting for the agent), or while
    /// it was in ERROR: the acknowledgement of an abort notice (SPEC §9). Not a status
    /// change.
    SessionKernelEnded {
        /// The agents that reported it (every agent of the session for an admin).
        ended_on: Vec<String>,
        /// What the agent reported: `terminated`, `exit-code-N`, `agent-restarted`, ...
        reason: String,
        /// Exit code, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// When.
        occurred_at: DateTime<Utc>,
    },
}

impl SessionEvent {
    /// The explicit, never-renamed event type string.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::SessionEnqueued { .. } => "SessionEnqueued",
            Self::SessionSchedulingFailed { .. } => "SessionSchedulingFailed",
            Self::SessionScheduled { .. } => "SessionScheduled",
            Self::SessionPreparing { .. } => "SessionPreparing",
            Self::SessionPulling { .. } => "SessionPulling",
            Self::SessionPrepared { .. } => "SessionPrepared",
            Self::SessionCreating { .. } => "SessionCreating",
            Self::SessionStarted { .. } => "SessionStarted",
            Self::SessionRestarting { .. } => "SessionRestarting",
            Self::SessionDegraded { .. } => "SessionDegraded",
            Self::SessionTerminating { .. } => "SessionTerminating",
            Self::SessionTerminated { .. } => "SessionTerminated",
            Self::SessionCancelled { .. } => "SessionCancelled",
            Self::SessionErrored { .. } => "SessionErrored",
            Self::SessionKernelEnded { .. } => "SessionKernelEnded",
        }
    }

    /// When it happened.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            Self::SessionEnqueued { occurred_at, .. }
            | Self::SessionSchedulingFailed { occurred_at, .. }
            | Self::SessionScheduled { occurred_at, .. }
            | Self::SessionPreparing { occurred_at }
            | Self::SessionPulling { occurred_at }
            | Self::SessionPrepared { occurred_at }
            | Self::SessionCreating { occurred_at }
            | Self::SessionStarted { occurred_at }
            | Self::SessionRestarting { occurred_at }
            | Self::SessionDegraded { occurred_at, .. }
            | Self::SessionTerminating { occurred_at, .. }
            | Self::SessionTerminated { occurred_at, .. }
            | Self::SessionCancelled { occurred_at, .. }
            | Self::SessionErrored { occurred_at, .. }
            | Self::SessionKernelEnded { occurred_at, .. } => *occurred_at,
        }
    }

    /// The status this event moves the session into (`None` for scheduling failures,
    /// which keep it PENDING, and for an agent's late report that the kernel ended).
    pub fn target_status(&self) -> Option<super::SessionStatus> {
        use super::SessionStatus as S;
        Some(match self {
            Self::SessionEnqueued { .. } => S::Pending,
            Self::SessionSchedulingFailed { .. } | Self::SessionKernelEnded { .. } => return None,
            Self::SessionScheduled { .. } => S::Scheduled,
            Self::SessionPreparing { .. } => S::Preparing,
            Self::SessionPulling { .. } => S::Pulling,
            Self::SessionPrepared { .. } => S::Prepared,
            Self::SessionCreating { .. } => S::Creating,
            Self::SessionStarted { .. } => S::Running,
            Self::SessionRestarting { .. } => S::Restarting,
            Self::SessionDegraded { .. } => S::RunningDegraded,
            Self::SessionTerminating { .. } => S::Terminating,
            Self::SessionTerminated { .. } => S::Terminated,
            Self::SessionCancelled { .. } => S::Cancelled,
            Self::SessionErrored { .. } => S::Error,
        })
    }

    /// The short machine-readable reason this event gives the read model's `status_info`.
    pub fn status_info(&self) -> Option<String> {
        match self {
            Self::SessionDegraded { reason, .. }
            | Self::SessionTerminating { reason, .. }
            | Self::SessionCancelled { reason, .. }
            | Self::SessionErrored { reason, .. } => Some(reason.clone()),
            Self::SessionTerminated {
                reason, exit_code, ..
            } => match exit_code {
                _ if !reason.is_empty() => Some(reason.clone()),
                Some(code) if *code != 0 => Some(format!("exit-code-{code}")),
                _ => None,
            },
            Self::SessionSchedulingFailed { .. } => Some(PREDICATE_CHECKS_FAILED.to_string()),
            _ => None,
        }
    }
}
