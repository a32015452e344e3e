//! `sessiond serve`: opens the store (applying migrations), starts the projection
//! runners, then serves HTTP until SIGINT/SIGTERM (runners stop with it). This foundation serves `/healthz` and `/readyz`; the command API
//! (SPEC §4) is added under `/v1` by the Command API issue.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use projections::Engine;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Settings;
use crate::store::{EventStore, StoreError, StoreOptions};

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Opening the store failed.
    #[error("cannot open the store at {url}")]
    Store {
        /// The (redacted) URL.
        url: String,
        /// Cause.
        #[source]
        source: StoreError,
    },
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}")]
    Bind {
        /// Address.
        addr: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The server failed.
    #[error("server error")]
    Io(#[from] std::io::Error),
}

/// Shared state of the HTTP layer.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The event store.
    pub store: EventStore,
    /// The projection engine (status, lag, failures for `/metrics`).
    pub engine: Arc<Engine>,
}

/// The application's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "store not reachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"error": {"code": "store_unavailable", "message": "the store is not reachable"}}),
                ),
            )
        }
    }
}

/// Prometheus text exposition: projection position, lag (events, seconds) and failures.
async fn metrics(State(state): State<AppState>) -> (StatusCode, String) {
    let statuses = match state.engine.status().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read projection status for /metrics");
            return (StatusCode::SERVICE_UNAVAILABLE, String::new());
        }
    };
    let failures = state.engine.failure_counts();
    let mut out = String::new();
    let mut family =
        |name: &str,
         kind: &str,
         help: &str,
         value: &dyn Fn(&projections::ProjectionStatus) -> String| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for s in &statuses {
                out.push_str(&format!(
                    "{name}{{projection=\"{}\"}} {}\n",
                    s.name,
                    value(s)
                ));
            }
        };
    family(
        "sessiond_projection_position",
        "gauge",
        "Global position of the last applied event.",
        &|s| s.position.to_string(),
    );
    family(
        "sessiond_projection_lag_events",
        "gauge",
        "Events in the log not yet applied.",
        &|s| s.lag_events.to_string(),
    );
    family(
        "sessiond_projection_lag_seconds",
        "gauge",
        "Age of the oldest event not yet applied.",
        &|s| format!("{:.3}", s.lag_seconds),
    );
    family(
        "sessiond_projection_consecutive_failures",
        "gauge",
        "Failed attempts since the last success (0 = healthy).",
        &|s| s.failures.to_string(),
    );
    family(
        "sessiond_projection_failures_total",
        "counter",
        "Failed batches seen by this process.",
        &|s| {
            failures
                .get(s.name.as_str())
                .copied()
                .unwrap_or(0)
                .to_string()
        },
    );
    (StatusCode::OK, out)
}

/// Opens the store and serves until a shutdown signal arrives.
pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    let options = StoreOptions {
        max_connections: settings.max_connections,
        ..StoreOptions::default()
    };
    let store = EventStore::open(settings.database_url.expose(), &options)
        .await
        .map_err(|source| ServeError::Store {
            url: settings.database_url.to_string(),
            source,
        })?;
    tracing::info!(database = %settings.database_url, backend = ?store.backend(), "store ready (migrations applied)");
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: settings.listen.clone(),
            source,
        })?;
    let addr: SocketAddr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let app = crate::app::App::new(store.clone(), settings.clone());
    let engine = app.engine.clone();
    let mut runners = engine.spawn_all(stopped.clone());
    runners.extend(crate::scheduler::spawn_workers(app.clone(), stopped));
    tracing::info!("listening on {addr}");
    axum::serve(
        listener,
        router(AppState {
            store: store.clone(),
            engine: engine.clone(),
        }),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    let _ = stop.send(true);
    for r in runners {
        if let Err(e) = r.await {
            tracing::warn!(error = %e, "a projection runner ended abnormally");
        }
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
