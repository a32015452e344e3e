//! Database access shared by the projection engine and the read models: one enum over
//! the two backends, and the [`on_tx!`](crate::on_tx) / [`on_pool!`](crate::on_pool)
//! macros that run the same SQL text (with `$N` placeholders, which sqlx accepts on both
//! backends) against whichever backend is in use.
//!
//! The global-log reader lives here too: it is the engine's input, and the event store
//! delegates its own log reads to it.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Postgres, Row, Sqlite, Transaction};

use crate::log::{LogPosition, RecordedEvent};
use crate::ProjectionError;

/// Which database the read models live in (always the event store's database).
#[derive(Debug, Clone)]
pub enum Db {
    /// PostgreSQL pool.
    Postgres(PgPool),
    /// SQLite: the single writer connection and the readers' pool.
    Sqlite {
        /// Exactly one connection: every write goes through it.
        writer: SqlitePool,
        /// Read-only connections.
        readers: SqlitePool,
    },
}

/// An open read-model transaction.
#[derive(Debug)]
pub enum Tx {
    /// PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
    /// SQLite (on the writer connection).
    Sqlite(Transaction<'static, Sqlite>),
}

/// Runs `$body` with `$conn` bound to the transaction's connection, whichever backend.
/// The body is expanded once per backend, so the same SQL text serves both.
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::db::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::db::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

/// Like [`on_tx!`](crate::on_tx) for statements: `$body` yields a query result and the
/// macro returns `Result<u64, sqlx::Error>` (rows affected) for either backend.
#[macro_export]
macro_rules! exec_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::db::Tx::Postgres(t) => {
                let $conn = &mut **t;
                ($body).map(|r| r.rows_affected())
            }
            $crate::db::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                ($body).map(|r| r.rows_affected())
            }
        }
    };
}

/// Runs `$body` with `$pool` bound to a pool for reading, whichever backend.
#[macro_export]
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Postgres(p) => {
                let $pool = p;
                $body
            }
            $crate::db::Db::Sqlite { readers, .. } => {
                let $pool = readers;
                $body
            }
        }
    };
}

/// Columns every read of `events` selects.
const PG_COLUMNS: &str = "global_position, transaction_id::text::bigint AS transaction_id, \
    aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at";
const SQLITE_COLUMNS: &str = "global_position, 0 AS transaction_id, aggregate_type, aggregate_id, \
    sequence, event_type, event_version, payload, metadata, recorded_at";

impl Db {
    /// Begins a read-model transaction (on SQLite, on the single writer connection).
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
            // IMMEDIATE: take the write lock up front. A deferred transaction that reads
            // first and writes later fails at once with SQLITE_BUSY (the busy timeout
            // does not apply to a read-to-write upgrade) when another process wrote.
            Db::Sqlite { writer, .. } => Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    /// Reads up to `limit` events of the global log after `after`, in commit order.
    ///
    /// PostgreSQL (SPEC §3): rows after the cursor in `(transaction_id, global_position)`
    /// order, only from transactions older than every transaction still running, so a
    /// row that commits late is never passed over. SQLite: one writer at a time assigns
    /// positions in commit order, so the log is read by position.
    pub async fn read_log(
        &self,
        after: LogPosition,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, ProjectionError> {
        match self {
            Db::Postgres(pool) => {
                // ORDER BY names the table's columns: the output column `transaction_id`
                // is the bigint cast, and ordering by it would defeat the index.
                let rows = sqlx::query(&format!(
                    "SELECT {PG_COLUMNS} FROM events \
                     WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
                       AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
                     ORDER BY events.transaction_id, events.global_position \
                     LIMIT $3"
                ))
                .bind(after.transaction_id.to_string())
                .bind(after.global_position)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                rows.iter().map(DecodeEvent::decode_event).collect()
            }
            Db::Sqlite { readers, .. } => {
                let rows = sqlx::query(&format!(
                    "SELECT {SQLITE_COLUMNS} FROM events WHERE global_position > $1 \
                     ORDER BY global_position LIMIT $2"
                ))
                .bind(after.global_position)
                .bind(limit)
                .fetch_all(readers)
                .await?;
                rows.iter().map(DecodeEvent::decode_event).collect()
            }
        }
    }

    /// Every event of one stream, in sequence order.
    pub async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<RecordedEvent>, ProjectionError> {
        let columns = match self {
            Db::Postgres(_) => PG_COLUMNS,
            Db::Sqlite { .. } => SQLITE_COLUMNS,
        };
        let sql = format!(
            "SELECT {columns} FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
        );
        on_pool!(self, pool => sqlx::query(&sql)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(DecodeEvent::decode_event)
            .collect())
    }

    /// The last event of one stream (`None`: the stream is empty): the whole state of
    /// aggregates whose every event names their state (name claims, pending quotas).
    /// One row through the primary key, however long the stream is.
    pub async fn read_last(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<RecordedEvent>, ProjectionError> {
        let columns = match self {
            Db::Postgres(_) => PG_COLUMNS,
            Db::Sqlite { .. } => SQLITE_COLUMNS,
        };
        let sql = format!(
            "SELECT {columns} FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence DESC LIMIT 1"
        );
        on_pool!(self, pool => sqlx::query(&sql)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(DecodeEvent::decode_event)
            .transpose())
    }

    /// The first event of one stream (`None`: the stream is empty): who created it.
    pub async fn read_first(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<RecordedEvent>, ProjectionError> {
        let columns = match self {
            Db::Postgres(_) => PG_COLUMNS,
            Db::Sqlite { .. } => SQLITE_COLUMNS,
        };
        let sql = format!(
            "SELECT {columns} FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = 1"
        );
        on_pool!(self, pool => sqlx::query(&sql)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(DecodeEvent::decode_event)
            .transpose())
    }

    /// The newest position the commit-order reader can return now (`START` for an
    /// empty log): a stream that should show only what happens from now on starts here.
    pub async fn readable_head(&self) -> Result<LogPosition, ProjectionError> {
        let row: Option<(i64, i64)> =
            match self {
                Db::Postgres(p) => {
                    sqlx::query_as(
                        "SELECT transaction_id::text::bigint, global_position FROM events \
                     WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
                     ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1",
                    )
                    .fetch_optional(p)
                    .await?
                }
                Db::Sqlite { readers, .. } => sqlx::query_as(
                    "SELECT 0, global_position FROM events ORDER BY global_position DESC LIMIT 1",
                )
                .fetch_optional(readers)
                .await?,
            };
        Ok(row
            .map(|(transaction_id, global_position)| LogPosition {
                transaction_id,
                global_position,
            })
            .unwrap_or(LogPosition::START))
    }

    /// The highest global position committed so far (`None`: empty log). Events below
    /// it may still be invisible to the commit-order reader for a moment (an older
    /// transaction still open), which is why waits compare checkpoints with it.
    pub async fn head(&self) -> Result<Option<i64>, ProjectionError> {
        let sql = "SELECT MAX(global_position) FROM events";
        Ok(match self {
            Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
            Db::Sqlite { readers, .. } => sqlx::query_scalar(sql).fetch_one(readers).await?,
        })
    }

    /// The log position of the event at `global_position` (its transaction id is needed
    /// to compare it with a checkpoint on PostgreSQL). `None` if there is no such event.
    pub async fn position_of(
        &self,
        global_position: i64,
    ) -> Result<Option<LogPosition>, ProjectionError> {
        let tx: Option<i64> =
            match self {
                Db::Postgres(pool) => sqlx::query_scalar(
                    "SELECT transaction_id::text::bigint FROM events WHERE global_position = $1",
                )
                .bind(global_position)
                .fetch_optional(pool)
                .await?,
                Db::Sqlite { readers, .. } => {
                    sqlx::query_scalar("SELECT 0 FROM events WHERE global_position = $1")
                        .bind(global_position)
                        .fetch_optional(readers)
                        .await?
                }
            };
        Ok(tx.map(|transaction_id| LogPosition {
            transaction_id,
            global_position,
        }))
    }

    /// The newest readable position and how many events follow `after` (for lag).
    pub async fn lag_after(
        &self,
        after: LogPosition,
    ) -> Result<(i64, Option<chrono::DateTime<chrono::Utc>>), ProjectionError> {
        let row: (i64, Option<String>) = match self {
            Db::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT count(*), min(recorded_at)::text FROM events \
                     WHERE (transaction_id, global_position) > ($1::text::xid8, $2)",
                )
                .bind(after.transaction_id.to_string())
                .bind(after.global_position)
                .fetch_one(pool)
                .await?
            }
            Db::Sqlite { readers, .. } => {
                sqlx::query_as(
                    "SELECT count(*), min(recorded_at) FROM events WHERE global_position > $1",
                )
                .bind(after.global_position)
                .fetch_one(readers)
                .await?
            }
        };
        let oldest = row.1.and_then(|s| {
            chrono::DateTime::parse_from_rfc3339(&s)
                .or_else(|_| chrono::DateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S%.f%#z"))
                .ok()
                .map(|d| d.with_timezone(&chrono::Utc))
        });
        Ok((row.0, oldest))
    }
}

impl Tx {
    /// Commits.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(t) => t.commit().await,
            Tx::Sqlite(t) => t.commit().await,
        }
    }

    /// Whether this is PostgreSQL (for the few statements that differ).
    pub fn is_postgres(&self) -> bool {
        matches!(self, Tx::Postgres(_))
    }
}

/// A row of `events` as a [`RecordedEvent`], for either backend.
trait DecodeEvent {
    fn decode_event(&self) -> Result<RecordedEvent, ProjectionError>;
}

impl DecodeEvent for PgRow {
    fn decode_event(&self) -> Result<RecordedEvent, ProjectionError> {
        decode_pg(self)
    }
}

impl DecodeEvent for SqliteRow {
    fn decode_event(&self) -> Result<RecordedEvent, ProjectionError> {
        decode_sqlite(self)
    }
}

fn decode_pg(row: &PgRow) -> Result<RecordedEvent, ProjectionError> {
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

fn decode_sqlite(row: &SqliteRow) -> Result<RecordedEvent, ProjectionError> {
    let json = |col: &str| -> Result<serde_json::Value, ProjectionError> {
        let text: String = row.try_get(col)?;
        serde_json::from_str(&text).map_err(|source| ProjectionError::Decode {
            event_type: row.try_get("event_type").unwrap_or_default(),
            global_position: row.try_get("global_position").unwrap_or_default(),
            source,
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
