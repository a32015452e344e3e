//! [`BenchError`]: why a scenario failed (printed as one line on stderr, exit code 1).

use store::StoreError;

/// Why the bench failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Projection failure.
    #[error(transparent)]
    Projection(#[from] projections::ProjectionError),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// A database error (of a statement the bench runs itself, or of a store read) is a
/// store failure.
impl From<sqlx::Error> for BenchError {
    fn from(e: sqlx::Error) -> Self {
        BenchError::Store(StoreError::Database(e))
    }
}
