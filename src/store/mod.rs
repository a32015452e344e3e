//! The event store: PostgreSQL (production) and an SQLite file (embedded default)
//! behind one interface, [`EventStore`].
//!
//! Both backends keep postgres-es / sqlite-es's table layout (their repositories load
//! streams) plus our columns: a global position, `recorded_at` and, on PostgreSQL, the
//! writing transaction's id, so [`EventStore::read_log`] delivers the global log in
//! commit order and never skips a row that committed late (docs/adr/0001-event-store.md).
//!
//! Appends are one statement (an implicit, short transaction); no transaction is ever
//! held open across anything but the database. Optimistic concurrency comes from the
//! primary key `(aggregate_type, aggregate_id, sequence)`: a second writer of the same
//! stream version gets [`StoreError::Conflict`].

pub mod postgres;
pub mod sqlite;

use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

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

pub use projections::log::{LogPosition, RecordedEvent};

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

/// What went wrong talking to the store. Domain rejections are not here.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the stream first (optimistic concurrency).
    #[error("conflict: {aggregate_type} {aggregate_id} was changed concurrently")]
    Conflict {
        /// Aggregate type.
        aggregate_type: String,
        /// Stream id.
        aggregate_id: String,
    },
    /// A group-commit statement shared with other appends failed (the first caller in
    /// the batch gets the original error; the others get its message).
    #[error("the shared append failed: {0}")]
    Batch(String),
    /// The database URL is not one we can open.
    #[error("unsupported database URL '{0}': expected sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// A database error (connection, query).
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Reading the global log failed.
    #[error("log read failed")]
    Log(#[from] projections::ProjectionError),
    /// Loading through the cqrs-es repository failed.
    #[error("event repository error")]
    Repository(#[from] cqrs_es::persist::PersistenceError),
    /// A stored payload does not match the event type.
    #[error("cannot decode {event_type} v{event_version} at sequence {sequence}")]
    Decode {
        /// Event type.
        event_type: String,
        /// Version.
        event_version: String,
        /// Sequence.
        sequence: i64,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// Serialising an event failed.
    #[error("cannot encode event")]
    Encode(#[source] serde_json::Error),
}

impl StoreError {
    /// Whether this is an optimistic-concurrency conflict.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Max pooled connections (PostgreSQL; SQLite readers).
    pub max_connections: u32,
    /// How long to wait for a connection / a locked SQLite database.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite file.
    Sqlite,
}

/// The event store, on either backend.
#[derive(Debug, Clone)]
pub enum EventStore {
    /// PostgreSQL.
    Postgres(postgres::PgStore),
    /// SQLite.
    Sqlite(sqlite::SqliteStore),
}

impl EventStore {
    /// Opens the store at `url` (`postgres://...` or `sqlite://PATH`) and applies
    /// pending migrations.
    #[tracing::instrument(skip_all, fields(backend), err)]
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            tracing::Span::current().record("backend", "postgres");
            EventStore::Postgres(postgres::PgStore::open(url, options).await?)
        } else if url.starts_with("sqlite:") {
            tracing::Span::current().record("backend", "sqlite");
            EventStore::Sqlite(sqlite::SqliteStore::open(url, options).await?)
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        Ok(store)
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            EventStore::Postgres(_) => Backend::Postgres,
            EventStore::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Loads one stream through the cqrs-es repository (postgres-es / sqlite-es) and
    /// decodes it into `A`'s events, in sequence order.
    #[tracing::instrument(skip_all, fields(aggregate_type = A::TYPE, aggregate_id = %aggregate_id), err)]
    pub async fn load<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<A::Event>, StoreError> {
        use cqrs_es::persist::PersistedEventRepository;
        let serialized = match self {
            EventStore::Postgres(s) => s.repository().get_events::<A>(aggregate_id).await?,
            EventStore::Sqlite(s) => s.repository().get_events::<A>(aggregate_id).await?,
        };
        serialized
            .into_iter()
            .map(|e| {
                serde_json::from_value(e.payload).map_err(|source| StoreError::Decode {
                    event_type: e.event_type,
                    event_version: e.event_version,
                    sequence: i64::try_from(e.sequence).unwrap_or(i64::MAX),
                    source,
                })
            })
            .collect()
    }

    /// Appends events (of one or more streams) atomically in one statement and
    /// returns their global positions, in order. A sequence already taken gives
    /// [`StoreError::Conflict`] and appends nothing.
    ///
    /// A conflict is the expected outcome of a race (the command is retried or
    /// refused), so it is logged at debug; any other failure at error.
    #[tracing::instrument(skip_all, fields(events = events.len()))]
    pub async fn append(&self, events: &[NewEvent]) -> Result<Vec<LogPosition>, StoreError> {
        if events.is_empty() {
            return Ok(vec![]);
        }
        let result = match self {
            EventStore::Postgres(s) => s.append(events).await,
            EventStore::Sqlite(s) => s.append(events).await,
        };
        let positions = match result {
            Ok(p) => p,
            Err(e) if e.is_conflict() => {
                tracing::debug!(error = %e, "append conflict");
                return Err(e);
            }
            Err(e) => {
                tracing::error!(error = %crate::telemetry::error_chain(&e), "append failed");
                return Err(e);
            }
        };
        self.appended().notify_waiters();
        Ok(positions)
    }

    /// Reads up to `limit` events of the global log after `after`, in commit order.
    /// Never returns an event that a later call could find before one already returned.
    pub async fn read_log(
        &self,
        after: LogPosition,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self.db().read_log(after, limit).await?)
    }

    /// The newest position the commit-order reader can return now.
    pub async fn readable_head(&self) -> Result<LogPosition, StoreError> {
        Ok(self.db().readable_head().await?)
    }

    /// Every event of one stream with its positions and metadata, in sequence order.
    pub async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self.db().read_stream(aggregate_type, aggregate_id).await?)
    }

    /// The last event of one stream, decoded as `A`'s event, with its sequence (the
    /// stream's version). For aggregates whose every event names their whole state.
    pub async fn load_last<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<(u64, A::Event)>, StoreError> {
        let Some(e) = self.db().read_last(A::TYPE, aggregate_id).await? else {
            return Ok(None);
        };
        let event = serde_json::from_value(e.payload).map_err(|source| StoreError::Decode {
            event_type: e.event_type,
            event_version: e.event_version,
            sequence: e.sequence,
            source,
        })?;
        Ok(Some((u64::try_from(e.sequence).unwrap_or(0), event)))
    }

    /// The first event of one stream, decoded as `A`'s event (`None`: no such stream).
    pub async fn load_first<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<A::Event>, StoreError> {
        let Some(e) = self.db().read_first(A::TYPE, aggregate_id).await? else {
            return Ok(None);
        };
        serde_json::from_value(e.payload)
            .map(Some)
            .map_err(|source| StoreError::Decode {
                event_type: e.event_type,
                event_version: e.event_version,
                sequence: e.sequence,
                source,
            })
    }

    /// The same database as the projection engine sees it (read models live there).
    pub fn db(&self) -> projections::db::Db {
        match self {
            EventStore::Postgres(s) => projections::db::Db::Postgres(s.pool().clone()),
            EventStore::Sqlite(s) => projections::db::Db::Sqlite {
                writer: s.writer().clone(),
                readers: s.readers().clone(),
            },
        }
    }

    /// Signalled after every successful append (wakes projection runners in-process).
    pub fn appended(&self) -> std::sync::Arc<tokio::sync::Notify> {
        match self {
            EventStore::Postgres(s) => s.appended.clone(),
            EventStore::Sqlite(s) => s.appended.clone(),
        }
    }

    /// Number of events in the store.
    pub async fn count_events(&self) -> Result<i64, StoreError> {
        Ok(self.db().lag_after(LogPosition::START).await?.0)
    }

    /// Writes exported events back exactly as they were (global position, stream,
    /// sequence, type, version, payload, metadata, `recorded_at`), in one transaction.
    /// On PostgreSQL every imported row gets the importing transaction's id, so the
    /// global log reads them in position order. Any collision aborts the whole import.
    pub async fn import(&self, events: &[RecordedEvent]) -> Result<(), StoreError> {
        match self {
            EventStore::Postgres(s) => s.import(events).await,
            EventStore::Sqlite(s) => s.import(events).await,
        }
    }

    /// Records an agent heartbeat (a plain upsert, not an event: SPEC §1.4).
    pub async fn record_heartbeat(&self, agent_id: &str, now_ms: i64) -> Result<(), StoreError> {
        let sql = "INSERT INTO agent_heartbeats (agent_id, last_seen_ms) VALUES ($1, $2) \
                   ON CONFLICT (agent_id) DO UPDATE SET last_seen_ms = \
                   CASE WHEN excluded.last_seen_ms > agent_heartbeats.last_seen_ms \
                   THEN excluded.last_seen_ms ELSE agent_heartbeats.last_seen_ms END";
        match self {
            EventStore::Postgres(s) => {
                sqlx::query(sql)
                    .bind(agent_id)
                    .bind(now_ms)
                    .execute(s.pool())
                    .await?;
            }
            EventStore::Sqlite(s) => {
                sqlx::query(sql)
                    .bind(agent_id)
                    .bind(now_ms)
                    .execute(s.writer())
                    .await?;
            }
        }
        Ok(())
    }

    /// Every agent's last heartbeat, epoch milliseconds.
    pub async fn heartbeats(&self) -> Result<HashMap<String, i64>, StoreError> {
        let sql = "SELECT agent_id, last_seen_ms FROM agent_heartbeats";
        let rows: Vec<(String, i64)> = match self {
            EventStore::Postgres(s) => sqlx::query_as(sql).fetch_all(s.pool()).await?,
            EventStore::Sqlite(s) => sqlx::query_as(sql).fetch_all(s.readers()).await?,
        };
        Ok(rows.into_iter().collect())
    }

    /// Whether the database answers (for readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            EventStore::Postgres(s) => s.ping().await,
            EventStore::Sqlite(s) => s.ping().await,
        }
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        match self {
            EventStore::Postgres(s) => s.close().await,
            EventStore::Sqlite(s) => s.close().await,
        }
    }
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// A conflict error naming the first stream of an append.
fn conflict(events: &[NewEvent]) -> StoreError {
    let first = events.first();
    StoreError::Conflict {
        aggregate_type: first.map(|e| e.aggregate_type.clone()).unwrap_or_default(),
        aggregate_id: first.map(|e| e.aggregate_id.clone()).unwrap_or_default(),
    }
}

/// Hides the password of a database URL for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let host_start = scheme_end.saturating_add(3);
            let (Some(scheme), Some(userinfo), Some(rest)) = (
                url.get(..host_start),
                url.get(host_start..at),
                url.get(at..),
            ) else {
                return url.to_string();
            };
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}{user}:***{rest}"),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_database_url_is_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("sqlite://sessiond.db"), "sqlite://sessiond.db");
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
    }

    #[test]
    fn log_positions_order_by_transaction_then_position() {
        let a = LogPosition {
            transaction_id: 5,
            global_position: 9,
        };
        let b = LogPosition {
            transaction_id: 6,
            global_position: 2,
        };
        assert!(a < b);
    }
}
