//! What one client of an append cell does per op ([`Workload`]): a raw INSERT, a
//! command through the plain cqrs-es framework, one through sessiond's command handler,
//! or a SERIALIZABLE read-modify-write of a mutable status row; and the long
//! SERIALIZABLE reader that runs beside the status rows in `status-reader`.

use chrono::Utc;
use domain::session::{Session, SessionCommand};
use postgres_es::PostgresCqrs;
use rand::rngs::StdRng;
use rand::Rng;
use sessiond::command::{CommandError, CommandHandler};
use sqlite_es::SqliteCqrs;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use store::adapter::Adapted;
use store::db::Statement;
use store::{sql, EventMetadata};
use uuid::Uuid;

use crate::error::BenchError;

/// The row the raw path inserts: the same event type, version, payload and metadata as
/// the commands of the other paths produce (only the aggregate id changes per op).
#[derive(Debug)]
pub struct RawRow {
    /// `event_type` of the template event.
    pub event_type: &'static str,
    /// `event_version` of the template event.
    pub event_version: &'static str,
    /// Its payload (bound as jsonb on PostgreSQL).
    pub payload: serde_json::Value,
    /// Its metadata (bound as jsonb on PostgreSQL).
    pub metadata: serde_json::Value,
    /// The payload's JSON text (bound on SQLite).
    pub payload_text: String,
    /// The metadata's JSON text (bound on SQLite).
    pub metadata_text: String,
}

/// The raw baseline's single-row INSERT (run with sqlx directly: the physical baseline
/// binds its values itself, outside the store's abstraction).
const RAW_INSERT: Statement = sql!(common "events/raw_insert");
const BEGIN_SERIALIZABLE: Statement = sql!(postgres "transaction/begin_serializable");
const COMMIT: Statement = sql!(postgres "transaction/commit");
const ROLLBACK: Statement = sql!(postgres "transaction/rollback");
const STATUS_READ: Statement = sql!(postgres "status/read");
const STATUS_UPDATE: Statement = sql!(postgres "status/update");
const STATUS_SUMMARY: Statement = sql!(postgres "status/summary");
/// A status op gives up (and fails the bench) after this many serialization failures.
const MAX_STATUS_ATTEMPTS: u32 = 1000;
/// How long the long reader keeps each SERIALIZABLE transaction open.
const READER_HOLD: Duration = Duration::from_secs(1);
const STATUSES: [&str; 4] = ["PENDING", "SCHEDULED", "RUNNING", "TERMINATED"];

/// What one client does per op. Cloned into every client task.
#[derive(Clone)]
pub enum Workload {
    /// A raw INSERT through this PostgreSQL pool.
    RawPg(PgPool, Arc<RawRow>),
    /// A raw INSERT through the SQLite writer.
    RawSqlite(SqlitePool, Arc<RawRow>),
    /// `execute_with_metadata` of an enqueue on postgres-es.
    CqrsPg(Arc<PostgresCqrs<Adapted<Session>>>, Arc<EventMetadata>),
    /// The same on sqlite-es.
    CqrsSqlite(Arc<SqliteCqrs<Adapted<Session>>>, Arc<EventMetadata>),
    /// `CommandHandler::execute_new` of the same enqueue.
    Sessiond(CommandHandler, Arc<EventMetadata>),
    /// A status-row transaction on one of this many rows.
    Status(PgPool, usize),
    /// One request to a running `sessiond serve` (the `http` scenario).
    Http(Arc<crate::http::HttpOp>),
}

/// Retried failures of one op.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpStats {
    /// SQLSTATE 40001, retried.
    pub serialization_failures: u64,
    /// SQLSTATE 40P01, retried.
    pub deadlocks: u64,
}

impl OpStats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: OpStats) {
        self.serialization_failures += other.serialization_failures;
        self.deadlocks += other.deadlocks;
    }
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// The command every command path runs: enqueue a new batch session `id`.
pub fn enqueue(id: Uuid) -> SessionCommand {
    SessionCommand::Enqueue {
        spec: domain::fixtures::batch_spec(id),
        now: Utc::now(),
    }
}

impl Workload {
    /// One op; `Ok` only once it committed.
    pub async fn once(&self, rng: &mut StdRng) -> Result<OpStats, BenchError> {
        match self {
            Workload::RawPg(pool, row) => {
                sqlx::query(RAW_INSERT.postgres())
                    .bind(<Session as domain::Decider>::TYPE)
                    .bind(Uuid::new_v4().to_string())
                    .bind(row.event_type)
                    .bind(row.event_version)
                    .bind(&row.payload)
                    .bind(&row.metadata)
                    .execute(pool)
                    .await?;
            }
            Workload::RawSqlite(pool, row) => {
                sqlx::query(RAW_INSERT.sqlite())
                    .bind(<Session as domain::Decider>::TYPE)
                    .bind(Uuid::new_v4().to_string())
                    .bind(row.event_type)
                    .bind(row.event_version)
                    .bind(&row.payload_text)
                    .bind(&row.metadata_text)
                    .execute(pool)
                    .await?;
            }
            Workload::CqrsPg(cqrs, meta) => {
                let id = Uuid::new_v4();
                cqrs.execute_with_metadata(&id.to_string(), enqueue(id), meta.to_map())
                    .await
                    .map_err(|e| BenchError::Other(format!("postgres-es CqrsFramework: {e}")))?;
            }
            Workload::CqrsSqlite(cqrs, meta) => {
                let id = Uuid::new_v4();
                cqrs.execute_with_metadata(&id.to_string(), enqueue(id), meta.to_map())
                    .await
                    .map_err(|e| BenchError::Other(format!("sqlite-es CqrsFramework: {e}")))?;
            }
            Workload::Sessiond(handler, meta) => {
                let id = Uuid::new_v4();
                handler
                    .execute_new::<Session>(&id.to_string(), enqueue(id), meta)
                    .await
                    .map_err(|e| match e {
                        CommandError::Store(e) => BenchError::Store(e),
                        other => BenchError::Other(format!("sessiond execute_new: {other}")),
                    })?;
            }
            Workload::Http(op) => return op.once(rng).await,
            Workload::Status(pool, rows) => {
                let id = format!("s{}", rng.gen_range(0..*rows));
                let mut stats = OpStats::default();
                for _ in 0..MAX_STATUS_ATTEMPTS {
                    match status_transaction(pool, &id).await {
                        Ok(()) => return Ok(stats),
                        Err(e) => match sqlstate(&e).as_deref() {
                            Some("40001") => stats.serialization_failures += 1,
                            Some("40P01") => stats.deadlocks += 1,
                            _ => return Err(BenchError::from(e)),
                        },
                    }
                }
                return Err(BenchError::Other(format!(
                    "status row {id}: still failing after {MAX_STATUS_ATTEMPTS} attempts"
                )));
            }
        }
        Ok(OpStats::default())
    }
}

/// The body of a [`serializable`] transaction, on its connection.
type TxBody<'c> = Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + 'c>>;

/// Runs `body` in a SERIALIZABLE transaction on one pooled connection: BEGIN, the body,
/// COMMIT. The transaction is driven by plain statements rather than `sqlx::Transaction`
/// because a COMMIT that fails with 40001 has already ended the transaction on the
/// server, and the ROLLBACK `Transaction` would send after it only draws a warning.
async fn serializable<F>(pool: &PgPool, body: F) -> Result<(), sqlx::Error>
where
    F: for<'c> FnOnce(&'c mut sqlx::PgConnection) -> TxBody<'c>,
{
    let mut conn = pool.acquire().await?;
    sqlx::query(BEGIN_SERIALIZABLE.postgres())
        .execute(&mut *conn)
        .await?;
    match body(&mut conn).await {
        Ok(()) => sqlx::query(COMMIT.postgres())
            .execute(&mut *conn)
            .await
            .map(|_| ()),
        Err(e) => {
            if sqlx::query(ROLLBACK.postgres())
                .execute(&mut *conn)
                .await
                .is_err()
            {
                // Never hand a connection back in an unknown transaction state.
                conn.close_on_drop();
            }
            Err(e)
        }
    }
}

/// The mutable-status-row baseline: read a row's status, write the next one, in one
/// SERIALIZABLE transaction (BEGIN, SELECT, UPDATE, COMMIT: four round trips).
async fn status_transaction(pool: &PgPool, id: &str) -> Result<(), sqlx::Error> {
    let id = id.to_string();
    serializable(pool, move |conn| {
        Box::pin(async move {
            let status: String = sqlx::query_scalar(STATUS_READ.postgres())
                .bind(&id)
                .fetch_one(&mut *conn)
                .await?;
            let next = STATUSES
                .iter()
                .position(|s| *s == status)
                .map(|i| STATUSES[(i + 1) % STATUSES.len()])
                .unwrap_or(STATUSES[0]);
            sqlx::query(STATUS_UPDATE.postgres())
                .bind(&id)
                .bind(next)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    })
    .await
}

/// One long SERIALIZABLE reader: an aggregate over the whole status table, then the
/// transaction is kept open for [`READER_HOLD`] before it commits; repeated until
/// `stop`. Returns (committed, failed with 40001).
pub async fn long_reader(pool: PgPool, stop: Arc<AtomicBool>) -> Result<(u64, u64), BenchError> {
    let (mut committed, mut failed) = (0u64, 0u64);
    while !stop.load(Ordering::Relaxed) {
        let outcome = serializable(&pool, |conn| {
            Box::pin(async move {
                sqlx::query(STATUS_SUMMARY.postgres())
                    .fetch_all(&mut *conn)
                    .await?;
                tokio::time::sleep(READER_HOLD).await;
                Ok(())
            })
        })
        .await;
        match outcome {
            Ok(()) => committed += 1,
            Err(e) if sqlstate(&e).as_deref() == Some("40001") => failed += 1,
            Err(e) => return Err(BenchError::from(e)),
        }
    }
    Ok((committed, failed))
}
