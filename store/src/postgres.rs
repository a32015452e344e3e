//! PostgreSQL backend: postgres-es for loading streams, our single-statement append and
//! the commit-order global-log reader of SPEC §3.

use postgres_es::PostgresEventRepository;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Row;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};

use crate::event_store::{conflict, is_unique_violation};
use crate::log::{LogPosition, NewEvent, RecordedEvent};
use crate::{sql, StoreError, StoreOptions};

/// The PostgreSQL event store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    pub(crate) appended: Arc<Notify>,
    /// [`StoreOptions::snapshot_every`].
    pub(crate) snapshot_every: u64,
    /// The group-commit queue (see [`PgStore::append`]).
    queue: mpsc::UnboundedSender<AppendRequest>,
}

/// One caller's append waiting for the group commit.
#[derive(Debug)]
struct AppendRequest {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Vec<LogPosition>, StoreError>>,
}

/// Appends in flight at once (each one statement of many callers' events).
const CONCURRENT_FLUSHES: usize = 4;
/// A pooled connection idle this long is pinged before it is handed out.
const PING_WHEN_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);
/// Most events per group-commit statement.
const MAX_BATCH_EVENTS: usize = 2_000;

impl PgStore {
    /// Connects and applies migrations.
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            // sqlx pings every connection it hands out (a round trip per statement);
            // here only one that sat idle long enough to have gone stale (a restarted
            // server) is pinged, and replaced if the ping fails. A busy connection is
            // one that just worked; an outage in between is the circuit breaker's.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_WHEN_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect(url)
            .await?;
        crate::migrator(sqlx::migrate!("../migrations/postgres"))
            .run(&pool)
            .await?;
        let (queue, requests) = mpsc::unbounded_channel();
        tokio::spawn(group_commit(pool.clone(), requests));
        Ok(Self {
            pool,
            appended: Arc::new(Notify::new()),
            snapshot_every: options.snapshot_every,
            queue,
        })
    }

    /// The connection pool (for read models and tests).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn repository(&self) -> PostgresEventRepository {
        PostgresEventRepository::new(self.pool.clone())
    }

    /// Appends `events` atomically, through the group commit: the appends of concurrent
    /// callers are coalesced into one INSERT statement (one transaction, one WAL flush),
    /// at most [`CONCURRENT_FLUSHES`] statements in flight. Optimistic concurrency stays
    /// exact: a statement is all-or-nothing, and when one fails on a taken sequence each
    /// caller's events are appended again on their own, so only the callers that really
    /// conflict get [`StoreError::Conflict`].
    pub(crate) async fn append(&self, events: &[NewEvent]) -> Result<Vec<LogPosition>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest {
            events: events.to_vec(),
            reply,
        };
        if self.queue.send(request).is_err() {
            return insert(&self.pool, events).await;
        }
        match answer.await {
            Ok(result) => result,
            // The committer is gone (runtime shutting down): append directly.
            Err(_) => insert(&self.pool, events).await,
        }
    }

    /// Writes exported events back exactly as they were, in one transaction; new
    /// appends then continue after the highest imported position.
    pub(crate) async fn import(&self, events: &[RecordedEvent]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for chunk in events.chunks(2000) {
            sqlx::query(sql!("events/import").postgres())
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
        sqlx::query(sql!(postgres "events/continue_after_import").postgres())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(sql!(common "events/ping").postgres())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

/// One INSERT of every event (UNNEST of arrays): one round trip, atomic.
async fn insert(pool: &PgPool, events: &[NewEvent]) -> Result<Vec<LogPosition>, StoreError> {
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
    let rows = sqlx::query(sql!("events/append").postgres())
        .bind(&types)
        .bind(&ids)
        .bind(&seqs)
        .bind(&event_types)
        .bind(&versions)
        .bind(&payloads)
        .bind(&metadata)
        .fetch_all(pool)
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
                transaction_id: r.try_get("transaction_id")?,
                global_position: r.try_get("global_position")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    positions.sort();
    Ok(positions)
}

/// The group committer: takes every append waiting in the queue (up to
/// [`MAX_BATCH_EVENTS`] events) and writes them with one statement, keeping up to
/// [`CONCURRENT_FLUSHES`] statements in flight. Under load, callers that arrive while a
/// statement runs share the next one; alone, a caller pays one channel hop.
async fn group_commit(pool: PgPool, mut requests: mpsc::UnboundedReceiver<AppendRequest>) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_FLUSHES));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = requests.recv().await else {
            return;
        };
        let mut events = first.events.len();
        let mut batch = vec![first];
        while events < MAX_BATCH_EVENTS {
            match requests.try_recv() {
                Ok(r) => {
                    events = events.saturating_add(r.events.len());
                    batch.push(r);
                }
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            flush(&pool, batch).await;
            drop(permit);
        });
    }
}

/// Writes one batch and answers every caller in it.
async fn flush(pool: &PgPool, batch: Vec<AppendRequest>) {
    if batch.len() == 1 {
        for r in batch {
            let result = insert(pool, &r.events).await;
            let _ = r.reply.send(result);
        }
        return;
    }
    let all: Vec<NewEvent> = batch
        .iter()
        .flat_map(|r| r.events.iter().cloned())
        .collect();
    match insert(pool, &all).await {
        Ok(positions) => {
            // Positions come back in input order (identity values are drawn in the
            // order of the UNNEST rows); hand each caller its share.
            let mut rest = positions.into_iter();
            for r in batch {
                let mine: Vec<LogPosition> = rest.by_ref().take(r.events.len()).collect();
                let _ = r.reply.send(Ok(mine));
            }
        }
        Err(StoreError::Conflict { .. }) => {
            // Someone in the batch lost an optimistic race: nothing was written. Append
            // each caller's events on their own so only the losers see the conflict.
            for r in batch {
                let result = insert(pool, &r.events).await;
                let _ = r.reply.send(result);
            }
        }
        Err(e) => {
            let message = crate::error_chain(&e);
            let unavailable = e.is_unavailable();
            let mut first = Some(e);
            for r in batch {
                let err = first.take().unwrap_or_else(|| StoreError::Batch {
                    message: message.clone(),
                    unavailable,
                });
                let _ = r.reply.send(Err(err));
            }
        }
    }
}
