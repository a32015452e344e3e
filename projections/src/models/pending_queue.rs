//! `pending_queue`: PENDING sessions per scaling group, in scheduler order (priority
//! desc, then enqueue position), with the pending-timeout deadline indexed so the
//! sweeper's cost grows with the expired sessions only. A group's `pending_timeout` is
//! tracked here too, and changing it recomputes the deadlines of sessions already
//! waiting (lowering the timeout applies to them).

use async_trait::async_trait;
use domain::scaling_group::ScalingGroupEvent;
use domain::session::SessionEvent;

use super::live_generation;
use crate::db::{Db, Tx};
use crate::log::{LogPosition, RecordedEvent};
use crate::{exec_tx, on_pool, on_tx, Projection, ProjectionError};

/// The pending-queue projection.
#[derive(Debug, Clone, Copy)]
pub struct PendingQueue;

/// One queued session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct PendingEntry {
    /// Session id.
    pub session_id: String,
    /// Group.
    pub scaling_group: String,
    /// Owner.
    pub owner: String,
    /// Type.
    pub session_type: String,
    /// Priority.
    pub priority: i64,
    /// Global position of its `SessionEnqueued` (FIFO order).
    pub enqueue_position: i64,
    /// When it was enqueued.
    pub enqueued_at: String,
    /// Pending-timeout deadline, epoch ms (`None`: no timeout).
    pub deadline_ms: Option<i64>,
    /// Scheduling attempts (written by the scheduler).
    pub retries: i64,
    /// Last attempt (written by the scheduler).
    pub last_try: Option<String>,
}

/// The columns of a [`PendingEntry`].
const COLUMNS: &str = "session_id, scaling_group, owner, session_type, priority, \
    enqueue_position, enqueued_at, deadline_ms, retries, last_try";

const DEADLINE: &str = "CASE WHEN $1 > 0 THEN enqueued_ms + $1 * 1000 ELSE NULL END";

/// The longest timeout that gets a deadline (a thousand years; validated timeouts are at
/// most ten): `enqueued_ms + timeout * 1000` stays far inside a 64-bit integer.
const MAX_DEADLINE_SECS: i64 = 31_536_000_000;

async fn set_group_timeout(
    tx: &mut Tx,
    generation: i64,
    group: &str,
    timeout: i64,
) -> Result<(), ProjectionError> {
    exec_tx!(tx, c => sqlx::query(
        "INSERT INTO rm_pending_group_timeouts (generation, scaling_group, pending_timeout) \
         VALUES ($1, $2, $3) ON CONFLICT (generation, scaling_group) \
         DO UPDATE SET pending_timeout = excluded.pending_timeout")
        .bind(generation).bind(group).bind(timeout).execute(c).await)?;
    exec_tx!(tx, c => sqlx::query(&format!(
        "UPDATE rm_pending_queue SET deadline_ms = {DEADLINE} \
         WHERE generation = $2 AND scaling_group = $3"))
        .bind(timeout).bind(generation).bind(group).execute(c).await)?;
    Ok(())
}

#[async_trait]
impl Projection for PendingQueue {
    fn name(&self) -> &'static str {
        "pending_queue"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_pending_queue", "rm_pending_group_timeouts"]
    }

    async fn apply(
        &self,
        tx: &mut Tx,
        generation: i64,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        // Enqueues and departures are buffered and written as set statements; a group's
        // timeout change flushes first, as it recomputes the deadlines of waiting rows.
        let mut buffer = Buffer::default();
        for e in events {
            match e.aggregate_type.as_str() {
                "Session" => match e.decode::<SessionEvent>()? {
                    SessionEvent::SessionEnqueued { spec, occurred_at } => {
                        let timeout = buffer.timeout(tx, generation, &spec.scaling_group).await?;
                        let enqueued_ms = occurred_at.timestamp_millis();
                        // Checked: a timeout too large for the clock means no deadline.
                        let deadline = timeout
                            .filter(|t| *t > 0)
                            .and_then(|t| t.checked_mul(1000))
                            .and_then(|ms| enqueued_ms.checked_add(ms));
                        buffer.insert(NewEntry {
                            session_id: e.aggregate_id.clone(),
                            scaling_group: spec.scaling_group.to_string(),
                            owner: spec.owner.to_string(),
                            session_type: spec.session_type.as_str(),
                            priority: i64::from(spec.priority.get()),
                            enqueue_position: e.global_position,
                            enqueued_at: occurred_at.to_rfc3339(),
                            enqueued_ms,
                            deadline_ms: deadline,
                        });
                    }
                    SessionEvent::SessionSchedulingFailed { .. } => {}
                    _ => {
                        // Any other session event leaves PENDING.
                        buffer.depart(&e.aggregate_id);
                    }
                },
                "ScalingGroup" => {
                    let (group, timeout) = match e.decode::<ScalingGroupEvent>()? {
                        ScalingGroupEvent::ScalingGroupCreated {
                            name,
                            scheduler_opts,
                            ..
                        } => (name.to_string(), scheduler_opts.pending_timeout),
                        ScalingGroupEvent::SchedulerOptsChanged { new, .. } => {
                            (e.aggregate_id.clone(), new.pending_timeout)
                        }
                        ScalingGroupEvent::ScalingGroupUpdated { .. } => continue,
                    };
                    // A timeout beyond any clock (stored before the bound existed) never
                    // expires: no deadline, rather than an overflow in the statement.
                    let t = i64::try_from(timeout)
                        .ok()
                        .filter(|t| *t <= MAX_DEADLINE_SECS)
                        .unwrap_or(0);
                    buffer.flush(tx, generation).await?;
                    set_group_timeout(tx, generation, &group, t).await?;
                    buffer.timeouts.insert(group, Some(t));
                }
                _ => {}
            }
        }
        buffer.flush(tx, generation).await
    }
}

/// A queue row to insert.
#[derive(Debug)]
struct NewEntry {
    session_id: String,
    scaling_group: String,
    owner: String,
    session_type: &'static str,
    priority: i64,
    enqueue_position: i64,
    enqueued_at: String,
    enqueued_ms: i64,
    deadline_ms: Option<i64>,
}

/// Writes of one batch, in order-preserving sets.
#[derive(Debug, Default)]
struct Buffer {
    inserts: Vec<NewEntry>,
    /// Session id -> index in `inserts`.
    inserted: std::collections::HashMap<String, usize>,
    /// Indexes of `inserts` that departed in the same batch (never written).
    departed: std::collections::HashSet<usize>,
    deletes: Vec<String>,
    /// Group -> pending_timeout (None: no such group yet), read once per batch.
    timeouts: std::collections::HashMap<String, Option<i64>>,
}

impl Buffer {
    fn insert(&mut self, entry: NewEntry) {
        self.inserted
            .insert(entry.session_id.clone(), self.inserts.len());
        self.inserts.push(entry);
    }

    /// A session left PENDING: drop its buffered insert, or delete its row.
    fn depart(&mut self, session_id: &str) {
        match self.inserted.remove(session_id) {
            Some(i) => {
                self.departed.insert(i);
            }
            None => self.deletes.push(session_id.to_string()),
        }
    }

    async fn timeout(
        &mut self,
        tx: &mut Tx,
        generation: i64,
        group: &str,
    ) -> Result<Option<i64>, ProjectionError> {
        if let Some(t) = self.timeouts.get(group) {
            return Ok(*t);
        }
        let t: Option<i64> = on_tx!(tx, c => sqlx::query_scalar(
            "SELECT pending_timeout FROM rm_pending_group_timeouts \
             WHERE generation = $1 AND scaling_group = $2")
            .bind(generation).bind(group).fetch_optional(c).await)?;
        self.timeouts.insert(group.to_string(), t);
        Ok(t)
    }

    /// Inserts, then deletes (a row inserted and deleted in the same batch never
    /// reaches the table: the departure removed it from `inserts`).
    async fn flush(&mut self, tx: &mut Tx, generation: i64) -> Result<(), ProjectionError> {
        // One multi-row INSERT per chunk; the builder is typed by backend.
        macro_rules! insert_chunk {
            ($db:ty, $conn:expr, $chunk:expr) => {{
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO rm_pending_queue (generation, session_id, scaling_group, owner, \
                     session_type, priority, enqueue_position, enqueued_at, enqueued_ms, deadline_ms) ",
                );
                qb.push_values($chunk, |mut row, n| {
                    row.push_bind(generation)
                        .push_bind(n.session_id.clone())
                        .push_bind(n.scaling_group.clone())
                        .push_bind(n.owner.clone())
                        .push_bind(n.session_type)
                        .push_bind(n.priority)
                        .push_bind(n.enqueue_position)
                        .push_bind(n.enqueued_at.clone())
                        .push_bind(n.enqueued_ms)
                        .push_bind(n.deadline_ms);
                });
                qb.push(" ON CONFLICT (generation, session_id) DO NOTHING");
                qb.build().execute($conn).await?;
            }};
        }
        let departed = std::mem::take(&mut self.departed);
        let live: Vec<&NewEntry> = self
            .inserts
            .iter()
            .enumerate()
            .filter(|(i, _)| !departed.contains(i))
            .map(|(_, n)| n)
            .collect();
        for chunk in live.chunks(super::CHUNK) {
            match &mut *tx {
                Tx::Postgres(t) => insert_chunk!(sqlx::Postgres, &mut **t, chunk),
                Tx::Sqlite(t) => insert_chunk!(sqlx::Sqlite, &mut **t, chunk),
            }
        }
        self.inserts.clear();
        self.inserted.clear();
        if !self.deletes.is_empty() {
            match &mut *tx {
                Tx::Postgres(t) => {
                    sqlx::query(
                        "DELETE FROM rm_pending_queue WHERE generation = $1 AND session_id = ANY($2)",
                    )
                    .bind(generation)
                    .bind(&self.deletes)
                    .execute(&mut **t)
                    .await?;
                }
                Tx::Sqlite(t) => {
                    let list = serde_json::Value::from(self.deletes.clone()).to_string();
                    sqlx::query(
                        "DELETE FROM rm_pending_queue WHERE generation = $1 \
                         AND session_id IN (SELECT value FROM json_each($2))",
                    )
                    .bind(generation)
                    .bind(list)
                    .execute(&mut **t)
                    .await?;
                }
            }
            self.deletes.clear();
        }
        Ok(())
    }
}

impl PendingQueue {
    /// A group's queue in scheduler order (priority desc, then enqueue order).
    pub async fn queue(
        &self,
        db: &Db,
        scaling_group: &str,
    ) -> Result<Vec<PendingEntry>, ProjectionError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM rm_pending_queue \
             WHERE generation = {} AND scaling_group = $2 \
             ORDER BY priority DESC, enqueue_position",
            live_generation(1)
        );
        Ok(
            on_pool!(db, p => sqlx::query_as(&sql).bind("pending_queue").bind(scaling_group).fetch_all(p).await)?,
        )
    }

    /// One queued session.
    pub async fn get(
        &self,
        db: &Db,
        session_id: &str,
    ) -> Result<Option<PendingEntry>, ProjectionError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM rm_pending_queue \
             WHERE generation = {} AND session_id = $2",
            live_generation(1)
        );
        Ok(
            on_pool!(db, p => sqlx::query_as(&sql).bind("pending_queue").bind(session_id).fetch_optional(p).await)?,
        )
    }

    /// Every queued session (ordered by session id, for comparisons).
    pub async fn all(&self, db: &Db) -> Result<Vec<PendingEntry>, ProjectionError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM rm_pending_queue \
             WHERE generation = {} ORDER BY session_id",
            live_generation(1)
        );
        Ok(on_pool!(db, p => sqlx::query_as(&sql).bind("pending_queue").fetch_all(p).await)?)
    }

    /// How many sessions `owner` has waiting, counting at most `cap` of them (through
    /// the owner index: the cost is bounded by `cap`, not by the owner's queue),
    /// together with this projection's checkpoint, read by **one statement** (one
    /// snapshot): the count
    /// reflects exactly the events at or before the returned position. The pending
    /// limit relies on this pairing to tell which of its sessions the count includes.
    pub async fn count_for_owner_with_checkpoint(
        &self,
        db: &Db,
        owner: &str,
        cap: i64,
    ) -> Result<(i64, LogPosition), ProjectionError> {
        let sql = format!(
            "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM rm_pending_queue \
             WHERE generation = {} AND owner = $2 LIMIT $3) AS capped), \
             COALESCE((SELECT transaction_id FROM projection_checkpoints WHERE name = $1), 0), \
             COALESCE((SELECT position FROM projection_checkpoints WHERE name = $1), 0)",
            live_generation(1)
        );
        let (count, transaction_id, global_position): (i64, i64, i64) = on_pool!(db, p => sqlx::query_as(&sql)
            .bind("pending_queue").bind(owner).bind(cap).fetch_one(p).await)?;
        Ok((
            count,
            LogPosition {
                transaction_id,
                global_position,
            },
        ))
    }

    /// Sessions of `scaling_group` whose deadline is at or before `now_ms`, through the
    /// per-group deadline index, earliest first.
    pub async fn expired_in_group(
        &self,
        db: &Db,
        scaling_group: &str,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<PendingEntry>, ProjectionError> {
        self.expired_where(db, Some(scaling_group), now_ms, limit)
            .await
    }

    /// The expired sessions (of one group, or of every group), earliest deadline first.
    async fn expired_where(
        &self,
        db: &Db,
        scaling_group: Option<&str>,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<PendingEntry>, ProjectionError> {
        let group = if scaling_group.is_some() {
            "AND scaling_group = $4"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM rm_pending_queue \
             WHERE generation = {} AND deadline_ms IS NOT NULL AND deadline_ms <= $2 {group} \
             ORDER BY deadline_ms LIMIT $3",
            live_generation(1)
        );
        Ok(on_pool!(db, p => {
            let q = sqlx::query_as(&sql).bind("pending_queue").bind(now_ms).bind(limit);
            match scaling_group {
                Some(g) => q.bind(g).fetch_all(p).await,
                None => q.fetch_all(p).await,
            }
        })?)
    }

    /// Records a failed scheduling attempt of these sessions (`retries + 1`, `last_try`).
    /// Not an event: the scheduler's bookkeeping lives in the read model (SPEC §1.2).
    pub async fn record_attempts(
        &self,
        db: &Db,
        session_ids: &[String],
        at: &str,
    ) -> Result<(), ProjectionError> {
        if session_ids.is_empty() {
            return Ok(());
        }
        match db {
            Db::Postgres(p) => {
                sqlx::query(&format!(
                    "UPDATE rm_pending_queue SET retries = retries + 1, last_try = $2 \
                     WHERE generation = {} AND session_id = ANY($3)",
                    live_generation(1)
                ))
                .bind("pending_queue")
                .bind(at)
                .bind(session_ids)
                .execute(p)
                .await?;
            }
            Db::Sqlite { writer, .. } => {
                let list = serde_json::Value::from(session_ids.to_vec()).to_string();
                sqlx::query(&format!(
                    "UPDATE rm_pending_queue SET retries = retries + 1, last_try = $2 \
                     WHERE generation = {} AND session_id IN (SELECT value FROM json_each($3))",
                    live_generation(1)
                ))
                .bind("pending_queue")
                .bind(at)
                .bind(list)
                .execute(writer)
                .await?;
            }
        }
        Ok(())
    }

    /// Sessions whose deadline is at or before `now_ms`, through the deadline index.
    pub async fn expired(
        &self,
        db: &Db,
        now_ms: i64,
        limit: i64,
    ) -> Result<Vec<PendingEntry>, ProjectionError> {
        self.expired_where(db, None, now_ms, limit).await
    }
}
