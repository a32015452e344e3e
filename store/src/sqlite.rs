//! SQLite backend (the embedded default): WAL mode, a busy timeout, exactly one writer
//! connection (SQLite has one writer at a time; a pool of writers only produces
//! SQLITE_BUSY) and a separate pool of readers. sqlite-es loads streams.

use sqlite_es::SqliteEventRepository;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use std::str::FromStr;
use std::sync::Arc;
use tokio::sync::Notify;

use crate::event_store::{conflict, is_unique_violation};
use crate::log::{LogPosition, NewEvent, RecordedEvent};
use crate::{sql, StoreError, StoreOptions};

/// The SQLite event store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
    pub(crate) appended: Arc<Notify>,
    /// [`StoreOptions::snapshot_every`].
    pub(crate) snapshot_every: u64,
}

impl SqliteStore {
    /// Opens (creating if missing) the file and applies migrations.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(options.acquire_timeout)
            .foreign_keys(true);
        // No ping before each checkout (sqlx's default): a connection to a local file
        // does not go stale, and the ping is a round trip to its worker thread.
        let writer = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        crate::migrator(sqlx::migrate!("../migrations/sqlite"))
            .run(&writer)
            .await?;
        let readers = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.read_only(true))
            .await?;
        Ok(Self {
            writer,
            readers,
            appended: Arc::new(Notify::new()),
            snapshot_every: options.snapshot_every,
        })
    }

    /// The single writer connection's pool.
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// The readers' pool.
    pub fn readers(&self) -> &SqlitePool {
        &self.readers
    }

    pub(crate) fn repository(&self) -> SqliteEventRepository {
        SqliteEventRepository::new(self.readers.clone())
    }

    /// One INSERT .. RETURNING of every event on the writer (a JSON array read with
    /// `json_each`): atomic, one statement, no bind-parameter limit.
    pub(crate) async fn append(&self, events: &[NewEvent]) -> Result<Vec<LogPosition>, StoreError> {
        let mut rows = Vec::with_capacity(events.len());
        for e in events {
            rows.push(serde_json::json!([
                e.aggregate_type,
                e.aggregate_id,
                e.sequence,
                e.event_type,
                e.event_version,
                serde_json::to_string(&e.payload).map_err(StoreError::Encode)?,
                serde_json::to_string(&e.metadata).map_err(StoreError::Encode)?,
            ]));
        }
        let rows = sqlx::query(sql!("events/append").sqlite())
            .bind(serde_json::Value::Array(rows).to_string())
            .fetch_all(&self.writer)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    conflict(events)
                } else {
                    e.into()
                }
            })?;
        let mut positions = rows
            .iter()
            .map(|r| {
                Ok(LogPosition {
                    transaction_id: 0,
                    global_position: r.try_get("global_position")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        positions.sort();
        Ok(positions)
    }

    /// Writes exported events back exactly as they were, in one transaction.
    pub(crate) async fn import(&self, events: &[RecordedEvent]) -> Result<(), StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        for chunk in events.chunks(2000) {
            let mut rows = Vec::with_capacity(chunk.len());
            for e in chunk {
                rows.push(serde_json::json!([
                    e.global_position,
                    e.aggregate_type,
                    e.aggregate_id,
                    e.sequence,
                    e.event_type,
                    e.event_version,
                    serde_json::to_string(&e.payload).map_err(StoreError::Encode)?,
                    serde_json::to_string(&e.metadata).map_err(StoreError::Encode)?,
                    e.recorded_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                ]));
            }
            sqlx::query(sql!("events/import").sqlite())
                .bind(serde_json::Value::Array(rows).to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(sql!(common "events/ping").sqlite())
            .execute(&self.readers)
            .await?;
        Ok(())
    }

    pub(crate) async fn close(&self) {
        self.writer.close().await;
        self.readers.close().await;
    }
}
