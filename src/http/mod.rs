//! The HTTP/JSON command API (SPEC §4), on axum.
//!
//! # Layout
//! - [`error`]: [`ApiError`], the one error type, with `status_code()` and the
//!   `{"error": {"code", "message"}}` body.
//! - [`extract`]: the JSON body / query extractors that answer in that format, the
//!   authenticated [`extract::Caller`], the `?min_position=` consistency wait.
//! - [`metrics`]: request latency histograms and counters; the tracing middleware.
//! - one module per resource, each exposing `router()`: [`sessions`],
//!   [`scaling_groups`], [`users`] (resource policies), [`agents`], [`events`] (SSE),
//!   [`health`] (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`).
//!
//! Routers are `utoipa_axum` routers: each handler's `#[utoipa::path]` annotation is
//! registered together with its route, so `/openapi.json` is generated from the same
//! code that serves the requests and cannot drift from it.

pub mod agents;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod scaling_groups;
pub mod sessions;
pub mod users;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;

use crate::app::App;
use crate::store::EventMetadata;

/// Tunables of the HTTP layer (tests shorten them).
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// How long `?min_position=` waits for the read models.
    pub min_position_timeout: Duration,
    /// The longest `?wait=` of the assignments long-poll.
    pub max_long_poll: Duration,
    /// How often an idle SSE stream re-reads the log when no append woke it (appends by
    /// other replicas, late commits on PostgreSQL).
    pub sse_poll_interval: Duration,
    /// How long a retried idempotent request waits for the first one to finish.
    pub idempotency_wait: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            min_position_timeout: extract::DEFAULT_MIN_POSITION_TIMEOUT,
            max_long_poll: Duration::from_secs(60),
            sse_poll_interval: Duration::from_millis(500),
            idempotency_wait: Duration::from_secs(10),
        }
    }
}

/// State shared by every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The application (store, commands, read models, clock).
    pub app: App,
    /// API metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Turns true when the server shuts down: long-lived responses (SSE streams,
    /// long-polls) end so graceful shutdown does not wait for them forever.
    pub shutdown: watch::Receiver<bool>,
    /// Tunables.
    pub config: ApiConfig,
}

impl AppState {
    /// State for `app`; `shutdown` turns true when the server stops.
    pub fn new(app: App, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            app,
            metrics: Arc::new(metrics::Metrics::default()),
            shutdown,
            config: ApiConfig::default(),
        }
    }

    /// Event metadata for a command caused by this request: the caller is the actor;
    /// the request id is both correlation and causation id (a user action starts here).
    pub fn metadata(&self, caller: &crate::auth::Principal) -> EventMetadata {
        let request_id = uuid::Uuid::new_v4().to_string();
        EventMetadata {
            actor: caller.actor(),
            correlation_id: request_id.clone(),
            causation_id: request_id,
        }
    }
}

/// The OpenAPI document's header; paths are added by the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "sessiond",
        description = "Event-sourced session lifecycle manager: the command API (SPEC §4).",
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(error::ErrorBody, error::ErrorDetail))
)]
struct ApiDoc;

/// Adds the bearer-key security scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every route with its OpenAPI description.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(sessions::router())
        .merge(scaling_groups::router())
        .merge(users::router())
        .merge(agents::router())
        .merge(events::router())
        .merge(health::router())
}

/// The OpenAPI 3 document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

/// The application's router: the API, body limit, metrics/tracing middleware.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = api().split_for_parts();
    let doc = Arc::new(doc);
    routes
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

impl AppState {
    /// Runs a command on aggregate `A`, recording its retries; a rejection, a conflict
    /// after every retry and a store failure become the matching [`ApiError`].
    pub async fn execute<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<crate::command::Committed<A>, ApiError>
    where
        A: domain::Decider,
        A::Command: Clone,
        A::Error: Into<ApiError>,
    {
        let committed = self
            .app
            .commands
            .execute::<A>(aggregate_id, command, metadata)
            .await?;
        self.metrics.command_attempts(committed.attempts);
        Ok(committed)
    }

    /// The consistency token of a command's outcome: the position of its last event,
    /// or, for a no-op, of the stream's last event (the state the caller sees includes
    /// it).
    pub async fn position_after<A: domain::Decider>(
        &self,
        committed: &crate::command::Committed<A>,
        aggregate_id: &str,
    ) -> Result<i64, ApiError> {
        if let Some(p) = committed.last_position() {
            return Ok(p.global_position);
        }
        Ok(self
            .app
            .store
            .read_stream(A::TYPE, aggregate_id)
            .await?
            .last()
            .map(|e| e.global_position)
            .unwrap_or(0))
    }
}
