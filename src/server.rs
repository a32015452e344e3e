//! `sessiond serve`: opens the store (applying migrations), creates the bootstrap admin
//! key on a store that never had one, starts the projection runners (and the scheduler
//! workers), then serves the HTTP API (`crate::http`) until SIGINT/SIGTERM. Shutdown is
//! graceful: the listener stops accepting, long-lived responses (SSE, long-polls) end,
//! in-flight requests finish, the workers stop, and the pools close.

use std::net::SocketAddr;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::auth::Secret;
use crate::config::Settings;
use crate::http::{ApiConfig, AppState};
use crate::store::{EventStore, StoreError, StoreOptions};

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Opening the store failed.
    #[error("cannot open the store at {url}")]
    Store {
        /// The (redacted) URL.
        url: String,
        /// Cause.
        #[source]
        source: StoreError,
    },
    /// The store is the target of a `sessionctl store copy` that has not finished (it
    /// was interrupted, or is still running): it may hold only part of the log.
    #[error("the store at {url} is an unfinished copy of {source_url} (`sessionctl store copy` started {started_at} and did not finish): it may hold only part of the log. Drop it and copy again into a new, empty database")]
    UnfinishedCopy {
        /// The (redacted) URL.
        url: String,
        /// Where the copy came from (redacted).
        source_url: String,
        /// When it started.
        started_at: String,
    },
    /// The store opened but refuses writes (a read-only file, directory, mount, `?mode=ro`,
    /// or a read-only PostgreSQL role or standby).
    #[error("the store at {url} is read-only; sessiond must be able to write to it (check the file's and its directory's permissions, the mount, or the database role)")]
    ReadOnly {
        /// The (redacted) URL.
        url: String,
        /// Cause.
        #[source]
        source: sqlx::Error,
    },
    /// Creating the bootstrap admin key failed.
    #[error("cannot create the bootstrap admin key")]
    Bootstrap(#[source] crate::auth::KeyError),
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The key-encryption key is malformed, unreadable, or missing where required.
    #[error(transparent)]
    Kek(#[from] crate::compat::kek::KekError),
    /// A volume is unusable (missing or unwritable root).
    #[error(transparent)]
    Volume(#[from] crate::volumes::VolumeError),
    /// The server failed.
    #[error("server error")]
    Io(#[from] std::io::Error),
}

/// Environment variable whose value becomes the first admin key (SPEC §4).
pub const BOOTSTRAP_KEY_ENV: &str = "SESSIOND_BOOTSTRAP_ADMIN_KEY";

/// What `start` needs besides [`Settings`].
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// The first admin key to create on a store that never had one (`None`: a random
    /// one is generated).
    pub bootstrap_admin_key: Option<Secret>,
    /// HTTP tunables.
    pub api: ApiConfig,
    /// Restart timings of supervised workers.
    pub supervisor: crate::supervisor::SupervisorConfig,
    /// How often the key watcher looks for revocations.
    pub key_poll: Option<std::time::Duration>,
    /// The clock (`None`: the system clock; tests pass a `ManualClock`).
    pub clock: Option<std::sync::Arc<dyn crate::clock::Clock>>,
}

/// A started server.
#[derive(Debug)]
pub struct Running {
    /// The address it listens on (port 0 resolved).
    pub addr: SocketAddr,
    /// The application it serves.
    pub app: App,
    /// The admin key created at this start (`None` if the store had been bootstrapped).
    pub bootstrap_key: Option<(crate::auth::ApiKeyInfo, Secret)>,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// A sender that stops the server when `true` is sent.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }

    /// Stops: the HTTP server drains, then the workers stop, then the pools close.
    pub async fn stop(self) -> Result<(), ServeError> {
        let _ = self.stop.send(true);
        self.wait().await
    }

    /// Waits until the server was told to stop and has stopped.
    pub async fn wait(self) -> Result<(), ServeError> {
        let served = match self.server.await {
            Ok(r) => r.map_err(ServeError::Io),
            Err(e) => Err(ServeError::Io(std::io::Error::other(e))),
        };
        let _ = self.stop.send(true);
        for w in self.workers {
            if let Err(e) = w.await {
                tracing::warn!(error = %e, "a worker ended abnormally");
            }
        }
        self.app.store.close().await;
        served
    }
}

/// Opens the store, bootstraps the admin key, binds, starts the workers and the HTTP
/// server, and returns once it accepts requests (logging `listening on <addr>`).
pub async fn start(settings: Settings, options: ServeOptions) -> Result<Running, ServeError> {
    let volumes = crate::volumes::Volumes::from_settings(&settings)?;
    volumes.check()?;
    let store_options = StoreOptions {
        max_connections: settings.max_connections,
        snapshot_every: settings.snapshot_every,
        ..StoreOptions::default()
    };
    let store = EventStore::open(settings.database_url.expose(), &store_options)
        .await
        .map_err(|source| ServeError::Store {
            url: settings.database_url.to_string(),
            source,
        })?;
    store::keys::check_writable(&store.db())
        .await
        .map_err(|source| ServeError::ReadOnly {
            url: settings.database_url.to_string(),
            source,
        })?;
    let unfinished = store::copy::unfinished(&store.db())
        .await
        .map_err(|e| ServeError::Store {
            url: settings.database_url.to_string(),
            source: e.into(),
        })?;
    if let Some(copy) = unfinished {
        return Err(ServeError::UnfinishedCopy {
            url: settings.database_url.to_string(),
            source_url: copy.source,
            started_at: copy.started_at,
        });
    }
    tracing::info!(database = %settings.database_url, backend = ?store.backend(), "store ready (migrations applied)");
    let bootstrap_key =
        crate::auth::bootstrap_admin_key(&store.db(), options.bootstrap_admin_key.clone())
            .await
            .map_err(ServeError::Bootstrap)?;
    if let Some((info, _)) = &bootstrap_key {
        tracing::info!(key_id = %info.id, "created the bootstrap admin key (the store had none)");
    }
    let kek = crate::compat::kek::resolve(
        settings.secret_key.as_ref().map(|k| k.expose()),
        settings.database_url.expose(),
    )?;
    if kek.is_none()
        && store::keys::has_keypairs(&store.db())
            .await
            .map_err(|e| ServeError::Bootstrap(e.into()))?
    {
        return Err(
            crate::compat::kek::KekError::Required("check the keypairs this store holds").into(),
        );
    }
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: settings.listen.clone(),
            source,
        })?;
    let addr: SocketAddr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    crate::telemetry::metrics();
    let request_timeout = std::time::Duration::from_millis(settings.request_timeout_ms);
    let rate_limit = settings.rate_quota();
    let app = App::with_supervisor(store, settings, options.supervisor.clone())
        .with_volumes(volumes)
        .with_kek(kek);
    let app = match options.clock.clone() {
        Some(clock) => app.with_clock(clock),
        None => app,
    };
    app.keys.refresh().await.map_err(ServeError::Bootstrap)?;
    let key_poll = options
        .key_poll
        .unwrap_or(std::time::Duration::from_millis(250));
    let workers = spawn_workers(&app, &stopped, key_poll);
    let mut api = options.api;
    api.request_timeout = request_timeout;
    api.rate_limit = rate_limit;
    let state = AppState::new(app.clone(), stopped.clone(), api);
    let router = crate::http::router(state);
    let server = tokio::spawn(crate::http::serve::serve(listener, router, stopped));
    tracing::info!("listening on {addr}");
    Ok(Running {
        addr,
        app,
        bootstrap_key,
        stop,
        server,
        workers,
    })
}

/// Starts every background worker under the supervisor: one runner per projection, the
/// LISTEN relay (PostgreSQL), the shared log follower, the key watcher and the scheduler.
fn spawn_workers(
    app: &App,
    stopped: &watch::Receiver<bool>,
    key_poll: std::time::Duration,
) -> Vec<JoinHandle<()>> {
    let sup = &app.supervisor;
    let mut workers = Vec::new();
    for projection in app.engine.projections() {
        let engine = app.engine.clone();
        let stop = stopped.clone();
        workers.push(sup.spawn(
            format!("projection:{}", projection.name()),
            stopped.clone(),
            move || {
                let engine = engine.clone();
                let projection = projection.clone();
                let stop = stop.clone();
                async move { engine.run(projection, stop).await }
            },
        ));
    }
    let engine = app.engine.clone();
    let stop = stopped.clone();
    workers.push(sup.spawn("pg_listen", stopped.clone(), move || {
        let engine = engine.clone();
        let stop = stop.clone();
        async move { engine.listen(stop).await }
    }));
    let follower = app.follower.clone();
    let wake = app.store.appended();
    let stop = stopped.clone();
    workers.push(sup.spawn("log_follower", stopped.clone(), move || {
        let follower = follower.clone();
        let wake = wake.clone();
        let stop = stop.clone();
        async move { follower.run(wake, stop).await }
    }));
    let keys = app.keys.clone();
    let stop = stopped.clone();
    workers.push(sup.spawn("key_watcher", stopped.clone(), move || {
        let keys = keys.clone();
        let stop = stop.clone();
        async move { keys.watch(key_poll, stop).await }
    }));
    let runner = app.tasks.clone();
    let runner_app = app.clone();
    let stop = stopped.clone();
    workers.push(sup.spawn("task_runner", stopped.clone(), move || {
        let runner = runner.clone();
        let app = runner_app.clone();
        let stop = stop.clone();
        async move { runner.run(app, stop).await }
    }));
    workers.extend(crate::webhooks::dispatcher::spawn(app, stopped.clone()));
    workers.extend(crate::maintenance::spawn(app, stopped.clone()));
    workers.extend(crate::scheduler::spawn_workers(
        app.clone(),
        stopped.clone(),
    ));
    workers
}

/// `sessiond serve`: starts, prints a newly created admin key once, and serves until
/// SIGINT/SIGTERM.
pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    let provided = std::env::var(BOOTSTRAP_KEY_ENV)
        .ok()
        .filter(|k| !k.is_empty())
        .map(Secret::new);
    let from_env = provided.is_some();
    // Before the server announces itself: a SIGTERM right after `listening on` stops
    // it gracefully instead of killing it.
    let signal = ShutdownSignal::install();
    let running = start(
        settings,
        ServeOptions {
            bootstrap_admin_key: provided,
            ..ServeOptions::default()
        },
    )
    .await?;
    if let Some((info, secret)) = &running.bootstrap_key {
        if from_env {
            tracing::info!(key_id = %info.id, "the first admin key is the value of {BOOTSTRAP_KEY_ENV}");
        } else {
            print_bootstrap_key(secret);
        }
    }
    let stop = running.stopper();
    tokio::spawn(async move {
        signal.recv().await;
        let _ = stop.send(true);
    });
    running.wait().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Shows the generated admin key, once, on stdout (it is not stored anywhere readable).
#[allow(clippy::print_stdout)]
fn print_bootstrap_key(secret: &Secret) {
    println!(
        "Created the first admin API key (shown only now; use it as 'Authorization: Bearer <key>'):"
    );
    println!("{}", secret.expose());
}

/// SIGINT / SIGTERM listeners, registered when created: a signal that arrives before
/// anyone awaits [`ShutdownSignal::recv`] is not lost (and does not kill the process).
#[derive(Debug)]
pub struct ShutdownSignal {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignal {
    /// Registers the handlers now.
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let listen = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for {name}");
                    None
                }
            };
            Self {
                interrupt: listen(SignalKind::interrupt(), "SIGINT"),
                terminate: listen(SignalKind::terminate(), "SIGTERM"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Resolves on the first SIGINT or SIGTERM.
    pub async fn recv(mut self) {
        #[cfg(unix)]
        {
            async fn on(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = on(&mut self.interrupt) => {},
                () = on(&mut self.terminate) => {},
            }
        }
        #[cfg(not(unix))]
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutdown signal received");
    }
}

/// Resolves on SIGINT or SIGTERM (handlers registered at the first poll; prefer
/// [`ShutdownSignal::install`] before start-up).
pub async fn shutdown_signal() {
    ShutdownSignal::install().recv().await
}
