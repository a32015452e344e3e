//! Wake-ups across replicas: on PostgreSQL a statement trigger on `events` (migration
//! 0002) notifies channel `sessiond_events` after every append, and [`relay`] turns
//! those notifications into in-process wake-ups ([`listen`] is the general loop). SQLite
//! has one writer process, whose own appends wake its runners directly.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{watch, Notify};

/// The channel the `events` trigger notifies.
pub const EVENTS_CHANNEL: &str = "sessiond_events";

/// Relays notifications of [`EVENTS_CHANNEL`] (from any replica) to `wake` until
/// `shutdown` turns true, reconnecting after a lost connection (callers poll
/// meanwhile, so a lost notification costs latency, never an event).
pub async fn relay(pool: PgPool, wake: Arc<Notify>, shutdown: watch::Receiver<bool>) {
    listen(
        pool,
        EVENTS_CHANNEL,
        move || wake.notify_waiters(),
        shutdown,
    )
    .await
}

/// Calls `on_notify` for every notification of `channel` (from any replica) until
/// `shutdown` turns true, reconnecting after a lost connection. It is also called after
/// each (re)connection, since what was notified while no connection listened is lost.
pub async fn listen(
    pool: PgPool,
    channel: &str,
    on_notify: impl Fn() + Send,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, channel, "LISTEN connection failed; polling meanwhile");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        };
        if let Err(e) = listener.listen(channel).await {
            tracing::warn!(error = %e, channel, "LISTEN failed; polling meanwhile");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        on_notify();
        loop {
            tokio::select! {
                n = listener.recv() => match n {
                    Ok(_) => on_notify(),
                    Err(e) => {
                        tracing::warn!(error = %e, channel, "LISTEN connection lost; reconnecting");
                        break;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}
