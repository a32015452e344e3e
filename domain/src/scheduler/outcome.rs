//! What a scheduling attempt found for one session: the predicates that failed (with
//! their human messages) and the ones that passed. Recorded in session events and
//! shown in a session's `status_data`.

use serde::{Deserialize, Serialize};

/// A predicate that failed, with its human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedPredicate {
    /// Predicate name, e.g. `concurrency`.
    pub name: String,
    /// Why it failed.
    pub msg: String,
}

/// A predicate that passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassedPredicate {
    /// Predicate name.
    pub name: String,
}
