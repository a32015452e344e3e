//! `sessiond serve`: opens the store (applying migrations), starts the projection
//! runners, then serves HTTP until SIGINT/SIGTERM (runners stop with it). This foundation serves `/healthz` and `/readyz`; the command API
//! (SPEC §4) is added under `/v1` by the Command API issue.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use projections::{Engine, EngineConfig};
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
}

/// The application's router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
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
    let engine = Arc::new(
        Engine::new(
            store.db(),
            projections::models::all(),
            EngineConfig::default(),
        )
        .with_waker(store.appended()),
    );
    let runners = engine.spawn_all(stopped);
    tracing::info!("listening on {addr}");
    axum::serve(
        listener,
        router(AppState {
            store: store.clone(),
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
