//! Session state, decision and fold.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::commands::{KernelEnd, SessionCommand};
use super::error::SessionError;
use super::events::SessionEvent;
use super::reasons::{
    AGENT_LOST, KERNEL_FAILED, KERNEL_TERMINATED, PENDING_TIMEOUT, SELF_TERMINATED, USER_REQUESTED,
};
use super::spec::{validate_spec, SessionSpec};
use super::status::SessionStatus;
use crate::agent::AgentAllocation;
use crate::error::ValidationError;
use crate::resources::ResourceSlots;
use crate::scheduler::outcome::{FailedPredicate, PassedPredicate};

/// Folded state of one session. `Default` is "does not exist yet".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// What was enqueued; `None` before `SessionEnqueued`.
    pub spec: Option<SessionSpec>,
    /// Current status; `None` before `SessionEnqueued`.
    pub status: Option<SessionStatus>,
    /// When the status last changed.
    pub status_changed: Option<DateTime<Utc>>,
    /// Short machine-readable reason of the last transition.
    pub status_info: Option<String>,
    /// Status -> the last time it was entered (Backend.AI's shape).
    pub status_history: BTreeMap<SessionStatus, DateTime<Utc>>,
    /// When the session was enqueued.
    pub enqueued_at: Option<DateTime<Utc>>,
    /// The last recorded set of failed predicates (while PENDING).
    pub failed_predicates: Vec<FailedPredicate>,
    /// The last recorded set of passed predicates (while PENDING).
    pub passed_predicates: Vec<PassedPredicate>,
    /// Where it was scheduled; empty before SCHEDULED.
    pub allocations: Vec<AgentAllocation>,
    /// Exit code reported on termination (or with an error, when the kernel exited
    /// with one).
    pub exit_code: Option<i32>,
    /// The agents that reported the session's kernel gone (sorted, no duplicates): an
    /// agent listed here has nothing left to stop (SPEC §9 abort notices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernels_ended: Vec<String>,
    /// Number of events folded (equals the stream's last sequence).
    pub version: u64,
}

/// What an agent must do about a session placed on it (SPEC §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// Bring it up, or keep it running.
    Start,
    /// Tear it down: the session was cancelled, terminated or failed while its kernel
    /// may still exist there. Stays until the agent reports the kernel ended.
    Stop,
}

impl Session {
    /// Decides what a command does to this session, without changing it.
    pub fn decide(&self, command: SessionCommand) -> Result<Vec<SessionEvent>, SessionError> {
        let now = command.now();
        let Some(current) = self.status else {
            return match command {
                SessionCommand::Enqueue { spec, now } => {
                    validate_spec(&spec)?;
                    Ok(vec![SessionEvent::SessionEnqueued {
                        spec,
                        occurred_at: now,
                    }])
                }
                _ => Err(SessionError::NotFound),
            };
        };
        let event = match command {
            SessionCommand::Enqueue { .. } => return Err(SessionError::AlreadyExists),
            SessionCommand::RecordSchedulingFailure {
                mut failed,
                mut passed,
                ..
            } => {
                if current != SessionStatus::Pending {
                    return Err(SessionError::NotPending(current));
                }
                if failed.is_empty() {
                    return Err(ValidationError::new(
                        "failed_predicates",
                        "a scheduling failure names at least one failed predicate",
                    )
                    .into());
                }
                // Never an event per scheduler tick: only a changed failure set (or a
                // changed message) is news. Compared as sets: order is not meaningful.
                failed.sort_by(|a, b| (&a.name, &a.msg).cmp(&(&b.name, &b.msg)));
                failed.dedup();
                passed.sort_by(|a, b| a.name.cmp(&b.name));
                passed.dedup();
                if failed == self.failed_predicates {
                    return Ok(vec![]);
                }
                SessionEvent::SessionSchedulingFailed {
                    failed_predicates: failed,
                    passed_predicates: passed,
                    occurred_at: now,
                }
            }
            SessionCommand::Schedule {
                scaling_group,
                agents,
                ..
            } => {
                if !current.can_transition_to(SessionStatus::Scheduled) {
                    return Err(SessionError::IllegalTransition {
                        from: current,
                        to: SessionStatus::Scheduled,
                    });
                }
                if agents.is_empty() {
                    return Err(ValidationError::new(
                        "agents",
                        "a scheduled session is placed on at least one agent",
                    )
                    .into());
                }
                let allocated_slots = ResourceSlots::checked_sum(agents.iter().map(|a| &a.slots))
                    .map_err(|_| SessionError::ResourceOverflow)?;
                SessionEvent::SessionScheduled {
                    scaling_group,
                    agents,
                    allocated_slots,
                    occurred_at: now,
                }
            }
            SessionCommand::MarkPreparing { .. } => {
                SessionEvent::SessionPreparing { occurred_at: now }
            }
            SessionCommand::MarkPulling { .. } => SessionEvent::SessionPulling { occurred_at: now },
            SessionCommand::MarkPrepared { .. } => {
                SessionEvent::SessionPrepared { occurred_at: now }
            }
            SessionCommand::MarkCreating { .. } => {
                SessionEvent::SessionCreating { occurred_at: now }
            }
            SessionCommand::Start { .. } => SessionEvent::SessionStarted { occurred_at: now },
            SessionCommand::ReportProgress { to, .. } => {
                let event = match to {
                    SessionStatus::Preparing => SessionEvent::SessionPreparing { occurred_at: now },
                    SessionStatus::Pulling => SessionEvent::SessionPulling { occurred_at: now },
                    SessionStatus::Prepared => SessionEvent::SessionPrepared { occurred_at: now },
                    SessionStatus::Creating => SessionEvent::SessionCreating { occurred_at: now },
                    SessionStatus::Running => SessionEvent::SessionStarted { occurred_at: now },
                    other => {
                        return Err(ValidationError::new(
                            "event",
                            format!("{other} is not a status a kernel reports reaching"),
                        )
                        .into())
                    }
                };
                if to == current {
                    // Recorded already: the agent sent it again (its response was lost).
                    return Ok(vec![]);
                }
                event
            }
            SessionCommand::Restart { .. } => SessionEvent::SessionRestarting { occurred_at: now },
            SessionCommand::Degrade { reason, .. } => SessionEvent::SessionDegraded {
                reason: reason.into(),
                occurred_at: now,
            },
            SessionCommand::RequestTermination {
                reason,
                requested_by,
                ..
            } => SessionEvent::SessionTerminating {
                reason: reason.into(),
                requested_by,
                occurred_at: now,
            },
            SessionCommand::MarkTerminated {
                reason, exit_code, ..
            } => SessionEvent::SessionTerminated {
                reason: reason.into(),
                exit_code,
                ended_on: vec![],
                occurred_at: now,
            },
            SessionCommand::Cancel { reason, .. } => SessionEvent::SessionCancelled {
                reason: reason.into(),
                occurred_at: now,
            },
            SessionCommand::CancelPending { reason, .. } => {
                if current != SessionStatus::Pending {
                    return Err(SessionError::NotPending(current));
                }
                SessionEvent::SessionCancelled {
                    reason: reason.into(),
                    occurred_at: now,
                }
            }
            SessionCommand::ExpirePending {
                pending_timeout, ..
            } => {
                if current != SessionStatus::Pending {
                    return Err(SessionError::NotPending(current));
                }
                // Checked: a timeout too large for the clock means "never due".
                let due = i64::try_from(pending_timeout)
                    .ok()
                    .and_then(chrono::TimeDelta::try_seconds)
                    .and_then(|d| self.enqueued_at.and_then(|at| at.checked_add_signed(d)));
                if pending_timeout == 0 || due.is_none_or(|due| now < due) {
                    return Err(SessionError::NotExpired { pending_timeout });
                }
                SessionEvent::SessionCancelled {
                    reason: PENDING_TIMEOUT.to_string(),
                    occurred_at: now,
                }
            }
            SessionCommand::Fail { reason, detail, .. } => SessionEvent::SessionErrored {
                reason: reason.into(),
                detail,
                exit_code: None,
                ended_on: vec![],
                occurred_at: now,
            },
            SessionCommand::EndKernel { agents, report, .. } => {
                match self.end_kernel(current, agents, report, now)? {
                    Some(event) => event,
                    None => return Ok(vec![]),
                }
            }
        };
        if let Some(to) = event.target_status() {
            if !current.can_transition_to(to) {
                return Err(SessionError::IllegalTransition { from: current, to });
            }
        }
        Ok(vec![event])
    }

    /// The event of a kernel report (see [`SessionCommand::EndKernel`]); `None` when it
    /// is already recorded.
    fn end_kernel(
        &self,
        current: SessionStatus,
        mut agents: Vec<String>,
        report: KernelEnd,
        now: DateTime<Utc>,
    ) -> Result<Option<SessionEvent>, SessionError> {
        use SessionStatus::*;
        agents.sort();
        agents.dedup();
        agents.retain(|a| !a.is_empty());
        if agents.is_empty() {
            return Err(ValidationError::new(
                "agents",
                "a kernel report names the agent whose kernel ended",
            )
            .into());
        }
        let new: Vec<String> = agents
            .iter()
            .filter(|a| self.kernels_ended.binary_search(a).is_err())
            .cloned()
            .collect();
        let (failed, exit_code, reason) = match report {
            KernelEnd::Terminated { exit_code, reason } => (false, exit_code, reason),
            KernelEnd::Failed { exit_code, reason } => (true, exit_code, reason),
        };
        let exit_reason = exit_code
            .filter(|c| *c != 0)
            .map(|c| format!("exit-code-{c}"));
        // Ended already, or in ERROR with a failure to report: the acknowledgement of an
        // abort notice, once per agent.
        if current.is_terminal() || (current == Error && failed) {
            if new.is_empty() {
                return Ok(None);
            }
            let reason = reason.map(String::from).or(exit_reason).unwrap_or_else(|| {
                (if failed {
                    KERNEL_FAILED
                } else {
                    KERNEL_TERMINATED
                })
                .to_string()
            });
            return Ok(Some(SessionEvent::SessionKernelEnded {
                ended_on: new,
                reason,
                exit_code,
                occurred_at: now,
            }));
        }
        let asked_to_stop = matches!(current, Terminating | Error);
        let event = if !failed && (asked_to_stop || exit_reason.is_none()) {
            let default = if asked_to_stop {
                USER_REQUESTED
            } else {
                SELF_TERMINATED
            };
            SessionEvent::SessionTerminated {
                reason: reason.map_or_else(|| default.to_string(), String::from),
                exit_code,
                ended_on: agents,
                occurred_at: now,
            }
        } else {
            // A non-zero exit of a session nobody asked to stop is a failure too.
            let reason = if failed {
                reason
                    .map(String::from)
                    .or(exit_reason)
                    .unwrap_or_else(|| KERNEL_FAILED.to_string())
            } else {
                exit_reason.unwrap_or_else(|| KERNEL_FAILED.to_string())
            };
            SessionEvent::SessionErrored {
                reason,
                detail: None,
                exit_code,
                ended_on: agents,
                occurred_at: now,
            }
        };
        Ok(Some(event))
    }

    /// Whether the session is placed on `agent_id`.
    pub fn is_placed_on(&self, agent_id: &str) -> bool {
        self.allocations.iter().any(|a| a.agent_id == agent_id)
    }

    /// Whether every agent the session was placed on reported its kernel gone (true
    /// for a session never placed: nothing of it runs anywhere).
    pub fn kernels_gone(&self) -> bool {
        self.allocations.iter().all(|a| {
            self.kernels_ended
                .binary_search(&a.agent_id.to_string())
                .is_ok()
        })
    }

    /// What agent `agent_id` must do about this session (SPEC §9): start (or keep
    /// running) a session placed on it from SCHEDULED to RUNNING_DEGRADED; stop one
    /// that is TERMINATING, CANCELLED, TERMINATED or ERROR until the agent reports its
    /// kernel ended — even after the slots were released; nothing otherwise.
    pub fn notice_for(&self, agent_id: &str) -> Option<Notice> {
        use SessionStatus::*;
        if !self.is_placed_on(agent_id)
            || self
                .kernels_ended
                .binary_search(&agent_id.to_string())
                .is_ok()
        {
            return None;
        }
        match self.status? {
            Pending => None,
            Scheduled | Preparing | Pulling | Prepared | Creating | Running | Restarting
            | RunningDegraded => Some(Notice::Start),
            Terminating | Terminated | Cancelled | Error => Some(Notice::Stop),
        }
    }

    /// The agent that must act on this session now (the read model indexes it, so an
    /// agent's assignments are one lookup): the first agent it is placed on that has a
    /// notice.
    pub fn agent_to_notify(&self) -> Option<&str> {
        self.allocations
            .iter()
            .map(|a| a.agent_id.as_str())
            .find(|a| self.notice_for(a).is_some())
    }

    /// Folds one event into the state. Events are facts: `apply` never rejects.
    pub fn apply(&mut self, event: &SessionEvent) {
        self.version = self.version.saturating_add(1);
        match event {
            SessionEvent::SessionEnqueued { spec, occurred_at } => {
                self.spec = Some(spec.clone());
                self.enqueued_at = Some(*occurred_at);
            }
            SessionEvent::SessionSchedulingFailed {
                failed_predicates,
                passed_predicates,
                ..
            } => {
                self.failed_predicates = failed_predicates.clone();
                self.passed_predicates = passed_predicates.clone();
            }
            SessionEvent::SessionScheduled { agents, .. } => {
                self.allocations = agents.clone();
            }
            SessionEvent::SessionTerminated {
                exit_code,
                ended_on,
                ..
            } => {
                self.exit_code = *exit_code;
                self.record_kernels_ended(ended_on);
            }
            SessionEvent::SessionErrored {
                exit_code,
                ended_on,
                ..
            } => {
                if exit_code.is_some() {
                    self.exit_code = *exit_code;
                }
                self.record_kernels_ended(ended_on);
            }
            SessionEvent::SessionKernelEnded { ended_on, .. } => {
                self.record_kernels_ended(ended_on);
            }
            _ => {}
        }
        if let Some(to) = event.target_status() {
            self.status = Some(to);
            self.status_changed = Some(event.occurred_at());
            self.status_info = event.status_info();
            self.status_history.insert(to, event.occurred_at());
            if to != SessionStatus::Pending {
                self.failed_predicates.clear();
                self.passed_predicates.clear();
            }
        } else if let SessionEvent::SessionSchedulingFailed { .. } = event {
            self.status_info = event.status_info();
        }
    }

    fn record_kernels_ended(&mut self, agents: &[String]) {
        for a in agents {
            if let Err(i) = self.kernels_ended.binary_search(a) {
                self.kernels_ended.insert(i, a.clone());
            }
        }
    }

    /// Folds a whole stream from the empty state.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a SessionEvent>) -> Session {
        let mut session = Session::default();
        for e in events {
            session.apply(e);
        }
        session
    }

    /// Whether the session holds slots on agents: SCHEDULED .. ERROR, except an ERROR
    /// session whose agents all reported its kernel gone, or whose agent was lost
    /// (nothing of it runs; docs/adr/0008).
    pub fn holds_slots(&self) -> bool {
        self.status.is_some_and(SessionStatus::holds_slots)
            && !(self.status == Some(SessionStatus::Error)
                && (self.kernels_gone() || self.status_info.as_deref() == Some(AGENT_LOST)))
    }
}

crate::aggregate!(
    Session,
    "Session",
    SessionCommand,
    SessionEvent,
    SessionError,
    super::events::SESSION_EVENT_VERSION,
    |e| SessionEvent::event_type(e)
);
