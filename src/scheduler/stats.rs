//! The scheduler's counters, recorded through the `metrics` facade where the work
//! happens and exported on `/metrics` (names documented in the README).

use super::PassReport;

/// Names and help texts of the scheduler's counters (described once at start-up).
pub const COUNTERS: [(&str, &str); 10] = [
    (
        "sessiond_scheduler_passes_total",
        "Scheduling passes over a scaling group.",
    ),
    ("sessiond_scheduler_scheduled_total", "Sessions scheduled."),
    (
        "sessiond_scheduler_failures_recorded_total",
        "SessionSchedulingFailed events appended (only on a changed failure set).",
    ),
    (
        "sessiond_scheduler_conflicts_total",
        "Placement batches redone one by one after an optimistic conflict.",
    ),
    (
        "sessiond_scheduler_pending_timeouts_total",
        "Sessions cancelled by the pending-timeout sweeper.",
    ),
    (
        "sessiond_scheduler_dependency_failed_total",
        "Sessions cancelled because a dependency can never succeed.",
    ),
    (
        "sessiond_agents_lost_total",
        "Agents marked LOST for missed heartbeats.",
    ),
    (
        "sessiond_agent_lost_session_errors_total",
        "Sessions moved to ERROR agent-lost.",
    ),
    (
        "sessiond_slot_releases_total",
        "Slot releases appended by the process manager.",
    ),
    (
        "sessiond_scheduler_failed_ticks_total",
        "Scheduler ticks that failed on a store or read-model error.",
    ),
];

fn add(name: &'static str, n: usize) {
    metrics::counter!(name).increment(u64::try_from(n).unwrap_or(u64::MAX));
}

/// Records what one pass did.
pub fn record_pass(report: &PassReport) {
    add("sessiond_scheduler_passes_total", 1);
    add("sessiond_scheduler_scheduled_total", report.scheduled);
    add(
        "sessiond_scheduler_failures_recorded_total",
        report.failures_recorded,
    );
    add("sessiond_scheduler_conflicts_total", report.conflicts);
    add(
        "sessiond_scheduler_dependency_failed_total",
        report.cancelled,
    );
}

/// Sessions cancelled by the sweeper.
pub fn timed_out(n: usize) {
    add("sessiond_scheduler_pending_timeouts_total", n);
}

/// Agents marked LOST, and sessions moved to ERROR because of it.
pub fn agents_lost(lost: usize, errored: usize) {
    add("sessiond_agents_lost_total", lost);
    add("sessiond_agent_lost_session_errors_total", errored);
}

/// Slot releases appended.
pub fn releases(n: usize) {
    add("sessiond_slot_releases_total", n);
}

/// A tick that failed on a store or read-model error.
pub fn failed_tick() {
    add("sessiond_scheduler_failed_ticks_total", 1);
}
