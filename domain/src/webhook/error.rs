//! Why a webhook subscription command is refused.

/// A refused subscription command; nothing was appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// There is no such subscription (or it was deleted).
    #[error("webhook subscription not found")]
    NotFound,
    /// The id is taken.
    #[error("webhook subscription already exists")]
    AlreadyExists,
    /// The overlap of a rotation is negative.
    #[error("overlap: must not be negative")]
    NegativeOverlap,
}
