//! PostgreSQL backend: postgres-es for loading streams, our single-statement append and
//! the commit-order global-log reader of SPEC §3.

use postgres_es::PostgresEventRepository;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;
use std::sync::Arc;
use tokio::sync::Notify;

use super::{conflict, is_unique_violation, LogPosition, NewEvent, StoreError, StoreOptions};

/// The PostgreSQL event store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    pub(super) appended: Arc<Notify>,
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
        Ok(Self {
            pool,
            appended: Arc::new(Notify::new()),
        })
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

    pub(super) async fn import(&self, events: &[super::RecordedEvent]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for chunk in events.chunks(2000) {
            sqlx::query(
                "INSERT INTO events (global_position, aggregate_type, aggregate_id, sequence, \
                   event_type, event_version, payload, metadata, recorded_at) \
                 OVERRIDING SYSTEM VALUE \
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], \
                   $5::text[], $6::text[], $7::jsonb[], $8::jsonb[], $9::timestamptz[])",
            )
            .bind(chunk.iter().map(|e| e.global_position).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|e| e.aggregate_type.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|e| e.aggregate_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|e| e.sequence).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|e| e.event_type.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|e| e.event_version.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|e| &e.payload).collect::<Vec<_>>())
            .bind(chunk.iter().map(|e| &e.metadata).collect::<Vec<_>>())
            .bind(chunk.iter().map(|e| e.recorded_at).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        // New appends continue after the highest imported position.
        sqlx::query(
            "SELECT setval(pg_get_serial_sequence('events', 'global_position'), \
                           GREATEST((SELECT max(global_position) FROM events), 1))",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(super) async fn close(&self) {
        self.pool.close().await;
    }
}
