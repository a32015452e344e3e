//! The maintenance worker: every [`EVERY`], analyzes the PostgreSQL tables that have
//! grown without ever being analyzed ([`store::maintenance::analyze_young_tables`]), so
//! a fresh deployment under load does not run for a minute on plans made for empty
//! tables. Nothing to do on SQLite. Every replica runs it; a second ANALYZE of the same
//! table finds it analyzed and does nothing.

use std::time::Duration;
use tokio::sync::watch;

use crate::app::App;

/// The supervised worker's name.
pub const WORKER: &str = "maintenance";
/// How often it looks.
pub const EVERY: Duration = Duration::from_secs(5);

/// Starts the worker under the supervisor (PostgreSQL only).
pub fn spawn(app: &App, shutdown: watch::Receiver<bool>) -> Option<tokio::task::JoinHandle<()>> {
    if app.db().backend() != store::Backend::Postgres {
        return None;
    }
    let app = app.clone();
    let stop = shutdown.clone();
    Some(app.supervisor.clone().spawn(WORKER, shutdown, move || {
        let app = app.clone();
        let mut stop = stop.clone();
        async move {
            while !*stop.borrow() {
                match store::maintenance::analyze_young_tables(app.db()).await {
                    Ok(tables) if !tables.is_empty() => {
                        tracing::info!(?tables, "analyzed tables that had no planner statistics");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %crate::telemetry::error_chain(&e), "cannot look for tables without statistics");
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(EVERY) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }))
}
