//! Why a scaling-group command was rejected.

use crate::error::ValidationError;

/// A rejected scaling-group command; nothing is appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScalingGroupError {
    /// The group does not exist.
    #[error("scaling group does not exist")]
    NotFound,
    /// Create on an existing name.
    #[error("scaling group already exists")]
    AlreadyExists,
    /// Invalid input; names the field.
    #[error(transparent)]
    Validation(#[from] ValidationError),
}
