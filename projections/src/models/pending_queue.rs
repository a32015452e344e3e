//! `pending_queue`: PENDING sessions per scaling group, in scheduler order (priority
//! desc, then enqueue position), with the pending-timeout deadline indexed so the
//! sweeper's cost grows with the expired sessions only. A group's `pending_timeout` is
//! tracked here too, and changing it recomputes the deadlines of sessions already
//! waiting (lowering the timeout applies to them).

use async_trait::async_trait;
use domain::scaling_group::ScalingGroupEvent;
use domain::session::SessionEvent;

use domain::scaling_group::ScalingGroup;
use domain::session::Session;
use domain::Decider;
use serde_json::{json, Value};
use store::db::{Db, Tx};
use store::{args, sql, LogPosition, RecordedEvent};

use super::PENDING_QUEUE;
use crate::{Projection, ProjectionError};

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
    /// Its 1-based position when the last pass did not evaluate it because a strict
    /// queue is blocked ahead of it (written by the scheduler; `None`: evaluated).
    pub queue_position: Option<i64>,
    /// The `queue_order` message of that pass, naming the blocking session.
    pub queue_reason: Option<String>,
}

/// The longest timeout that gets a deadline (a thousand years; validated timeouts are at
/// most ten): `enqueued_ms + timeout * 1000` stays far inside a 64-bit integer.
const MAX_DEADLINE_SECS: i64 = 31_536_000_000;

async fn set_group_timeout(
    tx: &mut Tx,
    generation: i64,
    group: &str,
    timeout: i64,
) -> Result<(), ProjectionError> {
    tx.execute(
        &sql!(common "pending_queue/set_group_timeout"),
        args![generation, group, timeout],
    )
    .await?;
    tx.execute(
        &sql!(common "pending_queue/recompute_deadlines"),
        args![timeout, generation, group],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl Projection for PendingQueue {
    fn name(&self) -> &'static str {
        PENDING_QUEUE
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
                Session::TYPE => match e.decode::<SessionEvent>()? {
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
                ScalingGroup::TYPE => {
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
        let t: Option<(i64,)> = tx
            .fetch_optional(
                &sql!(common "pending_queue/group_timeout"),
                args![generation, group],
            )
            .await?;
        let t = t.map(|(t,)| t);
        self.timeouts.insert(group.to_string(), t);
        Ok(t)
    }

    /// Inserts, then deletes (a row inserted and deleted in the same batch never
    /// reaches the table: the departure removed it from `inserts`).
    async fn flush(&mut self, tx: &mut Tx, generation: i64) -> Result<(), ProjectionError> {
        let departed = std::mem::take(&mut self.departed);
        let live: Vec<Value> = self
            .inserts
            .iter()
            .enumerate()
            .filter(|(i, _)| !departed.contains(i))
            .map(|(_, n)| {
                json!({
                    "session_id": n.session_id,
                    "scaling_group": n.scaling_group,
                    "owner": n.owner,
                    "session_type": n.session_type,
                    "priority": n.priority,
                    "enqueue_position": n.enqueue_position,
                    "enqueued_at": n.enqueued_at,
                    "enqueued_ms": n.enqueued_ms,
                    "deadline_ms": n.deadline_ms,
                })
            })
            .collect();
        if !live.is_empty() {
            tx.execute(
                &sql!("pending_queue/insert"),
                args![generation, Value::Array(live)],
            )
            .await?;
        }
        self.inserts.clear();
        self.inserted.clear();
        if !self.deletes.is_empty() {
            let deletes = std::mem::take(&mut self.deletes);
            tx.execute(&sql!("pending_queue/delete"), args![generation, deletes])
                .await?;
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
        Ok(db
            .fetch_all(
                &sql!(common "pending_queue/queue"),
                args![PENDING_QUEUE, scaling_group],
            )
            .await?)
    }

    /// One queued session.
    pub async fn get(
        &self,
        db: &Db,
        session_id: &str,
    ) -> Result<Option<PendingEntry>, ProjectionError> {
        Ok(db
            .fetch_optional(
                &sql!(common "pending_queue/get"),
                args![PENDING_QUEUE, session_id],
            )
            .await?)
    }

    /// Every queued session (ordered by session id, for comparisons).
    pub async fn all(&self, db: &Db) -> Result<Vec<PendingEntry>, ProjectionError> {
        Ok(db
            .fetch_all(&sql!(common "pending_queue/all"), args![PENDING_QUEUE])
            .await?)
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
        let (count, transaction_id, global_position): (i64, i64, i64) = db
            .fetch_one(
                &sql!(common "pending_queue/count_for_owner_with_checkpoint"),
                args![PENDING_QUEUE, owner, cap],
            )
            .await?;
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
        Ok(match scaling_group {
            Some(group) => {
                db.fetch_all(
                    &sql!(common "pending_queue/expired_in_group"),
                    args![PENDING_QUEUE, now_ms, limit, group],
                )
                .await?
            }
            None => {
                db.fetch_all(
                    &sql!(common "pending_queue/expired"),
                    args![PENDING_QUEUE, now_ms, limit],
                )
                .await?
            }
        })
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
        db.execute(
            &sql!("pending_queue/record_attempts"),
            args![PENDING_QUEUE, at, session_ids.to_vec()],
        )
        .await?;
        Ok(())
    }

    /// Records the queue order of sessions the last pass did not evaluate (`position`,
    /// `reason`) and clears it (`None`) for those it did: `(session id, position,
    /// reason)` for each row whose value changes. Not an event, like `retries`.
    pub async fn record_queue_order(
        &self,
        db: &Db,
        rows: &[(String, Option<i64>, Option<String>)],
    ) -> Result<(), ProjectionError> {
        if rows.is_empty() {
            return Ok(());
        }
        let rows: Vec<Value> = rows
            .iter()
            .map(|(id, position, reason)| {
                json!({"session_id": id, "queue_position": position, "queue_reason": reason})
            })
            .collect();
        db.execute(
            &sql!("pending_queue/record_queue_order"),
            args![PENDING_QUEUE, Value::Array(rows)],
        )
        .await?;
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
