//! The shared log follower: one reader of the global log per process that fans the
//! events out to every open stream (SSE) and long-poll, so those never hold — or even
//! ask for — a database connection while they wait. A thousand open streams cost one
//! query per batch of the log, not a thousand.
//!
//! The follower reads in commit order (the store's reader, which never skips a late
//! commit), publishes each batch on a broadcast channel and its position on a watch.
//! A subscriber that starts behind (`Last-Event-ID`, a session's whole lifecycle)
//! subscribes first, then catches up by reading the log itself (bounded by a semaphore,
//! so catch-ups cannot take the pool either) until it has reached the follower's
//! position, then takes the live batches, skipping what it already has — no gap, no
//! duplicate (see [`Subscription`]).
//!
//! Session events carry their session's owner and scaling group ([`SessionFacts`]),
//! learnt from `SessionEnqueued` or read once per process for older sessions, so a
//! stream filtered by owner or group never queries per event.

use domain::session::{Session, SessionEvent};
use projections::{LogPosition, RecordedEvent};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch, Notify, Semaphore};

use crate::store::{EventStore, StoreError};

/// Events per read of the log.
const BATCH: i64 = 500;
/// Batches kept for slow subscribers before they must catch up from the log again.
const CHANNEL: usize = 256;
/// Most sessions whose facts are remembered (cleared when full).
const FACTS_LIMIT: usize = 100_000;

/// Owner and scaling group of a session: what streams filter on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFacts {
    /// The owner.
    pub owner: String,
    /// The scaling group.
    pub scaling_group: String,
}

/// One event as subscribers get it.
#[derive(Debug, Clone)]
pub struct Followed {
    /// The event.
    pub event: RecordedEvent,
    /// For session events: the session's owner and group (`None`: unknown session).
    pub session: Option<SessionFacts>,
}

/// One process's log follower.
#[derive(Debug)]
pub struct LogFollower {
    store: EventStore,
    batches: broadcast::Sender<Arc<Vec<Arc<Followed>>>>,
    position: watch::Sender<LogPosition>,
    facts: Mutex<HashMap<String, Option<SessionFacts>>>,
    catch_up: Semaphore,
    poll: Duration,
}

impl LogFollower {
    /// A follower of `store`'s log; `catch_up_reads` bounds the concurrent catch-up
    /// reads of subscribers.
    pub fn new(store: EventStore, catch_up_reads: usize, poll: Duration) -> Self {
        Self {
            store,
            batches: broadcast::channel(CHANNEL).0,
            position: watch::channel(LogPosition::START).0,
            facts: Mutex::new(HashMap::new()),
            catch_up: Semaphore::new(catch_up_reads.max(1)),
            poll,
        }
    }

    /// The position of the last event published.
    pub fn position(&self) -> LogPosition {
        *self.position.borrow()
    }

    /// Changes whenever a batch was published.
    pub fn positions(&self) -> watch::Receiver<LogPosition> {
        self.position.subscribe()
    }

    /// The worker: starts at the readable head and follows the log until `shutdown`,
    /// woken by appends (`wake`: this process's appends and, on PostgreSQL, NOTIFY from
    /// every replica) or the poll interval. A read error is logged and retried.
    pub async fn run(&self, wake: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        let mut cursor = match self.store.readable_head().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %crate::telemetry::error_chain(&e), "log follower: cannot read the head; starting from the beginning");
                LogPosition::START
            }
        };
        self.position.send_replace(cursor);
        while !*shutdown.borrow() {
            let woken = wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.store.read_log(cursor, BATCH).await {
                Ok(events) if !events.is_empty() => {
                    let full = i64::try_from(events.len()).unwrap_or(i64::MAX) >= BATCH;
                    let mut batch = Vec::with_capacity(events.len());
                    for e in events {
                        cursor = e.log_position();
                        let session = self.facts_of(&e).await;
                        batch.push(Arc::new(Followed { event: e, session }));
                    }
                    // Nobody listening is fine.
                    let _ = self.batches.send(Arc::new(batch));
                    self.position.send_replace(cursor);
                    if full {
                        continue;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), "log follower: cannot read the log; retrying");
                }
            }
            tokio::select! {
                _ = &mut woken => {}
                _ = tokio::time::sleep(self.poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Subscribes a stream that has everything up to `cursor`.
    pub fn subscribe(self: &Arc<Self>, cursor: LogPosition) -> Subscription {
        Subscription {
            follower: self.clone(),
            live: self.batches.subscribe(),
            caught_up: false,
            cursor,
            pending: std::collections::VecDeque::new(),
        }
    }

    /// The facts of an event's session (`None` for other aggregates).
    async fn facts_of(&self, e: &RecordedEvent) -> Option<SessionFacts> {
        if e.aggregate_type != <Session as domain::Decider>::TYPE {
            return None;
        }
        if e.sequence == 1 {
            if let Ok(SessionEvent::SessionEnqueued { spec, .. }) = e.decode::<SessionEvent>() {
                let facts = SessionFacts {
                    owner: spec.owner.to_string(),
                    scaling_group: spec.scaling_group.to_string(),
                };
                self.remember(&e.aggregate_id, Some(facts.clone()));
                return Some(facts);
            }
        }
        self.session_facts(&e.aggregate_id).await.ok().flatten()
    }

    /// The facts of a session: remembered, or read once from its first event.
    pub async fn session_facts(&self, id: &str) -> Result<Option<SessionFacts>, StoreError> {
        if let Some(f) = self.facts.lock().ok().and_then(|f| f.get(id).cloned()) {
            return Ok(f);
        }
        let facts = match self.store.load_first::<Session>(id).await? {
            Some(SessionEvent::SessionEnqueued { spec, .. }) => Some(SessionFacts {
                owner: spec.owner.to_string(),
                scaling_group: spec.scaling_group.to_string(),
            }),
            _ => None,
        };
        if facts.is_some() {
            self.remember(id, facts.clone());
        }
        Ok(facts)
    }

    fn remember(&self, id: &str, facts: Option<SessionFacts>) {
        if let Ok(mut f) = self.facts.lock() {
            if f.len() >= FACTS_LIMIT {
                f.clear();
            }
            f.insert(id.to_string(), facts);
        }
    }
}

/// A stream's view of the log from its cursor on: first what it missed (read from the
/// log), then the follower's live batches.
#[derive(Debug)]
pub struct Subscription {
    follower: Arc<LogFollower>,
    live: broadcast::Receiver<Arc<Vec<Arc<Followed>>>>,
    caught_up: bool,
    cursor: LogPosition,
    pending: std::collections::VecDeque<Arc<Followed>>,
}

impl Subscription {
    /// The next event after the cursor, waiting for it (without a database connection
    /// once caught up). `Err` only when the log cannot be read while catching up.
    pub async fn next(&mut self) -> Result<Arc<Followed>, StoreError> {
        loop {
            if let Some(f) = self.pending.pop_front() {
                if f.event.log_position() > self.cursor {
                    self.cursor = f.event.log_position();
                    return Ok(f);
                }
                continue;
            }
            if !self.caught_up {
                self.catch_up().await?;
                continue;
            }
            match self.live.recv().await {
                Ok(batch) => self.pending.extend(batch.iter().cloned()),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow for the live channel: read what was missed from the log.
                    self.live = self.follower.batches.subscribe();
                    self.caught_up = false;
                }
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }

    /// Reads the log from the cursor until it reaches the follower's position as of
    /// now (anything later arrives on the live channel, which was subscribed first).
    async fn catch_up(&mut self) -> Result<(), StoreError> {
        let target = self.follower.position();
        let mut at = self
            .pending
            .back()
            .map(|f| f.event.log_position())
            .unwrap_or(self.cursor)
            .max(self.cursor);
        while at < target {
            let events = {
                let _permit = self.follower.catch_up.acquire().await;
                self.follower.store.read_log(at, BATCH).await?
            };
            if events.is_empty() {
                break;
            }
            for e in events {
                at = e.log_position();
                let session = self.follower.facts_of(&e).await;
                self.pending
                    .push_back(Arc::new(Followed { event: e, session }));
            }
            if !self.pending.is_empty() {
                // Hand these out first; the loop resumes from `at` next time.
                self.caught_up = at >= target;
                if !self.caught_up {
                    return Ok(());
                }
            }
        }
        self.caught_up = true;
        Ok(())
    }

    /// The position up to which this subscription has handed out events.
    pub fn cursor(&self) -> LogPosition {
        self.cursor
    }
}
