//! Why the Session aggregate rejects a command.

use super::status::SessionStatus;
use crate::error::ValidationError;

/// A rejected session command. Nothing is appended when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The transition is not in the table of SPEC §1.1.
    #[error("illegal transition from {from} to {to}")]
    IllegalTransition {
        /// Current status.
        from: SessionStatus,
        /// Requested status.
        to: SessionStatus,
    },
    /// The command needs an existing session.
    #[error("session does not exist")]
    NotFound,
    /// Enqueue on a session id that already exists.
    #[error("session already exists")]
    AlreadyExists,
    /// Scheduling results can only be recorded for a PENDING session.
    #[error("session is {0}, not PENDING")]
    NotPending(SessionStatus),
    /// The pending-timeout sweeper came too early (or the timeout is disabled).
    #[error("session has not been pending for {pending_timeout} seconds yet")]
    NotExpired {
        /// The timeout it was checked against (0 = disabled).
        pending_timeout: u64,
    },
    /// The allocated slots of a placement overflow (never with validated input).
    #[error("the allocated slots overflow")]
    ResourceOverflow,
    /// Invalid input; names the field.
    #[error(transparent)]
    Validation(#[from] ValidationError),
}
