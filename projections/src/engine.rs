//! The projection engine.
//!
//! One runner per projection: read a batch of the global log after the checkpoint,
//! then in ONE transaction: lock and re-check the checkpoint row, apply the batch to the
//! read model's live generation, advance the checkpoint. A crash anywhere loses nothing
//! and applies nothing twice. When caught up, the runner sleeps until woken (an
//! in-process signal after appends; LISTEN/NOTIFY on PostgreSQL) or the poll interval
//! passes; woken, it lingers [`EngineConfig::linger`] so a burst of appends is one
//! batch. A failing batch stops only its projection: the error is recorded in the
//! checkpoint row (`projections status`) and retried with exponential backoff.

use async_trait::async_trait;
use chrono::Utc;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

use store::db::{Db, Tx};
use store::lease::Lease;
use store::{args, sql, LogPosition, RecordedEvent};

use crate::ProjectionError;

/// A read model fed from the global log.
#[async_trait]
pub trait Projection: Send + Sync {
    /// Stable name (checkpoint key, CLI argument).
    fn name(&self) -> &'static str;
    /// Tables holding this projection's rows; each has a `generation` column.
    fn tables(&self) -> &'static [&'static str];
    /// Applies a batch of events (in log order) to `generation`, inside `tx`.
    async fn apply(
        &self,
        tx: &mut Tx,
        generation: i64,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError>;
}

/// Engine tuning.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Events per transaction.
    pub batch_size: i64,
    /// Poll when nothing wakes the runner.
    pub poll_interval: Duration,
    /// First retry delay after a failure.
    pub base_backoff: Duration,
    /// How long a caught-up runner woken by an append waits before its step, so the
    /// appends of those milliseconds share one log read and one transaction per read
    /// model (measured in docs/PERFORMANCE.md; zero steps at once).
    pub linger: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            poll_interval: Duration::from_millis(500),
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            linger: Duration::from_millis(5),
        }
    }
}

/// A projection's checkpoint row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Last applied event.
    pub position: LogPosition,
    /// Live generation of the read model.
    pub generation: i64,
}

/// What `projections status` shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProjectionStatus {
    /// Name.
    pub name: String,
    /// Last applied global position.
    pub position: i64,
    /// Live generation.
    pub generation: i64,
    /// Events not yet applied.
    pub lag_events: i64,
    /// Age of the oldest unapplied event, seconds.
    pub lag_seconds: f64,
    /// When the checkpoint last moved.
    pub updated_at: String,
    /// The last failure, until the projection succeeds again.
    pub last_error: Option<String>,
    /// Consecutive failures.
    pub failures: i64,
}

/// A hook a runner calls once per loop iteration with its worker name
/// (`projection:<name>`): the application's supervisor uses it as a fault point, and
/// as a test hook that holds a runner back — while it answers `true` the runner does
/// no step (it checks again after its poll interval or a wake-up).
pub type FaultPoint = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Runs projections.
pub struct Engine {
    db: Db,
    projections: Vec<Arc<dyn Projection>>,
    config: EngineConfig,
    wake: Arc<Notify>,
    applied: watch::Sender<u64>,
    applied_by: HashMap<&'static str, watch::Sender<u64>>,
    idle: watch::Sender<usize>,
    lease_refusals: watch::Sender<u64>,
    failures: Mutex<HashMap<&'static str, u64>>,
    fault_point: Option<FaultPoint>,
    /// The checkpoint each projection's last step of this engine committed: the next
    /// step reads the log from there without reading the row first (the row is locked
    /// and compared before anything is applied, so a stale entry only costs a retry).
    committed: Mutex<HashMap<&'static str, Checkpoint>>,
    /// The last non-empty batches read (oldest first): runners a step apart still share.
    recent_reads: tokio::sync::Mutex<VecDeque<SharedBatch>>,
}

/// How many recent batches the runners of an engine share.
const SHARED_BATCHES: usize = 16;

/// A batch read from the log: the position it was read after, its events, and when the
/// read started.
type SharedBatch = (LogPosition, Arc<Vec<RecordedEvent>>, Instant);

/// What one step did.
enum Stepped {
    /// Applied a batch of this many events.
    Applied { events: usize },
    /// Nothing to apply.
    Idle,
    /// The checkpoint had moved (another runner, a swap, a reset): look again at once.
    Moved,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("projections", &self.names())
            .field("config", &self.config)
            .finish()
    }
}

/// Creates the checkpoint row if missing (data, not schema).
async fn ensure_checkpoint(tx: &mut Tx, name: &str) -> Result<(), ProjectionError> {
    let now = Utc::now().to_rfc3339();
    tx.execute(&sql!(common "engine/ensure_checkpoint"), args![name, now])
        .await?;
    Ok(())
}

/// Reads a checkpoint; inside `tx` it also locks the row (PostgreSQL `FOR UPDATE`;
/// SQLite's single writer already serialises).
async fn lock_checkpoint(tx: &mut Tx, name: &str) -> Result<Checkpoint, ProjectionError> {
    let row: Option<(i64, i64, i64)> = tx
        .fetch_optional(&sql!("engine/lock_checkpoint"), args![name])
        .await?;
    let (transaction_id, global_position, generation) = match row {
        Some(r) => r,
        None => {
            ensure_checkpoint(tx, name).await?;
            (0, 0, 1)
        }
    };
    Ok(Checkpoint {
        position: LogPosition {
            transaction_id,
            global_position,
        },
        generation,
    })
}

/// Read-model writes are key lookups and upserts. Right after a table was created,
/// reset or bulk-filled, PostgreSQL's statistics still call it tiny and the planner picks
/// sequential scans with an `id = ANY(..)` filter, which made catch-up quadratic
/// (measured: 70 ms per 300-key lookup at 40k rows). Projection transactions therefore
/// forbid sequential scans; every read-model query they run has an index.
async fn begin_preferring_index_lookups(db: &Db) -> Result<Tx, ProjectionError> {
    Ok(db
        .begin_as(&sql!(postgres "engine/begin_preferring_index_lookups"))
        .await?)
}

/// Reads a checkpoint without locking (missing = start).
pub async fn read_checkpoint(db: &Db, name: &str) -> Result<Checkpoint, ProjectionError> {
    let row: Option<(i64, i64, i64)> = db
        .fetch_optional(&sql!(common "engine/read_checkpoint"), args![name])
        .await?;
    let (transaction_id, global_position, generation) = row.unwrap_or((0, 0, 1));
    Ok(Checkpoint {
        position: LogPosition {
            transaction_id,
            global_position,
        },
        generation,
    })
}

async fn write_checkpoint(
    tx: &mut Tx,
    name: &str,
    position: LogPosition,
    generation: i64,
) -> Result<(), ProjectionError> {
    let now = Utc::now().to_rfc3339();
    tx.execute(
        &sql!(common "engine/write_checkpoint"),
        args![
            position.transaction_id,
            position.global_position,
            generation,
            now,
            name
        ],
    )
    .await?;
    Ok(())
}

async fn record_failure(db: &Db, name: &str, error: &str) -> Result<(), ProjectionError> {
    let mut tx = db.begin().await?;
    ensure_checkpoint(&mut tx, name).await?;
    tx.execute(&sql!(common "engine/record_failure"), args![error, name])
        .await?;
    tx.commit().await?;
    Ok(())
}

impl Engine {
    /// An engine over `db` running `projections`.
    pub fn new(db: Db, projections: Vec<Arc<dyn Projection>>, config: EngineConfig) -> Self {
        let applied_by = projections
            .iter()
            .map(|p| (p.name(), watch::channel(0).0))
            .collect();
        Self {
            db,
            projections,
            config,
            wake: Arc::new(Notify::new()),
            applied: watch::channel(0).0,
            applied_by,
            idle: watch::channel(0).0,
            lease_refusals: watch::channel(0).0,
            failures: Mutex::new(HashMap::new()),
            fault_point: None,
            committed: Mutex::new(HashMap::new()),
            recent_reads: tokio::sync::Mutex::new(VecDeque::new()),
        }
    }

    /// Calls `hook` once per runner loop iteration (see [`FaultPoint`]).
    pub fn with_fault_point(mut self, hook: FaultPoint) -> Self {
        self.fault_point = Some(hook);
        self
    }

    /// The projections, in order.
    pub fn projections(&self) -> Vec<Arc<dyn Projection>> {
        self.projections.clone()
    }

    /// Names of the projections, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.projections.iter().map(|p| p.name()).collect()
    }

    /// The projection called `name`.
    pub fn projection(&self, name: &str) -> Result<Arc<dyn Projection>, ProjectionError> {
        self.projections
            .iter()
            .find(|p| p.name() == name)
            .cloned()
            .ok_or_else(|| ProjectionError::Unknown(name.to_string()))
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Uses `wake` (e.g. the event store's "appended" signal) to wake the runners.
    pub fn with_waker(mut self, wake: Arc<Notify>) -> Self {
        self.wake = wake;
        self
    }

    /// Starts one runner per projection and the LISTEN relay as plain tasks (tests and
    /// tools; `sessiond serve` runs the same futures under its supervisor). They stop
    /// when `shutdown` turns true.
    pub fn spawn_all(
        self: &Arc<Self>,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut handles = Vec::new();
        let engine = self.clone();
        let stop = shutdown.clone();
        handles.push(tokio::spawn(async move { engine.listen(stop).await }));
        for p in &self.projections {
            let engine = self.clone();
            let p = p.clone();
            let shutdown = shutdown.clone();
            handles.push(tokio::spawn(async move { engine.run(p, shutdown).await }));
        }
        handles
    }

    /// Relays `sessiond_events` notifications (from every replica) to the runners until
    /// `shutdown` turns true; on SQLite there is nothing to relay and it just waits.
    pub async fn listen(&self, shutdown: watch::Receiver<bool>) {
        match &self.db {
            Db::Postgres(pool) => {
                store::notify::relay(pool.clone(), self.wake.clone(), shutdown).await
            }
            Db::Sqlite { .. } => {
                let mut shutdown = shutdown;
                let _ = shutdown.wait_for(|stop| *stop).await;
            }
        }
    }

    /// Changes whenever a runner of this engine applied a batch (e.g. the scheduler
    /// wakes on it: new pending sessions or released capacity are visible now).
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// Changes whenever this engine's runner of projection `name` applied a batch
    /// (e.g. the webhook dispatcher wakes on its outbox only); `None` for a name the
    /// engine does not run.
    pub fn applied_by(&self, name: &str) -> Option<watch::Receiver<u64>> {
        self.applied_by.get(name).map(watch::Sender::subscribe)
    }

    /// The in-process wake-up signal the runners wait on (appends notify it).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Applies at most one batch of `projection`; returns how many events it applied
    /// (0 = caught up with what is readable now).
    #[tracing::instrument(skip_all, fields(projection = projection.name()), err)]
    pub async fn step(&self, projection: &dyn Projection) -> Result<usize, ProjectionError> {
        Ok(match self.step_once(projection, true, None).await? {
            Stepped::Applied { events, .. } => events,
            Stepped::Idle | Stepped::Moved => 0,
        })
    }

    /// One step. `verify`: when nothing is left after the checkpoint this engine
    /// remembers, read the row to make sure it did not move back (a reset or rebuild
    /// elsewhere). `armed_at`: when the caller started listening for appends (a batch
    /// another runner read after that may be shared).
    async fn step_once(
        &self,
        projection: &dyn Projection,
        verify: bool,
        armed_at: Option<Instant>,
    ) -> Result<Stepped, ProjectionError> {
        let name = projection.name();
        let remembered = self.remembered(name);
        let seen = match remembered {
            Some(cp) => cp,
            None => read_checkpoint(&self.db, name).await?,
        };
        let events = self.read_batch(seen.position, armed_at).await?;
        let Some(last) = events.last().map(RecordedEvent::log_position) else {
            if remembered.is_some() && verify && read_checkpoint(&self.db, name).await? != seen {
                self.remember(name, None);
                return Ok(Stepped::Moved);
            }
            return Ok(Stepped::Idle);
        };
        let mut tx = begin_preferring_index_lookups(&self.db).await?;
        let current = lock_checkpoint(&mut tx, name).await?;
        if current != seen {
            // Another runner (or a rebuild swap) moved it: drop this batch, start over.
            drop(tx);
            self.remember(name, None);
            return Ok(Stepped::Moved);
        }
        projection
            .apply(&mut tx, current.generation, &events)
            .await?;
        write_checkpoint(&mut tx, name, last, current.generation).await?;
        // Forgotten until the commit is known to have happened.
        self.remember(name, None);
        tx.commit().await?;
        self.remember(
            name,
            Some(Checkpoint {
                position: last,
                generation: current.generation,
            }),
        );
        self.applied
            .send_modify(|n| *n = n.wrapping_add(events.len() as u64));
        if let Some(by) = self.applied_by.get(name) {
            by.send_modify(|n| *n = n.wrapping_add(events.len() as u64));
        }
        Ok(Stepped::Applied {
            events: events.len(),
        })
    }

    /// The batch after `after`: one another runner of this engine read from the same
    /// position after `armed_at` (when the caller started listening for appends) if
    /// there is one — runners woken together share one read — else read now. A shared
    /// batch is a prefix of what is there now (the log is read in commit order), so it
    /// is never wrong, at worst shorter.
    async fn read_batch(
        &self,
        after: LogPosition,
        armed_at: Option<Instant>,
    ) -> Result<Arc<Vec<RecordedEvent>>, ProjectionError> {
        let mut recent = self.recent_reads.lock().await;
        // Only a batch read after the caller started listening: an older one may be
        // shorter than what is there now, and smaller batches mean more transactions.
        if let Some((_, events, _)) = recent.iter().find(|(from, _, read_at)| {
            *from == after && armed_at.is_some_and(|armed| *read_at >= armed)
        }) {
            return Ok(events.clone());
        }
        let read_at = Instant::now();
        let events = Arc::new(self.db.read_log(after, self.config.batch_size).await?);
        if !events.is_empty() {
            if recent.len() >= SHARED_BATCHES {
                recent.pop_front();
            }
            recent.push_back((after, events.clone(), read_at));
        }
        Ok(events)
    }

    fn remembered(&self, name: &str) -> Option<Checkpoint> {
        self.committed.lock().ok()?.get(name).copied()
    }

    fn remember(&self, name: &'static str, checkpoint: Option<Checkpoint>) {
        if let Ok(mut m) = self.committed.lock() {
            match checkpoint {
                Some(cp) => m.insert(name, cp),
                None => m.remove(name),
            };
        }
    }

    /// Steps until nothing is left to read; returns the events applied.
    pub async fn catch_up(&self, projection: &dyn Projection) -> Result<u64, ProjectionError> {
        let mut total: u64 = 0;
        loop {
            let n = self.step(projection).await?;
            if n == 0 {
                // A lost race with a concurrent runner also returns 0: check once more.
                let cp = read_checkpoint(&self.db, projection.name()).await?;
                if self.db.read_log(cp.position, 1).await?.is_empty() {
                    return Ok(total);
                }
                continue;
            }
            total = total.saturating_add(n as u64);
        }
    }

    /// Catches every projection up once (tests, CLI).
    pub async fn catch_up_all(&self) -> Result<u64, ProjectionError> {
        let mut total: u64 = 0;
        for p in &self.projections {
            total = total.saturating_add(self.catch_up(p.as_ref()).await?);
        }
        Ok(total)
    }

    /// Runs one projection until `shutdown` turns true: catch up, follow, and on
    /// failure record the error and retry with exponential backoff. Never returns an
    /// error: a failing projection keeps retrying and the others are unaffected.
    pub async fn run(&self, projection: Arc<dyn Projection>, mut shutdown: watch::Receiver<bool>) {
        let name = projection.name();
        let mut spare = None;
        while !*shutdown.borrow() {
            // One replica runs each projection: hold its lease while running.
            let mut lease = match Lease::acquire(
                &self.db,
                &format!("sessiond.projection.{name}"),
                &mut spare,
            )
            .await
            {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    self.lease_refusals
                        .send_modify(|n| *n = n.saturating_add(1));
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(projection = name, error = %e, "cannot take the projection lease");
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            tracing::info!(projection = name, "projection lease taken; running");
            self.run_holding(projection.as_ref(), &mut lease, &mut shutdown)
                .await;
            lease.release().await;
        }
        tracing::info!(projection = name, "projection runner stopped");
    }

    async fn run_holding(
        &self,
        projection: &dyn Projection,
        lease: &mut Lease,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let name = projection.name();
        let worker = format!("projection:{name}");
        let mut backoff = self.config.base_backoff;
        let mut lease_checked = Instant::now();
        // Whether the last wait ended by an append (not the poll interval): then the
        // step lingers first, and one that finds nothing needs no look at the
        // checkpoint row.
        let mut woken_by_append = false;
        while !*shutdown.borrow() {
            if self.fault_point.as_ref().is_some_and(|hook| hook(&worker)) {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            // Register for the wake-up before stepping: an append that commits while the
            // step or the lease check runs must not be missed until the next poll.
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let armed_at = Instant::now();
            // Armed before lingering: the appends of the linger wake the next round,
            // and the batch read after it counts as read after listening started.
            if woken_by_append && !self.config.linger.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.linger) => {}
                    _ = shutdown.changed() => continue,
                }
            }
            let stepped = self
                .step_once(projection, !woken_by_append, Some(armed_at))
                .await;
            woken_by_append = false;
            let wait = match stepped {
                // After a batch, look again at once: a short batch is not proof of being
                // caught up (the commit-order reader holds back events behind any open
                // transaction, whose commit need not wake anyone).
                Ok(Stepped::Applied { .. }) | Ok(Stepped::Moved) => {
                    backoff = self.config.base_backoff;
                    continue;
                }
                Ok(Stepped::Idle) => {
                    backoff = self.config.base_backoff;
                    // The lease is looked at once per poll interval, not per batch.
                    if lease_checked.elapsed() >= self.config.poll_interval {
                        lease_checked = Instant::now();
                        if !lease.alive().await {
                            tracing::warn!(projection = name, "projection lease lost");
                            return;
                        }
                    }
                    self.config.poll_interval
                }
                Err(e) => {
                    let message = e.to_string();
                    tracing::error!(projection = name, error = %message, retry_in = ?backoff, "projection failed; it is stopped until the retry");
                    if let Ok(mut f) = self.failures.lock() {
                        let n = f.entry(name).or_default();
                        *n = n.saturating_add(1);
                    }
                    metrics::counter!("sessiond_projection_failures_total", "projection" => name)
                        .increment(1);
                    if let Err(e) = record_failure(&self.db, name, &message).await {
                        tracing::warn!(projection = name, error = %e, "cannot record the failure");
                    }
                    let wait = jitter(backoff);
                    backoff = backoff.saturating_mul(2).min(self.config.max_backoff);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            // Caught up: asleep until an append wakes it or the poll interval passes.
            self.idle.send_modify(|n| *n = n.saturating_add(1));
            let appended = tokio::select! {
                _ = woken => true,
                _ = tokio::time::sleep(wait) => false,
                _ = shutdown.changed() => false,
            };
            self.idle.send_modify(|n| *n = n.saturating_sub(1));
            woken_by_append = appended;
        }
    }

    /// How often this engine's runners asked for a projection's lease and another
    /// replica held it (a standby's polls). Tests wait on it instead of sleeping.
    pub fn lease_refusals(&self) -> watch::Receiver<u64> {
        self.lease_refusals.subscribe()
    }

    /// How many of this engine's runners are caught up and asleep right now (waiting for
    /// a wake-up or the poll interval). Tests wait on it instead of sleeping.
    pub fn idle_runners(&self) -> watch::Receiver<usize> {
        self.idle.subscribe()
    }

    /// Failures seen by this process's runners, per projection (for metrics).
    pub fn failure_counts(&self) -> HashMap<&'static str, u64> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Waits (bounded by `timeout`) until `name` has applied the event at
    /// `global_position`. Returns whether it did.
    pub async fn wait_for(
        &self,
        name: &str,
        global_position: i64,
        timeout: Duration,
    ) -> Result<bool, ProjectionError> {
        let deadline = tokio::time::Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(tokio::time::Instant::now);
        let Some(target) = self.db.position_of(global_position).await? else {
            return Ok(false);
        };
        let mut applied = self.applied.subscribe();
        loop {
            if read_checkpoint(&self.db, name).await?.position >= target {
                return Ok(true);
            }
            let step = Duration::from_millis(50);
            tokio::select! {
                _ = applied.changed() => {}
                _ = tokio::time::sleep(step) => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(false),
            }
        }
    }

    /// Status of every projection: position, lag and last error.
    pub async fn status(&self) -> Result<Vec<ProjectionStatus>, ProjectionError> {
        let mut out = Vec::new();
        for p in &self.projections {
            out.push(status_of(&self.db, p.name()).await?);
        }
        Ok(out)
    }
}

/// Status of one projection.
pub async fn status_of(db: &Db, name: &str) -> Result<ProjectionStatus, ProjectionError> {
    let row: Option<(i64, i64, i64, String, Option<String>, i64)> = db
        .fetch_optional(&sql!(common "engine/status"), args![name])
        .await?;
    let (tx, pos, generation, updated_at, last_error, failures) =
        row.unwrap_or((0, 0, 1, String::new(), None, 0));
    let (lag_events, oldest) = db
        .lag_after(LogPosition {
            transaction_id: tx,
            global_position: pos,
        })
        .await?;
    let lag_seconds = oldest
        .map(|t| (Utc::now().signed_duration_since(t).num_milliseconds() as f64 / 1000.0).max(0.0))
        .unwrap_or(0.0);
    Ok(ProjectionStatus {
        name: name.to_string(),
        position: pos,
        generation,
        lag_events,
        lag_seconds,
        updated_at,
        last_error,
        failures,
    })
}

/// Forgets everything `projection` built: deletes its rows and sets its checkpoint back
/// to the start (the running engine rebuilds it in place; reads see it fill up).
pub async fn reset(db: &Db, projection: &dyn Projection) -> Result<(), ProjectionError> {
    let mut tx = db.begin().await?;
    let cp = lock_checkpoint(&mut tx, projection.name()).await?;
    for table in projection.tables() {
        let delete = sql!(common "engine/delete_all").for_table(table, projection.tables())?;
        tx.execute(&delete, args![]).await?;
    }
    write_checkpoint(
        &mut tx,
        projection.name(),
        LogPosition::START,
        cp.generation,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// How long a rebuild waits for the log reader to reach the head before it gives up
/// (without swapping anything in).
pub const REBUILD_HEAD_WAIT: Duration = Duration::from_secs(60);

/// Progress of a rebuild, reported after every batch.
#[derive(Debug, Clone, Copy)]
pub struct RebuildProgress {
    /// Events replayed so far.
    pub replayed: u64,
    /// Position reached.
    pub position: i64,
}

/// Rebuilds `projection` with zero downtime: replays the whole log into a new
/// generation while the live one keeps serving, catches up to the head, then swaps in
/// one short transaction and drops the old generation. Returns events replayed.
pub async fn rebuild(
    db: &Db,
    projection: &dyn Projection,
    batch_size: i64,
    mut progress: impl FnMut(RebuildProgress),
) -> Result<u64, ProjectionError> {
    let name = projection.name();
    let live = read_checkpoint(db, name).await?.generation;
    let shadow = live.saturating_add(1);
    // Leftovers of an interrupted rebuild.
    delete_generations_except(db, projection, live).await?;
    // What the new generation must reach before it may replace the live one: the head
    // of the log as of now, and at least the live generation's own position — a rebuild
    // never swaps in a read model that is behind the one it replaces. On PostgreSQL the
    // commit-order reader stops below any transaction still open in the cluster (which
    // may commit an earlier position later), so reaching it may mean waiting for one.
    let live_position = read_checkpoint(db, name).await?.position;
    let head = match db.head().await? {
        Some(h) => db.position_of(h).await?.unwrap_or(LogPosition::START),
        None => LogPosition::START,
    };
    let target = head.max(live_position);
    let now = tokio::time::Instant::now();
    let deadline = now.checked_add(REBUILD_HEAD_WAIT).unwrap_or(now);
    let mut cursor = LogPosition::START;
    let mut replayed = 0u64;
    loop {
        let events = db.read_log(cursor, batch_size).await?;
        let Some(last) = events.last().map(RecordedEvent::log_position) else {
            if cursor >= target {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ProjectionError::Handler(format!(
                    "projection '{name}': the log reader could not reach position {} within {} s (a transaction left open elsewhere holds it back); nothing was swapped in",
                    target.global_position,
                    REBUILD_HEAD_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let mut tx = begin_preferring_index_lookups(db).await?;
        projection.apply(&mut tx, shadow, &events).await?;
        tx.commit().await?;
        cursor = last;
        replayed = replayed.saturating_add(events.len() as u64);
        progress(RebuildProgress {
            replayed,
            position: cursor.global_position,
        });
    }
    // Swap: lock the checkpoint (the live runner waits or retries), apply the tail that
    // arrived meanwhile, point readers at the new generation.
    let mut tx = begin_preferring_index_lookups(db).await?;
    let current = lock_checkpoint(&mut tx, name).await?;
    if current.generation != live {
        return Err(ProjectionError::Handler(format!(
            "projection '{name}' was rebuilt concurrently"
        )));
    }
    loop {
        let events = db.read_log(cursor, batch_size).await?;
        let Some(last) = events.last().map(RecordedEvent::log_position) else {
            break;
        };
        projection.apply(&mut tx, shadow, &events).await?;
        cursor = last;
        replayed = replayed.saturating_add(events.len() as u64);
    }
    if cursor < current.position {
        // The live generation moved past what the reader can see now: swapping would
        // step readers back. Nothing is changed; the caller may retry.
        return Err(ProjectionError::Handler(format!(
            "projection '{name}': the live read model moved past the rebuilt one during the swap; nothing was swapped in, retry"
        )));
    }
    // The new generation has everything up to `cursor`, at least what the live one
    // had: the runner continues from `cursor` on the new generation.
    write_checkpoint(&mut tx, name, cursor, shadow).await?;
    tx.commit().await?;
    progress(RebuildProgress {
        replayed,
        position: cursor.global_position,
    });
    delete_generations_except(db, projection, shadow).await?;
    Ok(replayed)
}

async fn delete_generations_except(
    db: &Db,
    projection: &dyn Projection,
    keep: i64,
) -> Result<(), ProjectionError> {
    let mut tx = db.begin().await?;
    for table in projection.tables() {
        let delete =
            sql!(common "engine/delete_other_generations").for_table(table, projection.tables())?;
        tx.execute(&delete, args![keep]).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn jitter(d: Duration) -> Duration {
    use rand::Rng;
    let ms = d.as_millis() as u64;
    if ms == 0 {
        return d;
    }
    Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms))
}
