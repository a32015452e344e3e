//! SQLite backend (the embedded default): WAL mode, a busy timeout, exactly one writer
//! connection (SQLite has one writer at a time; a pool of writers only produces
//! SQLITE_BUSY) and a separate pool of readers. sqlite-es loads streams.

use sqlite_es::SqliteEventRepository;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use std::str::FromStr;
use std::sync::Arc;
use tokio::sync::Notify;

use super::{conflict, is_unique_violation, LogPosition, NewEvent, StoreError, StoreOptions};

/// The SQLite event store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
    pub(super) appended: Arc<Notify>,
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
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.read_only(true))
            .await?;
        Ok(Self {
            writer,
            readers,
            appended: Arc::new(Notify::new()),
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

    pub(super) fn repository(&self) -> SqliteEventRepository {
        SqliteEventRepository::new(self.readers.clone())
    }

    /// One multi-row INSERT .. RETURNING on the writer: atomic, one statement.
    pub(super) async fn append(&self, events: &[NewEvent]) -> Result<Vec<LogPosition>, StoreError> {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) ",
        );
        let mut encoded = Vec::with_capacity(events.len());
        for e in events {
            encoded.push((
                serde_json::to_string(&e.payload).map_err(StoreError::Encode)?,
                serde_json::to_string(&e.metadata).map_err(StoreError::Encode)?,
            ));
        }
        qb.push_values(
            events.iter().zip(&encoded),
            |mut row, (e, (payload, metadata))| {
                row.push_bind(&e.aggregate_type)
                    .push_bind(&e.aggregate_id)
                    .push_bind(e.sequence)
                    .push_bind(&e.event_type)
                    .push_bind(&e.event_version)
                    .push_bind(payload)
                    .push_bind(metadata);
            },
        );
        qb.push(" RETURNING global_position");
        let rows = qb.build().fetch_all(&self.writer).await.map_err(|e| {
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

    pub(super) async fn import(&self, events: &[super::RecordedEvent]) -> Result<(), StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        for chunk in events.chunks(2000) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO events (global_position, aggregate_type, aggregate_id, sequence, \
                 event_type, event_version, payload, metadata, recorded_at) ",
            );
            let mut rows = Vec::with_capacity(chunk.len());
            for e in chunk {
                rows.push((
                    e,
                    serde_json::to_string(&e.payload).map_err(StoreError::Encode)?,
                    serde_json::to_string(&e.metadata).map_err(StoreError::Encode)?,
                ));
            }
            qb.push_values(&rows, |mut row, (e, payload, metadata)| {
                row.push_bind(e.global_position)
                    .push_bind(&e.aggregate_type)
                    .push_bind(&e.aggregate_id)
                    .push_bind(e.sequence)
                    .push_bind(&e.event_type)
                    .push_bind(&e.event_version)
                    .push_bind(payload)
                    .push_bind(metadata)
                    .push_bind(
                        e.recorded_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    );
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    pub(super) async fn close(&self) {
        self.writer.close().await;
        self.readers.close().await;
    }
}
