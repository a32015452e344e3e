//! Session state, decision and fold.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::commands::SessionCommand;
use super::error::SessionError;
use super::events::SessionEvent;
use super::reasons::PENDING_TIMEOUT;
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
    /// Exit code reported on termination.
    pub exit_code: Option<i32>,
    /// Number of events folded (equals the stream's last sequence).
    pub version: u64,
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
                occurred_at: now,
            },
        };
        if let Some(to) = event.target_status() {
            if !current.can_transition_to(to) {
                return Err(SessionError::IllegalTransition { from: current, to });
            }
        }
        Ok(vec![event])
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
            SessionEvent::SessionTerminated { exit_code, .. } => {
                self.exit_code = *exit_code;
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
        } else {
            self.status_info = event.status_info();
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

    /// Whether the session holds slots on agents (SCHEDULED .. ERROR).
    pub fn holds_slots(&self) -> bool {
        self.status.is_some_and(SessionStatus::holds_slots)
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
