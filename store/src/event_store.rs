//! [`EventStore`]: the event store on either backend — open (applying migrations),
//! load a stream, append atomically, read the global log, import an export.

use std::collections::HashMap;

use domain::Decider;

use crate::adapter::Adapted;
use crate::db::Db;
use crate::log::{LogPosition, NewEvent, RecordedEvent};
use crate::upcast::Upcasters;
use crate::{postgres, redact_url, sqlite, Backend, StoreError, StoreOptions};

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
    /// decodes it into `A`'s events, in sequence order, each upgraded through the
    /// upcaster chain ([`Upcasters::standard`]).
    #[tracing::instrument(skip_all, fields(aggregate_type = A::TYPE, aggregate_id = %aggregate_id), err)]
    pub async fn load<A: Decider>(&self, aggregate_id: &str) -> Result<Vec<A::Event>, StoreError> {
        use cqrs_es::persist::PersistedEventRepository;
        let serialized = match self {
            EventStore::Postgres(s) => {
                s.repository()
                    .get_events::<Adapted<A>>(aggregate_id)
                    .await?
            }
            EventStore::Sqlite(s) => {
                s.repository()
                    .get_events::<Adapted<A>>(aggregate_id)
                    .await?
            }
        };
        serialized
            .into_iter()
            .map(|e| {
                let sequence = i64::try_from(e.sequence).unwrap_or(i64::MAX);
                decode::<A>(&e.event_type, &e.event_version, sequence, &e.payload)
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
                tracing::error!(error = %crate::error_chain(&e), "append failed");
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

    /// The first event of one stream as stored (`None`: no such stream).
    pub async fn read_first(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        Ok(self.db().read_first(aggregate_type, aggregate_id).await?)
    }

    /// The last event of one stream, decoded as `A`'s event through the upcaster chain,
    /// with its sequence (the stream's version). For aggregates whose every event names
    /// their whole state.
    pub async fn load_last<A: Decider>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<(u64, A::Event)>, StoreError> {
        let Some(e) = self.db().read_last(A::TYPE, aggregate_id).await? else {
            return Ok(None);
        };
        let event = decode::<A>(&e.event_type, &e.event_version, e.sequence, &e.payload)?;
        Ok(Some((u64::try_from(e.sequence).unwrap_or(0), event)))
    }

    /// The first event of one stream, decoded as `A`'s event through the upcaster
    /// chain (`None`: no such stream).
    pub async fn load_first<A: Decider>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<A::Event>, StoreError> {
        let Some(e) = self.db().read_first(A::TYPE, aggregate_id).await? else {
            return Ok(None);
        };
        decode::<A>(&e.event_type, &e.event_version, e.sequence, &e.payload).map(Some)
    }

    /// The same database as the projection engine sees it (read models live there).
    pub fn db(&self) -> Db {
        match self {
            EventStore::Postgres(s) => Db::Postgres(s.pool().clone()),
            EventStore::Sqlite(s) => Db::Sqlite {
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
        Ok(crate::heartbeats::record(&self.db(), agent_id, now_ms).await?)
    }

    /// Every agent's last heartbeat, epoch milliseconds.
    pub async fn heartbeats(&self) -> Result<HashMap<String, i64>, StoreError> {
        Ok(crate::heartbeats::all(&self.db()).await?)
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

/// One stored event of `A` read through the upcaster chain.
pub(crate) fn decode<A: Decider>(
    event_type: &str,
    event_version: &str,
    sequence: i64,
    payload: &serde_json::Value,
) -> Result<A::Event, StoreError> {
    Upcasters::standard()
        .decode(A::TYPE, event_type, event_version, payload)
        .map_err(|source| StoreError::Decode {
            event_type: event_type.to_string(),
            event_version: event_version.to_string(),
            sequence,
            source,
        })
}

pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// A conflict error naming the first stream of an append.
pub(crate) fn conflict(events: &[NewEvent]) -> StoreError {
    let first = events.first();
    StoreError::Conflict {
        aggregate_type: first.map(|e| e.aggregate_type.clone()).unwrap_or_default(),
        aggregate_id: first.map(|e| e.aggregate_id.clone()).unwrap_or_default(),
    }
}
