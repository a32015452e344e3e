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

    /// Brings every read model up to the head of the log now, in this task (used where
    /// a decision must see everything committed so far, and by tests).
    pub async fn catch_up(&self) -> Result<u64, projections::ProjectionError> {
        self.engine.catch_up_all().await
    }
}
