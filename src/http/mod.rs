//! The HTTP/JSON command API (SPEC §4), on axum.
//!
//! # Layout
//! - [`error`]: [`ApiError`], the one error type, with `status_code()` and the
//!   `{"error": {"code", "message"}}` body.
//! - [`extract`]: the JSON body / query extractors that answer in that format, the
//!   authenticated [`extract::Caller`], the `?min_position=` consistency wait.
//! - [`metrics`]: request latency histograms and error counters.
//! - [`limits`]: request-size limits (JSON 414 / 431), the caps on open streams and the
//!   request rate per key.
//! - [`breaker`]: 503 `store_unavailable` at once while the store is down.
//! - [`serve`]: the server loop (hyper configured to let oversized requests reach
//!   our limits).
//! - one module per resource, each exposing `router()`: [`sessions`],
//!   [`scaling_groups`], [`users`] (resource policies), [`agents`], [`events`] (SSE),
//!   [`health`] (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`), [`vfolders`],
//!   [`bgtasks`], [`files`], [`webhooks`] (subscriptions, delivery log, callback secrets).
//!
//! Routers are `utoipa_axum` routers: each handler's `#[utoipa::path]` annotation is
//! registered together with its route, so `/openapi.json` is generated from the same
//! code that serves the requests and cannot drift from it.

pub mod agents;
pub mod bgtasks;
pub mod breaker;
pub mod compat;
pub mod error;
pub mod events;
pub mod extract;
pub mod files;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod scaling_groups;
pub mod schema;
pub mod serve;
pub mod sessions;
pub mod users;
pub mod vfolders;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::{ApiError, ErrorCode};

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
    /// Requests that are not streams end after this long with 503 `timeout` (set from
    /// `Settings::request_timeout_ms` when the server starts).
    pub request_timeout: Duration,
    /// Streams (SSE) and long-polls open at once per API key.
    pub max_streams_per_key: usize,
    /// Streams (SSE) and long-polls open at once in all.
    pub max_streams: usize,
    /// Requests per API key (a token bucket; `None`: unlimited). Set from
    /// `Settings::rate_limit_per_sec` / `rate_limit_burst` when the server starts.
    pub rate_limit: Option<limits::RateQuota>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            min_position_timeout: extract::DEFAULT_MIN_POSITION_TIMEOUT,
            max_long_poll: Duration::from_secs(60),
            sse_poll_interval: Duration::from_millis(500),
            idempotency_wait: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_streams_per_key: 32,
            max_streams: 4096,
            rate_limit: None,
        }
    }
}

/// State shared by every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The application (store, commands, read models, clock).
    pub app: App,
    /// Turns true when the server shuts down: long-lived responses (SSE streams,
    /// long-polls) end so graceful shutdown does not wait for them forever.
    pub shutdown: watch::Receiver<bool>,
    /// Tunables.
    pub config: ApiConfig,
    /// Caps on open streams and long-polls.
    pub streams: limits::StreamLimits,
    /// Request rate limits per API key.
    pub rate: limits::RateLimits,
    /// Open while the store is known to be down (requests fail fast).
    pub breaker: breaker::StoreBreaker,
}

impl AppState {
    /// State for `app` with `config`; `shutdown` turns true when the server stops.
    pub fn new(app: App, shutdown: watch::Receiver<bool>, config: ApiConfig) -> Self {
        Self {
            streams: limits::StreamLimits::new(config.max_streams_per_key, config.max_streams),
            rate: limits::RateLimits::new(config.rate_limit),
            breaker: breaker::StoreBreaker::default(),
            app,
            shutdown,
            config,
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
    components(schemas(error::ErrorBody, error::ErrorDetail, events::SessionEventData, events::TaskEventData))
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
        .merge(vfolders::router())
        .merge(bgtasks::router())
        .merge(webhooks::router())
        .merge(health::router())
}

/// The OpenAPI 3.1 document of the API, as served at `/openapi.json`.
pub fn openapi() -> serde_json::Value {
    let generated = serde_json::to_value(api().split_for_parts().1).unwrap_or_default();
    openapi::complete(generated)
}

/// Routes that stream or long-poll: exempt from the request timeout.
/// File transfers are streamed too: their length is bounded by `max_upload_bytes`,
/// not by time.
pub const STREAMING_ROUTES: [&str; 6] = [
    "/v1/events/sessions",
    "/v1/events/background-tasks",
    "/v1/agents/{id}/assignments",
    "/v1/events/background-task",
    "/events/background-task",
    files::FILE_ROUTE,
];

/// The application's router: the API, the body limit, request limits, the request
/// timeout, tracing spans with request ids, and metrics.
pub fn router(state: AppState) -> Router {
    use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
    let (routes, _) = api().split_for_parts();
    let doc = Arc::new(openapi());
    let timeout = state.config.request_timeout;
    let x_request_id = axum::http::HeaderName::from_static("x-request-id");
    routes
        .merge(files::router())
        .merge(compat::router())
        .merge(crate::ui::router())
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(axum::middleware::from_fn(move |req, next| {
            request_timeout(timeout, req, next)
        }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            breaker::guard,
        ))
        .layer(axum::middleware::from_fn(metrics::record))
        .layer(axum::middleware::from_fn(limits::request_limits))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                // One line per answered request (its span carries the method, the
                // matched route and the request id echoed in `x-request-id`).
                .on_response(
                    tower_http::trace::DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Micros),
                )
                .make_span_with(|req: &axum::http::Request<axum::body::Body>| {
                    let route = req
                        .extensions()
                        .get::<axum::extract::MatchedPath>()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_else(|| "unmatched".to_string());
                    let request_id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        route = %route,
                        request_id = %request_id,
                        // The caller's public key id, once authenticated (never the key).
                        key_id = tracing::field::Empty,
                    )
                }),
        )
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .with_state(state)
}

/// Ends a request that is not a stream after `limit` with 503 `timeout` (the handler's
/// future is dropped: no transaction is ever held open by a handler, so nothing is
/// left half-done beyond what an interrupted client would leave).
async fn request_timeout(
    limit: Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let streaming = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .is_some_and(|p| STREAMING_ROUTES.contains(&p.as_str()));
    if streaming {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::Timeout,
            format!("the request took longer than {} s; retry", limit.as_secs()),
        )
        .into_response(),
    }
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
        metrics::command_attempts(committed.attempts);
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
        match committed.last_position() {
            Some(p) => Ok(p.global_position),
            None => self.stream_position::<A>(aggregate_id).await,
        }
    }

    /// The position of the last event of `A`'s stream `aggregate_id` (0: empty).
    pub async fn stream_position<A: domain::Decider>(
        &self,
        aggregate_id: &str,
    ) -> Result<i64, ApiError> {
        Ok(self
            .app
            .db()
            .read_last(A::TYPE, aggregate_id)
            .await?
            .map(|e| e.global_position)
            .unwrap_or(0))
    }
}
