//! Commands on a name claim.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Claim the name for `holder`. The application looks up whether the current holder
/// (if any) has ended before it builds the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimName {
    /// The entity that will hold the name (e.g. the new session's id).
    pub holder: Uuid,
    /// Whether the current holder has ended (TERMINATED / CANCELLED), freeing the name.
    pub current_holder_ended: bool,
    /// When.
    pub now: DateTime<Utc>,
}
