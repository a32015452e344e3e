//! SQLite backend (the embedded default): WAL mode, a busy timeout, exactly one writer
//! connection (SQLite has one writer at a time; a pool of writers only produces
//! SQLITE_BUSY) and a separate pool of readers. sqlite-es loads streams.

use sqlite_es::SqliteEventRepository;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use std::str::FromStr;

use super::{
    conflict, is_unique_violation, LogPosition, NewEvent, RecordedEvent, StoreError, StoreOptions,
};

const COLUMNS: &str = "global_position, aggregate_type, aggregate_id, sequence, event_type, \
    event_version, payload, metadata, recorded_at";

/// The SQLite event store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
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
        Ok(Self { writer, readers })
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

    /// With one writer, positions are assigned in commit order: read by position.
    pub(super) async fn read_log(
        &self,
        after: LogPosition,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE global_position > ? ORDER BY global_position LIMIT ?"
        ))
        .bind(after.global_position)
        .bind(limit)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(decode).collect()
    }

    pub(super) async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE aggregate_type = ? AND aggregate_id = ? ORDER BY sequence"
        ))
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(decode).collect()
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

fn decode(row: &SqliteRow) -> Result<RecordedEvent, StoreError> {
    let json = |col: &str| -> Result<serde_json::Value, StoreError> {
        let text: String = row.try_get(col)?;
        serde_json::from_str(&text).map_err(|source| StoreError::Decode {
            event_type: row.try_get("event_type").unwrap_or_default(),
            event_version: row.try_get("event_version").unwrap_or_default(),
            sequence: row.try_get("sequence").unwrap_or_default(),
            source,
        })
    };
    Ok(RecordedEvent {
        global_position: row.try_get("global_position")?,
        transaction_id: 0,
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
