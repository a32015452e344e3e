//! PostgreSQL backend: postgres-es for loading streams, our single-statement append and
//! the commit-order global-log reader of SPEC §3.

use postgres_es::PostgresEventRepository;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::Row;

use super::{
    conflict, is_unique_violation, LogPosition, NewEvent, RecordedEvent, StoreError, StoreOptions,
};

/// Columns every read of `events` selects, `transaction_id` as a number (sqlx has no
/// `xid8` type; xid8 values fit in a bigint).
const COLUMNS: &str = "global_position, transaction_id::text::bigint AS transaction_id, \
    aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at";

/// The PostgreSQL event store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects and applies migrations.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    /// The connection pool (for read models and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(super) fn repository(&self) -> PostgresEventRepository {
        PostgresEventRepository::new(self.pool.clone())
    }

    /// One INSERT of every event (UNNEST of arrays): one round trip, atomic.
    pub(super) async fn append(&self, events: &[NewEvent]) -> Result<Vec<LogPosition>, StoreError> {
        let mut types = Vec::with_capacity(events.len());
        let mut ids = Vec::with_capacity(events.len());
        let mut seqs = Vec::with_capacity(events.len());
        let mut event_types = Vec::with_capacity(events.len());
        let mut versions = Vec::with_capacity(events.len());
        let mut payloads = Vec::with_capacity(events.len());
        let mut metadata = Vec::with_capacity(events.len());
        for e in events {
            types.push(e.aggregate_type.as_str());
            ids.push(e.aggregate_id.as_str());
            seqs.push(e.sequence);
            event_types.push(e.event_type.as_str());
            versions.push(e.event_version.as_str());
            payloads.push(&e.payload);
            metadata.push(&e.metadata);
        }
        let rows = sqlx::query(
            "INSERT INTO events \
               (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], \
                                  $6::jsonb[], $7::jsonb[]) \
             RETURNING global_position, transaction_id::text::bigint AS transaction_id",
        )
        .bind(&types)
        .bind(&ids)
        .bind(&seqs)
        .bind(&event_types)
        .bind(&versions)
        .bind(&payloads)
        .bind(&metadata)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| if is_unique_violation(&e) { conflict(events) } else { e.into() })?;
        let mut positions = rows
            .iter()
            .map(|r| {
                Ok(LogPosition {
                    transaction_id: r.try_get("transaction_id")?,
                    global_position: r.try_get("global_position")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        positions.sort();
        Ok(positions)
    }

    /// SPEC §3's reader: rows after the cursor in (transaction_id, global_position)
    /// order, only from transactions older than every transaction still running, so a
    /// row that commits late can never be passed over.
    pub(super) async fn read_log(
        &self,
        after: LogPosition,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events \
             WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
               AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY transaction_id, global_position \
             LIMIT $3"
        ))
        .bind(after.transaction_id.to_string())
        .bind(after.global_position)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    pub(super) async fn read_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
        ))
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }
}

fn decode(row: &PgRow) -> Result<RecordedEvent, StoreError> {
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
