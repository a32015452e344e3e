//! The task runner: one per process, running background tasks (SPEC §7.2) outside any
//! request and any database transaction.
//!
//! - **Who runs a task.** Each running task is held by one runner through the lease
//!   `bgtask:<id>` (PostgreSQL: an advisory lock on a dedicated connection, freed when
//!   the process dies; SQLite: in-process). A task created by this process is reserved
//!   before its events are appended ([`TaskRunner::reserve_on`]) and handed over after
//!   ([`TaskRunner::launch`]); every other running task is *orphaned* when its lease is
//!   free, and the runner's scan picks it up: that is a new attempt
//!   (`BackgroundTaskResumed`), and after [`domain::bgtask::MAX_ATTEMPTS`] the task fails
//!   `interrupted` instead. So no task stays `running` without a live runner.
//! - **Transient failures** (an I/O error) are retried the same way, with a short
//!   backoff; permanent ones (`insufficient-space`, a missing source, an unknown
//!   volume) fail at once.
//! - **Progress** is published in-process at once ([`TaskRunner::live`], which the SSE
//!   stream reads) and persisted as `BackgroundTaskProgressed` at most twice a second
//!   and only on a new 5% step.
//! - **Cancellation** is appended by the API (the task's terminal event with the
//!   target's `error`); the runner holding the task stops within a chunk — at once in
//!   this process, within half a second on another replica (it re-reads the task's
//!   last event) — and removes the partial files.
//! - **Shutdown** stops the copy without an event: the next start resumes it.
//! - **Tidiness.** A clone target in `error` has its directory removed by the scan (the
//!   runner that failed or was cancelled may have died before removing it).

pub mod copy;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::bgtask::{
    reasons, BackgroundTask, BackgroundTaskCommand, BackgroundTaskEvent, TaskParams, TaskStatus,
};
use projections::models::documents;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::app::App;
use crate::store::lease::Lease;
use crate::store::{EventMetadata, StoreError};
use crate::vfolders::{end_task, Ending, VFolderCommandError};

/// Describes the runner's metrics (and registers them at zero, so `/metrics` shows
/// them before the first task).
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "sessiond_background_tasks_started_total",
        "Background tasks started by this process's API, by kind."
    );
    describe_counter!(
        "sessiond_background_tasks_finished_total",
        "Background tasks that ended, by kind and final status."
    );
    describe_counter!(
        "sessiond_clone_bytes_copied_total",
        Unit::Bytes,
        "Bytes of regular files copied by clones in this process."
    );
    describe_histogram!(
        "sessiond_clone_throughput_bytes_per_second",
        "Throughput of each finished clone run (bytes copied / seconds)."
    );
    describe_gauge!(
        "sessiond_task_runner_leases_held",
        "Background tasks this process's runner holds (their leases) now."
    );
    for kind in domain::bgtask::TaskKind::ALL {
        metrics::counter!("sessiond_background_tasks_started_total", "kind" => kind.as_str())
            .increment(0);
    }
    metrics::counter!("sessiond_clone_bytes_copied_total").increment(0);
    metrics::gauge!("sessiond_task_runner_leases_held").set(0.0);
}

/// Progress as the runner publishes it live.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// Units done.
    pub current: u64,
    /// Units in all.
    pub total: u64,
    /// What it is doing.
    pub message: String,
}

/// Tunables of the runner.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Tasks run at once by this process.
    pub concurrency: usize,
    /// Files one clone copies at once.
    pub parallelism: usize,
    /// Most bytes per second one clone copies (0: unlimited).
    pub max_bytes_per_sec: u64,
    /// How often orphaned tasks are looked for.
    pub scan_interval: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            parallelism: 4,
            max_bytes_per_sec: 0,
            scan_interval: Duration::from_secs(1),
        }
    }
}

/// A task this process holds.
#[derive(Debug)]
struct Held {
    _lease: Mutex<Option<Lease>>,
    control: Arc<copy::Control>,
    live: watch::Sender<Live>,
    /// Set when the task was cancelled (not merely stopped for shutdown).
    cancelled: std::sync::atomic::AtomicBool,
}

/// A reservation of a task id (its lease held) before the task's events exist.
#[derive(Debug)]
pub struct Reservation {
    task_id: Uuid,
}

/// The task runner.
#[derive(Debug)]
pub struct TaskRunner {
    held: Mutex<HashMap<Uuid, Arc<Held>>>,
    handoff: mpsc::UnboundedSender<Uuid>,
    handoffs: tokio::sync::Mutex<mpsc::UnboundedReceiver<Uuid>>,
    config: RunnerConfig,
}

fn lease_name(task_id: Uuid) -> String {
    format!("bgtask:{task_id}")
}

/// Removes a task from the held set when its run ends, however it ends (a panic
/// included): the lease goes with it (its connection closes).
struct HeldGuard<'a> {
    runner: &'a TaskRunner,
    task_id: Uuid,
}

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut held) = self.runner.held.lock() {
            if let Some(h) = held.remove(&self.task_id) {
                h.control.cancelled.store(true, Ordering::Relaxed);
            }
            metrics::gauge!("sessiond_task_runner_leases_held").set(held.len() as f64);
        }
    }
}

/// How a run ended.
enum RunOutcome {
    Done(String),
    /// Cancelled (the terminal event is already appended).
    Cancelled,
    /// Stopped for shutdown: no event.
    Stopped,
    Permanent(String),
    Transient(String),
}

impl TaskRunner {
    /// A runner with `config`.
    pub fn new(config: RunnerConfig) -> Self {
        let (handoff, handoffs) = mpsc::unbounded_channel();
        Self {
            held: Mutex::new(HashMap::new()),
            handoff,
            handoffs: tokio::sync::Mutex::new(handoffs),
            config,
        }
    }

    fn insert(&self, task_id: Uuid, lease: Lease) -> bool {
        let Ok(mut held) = self.held.lock() else {
            return false;
        };
        if held.contains_key(&task_id) {
            return false;
        }
        held.insert(
            task_id,
            Arc::new(Held {
                _lease: Mutex::new(Some(lease)),
                control: Arc::new(copy::Control::with_rate(self.config.max_bytes_per_sec)),
                live: watch::channel(Live::default()).0,
                cancelled: std::sync::atomic::AtomicBool::new(false),
            }),
        );
        metrics::gauge!("sessiond_task_runner_leases_held").set(held.len() as f64);
        true
    }

    fn get(&self, task_id: Uuid) -> Option<Arc<Held>> {
        self.held.lock().ok().and_then(|h| h.get(&task_id).cloned())
    }

    fn is_held(&self, task_id: Uuid) -> bool {
        self.get(task_id).is_some()
    }

    /// Takes the lease of a task about to be created by this process.
    pub async fn reserve_on(
        &self,
        db: &store::Db,
        task_id: Uuid,
    ) -> Result<Reservation, StoreError> {
        let mut spare = None;
        let lease = Lease::acquire(db, &lease_name(task_id), &mut spare)
            .await
            .map_err(StoreError::from)?;
        match lease.map(|lease| self.insert(task_id, lease)) {
            Some(true) => Ok(Reservation { task_id }),
            _ => Err(StoreError::from(sqlx::Error::Protocol(format!(
                "the lease of new task {task_id} is taken"
            )))),
        }
    }

    /// Hands a reserved task (whose events are now appended) to the runner.
    pub fn launch(&self, reservation: Reservation) {
        let _ = self.handoff.send(reservation.task_id);
    }

    /// Gives up a reservation whose events were not appended.
    pub fn release(&self, reservation: Reservation) {
        let _ = HeldGuard {
            runner: self,
            task_id: reservation.task_id,
        };
    }

    /// Stops this process's run of a cancelled task at once (other replicas notice
    /// the cancellation in the log).
    pub fn cancel_local(&self, task_id: Uuid) {
        if let Some(h) = self.get(task_id) {
            h.cancelled.store(true, Ordering::Relaxed);
            h.control.cancelled.store(true, Ordering::Relaxed);
        }
    }

    /// Live progress of a task this process runs (`None`: it runs elsewhere or not at all).
    pub fn live(&self, task_id: Uuid) -> Option<watch::Receiver<Live>> {
        self.get(task_id).map(|h| h.live.subscribe())
    }

    /// The worker (supervised): takes handed-over tasks, looks for orphaned ones, runs
    /// them, until `stop`.
    pub async fn run(self: &Arc<Self>, app: App, mut stop: watch::Receiver<bool>) {
        let mut handoffs = self.handoffs.lock().await;
        let mut runs: JoinSet<()> = JoinSet::new();
        let mut cleaned: HashSet<Uuid> = HashSet::new();
        let mut spare = None;
        let mut ticker = tokio::time::interval(self.config.scan_interval);
        loop {
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                Some(task_id) = handoffs.recv() => {
                    let me = self.clone();
                    let app = app.clone();
                    let stop = stop.clone();
                    runs.spawn(async move { me.run_task(&app, task_id, false, stop).await });
                }
                Some(joined) = runs.join_next(), if !runs.is_empty() => {
                    if let Err(e) = joined {
                        if e.is_panic() {
                            metrics::counter!("sessiond_worker_panics_total", "worker" => "task_run").increment(1);
                            tracing::error!(error = %e, "a background-task run panicked; the task will be resumed");
                        }
                    }
                }
                _ = ticker.tick() => {
                    if let Err(e) = self.scan(&app, &mut runs, &mut spare, &stop).await {
                        tracing::warn!(error = %crate::telemetry::error_chain(&e), "task runner: cannot look for orphaned tasks");
                    }
                    self.tidy(&app, &mut cleaned).await;
                }
                _ = stop.changed() => {}
            }
        }
        // Shutdown: every run stops at its next chunk, without an event.
        if let Ok(held) = self.held.lock() {
            for h in held.values() {
                h.control.cancelled.store(true, Ordering::Relaxed);
            }
        }
        while runs.join_next().await.is_some() {}
    }

    async fn scan(
        self: &Arc<Self>,
        app: &App,
        runs: &mut JoinSet<()>,
        spare: &mut Option<sqlx::PgConnection>,
        stop: &watch::Receiver<bool>,
    ) -> Result<(), projections::ProjectionError> {
        let running = documents::background_tasks()
            .with_status(app.db(), TaskStatus::Running.as_str())
            .await?;
        for task in running {
            let Some(task_id) = task.task_id else {
                continue;
            };
            if self.is_held(task_id) {
                continue;
            }
            let busy = self.held.lock().map(|h| h.len()).unwrap_or(usize::MAX);
            if busy >= self.config.concurrency {
                break;
            }
            let lease = Lease::acquire(app.db(), &lease_name(task_id), spare).await?;
            let Some(lease) = lease else { continue };
            if !self.insert(task_id, lease) {
                continue;
            }
            let me = self.clone();
            let app = app.clone();
            let stop = stop.clone();
            runs.spawn(async move { me.run_task(&app, task_id, true, stop).await });
        }
        Ok(())
    }

    /// Removes the directories of clone targets that ended in `error`.
    async fn tidy(&self, app: &App, cleaned: &mut HashSet<Uuid>) {
        let Ok(errored) = documents::vfolders().with_status(app.db(), "error").await else {
            return;
        };
        for folder in errored {
            let Some(spec) = folder.spec else { continue };
            if cleaned.contains(&spec.vfolder_id) || folder.task_id.is_some_and(|t| self.is_held(t))
            {
                continue;
            }
            if let Some(dir) = app.volumes.folder_dir(spec.host.as_str(), spec.vfolder_id) {
                let removed = tokio::task::spawn_blocking(move || copy::remove_tree(&dir)).await;
                if matches!(removed, Ok(Ok(()))) {
                    cleaned.insert(spec.vfolder_id);
                }
            }
        }
    }

    async fn run_task(
        self: Arc<Self>,
        app: &App,
        task_id: Uuid,
        resumed: bool,
        stop: watch::Receiver<bool>,
    ) {
        let _guard = HeldGuard {
            runner: &self,
            task_id,
        };
        let span = tracing::info_span!("bgtask", task_id = %task_id, resumed);
        let _ =
            tracing::Instrument::instrument(self.drive(app, task_id, resumed, stop), span).await;
    }

    async fn drive(
        &self,
        app: &App,
        task_id: Uuid,
        resumed: bool,
        stop: watch::Receiver<bool>,
    ) -> Result<(), VFolderCommandError> {
        let meta = EventMetadata {
            actor: "system:task-runner".to_string(),
            correlation_id: task_id.to_string(),
            causation_id: task_id.to_string(),
        };
        let Some(held) = self.get(task_id) else {
            return Ok(());
        };
        let mut task: BackgroundTask = app.commands.load(&task_id.to_string()).await?;
        if task.status != Some(TaskStatus::Running) {
            return Ok(());
        }
        if resumed {
            tracing::info!(
                attempts = task.attempts,
                "resuming an orphaned background task"
            );
            task = end_task(
                app,
                task_id,
                Ending::Retry(reasons::INTERRUPTED.to_string()),
                &meta,
            )
            .await?
            .0;
            if task.is_finished() {
                self.remove_target(app, &task).await;
                return Ok(());
            }
        }
        loop {
            let Some(params) = task.params.clone() else {
                return Ok(());
            };
            let outcome = match &params {
                TaskParams::VfolderClone { .. } => {
                    self.run_clone(app, task_id, &params, &held, &meta).await
                }
                TaskParams::VfolderDelete { vfolder_id, host } => {
                    run_delete(app, *vfolder_id, host.as_str()).await
                }
            };
            match outcome {
                RunOutcome::Done(message) => {
                    if let Err(e) = end_task(app, task_id, Ending::Done(message), &meta).await {
                        // Cancelled meanwhile: the target is `error`; its files go.
                        tracing::info!(error = %e, "the task ended otherwise before it completed");
                        self.remove_target(app, &task).await;
                    }
                    return Ok(());
                }
                RunOutcome::Cancelled => {
                    tracing::info!("background task cancelled; removing its partial files");
                    self.remove_target(app, &task).await;
                    return Ok(());
                }
                RunOutcome::Stopped => return Ok(()),
                RunOutcome::Permanent(reason) => {
                    tracing::warn!(reason = %reason, "background task failed");
                    self.remove_target(app, &task).await;
                    end_task(app, task_id, Ending::Failed(reason), &meta).await?;
                    return Ok(());
                }
                RunOutcome::Transient(reason) => {
                    tracing::warn!(reason = %reason, attempts = task.attempts, "background task run failed; retrying");
                    task = end_task(app, task_id, Ending::Retry(reason), &meta)
                        .await?
                        .0;
                    if task.is_finished() {
                        self.remove_target(app, &task).await;
                        return Ok(());
                    }
                    let backoff =
                        Duration::from_millis(200u64.saturating_mul(u64::from(task.attempts)));
                    let mut stop = stop.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => return Ok(()),
                    }
                    held.control.done.store(0, Ordering::Relaxed);
                }
            }
        }
    }

    /// Removes a clone's target directory (after failure or cancellation).
    async fn remove_target(&self, app: &App, task: &BackgroundTask) {
        if let Some(TaskParams::VfolderClone {
            target_id,
            target_host,
            ..
        }) = &task.params
        {
            if let Some(dir) = app.volumes.folder_dir(target_host.as_str(), *target_id) {
                let shown = dir.display().to_string();
                match tokio::task::spawn_blocking(move || copy::remove_tree(&dir)).await {
                    Ok(Ok(())) => {}
                    other => {
                        tracing::warn!(dir = %shown, result = ?other, "cannot remove a clone target's files; the runner's scan retries")
                    }
                }
            }
        }
    }

    async fn run_clone(
        &self,
        app: &App,
        task_id: Uuid,
        params: &TaskParams,
        held: &Arc<Held>,
        meta: &EventMetadata,
    ) -> RunOutcome {
        let TaskParams::VfolderClone {
            source_id,
            source_host,
            target_id,
            target_host,
        } = params
        else {
            return RunOutcome::Permanent("not a clone".into());
        };
        let (Some(src), Some(dst)) = (
            app.volumes.folder_dir(source_host.as_str(), *source_id),
            app.volumes.folder_dir(target_host.as_str(), *target_id),
        ) else {
            return RunOutcome::Permanent(format!(
                "volume {source_host} or {target_host} is not configured"
            ));
        };
        let plan_src = src.clone();
        let plan = match tokio::task::spawn_blocking(move || copy::plan(&plan_src)).await {
            Ok(Ok(plan)) => Arc::new(plan),
            Ok(Err(copy::CopyError::Io { source, .. }))
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return RunOutcome::Permanent(reasons::SOURCE_MISSING.to_string())
            }
            Ok(Err(e)) => return RunOutcome::Transient(e.to_string()),
            Err(e) => return RunOutcome::Transient(e.to_string()),
        };
        let total = plan.total_bytes;
        let (check_plan, check_dst) = (plan.clone(), dst.clone());
        let volumes = app.volumes.clone();
        let host = target_host.to_string();
        let space = tokio::task::spawn_blocking(move || {
            let needed = copy::bytes_needed(&check_plan, &check_dst);
            volumes.available(&host).map(|free| (needed, free))
        })
        .await;
        match space {
            Ok(Ok((needed, free))) if needed > free => {
                return RunOutcome::Permanent(format!(
                    "{}: the copy needs {needed} bytes, the volume has {free} free",
                    reasons::INSUFFICIENT_SPACE
                ))
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return RunOutcome::Transient(format!(
                    "cannot read the target volume's free space: {e}"
                ))
            }
            Err(e) => return RunOutcome::Transient(e.to_string()),
        }
        let control = held.control.clone();
        let parallelism = self.config.parallelism;
        let (copy_plan, copy_src, copy_dst, copy_control) =
            (plan.clone(), src.clone(), dst.clone(), control.clone());
        let mut copying = tokio::task::spawn_blocking(move || {
            // The target directory itself is created here (not with its parents): a
            // volume root that vanished is an error, not silently recreated.
            match std::fs::create_dir(&copy_dst) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(copy::CopyError::Io {
                        op: "create",
                        path: copy_dst.display().to_string(),
                        source,
                    })
                }
            }
            copy::execute(&copy_plan, &copy_src, &copy_dst, parallelism, &copy_control)
        });
        let copy_started = std::time::Instant::now();
        let mut persisted_step: u64 = u64::MAX;
        let mut last_persist: Option<tokio::time::Instant> = None;
        let mut last_check = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let result = loop {
            tokio::select! {
                r = &mut copying => break r,
                _ = tick.tick() => {}
            }
            let done = control.done.load(Ordering::Relaxed).min(total);
            held.live.send_if_modified(|l| {
                let changed = l.current != done || l.total != total;
                *l = Live {
                    current: done,
                    total,
                    message: "copying".to_string(),
                };
                changed
            });
            let step = done.saturating_mul(20).checked_div(total).unwrap_or(20);
            let now = tokio::time::Instant::now();
            if step != persisted_step
                && last_persist.is_none_or(|t| now.duration_since(t) >= Duration::from_millis(500))
            {
                persisted_step = step;
                last_persist = Some(now);
                let progress = BackgroundTaskCommand::Progress {
                    current: done,
                    total,
                    message: "copying".to_string(),
                    now: app.clock.now(),
                };
                if let Err(e) = app
                    .commands
                    .execute::<BackgroundTask>(&task_id.to_string(), progress, meta)
                    .await
                {
                    tracing::debug!(error = %e, "progress not recorded (the task ended?)");
                }
            }
            if now.duration_since(last_check) >= Duration::from_millis(500) {
                last_check = now;
                if let Ok(Some((_, last))) = app
                    .store
                    .load_last::<BackgroundTask>(&task_id.to_string())
                    .await
                {
                    if matches!(last, BackgroundTaskEvent::BackgroundTaskCancelled { .. }) {
                        held.cancelled.store(true, Ordering::Relaxed);
                        control.cancelled.store(true, Ordering::Relaxed);
                    }
                }
            }
        };
        match result {
            Ok(Ok(report)) => {
                metrics::counter!("sessiond_clone_bytes_copied_total")
                    .increment(report.bytes_copied);
                let seconds = copy_started.elapsed().as_secs_f64();
                if seconds > 0.0 {
                    metrics::histogram!("sessiond_clone_throughput_bytes_per_second")
                        .record(report.bytes_copied as f64 / seconds);
                }
                tracing::info!(bytes = report.bytes_copied, seconds, "clone copied");
                held.live.send_replace(Live {
                    current: total,
                    total,
                    message: "copied".to_string(),
                });
                RunOutcome::Done(report.message())
            }
            Ok(Err(copy::CopyError::Cancelled)) => {
                if held.cancelled.load(Ordering::Relaxed) {
                    RunOutcome::Cancelled
                } else {
                    RunOutcome::Stopped
                }
            }
            Ok(Err(e)) => RunOutcome::Transient(e.to_string()),
            Err(e) => RunOutcome::Transient(e.to_string()),
        }
    }
}

async fn run_delete(app: &App, vfolder_id: Uuid, host: &str) -> RunOutcome {
    let Some(dir) = app.volumes.folder_dir(host, vfolder_id) else {
        return RunOutcome::Permanent(format!("volume {host} is not configured"));
    };
    match tokio::task::spawn_blocking(move || copy::remove_tree(&dir)).await {
        Ok(Ok(())) => RunOutcome::Done("removed".to_string()),
        Ok(Err(e)) => RunOutcome::Transient(e.to_string()),
        Err(e) => RunOutcome::Transient(e.to_string()),
    }
}
