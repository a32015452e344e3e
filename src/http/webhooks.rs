//! `/v1/webhooks`: subscriptions to session status changes, their delivery log, and the
//! per-owner callback secret (SPEC §8). Subscriptions are admin only; the callback
//! secret is its owner's or an admin's.
//!
//! A URL is checked when it is given (scheme http/https, no credentials, no fragment,
//! and — after DNS resolution — no loopback, private, link-local or unique-local
//! address unless `webhooks.allow_networks` allows it): a refused URL is 422 and
//! nothing is stored. The dispatcher checks it again on every connect.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, TimeZone, Utc};
use domain::ids::{GroupName, Owner};
use domain::session::SessionStatus;
use domain::webhook::{
    spec::parse_description, WebhookFilter, WebhookSettings, WebhookSubscription, WebhookUrl,
    MAX_FILTER_ENTRIES,
};
use projections::models::{documents, outbox, WEBHOOKS};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ErrorBody, ErrorCode};
use super::extract::{Caller, Json, MinPosition, Query};
use super::AppState;
use crate::webhooks::dispatcher::{self, Message, Response};
use crate::webhooks::subscriptions::{self, Changes, SubscriptionError};

/// The payload schema of `session.status_changed` (JSON Schema 2020-12).
pub const STATUS_CHANGED_SCHEMA: &str =
    include_str!("../../schemas/session-status-changed.v1.json");

/// `router()` of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(schema))
        .routes(routes!(get_webhook, patch_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(test_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
        .routes(routes!(callback_secret))
}

/// `filter` of a subscription: each list, when given and not empty, must contain a
/// change's value.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    /// Statuses entered (upper case, e.g. `RUNNING`).
    #[serde(default)]
    pub statuses: Vec<String>,
    /// Scaling groups.
    #[serde(default)]
    pub scaling_groups: Vec<String>,
    /// Owners.
    #[serde(default)]
    pub owners: Vec<String>,
}

impl FilterBody {
    /// Validates the lists (at most [`MAX_FILTER_ENTRIES`] each, every entry a status,
    /// group name or owner); the error names the entry (`filter.owners[2]`).
    pub fn parse(self) -> Result<WebhookFilter, ApiError> {
        for (field, n) in [
            ("filter.statuses", self.statuses.len()),
            ("filter.scaling_groups", self.scaling_groups.len()),
            ("filter.owners", self.owners.len()),
        ] {
            if n > MAX_FILTER_ENTRIES {
                return Err(ApiError::validation(
                    field,
                    format!("must have at most {MAX_FILTER_ENTRIES} entries"),
                ));
            }
        }
        let mut filter = WebhookFilter::default();
        for (i, s) in self.statuses.iter().enumerate() {
            let status: SessionStatus = s.parse().map_err(|_| {
                ApiError::validation(
                    &format!("filter.statuses[{i}]"),
                    format!("unknown session status '{s}'"),
                )
            })?;
            filter.statuses.insert(status);
        }
        for (i, g) in self.scaling_groups.iter().enumerate() {
            filter
                .scaling_groups
                .insert(GroupName::parse(&format!("filter.scaling_groups[{i}]"), g)?);
        }
        for (i, o) in self.owners.iter().enumerate() {
            filter
                .owners
                .insert(Owner::parse(&format!("filter.owners[{i}]"), o)?);
        }
        Ok(filter)
    }
}

/// Body of `POST /v1/webhooks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `http://` or `https://`, no credentials, no fragment, a public address unless
    /// allowed by `webhooks.allow_networks`.
    pub url: String,
    /// Free text (at most 1000 characters).
    #[serde(default)]
    pub description: Option<String>,
    /// Which changes it receives (default: all).
    #[serde(default)]
    pub filter: Option<FilterBody>,
    /// Whether deliveries are made (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Body of `PATCH /v1/webhooks/{id}`: the fields to change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWebhook {
    /// New URL (checked like on create).
    #[serde(default)]
    pub url: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New filter (replaces the whole filter).
    #[serde(default)]
    pub filter: Option<FilterBody>,
    /// Enable (also after a `410 Gone` disabled it) or disable.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A filter as shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FilterView {
    /// Statuses (empty: any).
    pub statuses: Vec<String>,
    /// Scaling groups (empty: any).
    pub scaling_groups: Vec<String>,
    /// Owners (empty: any).
    pub owners: Vec<String>,
}

impl From<&WebhookFilter> for FilterView {
    fn from(f: &WebhookFilter) -> Self {
        Self {
            statuses: f.statuses.iter().map(|s| s.as_str().to_string()).collect(),
            scaling_groups: f.scaling_groups.iter().map(|g| g.to_string()).collect(),
            owners: f.owners.iter().map(|o| o.to_string()).collect(),
        }
    }
}

/// A signing secret as shown (never its value).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretView {
    /// When it began signing.
    pub created_at: DateTime<Utc>,
    /// When it stops (`null`: the current secret).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A subscription as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    /// Its id.
    pub webhook_id: Uuid,
    /// Where deliveries go.
    pub url: String,
    /// Free text.
    pub description: String,
    /// Which changes it receives.
    pub filter: FilterView,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why it is disabled when its endpoint disabled it (`endpoint answered 410 Gone`).
    pub disabled_reason: Option<String>,
    /// Its signing secrets: the current one, and the previous one during an overlap.
    pub secrets: Vec<SecretView>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: Option<DateTime<Utc>>,
}

impl WebhookView {
    fn of(w: &WebhookSubscription) -> Option<Self> {
        let settings = w.settings.as_ref().filter(|_| !w.deleted)?;
        Some(Self {
            webhook_id: w.webhook_id?,
            url: settings.url.to_string(),
            description: settings.description.clone(),
            filter: FilterView::from(&settings.filter),
            enabled: settings.enabled,
            disabled_reason: w.disabled_reason.clone(),
            secrets: w
                .secrets
                .iter()
                .map(|s| SecretView {
                    created_at: s.created_at,
                    expires_at: s.expires_at,
                })
                .collect(),
            created_at: w.created_at,
            updated_at: w.updated_at,
        })
    }
}

/// A subscription command's result.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookWritten {
    /// Its id.
    pub webhook_id: Uuid,
    /// The subscription after the command.
    pub webhook: WebhookView,
    /// A new signing secret (`whsec_` + base64 of 32 bytes): shown once, on create and
    /// on rotation.
    pub secret: Option<String>,
    /// Pass as `?min_position=` to read your write from lists.
    pub position: i64,
}

/// `GET /v1/webhooks`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookList {
    /// Subscriptions, oldest first.
    pub items: Vec<WebhookListItem>,
}

/// A subscription in the list, with its delivery health.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookListItem {
    /// The subscription.
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// How its deliveries fare.
    pub deliveries: DeliveryHealth,
}

/// Delivery health of a subscription.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct DeliveryHealth {
    /// Deliveries not made yet (pending, or failed and to be retried).
    pub open: i64,
    /// Deliveries made.
    pub delivered: i64,
    /// Deliveries given up (every attempt failed; `redeliver` starts one again).
    pub dead: i64,
    /// When a delivery last succeeded.
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// When the oldest open delivery was written (how far behind the endpoint is).
    pub oldest_open_at: Option<DateTime<Utc>>,
    /// The most recent failure.
    pub last_error: Option<String>,
}

impl From<&outbox::TargetHealth> for DeliveryHealth {
    fn from(h: &outbox::TargetHealth) -> Self {
        Self {
            open: h.open,
            delivered: h.delivered,
            dead: h.dead,
            last_delivered_at: h.last_delivered_ms.and_then(at_ms),
            oldest_open_at: h.oldest_open_ms.and_then(at_ms),
            last_error: h.last_error.clone(),
        }
    }
}

/// `?min_position=` of the list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Wait until the read models include this position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

impl From<SubscriptionError> for ApiError {
    fn from(e: SubscriptionError) -> Self {
        use domain::webhook::WebhookError as W;
        match e {
            SubscriptionError::Rejected(W::NotFound) => {
                ApiError::new(ErrorCode::NotFound, "no such webhook subscription")
            }
            SubscriptionError::Rejected(W::AlreadyExists) => {
                ApiError::new(ErrorCode::AlreadyExists, e.to_string())
            }
            SubscriptionError::Rejected(W::NegativeOverlap) => {
                ApiError::validation_message(e.to_string())
            }
            SubscriptionError::Conflict => ApiError::conflict(e.to_string()),
            SubscriptionError::Kek(k) => ApiError::new(ErrorCode::SecretKeyRequired, k.to_string()),
            SubscriptionError::BadSecret(_) => ApiError::internal(e),
            SubscriptionError::Store(s) => s.into(),
            SubscriptionError::Database(d) => d.into(),
        }
    }
}

/// Checks a URL given for `field` (shape, then the SSRF guard after resolution).
pub async fn check_url(state: &AppState, field: &str, raw: &str) -> Result<WebhookUrl, ApiError> {
    let url = WebhookUrl::parse(field, raw)?;
    state
        .app
        .webhook_guard
        .check_url(raw)
        .await
        .map_err(|e| ApiError::validation(field, e))?;
    Ok(url)
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::not_found("webhook subscription", id))
}

async fn written(
    state: &AppState,
    committed: &crate::command::Committed<WebhookSubscription>,
    id: Uuid,
    secret: Option<String>,
) -> Result<WebhookWritten, ApiError> {
    let position = state.position_after(committed, &id.to_string()).await?;
    let webhook = WebhookView::of(&committed.state)
        .ok_or_else(|| ApiError::not_found("webhook subscription", &id.to_string()))?;
    Ok(WebhookWritten {
        webhook_id: id,
        webhook,
        secret,
        position,
    })
}

/// Subscribe a URL to session status changes (admin). Answers the first signing
/// secret, once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    request_body = CreateWebhook,
    responses((status = 201, body = WebhookWritten),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 415, body = ErrorBody),
              (status = 422, description = "invalid field (named in the message)", body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateWebhook>,
) -> Result<(StatusCode, axum::Json<WebhookWritten>), ApiError> {
    caller.require_admin()?;
    let url = check_url(&state, "url", &body.url).await?;
    let settings = WebhookSettings {
        url,
        description: parse_description("description", body.description.as_deref().unwrap_or(""))?,
        filter: body
            .filter
            .map(FilterBody::parse)
            .transpose()?
            .unwrap_or_default(),
        enabled: body.enabled.unwrap_or(true),
    };
    let meta = state.metadata(&caller.0);
    let (committed, secret) = subscriptions::create(&state.app, settings, &meta).await?;
    let id = committed
        .state
        .webhook_id
        .ok_or_else(|| ApiError::internal(SubscriptionError::Conflict))?;
    let out = written(&state, &committed, id, Some(secret.encoded())).await?;
    Ok((StatusCode::CREATED, axum::Json(out)))
}

/// Every subscription with its delivery health (admin).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    params(ListQuery),
    responses((status = 200, body = WebhookList),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<WebhookList>, ApiError> {
    caller.require_admin()?;
    MinPosition {
        min_position: q.min_position,
    }
    .wait(&state, &[WEBHOOKS])
    .await?;
    let all = documents::webhooks().all(state.app.db()).await?;
    let health = outbox::health(state.app.db()).await?;
    Ok(axum::Json(WebhookList {
        items: all
            .iter()
            .filter_map(WebhookView::of)
            .map(|webhook| {
                let id = webhook.webhook_id.to_string();
                let deliveries = health
                    .iter()
                    .find(|h| h.target == id)
                    .map(DeliveryHealth::from)
                    .unwrap_or_default();
                WebhookListItem {
                    webhook,
                    deliveries,
                }
            })
            .collect(),
    }))
}

/// The JSON Schema (2020-12) of a `session.status_changed` message.
#[utoipa::path(get, path = "/v1/webhooks/schema", tag = "webhooks",
    responses((status = 200, description = "JSON Schema 2020-12", body = Object),
              (status = 401, body = ErrorBody)))]
async fn schema(caller: Caller) -> Result<axum::response::Response, ApiError> {
    let _ = caller;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        STATUS_CHANGED_SCHEMA,
    )
        .into_response())
}

use axum::response::IntoResponse;

/// One subscription (admin; folded from its stream: exact).
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = WebhookView),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    caller.require_admin()?;
    let w = subscriptions::load(&state.app, parse_id(&id)?).await?;
    WebhookView::of(&w)
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("webhook subscription", &id))
}

/// Change a subscription (admin): the fields given; `enabled: true` also resumes a
/// subscription its endpoint disabled with `410 Gone`, from what is pending.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id")),
    request_body = PatchWebhook,
    responses((status = 200, body = WebhookWritten),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 415, body = ErrorBody),
              (status = 422, description = "invalid field (named in the message)", body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn patch_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<PatchWebhook>,
) -> Result<axum::Json<WebhookWritten>, ApiError> {
    caller.require_admin()?;
    let webhook_id = parse_id(&id)?;
    let url = match &body.url {
        Some(u) => Some(check_url(&state, "url", u).await?),
        None => None,
    };
    let changes = Changes {
        url,
        description: body
            .description
            .as_deref()
            .map(|d| parse_description("description", d))
            .transpose()?,
        filter: body.filter.map(FilterBody::parse).transpose()?,
        enabled: body.enabled,
    };
    let meta = state.metadata(&caller.0);
    let committed = subscriptions::update(&state.app, webhook_id, changes, &meta).await?;
    Ok(axum::Json(
        written(&state, &committed, webhook_id, None).await?,
    ))
}

/// Delete a subscription (admin): nothing more is delivered to it; its delivery log
/// is kept.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 204, description = "deleted"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let webhook_id = parse_id(&id)?;
    subscriptions::load(&state.app, webhook_id).await?;
    let meta = state.metadata(&caller.0);
    subscriptions::delete(&state.app, webhook_id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sign with a new secret from now on (admin); the previous one keeps signing beside
/// it for `webhooks.rotation_overlap_secs` (default 24 h). Answers the new secret, once.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = WebhookWritten),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<WebhookWritten>, ApiError> {
    caller.require_admin()?;
    let webhook_id = parse_id(&id)?;
    let meta = state.metadata(&caller.0);
    let (committed, secret) = subscriptions::rotate(&state.app, webhook_id, &meta).await?;
    Ok(axum::Json(
        written(&state, &committed, webhook_id, Some(secret.encoded())).await?,
    ))
}

/// What a test message came to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestResult {
    /// The message's `webhook-id`.
    pub webhook_id: String,
    /// Whether the endpoint answered 2xx.
    pub delivered: bool,
    /// The endpoint's status code (`null`: no answer).
    pub status_code: Option<u16>,
    /// Why it failed.
    pub error: Option<String>,
}

/// Send a `webhook.test` message to the subscription's URL now, signed like every
/// delivery, and answer what the endpoint said (admin). Not retried, not logged as a
/// delivery.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = TestResult),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn test_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<TestResult>, ApiError> {
    caller.require_admin()?;
    let webhook_id = parse_id(&id)?;
    let w = subscriptions::load(&state.app, webhook_id).await?;
    let url = w
        .settings
        .as_ref()
        .map(|s| s.url.to_string())
        .ok_or_else(|| ApiError::not_found("webhook subscription", &id))?;
    let now = state.app.clock.now();
    let mut secrets = Vec::new();
    for secret_id in w.active_secrets(now) {
        secrets
            .push(subscriptions::secret(&state.app, &state.app.webhook_secrets, secret_id).await?);
    }
    let message_id = format!("msg_test_{}", Uuid::new_v4().simple());
    let body = serde_json::json!({
        "type": "webhook.test",
        "timestamp": now,
        "data": {"webhook_id": webhook_id},
    });
    let message = Message {
        id: message_id.clone(),
        url,
        body: body.to_string(),
        secrets,
    };
    let client = crate::webhooks::guard::client(
        &state.app.webhook_guard,
        std::time::Duration::from_millis(state.app.settings.webhooks.timeout_ms),
        1,
    )
    .map_err(ApiError::internal)?;
    let out = match dispatcher::send(&client, &state.app.webhook_guard, &message, now).await {
        Response::Status { code, .. } => TestResult {
            webhook_id: message_id,
            delivered: (200..300).contains(&code),
            status_code: Some(code),
            error: (!(200..300).contains(&code)).then(|| format!("HTTP {code}")),
        },
        Response::Failed { error, .. } => TestResult {
            webhook_id: message_id,
            delivered: false,
            status_code: None,
            error: Some(error),
        },
    };
    Ok(axum::Json(out))
}

/// `?status=&after=&limit=` of the delivery log.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// `pending | failed | delivered | dead` (default: any).
    pub status: Option<DeliveryStatus>,
    /// Only deliveries of events after this position (the previous page's `next_after`).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// 1..=500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// The status of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not attempted yet.
    Pending,
    /// An attempt failed; another is scheduled.
    Failed,
    /// Delivered.
    Delivered,
    /// Every attempt failed.
    Dead,
}

impl DeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Failed => "failed",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }
}

/// A delivery as the log shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// Its id: the `webhook-id` header of every attempt.
    pub delivery_id: String,
    /// The status change's position in the global log.
    pub position: i64,
    /// The session.
    pub session_id: String,
    /// `pending` (not attempted yet) | `failed` (retried at `next_attempt_at`) |
    /// `delivered` | `dead` (every attempt failed).
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// The last response's status code.
    pub last_status_code: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When the next attempt is due (open deliveries).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was written.
    pub created_at: Option<DateTime<Utc>>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

fn at_ms(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

impl From<outbox::DeliveryRow> for DeliveryView {
    fn from(r: outbox::DeliveryRow) -> Self {
        let open = matches!(r.status.as_str(), "pending" | "failed");
        Self {
            delivery_id: r.delivery_id,
            position: r.position,
            session_id: r.session_id,
            status: r.status,
            attempts: r.attempts,
            last_status_code: r.last_status_code,
            last_error: r.last_error,
            next_attempt_at: if open { at_ms(r.next_attempt_ms) } else { None },
            created_at: at_ms(r.created_ms),
            delivered_at: r.delivered_ms.and_then(at_ms),
        }
    }
}

/// A page of the delivery log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    /// Deliveries, oldest first.
    pub items: Vec<DeliveryView>,
    /// Pass as `?after=` for the next page (`null`: this was the last).
    pub next_after: Option<i64>,
}

/// The delivery log of a subscription (admin), oldest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id"), DeliveryQuery),
    responses((status = 200, body = DeliveryList),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DeliveryQuery>,
) -> Result<axum::Json<DeliveryList>, ApiError> {
    caller.require_admin()?;
    let webhook_id = parse_id(&id)?;
    let w: WebhookSubscription = state.app.commands.load(&webhook_id.to_string()).await?;
    if w.settings.is_none() {
        return Err(ApiError::not_found("webhook subscription", &id));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::validation("limit", "must be 1..=500"));
    }
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::validation("after", "must not be negative"));
    }
    let rows = outbox::log(
        state.app.db(),
        &webhook_id.to_string(),
        q.status.map(DeliveryStatus::as_str),
        after,
        limit,
    )
    .await?;
    let next_after = (i64::try_from(rows.len()).unwrap_or(0) == limit)
        .then(|| rows.last().map(|r| r.position))
        .flatten();
    Ok(axum::Json(DeliveryList {
        items: rows.into_iter().map(DeliveryView::from).collect(),
        next_after,
    }))
}

/// What a redelivery request did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Redelivered {
    /// The delivery (its `webhook-id` is unchanged).
    pub delivery_id: String,
    /// `pending`: it is sent again as soon as its chain allows.
    pub status: String,
}

/// Send a delivery again (admin), with the same `webhook-id` and a fresh retry schedule.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id"),
           ("delivery_id" = String, Path, description = "Delivery id")),
    responses((status = 202, body = Redelivered),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<(StatusCode, axum::Json<Redelivered>), ApiError> {
    caller.require_admin()?;
    let webhook_id = parse_id(&id)?;
    let now = state.app.clock.now().timestamp_millis();
    if !outbox::redeliver(state.app.db(), &webhook_id.to_string(), &delivery_id, now).await? {
        return Err(ApiError::not_found("delivery", &delivery_id));
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Redelivered {
            delivery_id,
            status: "pending".into(),
        }),
    ))
}

/// An owner's callback secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallbackSecret {
    /// The owner.
    pub owner: String,
    /// `whsec_…`: verifies the deliveries to their sessions' `callback_url`.
    pub secret: String,
}

/// The secret that signs deliveries to an owner's `callback_url`s (the owner or an
/// admin; created on first use).
#[utoipa::path(get, path = "/v1/users/{owner}/callback-secret", tag = "webhooks",
    params(("owner" = String, Path, description = "Owner")),
    responses((status = 200, body = CallbackSecret),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn callback_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(owner): Path<String>,
) -> Result<axum::Json<CallbackSecret>, ApiError> {
    caller.require_user_or_admin()?;
    let owner = Owner::parse("owner", &owner)?;
    if !caller.0.can_access_owner(&owner) {
        return Err(ApiError::not_found("user", &owner));
    }
    let secret =
        subscriptions::callback_secret(&state.app, &state.app.webhook_secrets, &owner).await?;
    Ok(axum::Json(CallbackSecret {
        owner: owner.to_string(),
        secret: secret.encoded(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_schema_is_json_schema_2020_12() {
        let schema: serde_json::Value = serde_json::from_str(STATUS_CHANGED_SCHEMA).unwrap();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
    }
}
