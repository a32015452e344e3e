//! The application: what every command path, HTTP handler and background worker
//! shares — the event store, the command handler, the projection engine (read models
//! and consistency waits), the clock and the settings.

use std::sync::Arc;
use std::time::Duration;

use projections::{Engine, EngineConfig};

use crate::clock::{Clock, SystemClock};
use crate::command::CommandHandler;
use crate::config::Settings;
use crate::store::EventStore;

/// Shared application state; cheap to clone.
#[derive(Debug, Clone)]
pub struct App {
    /// The event store.
    pub store: EventStore,
    /// Load -> decide -> append with retries.
    pub commands: CommandHandler,
    /// The projection engine (read models, lag, consistency waits).
    pub engine: Arc<Engine>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Settings the service runs with.
    pub settings: Arc<Settings>,
}

impl App {
    /// An application on an open store, with the system clock.
    pub fn new(store: EventStore, settings: Settings) -> Self {
        let engine = Arc::new(
            Engine::new(
                store.db(),
                projections::models::all(),
                EngineConfig::default(),
            )
            .with_waker(store.appended()),
        );
        Self {
            commands: CommandHandler::new(store.clone()),
            store,
            engine,
            clock: Arc::new(SystemClock),
            settings: Arc::new(settings),
        }
    }

    /// Replaces the clock (tests use a [`crate::clock::ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The read-model database.
    pub fn db(&self) -> &projections::db::Db {
        self.engine.db()
    }

    /// Waits (bounded) until every read model has applied the event at
    /// `global_position` (read-your-writes). Returns whether they all did in time.
    pub async fn wait_for_position(
        &self,
        global_position: i64,
        timeout: Duration,
    ) -> Result<bool, projections::ProjectionError> {
        let deadline = tokio::time::Instant::now() + timeout;
        for name in self.engine.names() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !self.engine.wait_for(name, global_position, left).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Brings every read model up to the head of the log as of this call, in this task
    /// (tests, and decisions that must see everything committed so far). Bounded: gives
    /// up after 10 s and returns what it applied.
    pub async fn catch_up(&self) -> Result<u64, projections::ProjectionError> {
        let names = self.engine.names();
        self.catch_up_to_head(&names, Duration::from_secs(10)).await
    }

    /// Brings the projections `names` up to the head of the log as of this call.
    ///
    /// One pass of the engine is not enough on PostgreSQL: the commit-order reader stops
    /// below any transaction still open in the cluster (which may commit an earlier
    /// position later), so this repeats until each checkpoint has reached the head that
    /// was read first, or `timeout` passes.
    pub async fn catch_up_to_head(
        &self,
        names: &[&str],
        timeout: Duration,
    ) -> Result<u64, projections::ProjectionError> {
        let Some(head) = self.db().head().await? else {
            return Ok(0);
        };
        let Some(target) = self.db().position_of(head).await? else {
            return Ok(0);
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut applied = 0;
        loop {
            let mut behind = false;
            for name in names {
                let projection = self.engine.projection(name)?;
                applied += self.engine.catch_up(projection.as_ref()).await?;
                let at = projections::engine::read_checkpoint(self.db(), name).await?;
                behind |= at.position < target;
            }
            if !behind || tokio::time::Instant::now() >= deadline {
                return Ok(applied);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
