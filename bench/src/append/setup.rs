//! The database set-up of the append scenario: the bench's own baseline table (created
//! at the start, `sql/*/schema.sql`), the `events_notify` trigger toggled between
//! cells, the status table refilled before each status cell, and a checkpoint before
//! every cell.

use store::db::Statement;
use store::{args, sql, Db};

use crate::error::BenchError;

const DROP_SCHEMA: Statement = sql!(common "drop_schema");
const SCHEMA: Statement = sql!("schema");
const ENABLE_NOTIFY: Statement = sql!(postgres "events/enable_notify_trigger");
const DISABLE_NOTIFY: Statement = sql!(postgres "events/disable_notify_trigger");
const STATUS_TRUNCATE: Statement = sql!(postgres "status/truncate");
const STATUS_FILL: Statement = sql!(postgres "status/fill");
const STATUS_VACUUM: Statement = sql!(postgres "status/vacuum");
const CHECKPOINT: Statement = sql!("checkpoint");

/// Creates the baseline table `bench_session_status` afresh: the bench always runs on a
/// fresh database, but the table may exist (a re-run on the same database, or a service
/// schema that still creates it), and it holds nothing but the bench's own rows.
pub async fn create_schema(db: &Db) -> Result<(), BenchError> {
    db.execute(&DROP_SCHEMA, args![]).await?;
    db.execute(&SCHEMA, args![]).await?;
    Ok(())
}

/// Turns the `events_notify` trigger on or off (PostgreSQL; nothing on SQLite).
pub async fn set_notify_trigger(db: &Db, enabled: bool) -> Result<(), BenchError> {
    let statement = if enabled {
        &ENABLE_NOTIFY
    } else {
        &DISABLE_NOTIFY
    };
    db.execute(statement, args![]).await?;
    Ok(())
}

/// Empties the status table and fills it with `rows` PENDING rows, then vacuums and
/// analyzes it, so every status cell starts from the same state (PostgreSQL).
pub async fn refill_status(db: &Db, rows: usize) -> Result<(), BenchError> {
    db.execute(&STATUS_TRUNCATE, args![]).await?;
    db.execute(&STATUS_FILL, args![i64::try_from(rows).unwrap_or(i64::MAX)])
        .await?;
    db.execute(&STATUS_VACUUM, args![]).await?;
    Ok(())
}

/// A checkpoint before a cell: `CHECKPOINT` on PostgreSQL, a truncating WAL checkpoint
/// on SQLite (the writer connection).
pub async fn checkpoint(db: &Db) -> Result<(), sqlx::Error> {
    db.execute(&CHECKPOINT, args![]).await.map(|_| ())
}
