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
//! at the earliest 50 ms — or three times the last tick's duration, whichever is longer
//! — after the last tick ended (`debounce`): a pass reads its group's whole queue, and
//! under a steady stream of commands the scheduler keeps to a quarter of the time.
//!
//! Supervision (`crate::supervisor`): the loop is the worker `scheduler`; each group's
//! sweep and pass is the unit `scheduler:<group>`, the liveness check `liveness` and the
//! slot releases `slot_releases`. A panic in one group's pass marks that unit down and
//! skips it until its backoff passes; every other group goes on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use projections::models::documents;
use store::lease::Lease;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Scheduler, SchedulerError};
use crate::app::App;

const LIVENESS_LEASE: &str = "sessiond.liveness";

/// Starts the scheduler loop under the supervisor; it stops when `shutdown` turns true
/// (leases are released).
pub fn spawn_workers(app: App, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let scheduler = Arc::new(Scheduler::new(app.clone()));
    let stop = shutdown.clone();
    vec![app.supervisor.spawn(SCHEDULER, shutdown, move || {
        run(scheduler.clone(), stop.clone())
    })]
}

/// The supervised name of the scheduler loop.
pub const SCHEDULER: &str = "scheduler";
/// The supervised name of the agent liveness check.
pub const LIVENESS: &str = "liveness";
/// The supervised name of the slot releases.
pub const SLOT_RELEASES: &str = "slot_releases";

/// The supervised name of one scaling group's sweep and pass.
pub fn group_worker(group: &str) -> String {
    format!("scheduler:{group}")
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
        let started = tokio::time::Instant::now();
        if let Err(e) = tick(&scheduler, &mut leases).await {
            super::stats::failed_tick();
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "scheduler tick failed; retrying on the next tick");
        }
        let pause = debounce(started.elapsed());
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            r = applied.changed() => {
                if r.is_err() {
                    tokio::time::sleep(interval).await;
                }
                // Debounce bursts of applied batches, and keep a busy scheduler to a
                // bounded share of the CPU (a pass reads its group's whole queue).
                tokio::time::sleep(pause).await;
            }
            _ = shutdown.changed() => {}
        }
    }
    leases.release_all().await;
    tracing::info!("scheduler workers stopped");
}

/// The least time between the end of a tick and a tick woken by applied events: 50 ms,
/// or three times what the last tick took, so that under a steady stream of commands
/// the scheduler uses at most a quarter of the time however long its queues grow (the
/// timer tick is unaffected).
fn debounce(last_tick: Duration) -> Duration {
    last_tick.saturating_mul(3).max(Duration::from_millis(50))
}

async fn tick(scheduler: &Scheduler, leases: &mut Leases) -> Result<(), SchedulerError> {
    let app = scheduler.app();
    let supervisor = &app.supervisor;
    supervisor.fault_point(SCHEDULER);
    for group in documents::scaling_groups().all(app.db()).await? {
        if !leases
            .hold(app, &format!("sessiond.scheduler.{}", group.name))
            .await
        {
            continue;
        }
        let unit = group_worker(&group.name);
        let pass = supervisor
            .guard(&unit, async {
                supervisor.fault_point(&unit);
                scheduler.run_group(&group).await
            })
            .await;
        if let Some(Err(e)) = pass {
            // A store failure, not this group's fault: counted, retried on the next tick.
            super::stats::failed_tick();
            tracing::warn!(group = %group.name, error = %crate::telemetry::error_chain(&e), "scheduling pass failed; retrying on the next tick");
        }
    }
    if leases.hold(app, LIVENESS_LEASE).await {
        let checked = supervisor
            .guard(LIVENESS, async {
                supervisor.fault_point(LIVENESS);
                super::liveness::check_agents(app).await
            })
            .await;
        if let Some(Err(e)) = checked {
            super::stats::failed_tick();
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "liveness check failed; retrying on the next tick");
        }
        let released = supervisor
            .guard(SLOT_RELEASES, async {
                supervisor.fault_point(SLOT_RELEASES);
                super::releases::release_due(app).await
            })
            .await;
        if let Some(Err(e)) = released {
            super::stats::failed_tick();
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "slot releases failed; retrying on the next tick");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quick_tick_is_followed_by_the_fifty_millisecond_debounce() {
        assert_eq!(
            debounce(Duration::from_millis(2)),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn a_slow_tick_waits_three_times_its_duration_before_an_event_driven_one() {
        assert_eq!(
            debounce(Duration::from_millis(40)),
            Duration::from_millis(120)
        );
    }
}
