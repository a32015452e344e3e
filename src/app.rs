//! The application: what every command path, HTTP handler and background worker
//! shares — the event store, the command handler, the projection engine (read models
//! and consistency waits), the supervisor of the background work, the API-key cache,
//! the shared log follower, the clock and the settings.

use std::sync::Arc;
use std::time::Duration;

use projections::{Engine, EngineConfig};

use crate::auth::Keys;
use crate::clock::{Clock, SystemClock};
use crate::command::CommandHandler;
use crate::config::Settings;
use crate::follower::LogFollower;
use crate::store::EventStore;
use crate::supervisor::{Supervisor, SupervisorConfig};
use crate::tasks::{RunnerConfig, TaskRunner};
use crate::volumes::Volumes;

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
    /// Supervises every background worker (restarts, readiness, metrics).
    pub supervisor: Supervisor,
    /// API keys with revocations applied at once.
    pub keys: Arc<Keys>,
    /// The one reader of the global log that streams and long-polls share.
    pub follower: Arc<LogFollower>,
    /// The volumes vfolders live on.
    pub volumes: Arc<Volumes>,
    /// This process's background-task runner.
    pub tasks: Arc<TaskRunner>,
    /// The key-encryption key of keypair secrets (`None`: keypairs cannot be used).
    pub kek: Option<Arc<crate::compat::kek::Kek>>,
    /// The SSRF guard webhook URLs are checked with (SPEC §8).
    pub webhook_guard: crate::webhooks::guard::Guard,
    /// Opened webhook signing secrets.
    pub webhook_secrets: Arc<crate::webhooks::subscriptions::SecretCache>,
}

impl App {
    /// An application on an open store, with the system clock.
    pub fn new(store: EventStore, settings: Settings) -> Self {
        Self::with_supervisor(store, settings, SupervisorConfig::default())
    }

    /// Like [`App::new`] with the supervisor's restart timings.
    pub fn with_supervisor(
        store: EventStore,
        settings: Settings,
        supervisor: SupervisorConfig,
    ) -> Self {
        let supervisor = Supervisor::new(supervisor);
        let hook = supervisor.clone();
        let engine = Arc::new(
            Engine::new(
                store.db(),
                projections::models::all(),
                EngineConfig {
                    linger: std::time::Duration::from_millis(settings.projection_linger_ms),
                    ..EngineConfig::default()
                },
            )
            .with_waker(store.appended())
            .with_fault_point(Arc::new(move |name: &str| hook.hold_point(name))),
        );
        let catch_up_reads = usize::try_from(settings.max_connections / 4).unwrap_or(1);
        // Checked by `sessiond serve` before the app exists (`Volumes::check`); a
        // configuration that does not even parse falls back to the default volume here.
        let volumes =
            Volumes::from_settings(&settings).unwrap_or_else(|_| Volumes::implicit_default());
        let tasks = TaskRunner::new(RunnerConfig {
            concurrency: usize::try_from(settings.task_concurrency).unwrap_or(4),
            parallelism: usize::try_from(settings.clone_parallelism).unwrap_or(4),
            max_bytes_per_sec: settings.clone_max_bytes_per_sec,
            ..RunnerConfig::default()
        });
        Self {
            volumes: Arc::new(volumes),
            tasks: Arc::new(tasks),
            kek: None,
            webhook_guard: crate::webhooks::guard_of(&settings.webhooks),
            webhook_secrets: Arc::default(),
            commands: CommandHandler::new(store.clone()),
            keys: Arc::new(Keys::new(store.db())),
            follower: Arc::new(LogFollower::new(
                store.clone(),
                catch_up_reads,
                Duration::from_millis(500),
            )),
            store,
            engine,
            clock: Arc::new(SystemClock),
            settings: Arc::new(settings),
            supervisor,
        }
    }

    /// Replaces the volumes (tests point them at temporary directories).
    pub fn with_volumes(mut self, volumes: Volumes) -> Self {
        self.volumes = Arc::new(volumes);
        self
    }

    /// Sets the key-encryption key of keypair secrets.
    pub fn with_kek(mut self, kek: Option<crate::compat::kek::Kek>) -> Self {
        self.kek = kek.map(Arc::new);
        self
    }

    /// Replaces the clock (tests use a [`crate::clock::ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The read-model database.
    pub fn db(&self) -> &store::Db {
        self.engine.db()
    }

    /// Waits (bounded) until each of the read models `models` has applied the event at
    /// `global_position` (read-your-writes). Only those: a failing projection elsewhere
    /// does not hold the wait. Returns whether they all did in time.
    pub async fn wait_for_position(
        &self,
        models: &[&str],
        global_position: i64,
        timeout: Duration,
    ) -> Result<bool, projections::ProjectionError> {
        let deadline = crate::clock::deadline_in(timeout);
        for name in models {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !self.engine.wait_for(name, global_position, left).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Waits (bounded) until the read models `models` include everything committed
    /// before this call (the runners do the work; this only waits).
    pub async fn wait_for_head(
        &self,
        models: &[&str],
        timeout: Duration,
    ) -> Result<bool, projections::ProjectionError> {
        match self.db().head().await? {
            Some(head) => self.wait_for_position(models, head, timeout).await,
            None => Ok(true),
        }
    }

    /// Brings every read model up to the head of the log as of this call, in this task
    /// (tests and tools that run no projection runners). Bounded: gives up after 10 s
    /// and returns what it applied.
    pub async fn catch_up(&self) -> Result<u64, projections::ProjectionError> {
        let names = self.engine.names();
        self.catch_up_to_head(&names, Duration::from_secs(10)).await
    }

    /// Brings the projections `names` up to the head of the log as of this call, in
    /// this task (tests and tools).
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
        let deadline = crate::clock::deadline_in(timeout);
        let mut applied: u64 = 0;
        loop {
            let mut behind = false;
            for name in names {
                let projection = self.engine.projection(name)?;
                applied = applied.saturating_add(self.engine.catch_up(projection.as_ref()).await?);
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
