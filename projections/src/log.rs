//! The global log as the projection engine sees it: recorded events and cursors.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A cursor into the global log: events are delivered in `(transaction_id,
/// global_position)` order, which is commit order (on SQLite `transaction_id` is 0).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogPosition {
    /// Writing transaction id (PostgreSQL); 0 on SQLite.
    pub transaction_id: i64,
    /// Global position.
    pub global_position: i64,
}

impl LogPosition {
    /// Before the first event.
    pub const START: LogPosition = LogPosition {
        transaction_id: 0,
        global_position: 0,
    };
}

/// An event as stored, with its place in the global log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Position in the global log.
    pub global_position: i64,
    /// The writing transaction (PostgreSQL xid8 as a number; 0 on SQLite). Local to
    /// one store: not part of an export, and an import assigns its own.
    #[serde(default, skip_serializing)]
    pub transaction_id: i64,
    /// Aggregate type.
    pub aggregate_type: String,
    /// Stream id.
    pub aggregate_id: String,
    /// Position in the stream.
    pub sequence: i64,
    /// Event type.
    pub event_type: String,
    /// Event version.
    pub event_version: String,
    /// Body.
    pub payload: Value,
    /// Metadata (`actor`, `correlation_id`, `causation_id`).
    pub metadata: Value,
    /// When the store accepted it.
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// This event's cursor in the global log.
    pub fn log_position(&self) -> LogPosition {
        LogPosition {
            transaction_id: self.transaction_id,
            global_position: self.global_position,
        }
    }

    /// Decodes the payload as an aggregate's event type.
    pub fn decode<E: serde::de::DeserializeOwned>(&self) -> Result<E, crate::ProjectionError> {
        E::deserialize(&self.payload).map_err(|source| crate::ProjectionError::Decode {
            event_type: self.event_type.clone(),
            global_position: self.global_position,
            source,
        })
    }

    /// The `actor` metadata entry.
    pub fn actor(&self) -> &str {
        self.metadata
            .get("actor")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}
