//! Why a claim was refused.

use uuid::Uuid;

/// A refused claim; nothing is appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameClaimError {
    /// Another live holder has the name.
    #[error("the name is held by {holder}")]
    Taken {
        /// The current holder.
        holder: Uuid,
    },
    /// The claimant already holds the name (a retry of the same creation).
    #[error("the name is already held by this claimant")]
    AlreadyHeld,
}
