//! The scheduler's background loops, started by `sessiond serve`.
//!
//! One task per process. On every tick it makes sure it holds, or tries to take, the
//! lease of each scaling group (`sessiond.scheduler.<group>`: PostgreSQL advisory locks
//! on dedicated connections, so across replicas exactly one scheduler and one sweeper
//! run per group, and a dead holder's lease frees itself). For each group it holds it
//! sweeps expired pending sessions, then schedules. Holding the `sessiond.liveness` lease
//! it also checks agent heartbeats and releases the slots of ended sessions.
//!
//! A tick runs on the timer (`scheduler_interval_ms`, default 1 s) and whenever this
//! process's projections applied new events (new pending sessions, released capacity),
//! at most once per 50 ms.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use projections::lease::Lease;
use projections::models::docs;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Scheduler, SchedulerError};
use crate::app::App;

const LIVENESS_LEASE: &str = "sessiond.liveness";

/// Starts the scheduler loop; it stops when `shutdown` turns true (leases are released).
pub fn spawn_workers(app: App, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let scheduler = Arc::new(Scheduler::new(app));
    vec![tokio::spawn(run(scheduler, shutdown))]
}

#[derive(Default)]
struct Leases {
    held: HashMap<String, Lease>,
    spare: Option<sqlx::PgConnection>,
}

impl Leases {
    /// Whether this process holds `name` now (taking it if free).
    async fn hold(&mut self, app: &App, name: &str) -> bool {
        if let Some(lease) = self.held.get_mut(name) {
            if lease.alive().await {
                return true;
            }
            tracing::warn!(lease = name, "lease lost");
            if let Some(l) = self.held.remove(name) {
                l.release().await;
            }
        }
        match Lease::acquire(app.db(), name, &mut self.spare).await {
            Ok(Some(lease)) => {
                tracing::info!(lease = name, "lease taken");
                self.held.insert(name.to_string(), lease);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(lease = name, error = %e, "cannot take lease");
                false
            }
        }
    }

    async fn release_all(&mut self) {
        for (_, l) in self.held.drain() {
            l.release().await;
        }
    }
}

async fn run(scheduler: Arc<Scheduler>, mut shutdown: watch::Receiver<bool>) {
    let app = scheduler.app().clone();
    let interval = Duration::from_millis(app.settings.scheduler_interval_ms.max(10));
    let mut applied = app.engine.applied();
    let mut leases = Leases::default();
    tracing::info!(?interval, "scheduler workers started");
    while !*shutdown.borrow() {
        if let Err(e) = tick(&scheduler, &mut leases).await {
            super::stats::SchedulerStats::add(&app.scheduler_stats.failed_ticks, 1);
            tracing::warn!(error = %e, "scheduler tick failed; retrying on the next tick");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            r = applied.changed() => {
                if r.is_err() {
                    tokio::time::sleep(interval).await;
                }
                // Debounce bursts of applied batches.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ = shutdown.changed() => {}
        }
    }
    leases.release_all().await;
    tracing::info!("scheduler workers stopped");
}

async fn tick(scheduler: &Scheduler, leases: &mut Leases) -> Result<(), SchedulerError> {
    let app = scheduler.app();
    for group in docs::scaling_groups().all(app.db()).await? {
        if !leases
            .hold(app, &format!("sessiond.scheduler.{}", group.name))
            .await
        {
            continue;
        }
        scheduler.run_group(&group).await?;
    }
    if leases.hold(app, LIVENESS_LEASE).await {
        scheduler.housekeeping().await?;
    }
    Ok(())
}
