//! The maintenance worker: every [`EVERY`], on PostgreSQL, analyzes the tables that have
//! grown without ever being analyzed ([`store::maintenance::analyze_young_tables`]), so
//! a fresh deployment under load does not run for a minute on plans made for empty
//! tables; on both backends, purges the `Idempotency-Key` records older than
//! `Settings::idempotency_ttl_secs` (by the application's clock). Every replica runs it;
//! a second ANALYZE of the same table finds it analyzed and does nothing, a second purge
//! finds nothing to delete.

use std::time::Duration;
use tokio::sync::watch;

use crate::app::App;

/// The supervised worker's name.
pub const WORKER: &str = "maintenance";
/// How often it looks.
pub const EVERY: Duration = Duration::from_secs(5);

/// One round of maintenance (what the worker does every [`EVERY`]); failures are
/// logged and retried next round.
pub async fn run_once(app: &App) {
    if app.db().backend() == store::Backend::Postgres {
        match store::maintenance::analyze_young_tables(app.db()).await {
            Ok(tables) if !tables.is_empty() => {
                tracing::info!(?tables, "analyzed tables that had no planner statistics");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %crate::telemetry::error_chain(&e), "cannot look for tables without statistics");
            }
        }
    }
    let ttl = Duration::from_secs(app.settings.idempotency_ttl_secs);
    match crate::idempotency::purge_expired(app.db(), app.clock.now(), ttl).await {
        Ok(0) => {}
        Ok(n) => {
            metrics::counter!("sessiond_idempotency_purged_total").increment(n);
            tracing::info!(records = n, "purged expired idempotency records");
        }
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot purge expired idempotency records");
        }
    }
}

/// Starts the worker under the supervisor.
pub fn spawn(app: &App, shutdown: watch::Receiver<bool>) -> Option<tokio::task::JoinHandle<()>> {
    let app = app.clone();
    let stop = shutdown.clone();
    Some(app.supervisor.clone().spawn(WORKER, shutdown, move || {
        let app = app.clone();
        let mut stop = stop.clone();
        async move {
            while !*stop.borrow() {
                run_once(&app).await;
                tokio::select! {
                    _ = tokio::time::sleep(EVERY) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }))
}
