//! Counters of the scheduler's work in this process, exported on `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// What this process's scheduler workers did since start.
#[derive(Debug, Default)]
pub struct SchedulerStats {
    /// Scheduling passes over a group.
    pub passes: AtomicU64,
    /// Sessions scheduled.
    pub scheduled: AtomicU64,
    /// `SessionSchedulingFailed` events appended.
    pub failures_recorded: AtomicU64,
    /// Placement batches redone one by one after an optimistic conflict.
    pub conflicts: AtomicU64,
    /// Sessions cancelled by the pending-timeout sweeper.
    pub timed_out: AtomicU64,
    /// Sessions cancelled because a dependency failed.
    pub dependency_failed: AtomicU64,
    /// Agents marked LOST.
    pub agents_lost: AtomicU64,
    /// Sessions moved to ERROR `agent-lost`.
    pub agent_lost_errors: AtomicU64,
    /// Slot releases appended.
    pub releases: AtomicU64,
    /// Ticks that failed (store or read-model errors).
    pub failed_ticks: AtomicU64,
}

impl SchedulerStats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Prometheus text exposition of every counter.
    pub fn render(&self, out: &mut String) {
        let rows: [(&str, &str, &AtomicU64); 10] = [
            (
                "sessiond_scheduler_passes_total",
                "Scheduling passes over a scaling group.",
                &self.passes,
            ),
            (
                "sessiond_scheduler_scheduled_total",
                "Sessions scheduled.",
                &self.scheduled,
            ),
            (
                "sessiond_scheduler_failures_recorded_total",
                "SessionSchedulingFailed events appended (only on a changed failure set).",
                &self.failures_recorded,
            ),
            (
                "sessiond_scheduler_conflicts_total",
                "Placement batches redone one by one after an optimistic conflict.",
                &self.conflicts,
            ),
            (
                "sessiond_scheduler_pending_timeouts_total",
                "Sessions cancelled by the pending-timeout sweeper.",
                &self.timed_out,
            ),
            (
                "sessiond_scheduler_dependency_failed_total",
                "Sessions cancelled because a dependency can never succeed.",
                &self.dependency_failed,
            ),
            (
                "sessiond_agents_lost_total",
                "Agents marked LOST for missed heartbeats.",
                &self.agents_lost,
            ),
            (
                "sessiond_agent_lost_session_errors_total",
                "Sessions moved to ERROR agent-lost.",
                &self.agent_lost_errors,
            ),
            (
                "sessiond_slot_releases_total",
                "Slot releases appended by the process manager.",
                &self.releases,
            ),
            (
                "sessiond_scheduler_failed_ticks_total",
                "Scheduler ticks that failed on a store or read-model error.",
                &self.failed_ticks,
            ),
        ];
        for (name, help, value) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
    }
}
