//! `sessiond agent`: the process agent (SPEC §9). A separate process that talks to a
//! server only through the agent API (§4): it registers with its slots, heartbeats,
//! long-polls its assignments and, for each session placed on it, runs a local process
//! (or, with `--simulate`, only pretends to) and reports its progress and its end.
//!
//! # How it works
//! - One loop follows the assignments (`?wait=` long-poll with `?version=`). A `start`
//!   it does not know yet, for a session still SCHEDULED, starts a kernel task; one for
//!   a session already further along was started by an earlier run of this agent (its
//!   process is gone: reported `failed`, `agent-restarted`). A `stop` (an abort notice)
//!   stops the kernel task, or — when nothing of the session runs here — is
//!   acknowledged at once with `terminated`.
//! - A kernel task reports `preparing`, `prepared`, `creating`, starts the process (in
//!   [`process`]), reports `started`, and waits for the process to exit, for a stop, or
//!   for the batch timeout; then sends the final report with the last 16 KiB of stdout
//!   and stderr. Reports are retried with backoff while the server is unreachable.
//! - A heartbeat task posts a heartbeat every `--heartbeat-secs`; when the server no
//!   longer knows the agent (404: e.g. a new store) it registers again.
//! - On SIGTERM or SIGINT every kernel is stopped (SIGTERM to its group, SIGKILL after
//!   the grace period) and reported `failed` (`agent-stopped`); no process is left.
//! - At start-up, process groups a killed earlier run left behind (found through the
//!   state files in the work directory) are killed, and those sessions are reported
//!   `agent-restarted` when the server still lists them.

pub mod client;
pub mod process;

use secrecy::SecretString;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

use client::{AssignmentWire, Backoff, Client, ClientError, KernelReport, LogTails};
use domain::session::reasons::{AGENT_RESTARTED, AGENT_STOPPED, BATCH_TIMEOUT};
use process::{Exit, Kernel};

/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long one long-poll waits for a change.
const LONG_POLL: Duration = Duration::from_secs(25);

/// Delays of a simulated kernel (`--simulate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Simulation {
    /// Between two progress reports.
    pub step: Duration,
    /// How long a simulated batch session runs before it exits with 0.
    pub run: Duration,
}

/// Everything an agent needs to run.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The server's base URL.
    pub server: String,
    /// The agent key (bound to `agent_id`) or an admin key.
    pub key: SecretString,
    /// This agent's id.
    pub agent_id: String,
    /// The scaling group it serves.
    pub scaling_group: String,
    /// Its capacity as the API takes it (`{"cpu": 4, "mem": "8g"}`).
    pub slots: serde_json::Value,
    /// The address it registers with.
    pub addr: String,
    /// Where session directories go.
    pub work_dir: PathBuf,
    /// Between heartbeats.
    pub heartbeat: Duration,
    /// Between SIGTERM and SIGKILL when a session is stopped.
    pub stop_grace: Duration,
    /// Run no process; report each step after these delays.
    pub simulate: Option<Simulation>,
}

/// Why the agent stopped with a failure.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration cannot work.
    #[error("{0}")]
    Config(String),
    /// The server refused the registration for good (a bad key, an unknown group).
    #[error("the server refused the registration: {0}")]
    Registration(ClientError),
    /// The work directory cannot be used.
    #[error("cannot use the work directory {path}: {source}")]
    WorkDir {
        /// The directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Parses `cpu=4,mem=8g` into the API's slot object: numbers where the value is a plain
/// number, strings otherwise (sizes such as `8g`); the server validates both.
pub fn parse_slots(text: &str) -> Result<serde_json::Value, String> {
    let mut map = serde_json::Map::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!("'{part}' is not key=value (e.g. cpu=4,mem=8g)"));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || v.is_empty() {
            return Err(format!("'{part}' is not key=value (e.g. cpu=4,mem=8g)"));
        }
        let value = match v.parse::<u64>() {
            Ok(n) => serde_json::Value::from(n),
            Err(_) => serde_json::Value::from(v),
        };
        if map.insert(k.to_string(), value).is_some() {
            return Err(format!("'{k}' is given twice"));
        }
    }
    if map.is_empty() {
        return Err("no slots given (e.g. cpu=4,mem=8g)".into());
    }
    Ok(serde_json::Value::Object(map))
}

/// What the agent knows of one session it runs.
#[derive(Debug)]
struct Running {
    /// Tells the kernel task to stop.
    stop: watch::Sender<bool>,
}

/// State shared by the agent's tasks.
#[derive(Debug)]
struct Shared {
    config: AgentConfig,
    client: Client,
    /// Sessions with a kernel task here.
    running: Mutex<HashMap<String, Running>>,
    /// Sessions a previous run of this agent had started (their processes are gone).
    restarted: Mutex<HashSet<String>>,
    /// Sessions whose final report is being sent or was accepted: never started again
    /// (a refused one is forgotten, see `send_final`).
    finished: Mutex<HashSet<String>>,
    /// The agent is shutting down: kernels stopped now report `agent-stopped`.
    stopping: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the agent until `shutdown` turns true (SIGTERM / SIGINT in the binary), then
/// stops every kernel it runs.
pub async fn run(
    config: AgentConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), AgentError> {
    let client = Client::new(&config.server, config.key.clone(), &config.agent_id)
        .map_err(|e| AgentError::Config(e.to_string()))?;
    if config.simulate.is_none() {
        std::fs::create_dir_all(&config.work_dir).map_err(|source| AgentError::WorkDir {
            path: config.work_dir.display().to_string(),
            source,
        })?;
    }
    let leftovers = if config.simulate.is_none() {
        process::reconcile_leftovers(&config.work_dir)
    } else {
        vec![]
    };
    let shared = Arc::new(Shared {
        config,
        client,
        running: Mutex::new(HashMap::new()),
        restarted: Mutex::new(leftovers.into_iter().collect()),
        finished: Mutex::new(HashSet::new()),
        stopping: AtomicBool::new(false),
    });
    if !register(&shared, &mut shutdown).await? {
        return Ok(());
    }
    tracing::info!(agent_id = %shared.config.agent_id, group = %shared.config.scaling_group, "agent registered");
    let mut tasks: JoinSet<()> = JoinSet::new();
    tasks.spawn(heartbeats(shared.clone(), shutdown.clone()));
    follow(&shared, &mut tasks, &mut shutdown).await;
    // Shutting down: stop every kernel, wait for their reports (bounded by the grace).
    shared.stopping.store(true, Ordering::SeqCst);
    for r in lock(&shared.running).values() {
        let _ = r.stop.send(true);
    }
    let deadline = shared
        .config
        .stop_grace
        .saturating_add(Duration::from_secs(10));
    let drained = tokio::time::timeout(deadline, async {
        while tasks.join_next().await.is_some() {
            if lock(&shared.running).is_empty() {
                break;
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some session reports were not sent before shutdown");
    }
    tasks.abort_all();
    tracing::info!("agent stopped");
    Ok(())
}

/// Registers, retrying while the server is unreachable; `false` when shut down first.
async fn register(
    shared: &Shared,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<bool, AgentError> {
    let c = &shared.config;
    let mut backoff = Backoff::new(MAX_BACKOFF);
    loop {
        match shared
            .client
            .register(&c.scaling_group, &c.addr, &c.slots)
            .await
        {
            Ok(()) => return Ok(true),
            Err(e @ (ClientError::Refused { .. } | ClientError::Config(_))) => {
                return Err(AgentError::Registration(e))
            }
            Err(ClientError::Retryable(e)) => {
                tracing::warn!(error = %e, server = %c.server, "cannot register yet; retrying");
            }
        }
        if wait_or_shutdown(backoff.next_delay(), shutdown).await {
            return Ok(false);
        }
    }
}

/// Sleeps `d`; `true` when shutdown came first.
async fn wait_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = shutdown.changed() => true,
    }
}

/// Posts heartbeats; registers again when the server has forgotten the agent.
async fn heartbeats(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if wait_or_shutdown(shared.config.heartbeat, &mut shutdown).await {
            return;
        }
        match shared.client.heartbeat().await {
            Ok(()) => {}
            Err(e) if e.is_status(404) => {
                tracing::warn!("the server does not know this agent any more; registering again");
                register_again(&shared).await;
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

/// Registers once more (the server forgot the agent, or came back); a failure is
/// logged, and the next heartbeat or poll tries again.
async fn register_again(shared: &Shared) {
    let c = &shared.config;
    if let Err(e) = shared
        .client
        .register(&c.scaling_group, &c.addr, &c.slots)
        .await
    {
        tracing::warn!(error = %e, "registering again failed");
    }
}

/// Follows the assignments until shutdown.
async fn follow(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let mut version: Option<String> = None;
    let mut backoff = Backoff::new(MAX_BACKOFF);
    let mut failing = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let polled = tokio::select! {
            r = shared.client.assignments(LONG_POLL, version.as_deref()) => r,
            _ = shutdown.changed() => return,
        };
        match polled {
            Ok(a) => {
                if failing {
                    // The server is back (maybe restarted): make sure it knows us.
                    register_again(shared).await;
                    failing = false;
                }
                backoff.reset();
                act_on(shared, tasks, &a.items);
                version = Some(a.version);
            }
            Err(e) => {
                if e.is_status(404) {
                    register_again(shared).await;
                }
                tracing::warn!(error = %e, "cannot read assignments; retrying");
                failing = true;
                version = None;
                if wait_or_shutdown(backoff.next_delay(), shutdown).await {
                    return;
                }
            }
        }
        // Reap finished kernel tasks (their panics are logged, never fatal).
        while let Some(done) = tasks.try_join_next() {
            if let Err(e) = done {
                if e.is_panic() {
                    tracing::error!("a kernel task panicked");
                }
            }
        }
    }
}

/// Starts and stops kernels so that this agent does what `items` say.
fn act_on(shared: &Arc<Shared>, tasks: &mut JoinSet<()>, items: &[AssignmentWire]) {
    let listed: HashSet<&str> = items.iter().map(|a| a.session_id.as_str()).collect();
    for a in items {
        let id = a.session_id.as_str();
        let known = lock(&shared.running).contains_key(id);
        match a.action.as_str() {
            "start" if known => {}
            "start" => {
                if lock(&shared.finished).contains(id) {
                    continue; // its final report is on its way
                }
                let was_ours = lock(&shared.restarted).remove(id);
                if a.status == "SCHEDULED" && !was_ours {
                    spawn_kernel(shared, tasks, a.clone());
                } else {
                    // Started by an earlier run of this agent: its process is gone.
                    final_report(shared, tasks, id, failed(AGENT_RESTARTED));
                }
            }
            "stop" if known => {
                if let Some(r) = lock(&shared.running).get(id) {
                    let _ = r.stop.send(true);
                }
            }
            "stop" => {
                if lock(&shared.finished).contains(id) {
                    continue;
                }
                let report = if lock(&shared.restarted).remove(id) {
                    failed(AGENT_RESTARTED)
                } else {
                    // Nothing of it runs here (it never started, or it ended already).
                    terminated(None)
                };
                final_report(shared, tasks, id, report);
            }
            other => tracing::warn!(session_id = %id, action = %other, "unknown assignment action"),
        }
    }
    // A kernel whose session is no longer assigned at all is stopped too: the
    // assignments are the truth.
    for (id, r) in lock(&shared.running).iter() {
        if !listed.contains(id.as_str()) {
            let _ = r.stop.send(true);
        }
    }
}

fn failed(reason: &str) -> KernelReport {
    KernelReport {
        event: "failed",
        exit_code: None,
        reason: Some(reason.to_string()),
        logs: None,
    }
}

fn terminated(exit_code: Option<i32>) -> KernelReport {
    KernelReport {
        event: "terminated",
        exit_code,
        reason: None,
        logs: None,
    }
}

/// Sends a final report for a session that has no kernel task here (once).
fn final_report(shared: &Arc<Shared>, tasks: &mut JoinSet<()>, id: &str, report: KernelReport) {
    if !lock(&shared.finished).insert(id.to_string()) {
        return;
    }
    let shared = shared.clone();
    let id = id.to_string();
    tasks.spawn(async move {
        send_final(&shared, &id, &report).await;
    });
}

/// Sends a session's final report. When the server refuses it, the session is not
/// left marked finished here: the next assignments decide again what to do with it
/// (otherwise a refused report would leave it alive on the server and ignored here).
async fn send_final(shared: &Shared, session_id: &str, report: &KernelReport) {
    if !send(shared, session_id, report).await {
        lock(&shared.finished).remove(session_id);
    }
}

/// Sends a report, retrying while the server is unreachable (at most about a minute:
/// the assignments bring an unacknowledged stop back anyway). `false` when the server
/// refused it (the session moved on meanwhile).
async fn send(shared: &Shared, session_id: &str, report: &KernelReport) -> bool {
    let mut backoff = Backoff::new(MAX_BACKOFF);
    for _ in 0..20 {
        match shared.client.report(session_id, report).await {
            Ok(()) => return true,
            Err(ClientError::Retryable(e)) => {
                tracing::warn!(%session_id, event = report.event, error = %e, "report failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                tracing::info!(%session_id, event = report.event, error = %e, "report refused");
                return false;
            }
        }
    }
    false
}

fn spawn_kernel(shared: &Arc<Shared>, tasks: &mut JoinSet<()>, a: AssignmentWire) {
    let (tx, rx) = watch::channel(false);
    lock(&shared.running).insert(a.session_id.clone(), Running { stop: tx });
    let shared = shared.clone();
    tasks.spawn(async move {
        let id = a.session_id.clone();
        let report = run_kernel(&shared, &a, rx).await;
        lock(&shared.finished).insert(id.clone());
        send_final(&shared, &id, &report).await;
        lock(&shared.running).remove(&id);
    });
}

/// What ended a kernel's wait.
enum Ended {
    Exited(std::io::Result<Exit>),
    Stopped,
    TimedOut,
}

/// Brings a session up, runs it and returns its final report.
async fn run_kernel(
    shared: &Shared,
    a: &AssignmentWire,
    mut stop: watch::Receiver<bool>,
) -> KernelReport {
    let id = a.session_id.as_str();
    // Progress; a stop (or a refusal: the session was cancelled meanwhile) ends it
    // before anything runs.
    for step in ["preparing", "prepared", "creating"] {
        if let Some(sim) = shared.config.simulate {
            if !sim.step.is_zero() && wait_stop(sim.step, &mut stop).await {
                return terminated(None);
            }
        }
        if *stop.borrow() || !send(shared, id, &KernelReport::progress(step)).await {
            return terminated(None);
        }
    }
    let command = a
        .startup_command
        .as_deref()
        .filter(|c| !c.trim().is_empty());
    let batch = a.session_type == "batch";
    let timeout = a.batch_timeout.filter(|_| batch).map(Duration::from_secs);
    if let Some(sim) = shared.config.simulate {
        if !send(shared, id, &KernelReport::progress("started")).await {
            return terminated(None);
        }
        // A simulated batch session runs `run`; an interactive one until stopped.
        let run = if batch { Some(sim.run) } else { None };
        let until = match (run, timeout) {
            (Some(r), Some(t)) if t < r => Some((t, true)),
            (Some(r), _) => Some((r, false)),
            (None, Some(t)) => Some((t, true)),
            (None, None) => None,
        };
        let stopped = match until {
            Some((d, _)) => wait_stop(d, &mut stop).await,
            None => {
                let _ = stop.wait_for(|s| *s).await;
                true
            }
        };
        return match (stopped, until) {
            (true, _) => terminated(None),
            (false, Some((_, true))) => failed(BATCH_TIMEOUT),
            (false, _) => terminated(Some(0)),
        };
    }
    let Some(command) = command else {
        // An interactive session without a command: a placeholder until stopped.
        if !send(shared, id, &KernelReport::progress("started")).await {
            return terminated(None);
        }
        let _ = stop.wait_for(|s| *s).await;
        return terminated(None);
    };
    let mut kernel = match Kernel::spawn(&shared.config.work_dir, id, &a.name, command) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(session_id = %id, error = %e, "cannot start the session's process");
            return failed("process-start-failed");
        }
    };
    tracing::info!(session_id = %id, "process started");
    if !send(shared, id, &KernelReport::progress("started")).await {
        let _ = kernel.stop(shared.config.stop_grace).await;
        return with_logs(terminated(None), &kernel);
    }
    let grace = shared.config.stop_grace;
    let ended = tokio::select! {
        exit = kernel.wait() => Ended::Exited(exit),
        _ = stop.wait_for(|s| *s) => Ended::Stopped,
        _ = sleep_opt(timeout) => Ended::TimedOut,
    };
    let report = match ended {
        Ended::Exited(Ok(Exit::Code(0))) => terminated(Some(0)),
        Ended::Exited(Ok(Exit::Code(code))) => KernelReport {
            event: "failed",
            exit_code: Some(code),
            reason: Some(format!("exit-code-{code}")),
            logs: None,
        },
        Ended::Exited(Ok(Exit::Signal(sig))) => failed(&process::signal_reason(sig)),
        Ended::Exited(Err(e)) => {
            tracing::warn!(session_id = %id, error = %e, "lost the session's process");
            failed("process-lost")
        }
        Ended::Stopped => {
            let exit = kernel.stop(grace).await;
            let code = match exit {
                Ok(Exit::Code(c)) => Some(c),
                _ => None,
            };
            // Stopped because the agent itself is going away: say so.
            if shared.stopping.load(Ordering::SeqCst) {
                failed(AGENT_STOPPED)
            } else {
                terminated(code)
            }
        }
        Ended::TimedOut => {
            let _ = kernel.stop(grace).await;
            failed(BATCH_TIMEOUT)
        }
    };
    tracing::info!(session_id = %id, event = report.event, reason = ?report.reason, "process ended");
    with_logs(report, &kernel)
}

fn with_logs(mut report: KernelReport, kernel: &Kernel) -> KernelReport {
    let (stdout, stderr) = kernel.tails();
    report.logs = Some(LogTails { stdout, stderr });
    report
}

/// Sleeps `d`, or forever for `None`.
async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Waits `d`; `true` when told to stop first.
async fn wait_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_key_value_pairs_with_numbers_where_they_are_numbers() {
        assert_eq!(
            parse_slots("cpu=4, mem=8g,cuda.device=1").ok(),
            Some(serde_json::json!({"cpu": 4, "mem": "8g", "cuda.device": 1}))
        );
        for bad in ["", "cpu", "cpu=", "=4", "cpu=1,cpu=2"] {
            assert!(parse_slots(bad).is_err(), "{bad}");
        }
    }
}
