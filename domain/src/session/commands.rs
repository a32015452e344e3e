//! Commands a session accepts. Every command carries `now`: time is an input.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

use super::events::{AgentAllocation, FailedPredicate, PassedPredicate};
use crate::resources::ResourceSlots;

/// The kind of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionType {
    /// Interactive (notebooks, terminals).
    Interactive,
    /// Batch job running `startup_command`.
    Batch,
    /// Inference service.
    Inference,
}

impl SessionType {
    /// All session types.
    pub const ALL: [SessionType; 3] = [Self::Interactive, Self::Batch, Self::Inference];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interactive => "interactive",
            Self::Batch => "batch",
            Self::Inference => "inference",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for SessionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a session is enqueued with (SPEC §1.2). The scaling group has been resolved by
/// the application before the command is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSpec {
    /// Server-assigned id.
    pub session_id: Uuid,
    /// Unique among the owner's non-terminal sessions.
    pub name: String,
    /// The owner (user).
    pub owner: String,
    /// interactive | batch | inference.
    pub session_type: SessionType,
    /// Container image.
    pub image: String,
    /// The resolved scaling group.
    pub scaling_group: String,
    /// Requested slots per kernel.
    pub resources: ResourceSlots,
    /// Number of kernels (default 1).
    pub cluster_size: u32,
    /// 0..=100, default 10.
    pub priority: u8,
    /// Batch only: do not schedule before.
    pub starts_at: Option<DateTime<Utc>>,
    /// Batch only: seconds the batch may run.
    pub batch_timeout: Option<u64>,
    /// Batch only: the command to run.
    pub startup_command: Option<String>,
    /// Sessions that must have TERMINATED successfully first.
    pub dependencies: Vec<Uuid>,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
}

/// A command on the Session aggregate.
#[derive(Debug, Clone, PartialEq)]
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
        scaling_group: String,
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
    /// -> RESTARTING.
    Restart {
        /// When.
        now: DateTime<Utc>,
    },
    /// -> RUNNING_DEGRADED.
    Degrade {
        /// Why.
        reason: String,
        /// When.
        now: DateTime<Utc>,
    },
    /// -> TERMINATING.
    RequestTermination {
        /// Why, e.g. `user-requested`.
        reason: String,
        /// Who asked (actor id).
        requested_by: String,
        /// When.
        now: DateTime<Utc>,
    },
    /// -> TERMINATED.
    MarkTerminated {
        /// Why, e.g. `user-requested`, `force-terminated`.
        reason: String,
        /// Exit code of the main kernel, when known.
        exit_code: Option<i32>,
        /// When.
        now: DateTime<Utc>,
    },
    /// -> CANCELLED.
    Cancel {
        /// Why, e.g. `user-requested`, `pending_timeout`.
        reason: String,
        /// When.
        now: DateTime<Utc>,
    },
    /// PENDING -> CANCELLED, and only from PENDING (the scheduler's cancellations, e.g.
    /// `dependency-failed`: a session scheduled meanwhile is left alone).
    CancelPending {
        /// Why.
        reason: String,
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
    /// -> ERROR.
    Fail {
        /// Short machine-readable reason, e.g. `agent-lost`.
        reason: String,
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
            | Self::Restart { now }
            | Self::Degrade { now, .. }
            | Self::RequestTermination { now, .. }
            | Self::MarkTerminated { now, .. }
            | Self::Cancel { now, .. }
            | Self::CancelPending { now, .. }
            | Self::ExpirePending { now, .. }
            | Self::Fail { now, .. } => *now,
        }
    }
}
