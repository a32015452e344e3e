//! Command handling: load, decide, append — one short append, no transaction held
//! while deciding — with optimistic conflicts retried internally (reload and re-decide,
//! bounded, with jitter) before they surface as [`CommandError::Conflict`].

use domain::Decider;
use rand::Rng;
use std::time::Duration;
use tracing::Instrument;

use crate::store::{EventMetadata, EventStore, LogPosition, NewEvent, StoreError};

/// How often and how patiently a conflicting command is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts (1 = no retry).
    pub max_attempts: u32,
    /// Base delay; attempt n waits a random time in [0, base * 2^n).
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(2),
        }
    }
}

impl RetryPolicy {
    /// No retry: the first conflict surfaces.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            base_delay: Duration::ZERO,
        }
    }

    fn delay(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt.min(10)).unwrap_or(1024));
        if cap.is_zero() {
            return cap;
        }
        rand::thread_rng().gen_range(Duration::ZERO..cap)
    }
}

/// Why a command did not land.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The domain rejected it (nothing was appended).
    #[error(transparent)]
    Rejected(E),
    /// Still conflicting after every retry.
    #[error("conflict after {attempts} attempts")]
    Conflict {
        /// Attempts made.
        attempts: u32,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The outcome of a command that landed (or was a no-op).
#[derive(Debug, Clone)]
pub struct Committed<A: Decider> {
    /// State after the command.
    pub state: A,
    /// Events appended (empty for a no-op).
    pub events: Vec<A::Event>,
    /// Their positions in the global log.
    pub positions: Vec<LogPosition>,
    /// Attempts it took (1 = no conflict).
    pub attempts: u32,
}

impl<A: Decider> Committed<A> {
    /// Position of the last appended event, if any (a consistency token).
    pub fn last_position(&self) -> Option<LogPosition> {
        self.positions.last().copied()
    }
}

/// Executes commands against the event store.
#[derive(Debug, Clone)]
pub struct CommandHandler {
    store: EventStore,
    retry: RetryPolicy,
}

impl CommandHandler {
    /// A handler with the default retry policy.
    pub fn new(store: EventStore) -> Self {
        Self {
            store,
            retry: RetryPolicy::default(),
        }
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The store.
    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// Loads and folds one aggregate.
    pub async fn load<A: Decider>(&self, aggregate_id: &str) -> Result<A, StoreError> {
        Ok(self.store.load_state::<A>(aggregate_id).await?.state)
    }

    /// Load, decide, append; on a conflict reload and decide again (bounded, jittered).
    pub async fn execute<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed<A>, CommandError<A::Error>>
    where
        A: Decider,
        A::Command: Clone,
    {
        let span = tracing::info_span!(
            "command",
            aggregate_type = A::TYPE,
            aggregate_id = %aggregate_id,
            attempts = tracing::field::Empty,
        );
        async move {
            let (mut committed, attempts) = self
                .retry_conflicts(|| self.try_once::<A>(aggregate_id, command.clone(), metadata))
                .await?;
            committed.attempts = attempts;
            tracing::Span::current().record("attempts", attempts);
            Ok(committed)
        }
        .instrument(span)
        .await
    }

    /// Runs `attempt` (a load-decide-append of any number of streams) again while it
    /// ends in an optimistic conflict: at most `max_attempts` times, with jittered
    /// exponential backoff, then [`CommandError::Conflict`]. Returns the result and the
    /// attempts it took. Expected conflicts are logged at debug and counted
    /// (`sessiond_command_conflicts_retried_total`), never at error.
    pub async fn retry_conflicts<T, E, F, Fut>(
        &self,
        mut attempt: F,
    ) -> Result<(T, u32), CommandError<E>>
    where
        E: std::error::Error,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CommandError<E>>>,
    {
        let mut n: u32 = 0;
        loop {
            n = n.saturating_add(1);
            match attempt().await {
                Err(CommandError::Store(e)) if e.is_conflict() => {
                    metrics::counter!("sessiond_command_conflicts_retried_total").increment(1);
                    if n >= self.retry.max_attempts {
                        tracing::info!(attempts = n, "optimistic conflict after every retry");
                        return Err(CommandError::Conflict { attempts: n });
                    }
                    tracing::debug!(attempt = n, "optimistic conflict; retrying");
                    tokio::time::sleep(self.retry.delay(n)).await;
                }
                Ok(t) => return Ok((t, n)),
                Err(e) => return Err(e),
            }
        }
    }

    /// Executes a command that creates an aggregate under an id the server just
    /// generated (e.g. a new session's UUID): it cannot exist yet, so the command is
    /// decided on the empty state without loading — one round trip instead of two. The
    /// primary key still guards it: should the id exist after all, the append conflicts
    /// and the command is retried the normal way (load, decide), which rejects it.
    pub async fn execute_new<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed<A>, CommandError<A::Error>>
    where
        A: Decider,
        A::Command: Clone,
    {
        match self
            .decide_and_append::<A>(aggregate_id, A::default(), 0, command.clone(), metadata)
            .await
        {
            Err(CommandError::Store(e)) if e.is_conflict() => {
                self.execute::<A>(aggregate_id, command, metadata).await
            }
            other => other,
        }
    }

    async fn try_once<A: Decider>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        let loaded = self.store.load_state::<A>(aggregate_id).await?;
        self.decide_and_append(
            aggregate_id,
            loaded.state,
            loaded.version,
            command,
            metadata,
        )
        .await
    }

    async fn decide_and_append<A: Decider>(
        &self,
        aggregate_id: &str,
        mut state: A,
        version: i64,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Committed<A>, CommandError<A::Error>> {
        let events = state.decide(command).map_err(CommandError::Rejected)?;
        if events.is_empty() {
            return Ok(Committed {
                state,
                events,
                positions: vec![],
                attempts: 1,
            });
        }
        let new_events = new_events::<A>(aggregate_id, version, &events, metadata)?;
        let positions = self.store.append(&new_events).await?;
        for e in &events {
            state.evolve(e);
        }
        Ok(Committed {
            state,
            events,
            positions,
            attempts: 1,
        })
    }
}

/// The rows to append for `events` of aggregate `A` whose stream is at `version` (its
/// last sequence). Used by [`CommandHandler`] and by callers that decide on a known
/// state (e.g. a read-model copy at a known version) and append several streams in one
/// statement: optimistic concurrency stays exact, as every row's sequence must be free.
pub fn new_events<A: Decider>(
    aggregate_id: &str,
    version: i64,
    events: &[A::Event],
    metadata: &EventMetadata,
) -> Result<Vec<NewEvent>, StoreError> {
    let meta = metadata.to_json();
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Ok(NewEvent {
                aggregate_type: A::TYPE.to_string(),
                aggregate_id: aggregate_id.to_string(),
                sequence: version
                    .saturating_add(i64::try_from(i).unwrap_or(i64::MAX))
                    .saturating_add(1),
                event_type: domain::DomainEvent::event_type(e).to_string(),
                event_version: domain::DomainEvent::event_version(e).to_string(),
                payload: serde_json::to_value(e).map_err(StoreError::Encode)?,
                metadata: meta.clone(),
            })
        })
        .collect()
}

/// Several aggregates decided together and appended in **one** statement (all or
/// nothing): a clone appends its target folder, its name claim, the source's
/// `VFolderCloneStarted` and the task at once. Each stream is loaded and decided at
/// its current version, so a concurrent change to any of them makes the append conflict
/// and the whole batch is decided again (run it inside
/// [`CommandHandler::retry_conflicts`]).
#[derive(Debug)]
pub struct Batch {
    rows: Vec<NewEvent>,
    metadata: EventMetadata,
}

impl Batch {
    /// An empty batch whose events carry `metadata`.
    pub fn new(metadata: &EventMetadata) -> Self {
        Self {
            rows: Vec::new(),
            metadata: metadata.clone(),
        }
    }

    /// Loads `A` `aggregate_id`, decides `command` on it and adds the events; returns
    /// the state after them. A rejection becomes `R` (the caller's refusal type).
    pub async fn decide<A, R>(
        &mut self,
        store: &EventStore,
        aggregate_id: &str,
        command: A::Command,
    ) -> Result<A, CommandError<R>>
    where
        A: Decider,
        R: std::error::Error + From<A::Error>,
    {
        let loaded = store.load_state::<A>(aggregate_id).await?;
        self.decide_on(aggregate_id, loaded.state, loaded.version, command)
    }

    /// Decides `command` on a known state at `version` (0 for an aggregate under an id
    /// just generated) and adds the events.
    pub fn decide_on<A, R>(
        &mut self,
        aggregate_id: &str,
        mut state: A,
        version: i64,
        command: A::Command,
    ) -> Result<A, CommandError<R>>
    where
        A: Decider,
        R: std::error::Error + From<A::Error>,
    {
        let events = state
            .decide(command)
            .map_err(|e| CommandError::Rejected(R::from(e)))?;
        self.rows.extend(new_events::<A>(
            aggregate_id,
            version,
            &events,
            &self.metadata,
        )?);
        for e in &events {
            state.evolve(e);
        }
        Ok(state)
    }

    /// Appends every event added, in one statement; their positions (empty: nothing to
    /// append).
    pub async fn commit(self, store: &EventStore) -> Result<Vec<LogPosition>, StoreError> {
        if self.rows.is_empty() {
            return Ok(vec![]);
        }
        store.append(&self.rows).await
    }
}
