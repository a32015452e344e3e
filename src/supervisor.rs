//! Supervised background work (STYLE #11). Every background worker of `sessiond serve`
//! — each projection runner, the scheduler loop and, inside it, each scaling group's
//! pass, the sweeper, agent liveness, slot releases, the shared log follower and the
//! key watcher — runs under the [`Supervisor`]:
//!
//! - a panic is caught, logged with the worker's name and the panic message, and
//!   counted (`sessiond_worker_panics_total{worker}`);
//! - the worker is marked down (`sessiond_worker_up{worker} 0`, and `/readyz` answers
//!   503 `not_ready` naming it) until it runs again;
//! - it restarts after a backoff that doubles from [`SupervisorConfig::first_backoff`] up
//!   to [`SupervisorConfig::max_backoff`] and resets once it has run
//!   [`SupervisorConfig::healthy_after`] without failing;
//! - a worker that returns although no shutdown was asked is treated like a failure.
//!
//! Two forms: [`Supervisor::spawn`] supervises a long-running task; [`Supervisor::guard`]
//! supervises one unit of work inside a loop (one scaling group's pass), so a failure
//! in one group never stops the others.
//!
//! Test hook: [`Supervisor::inject_panic`] arms a panic that the worker's next
//! [`Supervisor::fault_point`] raises (nothing in the HTTP API can arm it).

use futures::FutureExt;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Restart timing.
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// Wait before the first restart.
    pub first_backoff: Duration,
    /// Longest wait between restarts.
    pub max_backoff: Duration,
    /// A worker that ran this long without failing restarts with the first backoff again.
    pub healthy_after: Duration,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            healthy_after: Duration::from_secs(60),
        }
    }
}

/// What the supervisor knows of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerHealth {
    /// Running (or, for a guarded unit, not failing).
    pub up: bool,
    /// Panics caught.
    pub panics: u64,
    /// Restarts after a failure.
    pub restarts: u64,
    /// The last failure, for `/readyz` and logs.
    pub last_failure: Option<String>,
}

#[derive(Debug)]
struct Unit {
    health: WorkerHealth,
    backoff: Duration,
    retry_at: Option<Instant>,
    since: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    units: Mutex<BTreeMap<String, Unit>>,
    armed: Mutex<HashSet<String>>,
    /// Held workers (test hook), and whether each has stopped at its hold point.
    held: Mutex<BTreeMap<String, bool>>,
    config: SupervisorConfig,
}

/// The supervisor of this process's background work; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

/// Describes the worker metrics once.
pub fn describe_metrics() {
    metrics::describe_counter!(
        "sessiond_worker_panics_total",
        "Panics caught in background workers, by worker."
    );
    metrics::describe_counter!(
        "sessiond_worker_restarts_total",
        "Restarts of background workers after a failure, by worker."
    );
    metrics::describe_gauge!(
        "sessiond_worker_up",
        "1 while a background worker runs, 0 while it is down."
    );
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

impl Supervisor {
    /// A supervisor with these restart timings.
    pub fn new(config: SupervisorConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                ..Inner::default()
            }),
        }
    }

    fn with_unit<R>(&self, name: &str, f: impl FnOnce(&mut Unit) -> R) -> R {
        let mut units = self.inner.units.lock().unwrap_or_else(|p| p.into_inner());
        let unit = units.entry(name.to_string()).or_insert_with(|| Unit {
            health: WorkerHealth {
                up: true,
                panics: 0,
                restarts: 0,
                last_failure: None,
            },
            backoff: self.inner.config.first_backoff,
            retry_at: None,
            since: Instant::now(),
        });
        f(unit)
    }

    fn mark_up(&self, name: &str) {
        self.with_unit(name, |u| {
            if !u.health.up {
                u.since = Instant::now();
            }
            u.health.up = true;
            u.retry_at = None;
        });
        metrics::gauge!("sessiond_worker_up", "worker" => name.to_string()).set(1.0);
    }

    /// Records a failure; returns how long to wait before the next attempt.
    fn mark_failed(&self, name: &str, failure: String, panicked: bool) -> Duration {
        let config = &self.inner.config;
        let wait = self.with_unit(name, |u| {
            if u.health.up && u.since.elapsed() >= config.healthy_after {
                u.backoff = config.first_backoff;
            }
            let wait = u.backoff;
            u.backoff = u.backoff.saturating_mul(2).min(config.max_backoff);
            u.health.up = false;
            u.health.last_failure = Some(failure.clone());
            if panicked {
                u.health.panics = u.health.panics.saturating_add(1);
            }
            u.retry_at = Instant::now().checked_add(wait);
            wait
        });
        if panicked {
            metrics::counter!("sessiond_worker_panics_total", "worker" => name.to_string())
                .increment(1);
        }
        metrics::gauge!("sessiond_worker_up", "worker" => name.to_string()).set(0.0);
        tracing::error!(worker = name, failure = %failure, retry_in = ?wait, "background worker failed; restarting it after the backoff");
        wait
    }

    fn count_restart(&self, name: &str) {
        self.with_unit(name, |u| {
            u.health.restarts = u.health.restarts.saturating_add(1)
        });
        metrics::counter!("sessiond_worker_restarts_total", "worker" => name.to_string())
            .increment(1);
    }

    /// Runs `make()`'s future as the worker `name` until `shutdown` turns true,
    /// restarting it (with backoff) whenever it panics or returns early.
    pub fn spawn<F, Fut>(
        &self,
        name: impl Into<String>,
        mut shutdown: watch::Receiver<bool>,
        mut make: F,
    ) -> JoinHandle<()>
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        let this = self.clone();
        tokio::spawn(async move {
            let mut first = true;
            while !*shutdown.borrow() {
                if !first {
                    this.count_restart(&name);
                }
                first = false;
                this.mark_up(&name);
                let outcome = AssertUnwindSafe(make()).catch_unwind().await;
                if *shutdown.borrow() {
                    break;
                }
                let wait = match outcome {
                    Ok(()) => this.mark_failed(&name, "returned without a shutdown".into(), false),
                    Err(payload) => this.mark_failed(&name, panic_message(payload.as_ref()), true),
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
            tracing::debug!(worker = %name, "worker stopped");
        })
    }

    /// Runs one unit of work of the worker `name` (e.g. one scaling group's pass),
    /// catching a panic. Returns `None` when it panicked, or when an earlier failure's
    /// backoff has not passed yet (the unit is skipped, and stays down, until then).
    pub async fn guard<T, Fut>(&self, name: &str, work: Fut) -> Option<T>
    where
        Fut: Future<Output = T>,
    {
        let waiting = self.with_unit(name, |u| u.retry_at.is_some_and(|at| Instant::now() < at));
        if waiting {
            return None;
        }
        let was_down = self.with_unit(name, |u| !u.health.up);
        match AssertUnwindSafe(work).catch_unwind().await {
            Ok(value) => {
                if was_down {
                    self.count_restart(name);
                }
                self.mark_up(name);
                Some(value)
            }
            Err(payload) => {
                self.mark_failed(name, panic_message(payload.as_ref()), true);
                None
            }
        }
    }

    /// Forgets a unit (e.g. the pass of a scaling group that no longer exists).
    pub fn forget(&self, name: &str) {
        if let Ok(mut units) = self.inner.units.lock() {
            units.remove(name);
        }
    }

    /// The workers that are down now, with their last failure.
    pub fn down(&self) -> Vec<(String, String)> {
        self.inner
            .units
            .lock()
            .map(|units| {
                units
                    .iter()
                    .filter(|(_, u)| !u.health.up)
                    .map(|(n, u)| (n.clone(), u.health.last_failure.clone().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What the supervisor knows of `name`.
    pub fn health(&self, name: &str) -> Option<WorkerHealth> {
        self.inner
            .units
            .lock()
            .ok()
            .and_then(|units| units.get(name).map(|u| u.health.clone()))
    }

    /// Test hook: the next [`Supervisor::fault_point`] of `name` panics.
    pub fn inject_panic(&self, name: &str) {
        if let Ok(mut armed) = self.inner.armed.lock() {
            armed.insert(name.to_string());
        }
    }

    /// Test hook: the worker `name` stops working at its next
    /// [`Supervisor::hold_point`] until [`Supervisor::release`] (projection runners:
    /// read models held back while commands go on).
    pub fn hold(&self, name: &str) {
        if let Ok(mut held) = self.inner.held.lock() {
            held.insert(name.to_string(), false);
        }
    }

    /// Test hook: ends [`Supervisor::hold`] of `name`.
    pub fn release(&self, name: &str) {
        if let Ok(mut held) = self.inner.held.lock() {
            held.remove(name);
        }
    }

    /// Whether the held worker `name` has stopped at its hold point (no work of it is
    /// under way until it is released).
    pub fn is_holding(&self, name: &str) -> bool {
        self.inner
            .held
            .lock()
            .is_ok_and(|held| held.get(name).copied().unwrap_or(false))
    }

    /// A [`Supervisor::fault_point`] that also answers whether `name` is held
    /// ([`Supervisor::hold`]): the worker does no work while it answers `true`.
    pub fn hold_point(&self, name: &str) -> bool {
        self.fault_point(name);
        self.inner
            .held
            .lock()
            .map(|mut held| match held.get_mut(name) {
                Some(stopped) => {
                    *stopped = true;
                    true
                }
                None => false,
            })
            .unwrap_or(false)
    }

    /// Where a worker may be made to panic by [`Supervisor::inject_panic`]; a no-op
    /// otherwise.
    pub fn fault_point(&self, name: &str) {
        let armed = self
            .inner
            .armed
            .lock()
            .map(|mut a| a.remove(name))
            .unwrap_or(false);
        if armed {
            #[allow(clippy::panic)]
            {
                panic!("injected panic in worker '{name}' (test hook)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick() -> Supervisor {
        Supervisor::new(SupervisorConfig {
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            healthy_after: Duration::from_secs(60),
        })
    }

    #[tokio::test]
    async fn a_worker_that_panics_is_restarted_and_counted() {
        let sup = quick();
        let (stop, shutdown) = watch::channel(false);
        let runs = Arc::new(AtomicU32::new(0));
        let (done, mut ran_again) = watch::channel(0u32);
        let counter = runs.clone();
        let handle = sup.spawn("w", shutdown, move || {
            let counter = counter.clone();
            let done = done.clone();
            async move {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let _ = done.send(n.saturating_add(1));
                if n == 0 {
                    panic!("boom");
                }
                std::future::pending::<()>().await;
            }
        });
        ran_again.wait_for(|n| *n >= 2).await.unwrap();
        let health = sup.health("w").unwrap();
        assert_eq!(health.panics, 1);
        assert_eq!(health.restarts, 1);
        assert!(health.up);
        assert_eq!(health.last_failure.as_deref(), Some("boom"));
        let _ = stop.send(true);
        handle.abort();
    }

    #[tokio::test]
    async fn a_guarded_unit_that_panics_is_down_until_it_succeeds_again() {
        let sup = Supervisor::new(SupervisorConfig {
            first_backoff: Duration::ZERO,
            ..SupervisorConfig::default()
        });
        let r: Option<()> = sup.guard("g", async { panic!("bad group") }).await;
        assert_eq!(r, None);
        assert_eq!(sup.down(), vec![("g".to_string(), "bad group".to_string())]);
        assert_eq!(sup.guard("g", async { 7 }).await, Some(7));
        assert!(sup.down().is_empty());
        assert_eq!(
            sup.health("g").map(|h| (h.panics, h.restarts)),
            Some((1, 1))
        );
    }

    #[tokio::test]
    async fn a_unit_in_backoff_is_skipped() {
        let sup = Supervisor::new(SupervisorConfig {
            first_backoff: Duration::from_secs(3600),
            ..SupervisorConfig::default()
        });
        let _: Option<()> = sup.guard("g", async { panic!("x") }).await;
        assert_eq!(sup.guard("g", async { 1 }).await, None);
    }

    #[test]
    fn an_injected_panic_fires_once_at_the_fault_point() {
        let sup = quick();
        sup.fault_point("w");
        sup.inject_panic("w");
        assert!(std::panic::catch_unwind(|| sup.fault_point("w")).is_err());
        sup.fault_point("w");
    }
}
