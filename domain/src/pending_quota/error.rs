//! Why a pending slot was refused.

/// A refused enqueue; nothing is appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PendingQuotaError {
    /// The owner already has `limit` PENDING sessions.
    #[error("you already have {pending} pending sessions (max_pending_sessions is {limit})")]
    LimitReached {
        /// The limit.
        limit: u32,
        /// The owner's PENDING sessions now (at least `limit`).
        pending: u32,
    },
}
