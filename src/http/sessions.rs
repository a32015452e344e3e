//! `/v1/sessions`: enqueue, list, get (also as of a past time), history, delete, and
//! the agents' kernel events (SPEC §1.2, §4).
//!
//! Users see and act on their own sessions only; another owner's session is 404, never
//! 403, so its existence does not leak. Agent keys use the agent endpoints only.

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use domain::session::{Session, SessionStatus, SessionType};
use projections::models::session_list::{self, SessionFilter};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ErrorBody};
use super::extract::{Caller, Json, MinPosition, Query};
use super::AppState;
use crate::auth::Role;

/// `router()` of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions, enqueue_session))
        .routes(routes!(get_session, delete_session))
        .routes(routes!(session_history))
        .routes(routes!(kernel_event))
}

/// Largest page of `GET /v1/sessions`.
pub const MAX_LIMIT: i64 = 1000;
/// Default page size.
pub const DEFAULT_LIMIT: i64 = 100;

/// A session as the read model shows it (SPEC §1.2; Backend.AI's names). The document
/// is produced by `projections::models::docs::session_view`; a test checks that every
/// key it produces is described here.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // documentation of the JSON produced by `session_view`
pub struct SessionView {
    /// UUID, server-assigned.
    pub session_id: String,
    /// Unique among the owner's non-terminal sessions.
    pub name: String,
    /// The owner.
    pub owner: String,
    /// `interactive | batch | inference`.
    #[serde(rename = "type")]
    pub session_type: String,
    /// Container image.
    pub image: String,
    /// The resolved scaling group.
    pub scaling_group: String,
    /// Requested slots per kernel (`cpu`, `mem` in bytes, accelerators), as decimal strings.
    #[schema(value_type = Object)]
    pub resources: serde_json::Value,
    /// Number of kernels.
    pub cluster_size: u32,
    /// 0..100.
    pub priority: u8,
    /// Batch: not scheduled before this time.
    pub starts_at: Option<String>,
    /// Batch: seconds it may run.
    pub batch_timeout: Option<u64>,
    /// Batch: the command it runs.
    pub startup_command: Option<String>,
    /// Sessions that must have TERMINATED successfully first.
    pub dependencies: Vec<String>,
    /// Free-form labels.
    #[schema(value_type = Object)]
    pub labels: serde_json::Value,
    /// Current status (upper case).
    pub status: String,
    /// When the status last changed.
    pub status_changed: Option<String>,
    /// Short machine-readable reason of the last transition.
    pub status_info: Option<String>,
    /// Status -> the last time it was entered.
    #[schema(value_type = Object)]
    pub status_history: serde_json::Value,
    /// While PENDING: `scheduler: {failed_predicates, passed_predicates, retries, last_try}`.
    #[schema(value_type = Object)]
    pub status_data: serde_json::Value,
    /// When it was enqueued.
    pub created_at: Option<String>,
    /// Where it was scheduled: `[{agent_id, slots}]`.
    #[schema(value_type = Vec<Object>)]
    pub agents: serde_json::Value,
    /// Exit code reported on termination.
    pub exit_code: Option<i32>,
}

/// A page of sessions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionList {
    /// Sessions in enqueue order.
    #[schema(value_type = Vec<SessionView>)]
    pub items: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Query parameters of `GET /v1/sessions`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this status (e.g. `RUNNING`).
    pub status: Option<String>,
    /// Only this scaling group.
    pub scaling_group: Option<String>,
    /// Only this owner (admins; a user may only name themself).
    pub owner: Option<String>,
    /// Only this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub session_type: Option<String>,
    /// Page size, 1..=1000 (default 100).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Wait until the read models include this position.
    pub min_position: Option<i64>,
}

/// Sessions, filtered, in enqueue order, with keyset pagination.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions",
    params(ListParams),
    responses((status = 200, body = SessionList), (status = 422, body = ErrorBody)))]
async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<SessionList>, ApiError> {
    caller.require_user_or_admin()?;
    let owner = match (&caller.0.role, params.owner) {
        (Role::User { owner }, Some(asked)) if &asked != owner => {
            return Err(ApiError::Forbidden(
                "the owner filter names another user; only admins may list others' sessions".into(),
            ))
        }
        (Role::User { owner }, _) => Some(owner.clone()),
        (_, asked) => asked,
    };
    if let Some(s) = &params.status {
        if s.parse::<SessionStatus>().is_err() {
            return Err(ApiError::validation(
                "status",
                format!("unknown status '{s}'"),
            ));
        }
    }
    if let Some(t) = &params.session_type {
        if SessionType::parse(t).is_none() {
            return Err(ApiError::validation(
                "type",
                "must be 'interactive', 'batch' or 'inference'",
            ));
        }
    }
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let after = match &params.cursor {
        None => 0,
        Some(c) => decode_cursor(c)
            .ok_or_else(|| ApiError::validation("cursor", "not a cursor this API returned"))?,
    };
    MinPosition {
        min_position: params.min_position,
    }
    .wait(&state)
    .await?;
    let filter = SessionFilter {
        owner,
        status: params.status,
        scaling_group: params.scaling_group,
        session_type: params.session_type,
    };
    let page = session_list::list_sessions(state.app.db(), &filter, after, limit).await?;
    let pending: Vec<String> = page
        .items
        .iter()
        .filter(|s| s.status == Some(SessionStatus::Pending))
        .filter_map(|s| s.spec.as_ref().map(|p| p.session_id.to_string()))
        .collect();
    let queue = session_list::pending_entries(state.app.db(), &pending).await?;
    let items = page
        .items
        .iter()
        .map(|s| {
            let id = s.spec.as_ref().map(|p| p.session_id.to_string());
            let entry = queue.iter().find(|q| Some(&q.session_id) == id.as_ref());
            projections::models::docs::session_view(s, entry)
        })
        .collect();
    Ok(axum::Json(SessionList {
        items,
        next_cursor: page.next_after.map(encode_cursor),
    }))
}

/// Cursors are opaque to clients: `c` + the enqueue position of the last item.
fn encode_cursor(position: i64) -> String {
    format!("c{position}")
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    cursor
        .strip_prefix('c')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
}

/// Query parameters of `GET /v1/sessions/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetParams {
    /// Fold the session's events up to this time (RFC 3339) instead of reading the
    /// read model.
    pub at: Option<String>,
    /// Wait until the read models include this position.
    pub min_position: Option<i64>,
}

/// The session's first event, if it exists and the caller may see it; 404 otherwise.
async fn visible_stream(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Vec<projections::RecordedEvent>, ApiError> {
    caller.require_user_or_admin()?;
    let not_found = || ApiError::not_found("session", id);
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found());
    }
    let events = state.app.store.read_stream("Session", id).await?;
    let owner = match events
        .first()
        .map(|e| e.decode::<domain::session::SessionEvent>())
    {
        Some(Ok(domain::session::SessionEvent::SessionEnqueued { spec, .. })) => spec.owner,
        _ => return Err(not_found()),
    };
    if !caller.0.can_access_owner(&owner) {
        return Err(not_found());
    }
    Ok(events)
}

/// One session: the read model (SPEC §1.2), or with `?at=` its state as of that time,
/// folded from its events.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "Session id"), GetParams),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn get_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<GetParams>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let at = params
        .at
        .as_deref()
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|_| ApiError::validation("at", "must be an RFC 3339 time"))
        })
        .transpose()?;
    if let Some(at) = at {
        let events = visible_stream(&state, &caller, &id).await?;
        let session: Session = crate::ctl::fold_stream(&events, Some(at), None)?;
        if session.status.is_none() {
            return Err(ApiError::NotFound(format!(
                "session '{id}' did not exist at {}",
                at.to_rfc3339()
            )));
        }
        return Ok(axum::Json(projections::models::docs::session_view(
            &session, None,
        )));
    }
    let not_found = || ApiError::not_found("session", &id);
    caller.require_user_or_admin()?;
    MinPosition {
        min_position: params.min_position,
    }
    .wait(&state)
    .await?;
    let view = projections::models::docs::get_session_view(state.app.db(), &id)
        .await?
        .ok_or_else(not_found)?;
    let owner = view.get("owner").and_then(|o| o.as_str()).unwrap_or("");
    if !caller.0.can_access_owner(owner) {
        return Err(not_found());
    }
    Ok(axum::Json(view))
}

/// One event of a session's history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// Global position.
    pub position: i64,
    /// Position in the session's stream (1-based).
    pub sequence: i64,
    /// e.g. `SessionScheduled`.
    pub event_type: String,
    /// Schema version of the payload.
    pub event_version: String,
    /// Domain time.
    pub occurred_at: Option<String>,
    /// When the store accepted it.
    pub recorded_at: String,
    /// API key id, `scheduler`, or `agent:<id>`.
    pub actor: String,
    /// The user action all its events share.
    pub correlation_id: Option<String>,
    /// The message that caused it.
    pub causation_id: Option<String>,
    /// The event body.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// A session's events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct History {
    /// In stream order.
    pub items: Vec<HistoryEntry>,
}

/// Every event of a session, with actor and timestamps (straight from the log: always
/// current).
#[utoipa::path(get, path = "/v1/sessions/{id}/history", tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 200, body = History), (status = 404, body = ErrorBody)))]
async fn session_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<History>, ApiError> {
    let events = visible_stream(&state, &caller, &id).await?;
    let meta = |e: &projections::RecordedEvent, k: &str| {
        e.metadata
            .get(k)
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    Ok(axum::Json(History {
        items: events
            .iter()
            .map(|e| HistoryEntry {
                position: e.global_position,
                sequence: e.sequence,
                event_type: e.event_type.clone(),
                event_version: e.event_version.clone(),
                occurred_at: projections::models::audit_log::occurred_at(&e.payload),
                recorded_at: e
                    .recorded_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                actor: e.actor().to_string(),
                correlation_id: meta(e, "correlation_id"),
                causation_id: meta(e, "causation_id"),
                payload: e.payload.clone(),
            })
            .collect(),
    }))
}

/// Body of `POST /v1/sessions` (SPEC §1.2). Unknown fields are rejected (422).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueSession {
    /// Unique among the owner's non-terminal sessions.
    pub name: String,
    /// `interactive | batch | inference`.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub session_type: SessionType,
    /// Container image.
    pub image: String,
    /// The scaling group; omitted: the first active group (by name) available to you
    /// that accepts the type.
    pub scaling_group: Option<String>,
    /// Slots per kernel: `cpu` (cores, decimal), `mem` (bytes or `"4g"`), accelerators.
    #[schema(value_type = Object)]
    pub resources: serde_json::Value,
    /// Kernels (default 1).
    pub cluster_size: Option<u32>,
    /// 0..=100 (default 10).
    pub priority: Option<u8>,
    /// Batch only: not scheduled before this time.
    pub starts_at: Option<DateTime<Utc>>,
    /// Batch only: seconds it may run.
    pub batch_timeout: Option<u64>,
    /// Batch only: the command to run.
    pub startup_command: Option<String>,
    /// Sessions that must have TERMINATED successfully first.
    #[serde(default)]
    pub dependencies: Vec<uuid::Uuid>,
    /// Free-form labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The owner: admins must name one; a user key may only name its own.
    pub owner: Option<String>,
}

/// A session command's result: the session, its status, and the consistency token.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionWritten {
    /// The session.
    pub session_id: String,
    /// Its status after the command.
    pub status: String,
    /// Pass as `?min_position=` to read your write.
    pub position: i64,
}

fn written(
    committed: &crate::command::Committed<Session>,
    session_id: &str,
    position: i64,
) -> SessionWritten {
    SessionWritten {
        session_id: session_id.to_string(),
        status: committed
            .state
            .status
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        position,
    }
}

/// Statuses of responses an `Idempotency-Key` replays. Transient outcomes (a conflict
/// that outlived the retries, 429, the store being down) are not recorded: a retry runs
/// afresh.
fn replayable(e: &ApiError) -> bool {
    let status = e.status_code().as_u16();
    (400..500).contains(&status) && status != 429 && e.code() != "conflict"
}

/// Enqueue a session (PENDING). With `Idempotency-Key`, a retry with the same key and
/// body returns the original response and creates nothing; another body is 422.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions",
    request_body = EnqueueSession,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe (1-255 printable characters)")),
    responses(
        (status = 201, body = SessionWritten),
        (status = 400, description = "malformed JSON", body = ErrorBody),
        (status = 409, description = "name_conflict", body = ErrorBody),
        (status = 413, description = "body over 1 MiB", body = ErrorBody),
        (status = 422, description = "validation_error, no_scaling_group, scaling_group_not_found, session_type_not_allowed, idempotency_key_reused", body = ErrorBody),
        (status = 429, description = "pending_limit_exceeded", body = ErrorBody)))]
async fn enqueue_session(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    Json(value): Json<serde_json::Value>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    caller.require_user_or_admin()?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .filter(|k| {
                    !k.is_empty()
                        && k.len() <= crate::idempotency::MAX_KEY_LEN
                        && k.chars().all(|c| c.is_ascii_graphic())
                })
                .ok_or_else(|| {
                    ApiError::validation(
                        "Idempotency-Key",
                        "must be 1-255 printable ASCII characters",
                    )
                })?
                .to_string(),
        ),
    };
    let body: EnqueueSession = super::extract::from_value(value.clone())?;
    let mut meta = state.metadata(&caller.0);
    let Some(key) = key else {
        let out = enqueue(&state, &caller, body, &meta, None).await?;
        return Ok((axum::http::StatusCode::CREATED, axum::Json(out)).into_response());
    };
    use crate::idempotency::{claim, complete, inspect, release, request_hash, Claim};
    let db = state.app.db();
    let scope = match &caller.0.role {
        Role::User { owner } => format!("user:{owner}"),
        _ => "admin".to_string(),
    };
    let hash = request_hash(&value);
    let stale = chrono::Duration::seconds(60);
    let deadline = tokio::time::Instant::now() + state.config.idempotency_wait;
    let mut outcome = claim(db, &scope, &key, &hash, stale).await?;
    loop {
        match outcome {
            Claim::Run { request_id } => {
                meta.correlation_id = request_id.clone();
                meta.causation_id = request_id.clone();
                // The session id is derived from the key: a retry after a crash between
                // the append and `complete` finds the session it created.
                let session_id = crate::idempotency::session_id_for(&scope, &key);
                let created = match enqueue(&state, &caller, body, &meta, Some(session_id)).await {
                    Err(ApiError::Conflict { code, .. }) if code == "already_exists" => {
                        existing_session(&state, session_id).await
                    }
                    other => other,
                };
                return match created {
                    Ok(out) => {
                        let text = serde_json::to_string(&out).map_err(ApiError::internal)?;
                        complete(db, &scope, &key, &request_id, 201, &text).await?;
                        Ok((axum::http::StatusCode::CREATED, axum::Json(out)).into_response())
                    }
                    Err(e) if replayable(&e) => {
                        let text = serde_json::to_string(&e.body()).map_err(ApiError::internal)?;
                        complete(
                            db,
                            &scope,
                            &key,
                            &request_id,
                            e.status_code().as_u16(),
                            &text,
                        )
                        .await?;
                        Err(e)
                    }
                    Err(e) => {
                        if let Err(r) = release(db, &scope, &key, &request_id).await {
                            tracing::warn!(error = %r, "cannot release an idempotency key");
                        }
                        Err(e)
                    }
                };
            }
            Claim::Replay { status, body } => {
                state.metrics.idempotent_replay();
                let status =
                    axum::http::StatusCode::from_u16(status).map_err(ApiError::internal)?;
                let mut response = (
                    status,
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
                    .into_response();
                response.headers_mut().insert(
                    "idempotent-replayed",
                    axum::http::HeaderValue::from_static("true"),
                );
                return Ok(response);
            }
            Claim::Mismatch => {
                return Err(ApiError::Unprocessable {
                    code: "idempotency_key_reused".into(),
                    message: "Idempotency-Key: already used with a different request body".into(),
                })
            }
            Claim::InFlight => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(ApiError::Conflict {
                        code: "conflict".into(),
                        message:
                            "a request with this Idempotency-Key is still being processed; retry"
                                .into(),
                    });
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                outcome = inspect(db, &scope, &key, &hash, stale).await?;
            }
            Claim::Vacant => {
                outcome = claim(db, &scope, &key, &hash, stale).await?;
            }
        }
    }
}

/// The response for a session an earlier attempt of an idempotent request created.
async fn existing_session(state: &AppState, session_id: Uuid) -> Result<SessionWritten, ApiError> {
    let id = session_id.to_string();
    let session: Session = state.app.commands.load(&id).await?;
    let committed = crate::command::Committed {
        state: session,
        events: vec![],
        positions: vec![],
        attempts: 1,
    };
    let position = state.position_after(&committed, &id).await?;
    Ok(written(&committed, &id, position))
}

/// Validates the body and runs the enqueue service.
async fn enqueue(
    state: &AppState,
    caller: &Caller,
    body: EnqueueSession,
    meta: &crate::store::EventMetadata,
    session_id: Option<Uuid>,
) -> Result<SessionWritten, ApiError> {
    let owner = match (&caller.0.role, body.owner) {
        (Role::User { owner }, None) => owner.clone(),
        (Role::User { owner }, Some(asked)) if &asked == owner => asked,
        (Role::User { .. }, Some(_)) => {
            return Err(ApiError::Forbidden(
                "owner: a user key may only enqueue its own sessions".into(),
            ))
        }
        (_, Some(owner)) if !owner.trim().is_empty() => owner,
        (_, _) => {
            return Err(ApiError::validation(
                "owner",
                "required when enqueueing with an admin key",
            ))
        }
    };
    let resources = domain::ResourceSlots::from_json(&body.resources, "resources")?;
    let priority = body.priority.unwrap_or(10);
    if priority > 100 {
        return Err(ApiError::validation(
            "priority",
            "must be between 0 and 100",
        ));
    }
    let request = crate::sessions::EnqueueRequest {
        session_id,
        name: body.name,
        owner,
        session_type: body.session_type,
        image: body.image,
        scaling_group: body.scaling_group,
        resources,
        cluster_size: body.cluster_size.unwrap_or(1),
        priority,
        starts_at: body.starts_at,
        batch_timeout: body.batch_timeout,
        startup_command: body.startup_command,
        dependencies: body.dependencies,
        labels: body.labels,
    };
    let committed = crate::sessions::enqueue(&state.app, request, meta).await?;
    state.metrics.command_attempts(committed.attempts);
    let id = committed
        .state
        .spec
        .as_ref()
        .map(|s| s.session_id.to_string())
        .unwrap_or_default();
    let position = state.position_after(&committed, &id).await?;
    Ok(written(&committed, &id, position))
}

/// Query parameters of `DELETE /v1/sessions/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Admins: end it at once (`force-terminated`).
    #[serde(default)]
    pub forced: bool,
}

/// Cancel (PENDING..CREATING) or terminate (RUNNING, RESTARTING, RUNNING_DEGRADED,
/// ERROR) a session; TERMINATING is a 202 no-op; an ended session is 409;
/// `?forced=true` (admins) ends it at once.
#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "Session id"), DeleteParams),
    responses((status = 200, body = SessionWritten),
              (status = 202, description = "already TERMINATING", body = SessionWritten),
              (status = 404, body = ErrorBody),
              (status = 409, description = "illegal_transition (already ended)", body = ErrorBody)))]
async fn delete_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<DeleteParams>,
) -> Result<(axum::http::StatusCode, axum::Json<SessionWritten>), ApiError> {
    visible_stream(&state, &caller, &id).await?;
    if params.forced {
        caller.require_admin()?;
    }
    let uuid = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::not_found("session", &id))?;
    let meta = state.metadata(&caller.0);
    let deleted = crate::sessions::delete(&state.app, uuid, params.forced, &meta).await?;
    state.metrics.command_attempts(deleted.committed.attempts);
    let position = state.position_after(&deleted.committed, &id).await?;
    let status = if deleted.already_terminating {
        axum::http::StatusCode::ACCEPTED
    } else {
        axum::http::StatusCode::OK
    };
    Ok((
        status,
        axum::Json(written(&deleted.committed, &id, position)),
    ))
}

/// Body of `POST /v1/sessions/{id}/kernel-events`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelEventBody {
    /// `preparing | pulling | prepared | creating | started | terminated | failed`.
    pub event: String,
    /// With `terminated`: the kernel's exit code (non-zero without a stop request: ERROR).
    pub exit_code: Option<i32>,
    /// Short machine-readable reason, e.g. `image-pull-failed`.
    pub reason: Option<String>,
}

/// An agent's report about a session placed on it (agent keys: only their own
/// sessions, 403 otherwise; admins may report for any agent).
#[utoipa::path(post, path = "/v1/sessions/{id}/kernel-events", tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    request_body = KernelEventBody,
    responses((status = 200, body = SessionWritten),
              (status = 403, description = "not placed on this agent", body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "illegal_transition", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn kernel_event(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<KernelEventBody>,
) -> Result<axum::Json<SessionWritten>, ApiError> {
    let agent = match &caller.0.role {
        Role::Agent { agent_id } => Some(agent_id.clone()),
        Role::Admin => None,
        Role::User { .. } => {
            return Err(ApiError::Forbidden(
                "kernel events are reported by agent keys".into(),
            ))
        }
    };
    let event = crate::sessions::KernelEvent::parse(&body.event, body.exit_code, body.reason)
        .ok_or_else(|| {
            ApiError::validation(
                "event",
                "must be one of preparing, pulling, prepared, creating, started, terminated, failed",
            )
        })?;
    let uuid = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::not_found("session", &id))?;
    let meta = state.metadata(&caller.0);
    let committed =
        crate::sessions::kernel_event(&state.app, uuid, agent.as_deref(), event, &meta).await?;
    state.metrics.command_attempts(committed.attempts);
    let position = state.position_after(&committed, &id).await?;
    Ok(axum::Json(written(&committed, &id, position)))
}
