//! The global log: events as they are appended ([`NewEvent`], with [`EventMetadata`])
//! and as they are stored ([`RecordedEvent`]), cursors into it ([`LogPosition`]), and
//! the readers of it on [`Db`]: the commit-order log, one stream, its first or last
//! event, the head, the lag behind a cursor.
//!
//! PostgreSQL (SPEC §3): the log is read in `(transaction_id, global_position)` order,
//! only from transactions older than every transaction still running, so a row that
//! commits late is never passed over. SQLite: one writer at a time assigns positions in
//! commit order, so the log is read by position.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use std::collections::HashMap;

use domain::DomainEvent;

use crate::db::Db;
use crate::upcast::{Unreadable, Upcasters};
use crate::{args, sql};

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
    /// The position a `(transaction_id, global_position)` row names, or [`Self::START`]
    /// when there is no row (an empty log).
    pub fn from_row(row: Option<(i64, i64)>) -> Self {
        row.map(|(transaction_id, global_position)| LogPosition {
            transaction_id,
            global_position,
        })
        .unwrap_or(LogPosition::START)
    }

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

    /// Decodes the payload as an aggregate's event type, upgraded from its stored
    /// version through this build's upcasters ([`Upcasters::standard`]).
    pub fn decode<E: DomainEvent>(&self) -> Result<E, DecodeError> {
        self.decode_with(Upcasters::standard())
    }

    /// [`RecordedEvent::decode`] through `upcasters` (tests bring their own steps).
    pub fn decode_with<E: DomainEvent>(&self, upcasters: &Upcasters) -> Result<E, DecodeError> {
        upcasters
            .decode(
                &self.aggregate_type,
                &self.event_type,
                &self.event_version,
                &self.payload,
            )
            .map_err(|source| DecodeError {
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

/// A stored event that cannot be read as its event type: its version has no upcaster
/// to the current one, or its body does not match.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode {event_type} at position {global_position}: {source}")]
pub struct DecodeError {
    /// Event type.
    pub event_type: String,
    /// Position.
    pub global_position: i64,
    /// Cause.
    #[source]
    pub source: Unreadable,
}

impl<'r> sqlx::FromRow<'r, PgRow> for RecordedEvent {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(RecordedEvent {
            global_position: row.try_get("global_position")?,
            transaction_id: row.try_get("transaction_id")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: row.try_get("payload")?,
            metadata: row.try_get("metadata")?,
            recorded_at: row.try_get("recorded_at")?,
        })
    }
}

impl<'r> sqlx::FromRow<'r, SqliteRow> for RecordedEvent {
    fn from_row(row: &'r SqliteRow) -> Result<Self, sqlx::Error> {
        let json = |col: &str| -> Result<Value, sqlx::Error> {
            let text: String = row.try_get(col)?;
            serde_json::from_str(&text).map_err(|e| sqlx::Error::ColumnDecode {
                index: col.to_string(),
                source: Box::new(e),
            })
        };
        Ok(RecordedEvent {
            global_position: row.try_get("global_position")?,
            transaction_id: row.try_get("transaction_id")?,
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: json("payload")?,
            metadata: json("metadata")?,
            recorded_at: row.try_get("recorded_at")?,
        })
    }
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// e.g. `Session`.
    pub aggregate_type: String,
    /// The stream id.
    pub aggregate_id: String,
    /// 1-based position in the stream; must be the stream's next.
    pub sequence: i64,
    /// Explicit event type.
    pub event_type: String,
    /// Event schema version.
    pub event_version: String,
    /// The event body.
    pub payload: Value,
    /// [`EventMetadata`] as a JSON object.
    pub metadata: Value,
}

/// Who caused an event and in which flow; stored as the event's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// API key id, `scheduler`, or `agent:<id>`.
    pub actor: String,
    /// The request / flow all events of one user action share.
    pub correlation_id: String,
    /// The message (request or event) that caused this one.
    pub causation_id: String,
}

impl EventMetadata {
    /// Metadata as the string map cqrs-es uses.
    pub fn to_map(&self) -> HashMap<String, String> {
        HashMap::from([
            ("actor".to_string(), self.actor.clone()),
            ("correlation_id".to_string(), self.correlation_id.clone()),
            ("causation_id".to_string(), self.causation_id.clone()),
        ])
    }

    /// As a JSON object.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.to_map()).unwrap_or(Value::Null)
    }
}

/// The readers of the global log.
impl Db {
    /// Reads up to `limit` events of the global log after `after`, in commit order:
    /// never an event that a later call could find before one already returned.
    pub async fn read_log(
        &self,
        after: LogPosition,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        self.fetch_all(
            &sql!("log/read_log"),
            args![
                after.transaction_id.to_string(),
                after.global_position,
                limit
            ],
        )
        .await
    }

    /// Every event of one stream, in sequence order.
    pub async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        self.fetch_all(
            &sql!("log/read_stream"),
            args![aggregate_type, aggregate_id],
        )
        .await
    }

    /// The events of one stream after sequence `after`, in sequence order (what a
    /// snapshot folded up to `after` does not hold).
    pub async fn read_stream_after(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        after: i64,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        self.fetch_all(
            &sql!("log/read_stream_after"),
            args![aggregate_type, aggregate_id, after],
        )
        .await
    }

    /// The last event of one stream (`None`: the stream is empty): the whole state of
    /// aggregates whose every event names their state (name claims, pending quotas).
    /// One row through the primary key, however long the stream is.
    pub async fn read_last(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<RecordedEvent>, sqlx::Error> {
        self.fetch_optional(&sql!("log/read_last"), args![aggregate_type, aggregate_id])
            .await
    }

    /// The first event of one stream (`None`: the stream is empty): who created it.
    pub async fn read_first(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<RecordedEvent>, sqlx::Error> {
        self.fetch_optional(&sql!("log/read_first"), args![aggregate_type, aggregate_id])
            .await
    }

    /// The newest position the commit-order reader can return now (`START` for an
    /// empty log): a stream that should show only what happens from now on starts here.
    pub async fn readable_head(&self) -> Result<LogPosition, sqlx::Error> {
        let row: Option<(i64, i64)> = self
            .fetch_optional(&sql!("log/readable_head"), args![])
            .await?;
        Ok(LogPosition::from_row(row))
    }

    /// The highest global position committed so far (`None`: empty log). Events below
    /// it may still be invisible to the commit-order reader for a moment (an older
    /// transaction still open), which is why waits compare checkpoints with it.
    pub async fn head(&self) -> Result<Option<i64>, sqlx::Error> {
        let (head,): (Option<i64>,) = self.fetch_one(&sql!(common "log/head"), args![]).await?;
        Ok(head)
    }

    /// The log position of the event at `global_position` (its transaction id is needed
    /// to compare it with a checkpoint on PostgreSQL). `None` if there is no such event.
    pub async fn position_of(
        &self,
        global_position: i64,
    ) -> Result<Option<LogPosition>, sqlx::Error> {
        let tx: Option<(i64,)> = self
            .fetch_optional(&sql!("log/position_of"), args![global_position])
            .await?;
        Ok(tx.map(|(transaction_id,)| LogPosition {
            transaction_id,
            global_position,
        }))
    }

    /// How many events follow `after`, and when the oldest of them was recorded (lag).
    pub async fn lag_after(
        &self,
        after: LogPosition,
    ) -> Result<(i64, Option<DateTime<Utc>>), sqlx::Error> {
        let (count, oldest): (i64, Option<String>) = self
            .fetch_one(
                &sql!("log/lag_after"),
                args![after.transaction_id.to_string(), after.global_position],
            )
            .await?;
        let oldest = oldest.and_then(|s| {
            DateTime::parse_from_rfc3339(&s)
                .or_else(|_| DateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f%#z"))
                .ok()
                .map(|d| d.with_timezone(&Utc))
        });
        Ok((count, oldest))
    }
}
