//! `/v1/sessions`: enqueue, list, get (also as of a past time), history, delete, and
//! the agents' kernel events (SPEC §1.2, §4).
//!
//! Users see and act on their own sessions only; another owner's session is 404, never
//! 403, so its existence does not leak. Agent keys use the agent endpoints only, and a
//! session not placed on the reporting agent is 404 to it as well.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::agent::AgentAllocation;
use domain::bounds::{BatchTimeout, ClusterSize, Priority};
use domain::ids::{GroupName, ImageRef, Owner, Reason, SessionName};
use domain::resources::{ResourceSlots, SlotUse};
use domain::session::reasons::QUEUE_ORDER;
use domain::session::spec::{parse_dependencies, parse_labels, parse_startup_command};
use domain::session::{
    FailedPredicate, KernelEvent, PassedPredicate, Session, SessionEvent, SessionSpec,
    SessionStatus, SessionType, ALL_STATUSES, KERNEL_EVENTS,
};

use projections::models::pending_queue::PendingEntry;
use projections::models::session_list::{self, SessionFilter};
use projections::models::{PENDING_QUEUE, SESSIONS};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ErrorBody, ErrorCode};
use super::extract::{integer, Caller, Json, JsonObject, MinPosition, Query};
use super::{schema, AppState};
use crate::auth::Role;
use crate::idempotency::{self, Begin, Finish};
use store::session_logs::LOG_TAIL_BYTES;

/// `router()` of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions, enqueue_session))
        .routes(routes!(get_session, delete_session))
        .routes(routes!(session_history))
        .routes(routes!(session_logs))
        .routes(routes!(session_counts))
        .routes(routes!(kernel_event))
}

/// Largest page of `GET /v1/sessions`.
pub const MAX_LIMIT: i64 = 1000;
/// Default page size.
pub const DEFAULT_LIMIT: i64 = 100;
/// The read models the session reads use (what `?min_position` waits for).
const READ_MODELS: [&str; 2] = [SESSIONS, PENDING_QUEUE];

fn status_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ALL_STATUSES.iter().map(|s| s.as_str())))
}

fn type_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(SessionType::ALL.iter().map(|t| t.as_str())))
}

fn event_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(KERNEL_EVENTS))
}

/// A session id in a path: a UUID in the hyphenated form (any case; answered in lower
/// case). Anything else is 422 naming `session_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionId(pub Uuid);

impl SessionId {
    /// Parses the hyphenated form (`8-4-4-4-12` hex digits) only.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let hyphenated = text.len() == 36
            && text.char_indices().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => c == '-',
                _ => c.is_ascii_hexdigit(),
            });
        if !hyphenated {
            return Err(ApiError::validation(
                "session_id",
                "must be a UUID (8-4-4-4-12 hexadecimal digits)",
            ));
        }
        Uuid::parse_str(text).map(SessionId).map_err(|_| {
            ApiError::validation(
                "session_id",
                "must be a UUID (8-4-4-4-12 hexadecimal digits)",
            )
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for SessionId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        SessionId::parse(&text)
    }
}

/// The scheduler's part of a pending session's `status_data`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SchedulerData {
    /// Predicates that failed at the last recorded attempt, with messages.
    #[schema(value_type = Vec<Object>)]
    pub failed_predicates: Vec<FailedPredicate>,
    /// Predicates that passed.
    #[schema(value_type = Vec<Object>)]
    pub passed_predicates: Vec<PassedPredicate>,
    /// Scheduling attempts so far.
    pub retries: i64,
    /// The last attempt (RFC 3339).
    pub last_try: Option<String>,
    /// Its 1-based place in the group's queue when the last pass did not evaluate it
    /// because a strict queue is blocked ahead of it (`failed_predicates` is then the
    /// one `queue_order` predicate naming the blocking session); `null` otherwise.
    pub queue_position: Option<i64>,
}

/// A session's `status_data`: `scheduler` while PENDING, empty otherwise.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StatusData {
    /// While PENDING: why it waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<SchedulerData>,
}

/// A session as the read API shows it (SPEC §1.2; Backend.AI's names).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    /// UUID, server-assigned.
    pub session_id: Uuid,
    /// Unique among the owner's non-terminal sessions.
    #[schema(value_type = String)]
    pub name: SessionName,
    /// The owner.
    #[schema(value_type = String)]
    pub owner: Owner,
    /// `interactive | batch | inference`.
    #[serde(rename = "type")]
    #[schema(schema_with = type_schema)]
    pub session_type: SessionType,
    /// Container image.
    #[schema(value_type = String)]
    pub image: ImageRef,
    /// The resolved scaling group.
    #[schema(value_type = String)]
    pub scaling_group: GroupName,
    /// Requested slots per kernel (`cpu`, `mem` in bytes, accelerators), as decimal strings.
    #[schema(value_type = Object)]
    pub resources: ResourceSlots,
    /// Number of kernels.
    #[schema(value_type = u32)]
    pub cluster_size: ClusterSize,
    /// 0..100.
    #[schema(value_type = u8)]
    pub priority: Priority,
    /// Batch: not scheduled before this time.
    pub starts_at: Option<DateTime<Utc>>,
    /// Batch: seconds it may run.
    #[schema(value_type = Option<u64>)]
    pub batch_timeout: Option<BatchTimeout>,
    /// Batch: the command it runs.
    pub startup_command: Option<String>,
    /// Sessions that must have TERMINATED successfully first.
    pub dependencies: Vec<Uuid>,
    /// Free-form labels.
    #[schema(value_type = Object)]
    pub labels: domain::session::Labels,
    /// Where its status changes are also POSTed (`null`: nowhere).
    #[serde(default)]
    pub callback_url: Option<String>,
    /// Current status (upper case).
    #[schema(schema_with = status_schema)]
    pub status: SessionStatus,
    /// When the status last changed.
    pub status_changed: Option<DateTime<Utc>>,
    /// Short machine-readable reason of the last transition.
    pub status_info: Option<String>,
    /// Status -> the last time it was entered.
    #[schema(value_type = Object)]
    pub status_history: BTreeMap<SessionStatus, DateTime<Utc>>,
    /// While PENDING: `scheduler: {failed_predicates, passed_predicates, retries, last_try}`.
    pub status_data: StatusData,
    /// When it was enqueued.
    pub created_at: Option<DateTime<Utc>>,
    /// Where it was scheduled: `[{agent_id, slots}]`.
    #[schema(value_type = Vec<Object>)]
    pub agents: Vec<AgentAllocation>,
    /// Exit code reported on termination.
    pub exit_code: Option<i32>,
}

impl SessionView {
    /// The view of a folded session and, while PENDING, its queue entry (`None` for a
    /// session that does not exist).
    pub fn of(session: &Session, queue: Option<&PendingEntry>) -> Option<Self> {
        let spec = session.spec.clone()?;
        let status = session.status?;
        let queued = queue.and_then(|q| q.queue_position.zip(q.queue_reason.clone()));
        let scheduler = (status == SessionStatus::Pending).then(|| SchedulerData {
            failed_predicates: match &queued {
                Some((_, msg)) => vec![FailedPredicate {
                    name: QUEUE_ORDER.to_string(),
                    msg: msg.clone(),
                }],
                None => session.failed_predicates.clone(),
            },
            passed_predicates: session.passed_predicates.clone(),
            retries: queue.map(|q| q.retries).unwrap_or(0),
            last_try: queue.and_then(|q| q.last_try.clone()),
            queue_position: queued.map(|(p, _)| p),
        });
        Some(Self {
            session_id: spec.session_id,
            name: spec.name,
            owner: spec.owner,
            session_type: spec.session_type,
            image: spec.image,
            scaling_group: spec.scaling_group,
            resources: spec.resources,
            cluster_size: spec.cluster_size,
            priority: spec.priority,
            starts_at: spec.starts_at,
            batch_timeout: spec.batch_timeout,
            startup_command: spec.startup_command,
            dependencies: spec.dependencies,
            labels: spec.labels,
            callback_url: spec.callback_url.map(|u| u.to_string()),
            status,
            status_changed: session.status_changed,
            status_info: session.status_info.clone(),
            status_history: session.status_history.clone(),
            status_data: StatusData { scheduler },
            created_at: session.enqueued_at,
            agents: session.allocations.clone(),
            exit_code: session.exit_code,
        })
    }
}

/// A page of sessions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionList {
    /// Sessions in enqueue order.
    pub items: Vec<SessionView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Query parameters of `GET /v1/sessions`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only this status (e.g. `RUNNING`).
    #[param(schema_with = status_schema)]
    pub status: Option<String>,
    /// Only this scaling group.
    #[param(schema_with = schema::group_name)]
    pub scaling_group: Option<String>,
    /// Only this owner (admins; a user may only name themself).
    #[param(schema_with = schema::owner)]
    pub owner: Option<String>,
    /// Only this type.
    #[serde(rename = "type")]
    #[param(rename = "type", schema_with = type_schema)]
    pub session_type: Option<String>,
    /// Page size, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^c[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// Wait until the read models include this position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

/// The owner a list is limited to: a user's own (naming another is 403), or the one an
/// admin names (`None`: everyone's).
fn listed_owner(caller: &Caller, asked: Option<&str>) -> Result<Option<String>, ApiError> {
    caller.require_user_or_admin()?;
    let asked = asked.map(|o| Owner::parse("owner", o)).transpose()?;
    match (&caller.0.role, asked) {
        (Role::User { owner }, Some(asked)) if asked.as_str() != owner => Err(ApiError::forbidden(
            "owner: names another user; only admins may list others' sessions",
        )),
        (Role::User { owner }, _) => Ok(Some(owner.clone())),
        (_, asked) => Ok(asked.map(String::from)),
    }
}

/// Query parameters of `GET /v1/session-counts`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CountParams {
    /// Only this scaling group.
    #[param(schema_with = schema::group_name)]
    pub scaling_group: Option<String>,
    /// Only this owner (admins; a user may only name themself).
    #[param(schema_with = schema::owner)]
    pub owner: Option<String>,
    /// Wait until the read models include this position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

/// Sessions in one status of one scaling group.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionCount {
    /// The scaling group.
    pub scaling_group: String,
    /// The status.
    #[schema(schema_with = status_schema)]
    pub status: String,
    /// How many sessions are in it.
    pub count: i64,
}

/// Session counts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionCounts {
    /// Non-zero counts, by scaling group then status.
    pub items: Vec<SessionCount>,
}

/// How many sessions are in each status of each scaling group (a user counts their own
/// sessions only). The dashboard's overview.
#[utoipa::path(get, path = "/v1/session-counts", tag = "sessions",
    params(CountParams),
    responses((status = 200, body = SessionCounts),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn session_counts(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<CountParams>,
) -> Result<axum::Json<SessionCounts>, ApiError> {
    let owner = listed_owner(&caller, params.owner.as_deref())?;
    if let Some(g) = &params.scaling_group {
        GroupName::parse("scaling_group", g)?;
    }
    MinPosition {
        min_position: params.min_position,
    }
    .wait(&state, &[SESSIONS])
    .await?;
    let rows = session_list::count_by_group(
        state.app.db(),
        owner.as_deref(),
        params.scaling_group.as_deref(),
    )
    .await?;
    Ok(axum::Json(SessionCounts {
        items: rows
            .into_iter()
            .map(|(scaling_group, status, count)| SessionCount {
                scaling_group,
                status,
                count,
            })
            .collect(),
    }))
}

/// Sessions, filtered, in enqueue order, with keyset pagination.
#[utoipa::path(get, path = "/v1/sessions", tag = "sessions",
    params(ListParams),
    responses((status = 200, body = SessionList),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<SessionList>, ApiError> {
    let owner = listed_owner(&caller, params.owner.as_deref())?;
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
    if let Some(g) = &params.scaling_group {
        GroupName::parse("scaling_group", g)?;
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
    .wait(&state, &READ_MODELS)
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
        .filter_map(|s| {
            let id = s.spec.as_ref().map(|p| p.session_id.to_string());
            let entry = queue.iter().find(|q| Some(&q.session_id) == id.as_ref());
            SessionView::of(s, entry)
        })
        .collect();
    Ok(axum::Json(SessionList {
        items,
        next_cursor: page.next_after.map(encode_cursor),
    }))
}

/// Cursors are opaque to clients: `c` + the enqueue position of the last item.
pub fn encode_cursor(position: i64) -> String {
    format!("c{position}")
}

/// The position a `cursor` of [`encode_cursor`] names; `None` for anything else (the
/// list answers 422). Public for the structure-aware fuzz tests (`tests/fuzz`).
pub fn decode_cursor(cursor: &str) -> Option<i64> {
    let digits = cursor.strip_prefix('c')?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok()
}

/// Query parameters of `GET /v1/sessions/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// Fold the session's events up to this time (RFC 3339) instead of reading the
    /// read model.
    #[param(value_type = Option<String>, format = DateTime)]
    pub at: Option<String>,
    /// Wait until the read models include this position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

/// The session's events, if it exists and the caller may see it; 404 otherwise (its
/// first event, read from the log, names the owner: no read-model lag).
async fn visible_stream(
    state: &AppState,
    caller: &Caller,
    id: SessionId,
) -> Result<Vec<projections::RecordedEvent>, ApiError> {
    caller.require_user_or_admin()?;
    let text = id.0.to_string();
    let not_found = || ApiError::not_found("session", &text);
    let events = state
        .app
        .store
        .read_stream(<Session as domain::Decider>::TYPE, &text)
        .await?;
    let owner = match events.first().map(|e| e.decode::<SessionEvent>()) {
        Some(Ok(SessionEvent::SessionEnqueued { spec, .. })) => spec.owner,
        _ => return Err(not_found()),
    };
    if !caller.0.can_access_owner(&owner) {
        return Err(not_found());
    }
    Ok(events)
}

fn fold(events: &[projections::RecordedEvent]) -> Result<Session, ApiError> {
    let decoded: Vec<SessionEvent> = events
        .iter()
        .map(|e| e.decode::<SessionEvent>())
        .collect::<Result<_, _>>()?;
    Ok(Session::fold(decoded.iter()))
}

/// One session: the read model (SPEC §1.2) — or, when the read model is behind the
/// session's stream, the stream folded, so a write acknowledged a moment ago is always
/// visible — or with `?at=` its state as of that time, folded from its events.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, format = Uuid, description = "Session id"), GetParams),
    responses((status = 200, body = SessionView),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn get_session(
    State(state): State<AppState>,
    caller: Caller,
    id: SessionId,
    Query(params): Query<GetParams>,
) -> Result<axum::Json<SessionView>, ApiError> {
    caller.require_user_or_admin()?;
    let text = id.0.to_string();
    let not_found = || ApiError::not_found("session", &text);
    if let Some(at) = params.at.as_deref() {
        let at = DateTime::parse_from_rfc3339(at)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| ApiError::validation("at", "must be an RFC 3339 time"))?;
        let events = visible_stream(&state, &caller, id).await?;
        let decoded: Vec<SessionEvent> = events
            .iter()
            .map(|e| e.decode::<SessionEvent>())
            .collect::<Result<_, _>>()?;
        let session: Session = domain::fold_until(
            &decoded,
            domain::Until {
                at: Some(at),
                to_sequence: None,
            },
        );
        return SessionView::of(&session, None)
            .map(axum::Json)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NotFound,
                    format!("session '{text}' did not exist at {}", at.to_rfc3339()),
                )
            });
    }
    MinPosition {
        min_position: params.min_position,
    }
    .wait(&state, &READ_MODELS)
    .await?;
    // The document, its queue row and the stream's last sequence in one statement.
    // Read-your-writes without a token: the stream's last sequence says whether the
    // read model has everything acknowledged for this session.
    let one = session_list::get_one(state.app.db(), &text).await?;
    let queue = one.queue;
    let mut session = one.session;
    let behind = match (&session, one.last_sequence) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(s), Some(sequence)) => i64::try_from(s.version).unwrap_or(i64::MAX) < sequence,
    };
    if behind {
        let events = state
            .app
            .store
            .read_stream(<Session as domain::Decider>::TYPE, &text)
            .await?;
        session = Some(fold(&events)?);
    }
    let session = session.ok_or_else(not_found)?;
    let owner = session
        .spec
        .as_ref()
        .map(|s| s.owner.as_str())
        .unwrap_or("");
    if !caller.0.can_access_owner(owner) {
        return Err(not_found());
    }
    SessionView::of(&session, queue.as_ref())
        .map(axum::Json)
        .ok_or_else(not_found)
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
    params(("id" = String, Path, format = Uuid, description = "Session id")),
    responses((status = 200, body = History),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn session_history(
    State(state): State<AppState>,
    caller: Caller,
    id: SessionId,
) -> Result<axum::Json<History>, ApiError> {
    let events = visible_stream(&state, &caller, id).await?;
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

/// The end of a session's output, as its agent sent it with the final report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionLogsView {
    /// The session.
    pub session_id: Uuid,
    /// The agent that sent them (`null`: nothing sent yet).
    pub agent_id: Option<String>,
    /// The last 16 KiB of stdout (empty when nothing was sent).
    pub stdout: String,
    /// The last 16 KiB of stderr.
    pub stderr: String,
    /// When the agent sent them (`null`: nothing sent yet).
    pub reported_at: Option<DateTime<Utc>>,
}

/// The last 16 KiB of the session's stdout and stderr that its agent sent with the
/// final report (SPEC §9); empty, with `reported_at: null`, until then.
#[utoipa::path(get, path = "/v1/sessions/{id}/logs", tag = "sessions",
    params(("id" = String, Path, format = Uuid, description = "Session id")),
    responses((status = 200, body = SessionLogsView),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn session_logs(
    State(state): State<AppState>,
    caller: Caller,
    id: SessionId,
) -> Result<axum::Json<SessionLogsView>, ApiError> {
    let session_id = id.0;
    visible_stream(&state, &caller, id).await?;
    let logs = crate::sessions::logs(&state.app, session_id).await?;
    Ok(axum::Json(match logs {
        Some(l) => SessionLogsView {
            session_id,
            agent_id: Some(l.agent_id),
            stdout: l.stdout,
            stderr: l.stderr,
            reported_at: DateTime::from_timestamp_millis(l.reported_ms),
        },
        None => SessionLogsView {
            session_id,
            agent_id: None,
            stdout: String::new(),
            stderr: String::new(),
            reported_at: None,
        },
    }))
}

/// Body of `POST /v1/sessions` (SPEC §1.2). Unknown fields are rejected (422); every
/// field is validated by its type's rule, and a failure names the field.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueSession {
    /// Unique among the owner's non-terminal sessions.
    #[schema(schema_with = schema::session_name)]
    pub name: String,
    /// `interactive | batch | inference`.
    #[serde(rename = "type")]
    #[schema(schema_with = type_schema)]
    pub session_type: SessionType,
    /// Container image.
    #[schema(schema_with = schema::image)]
    pub image: String,
    /// The scaling group; omitted: the first active group (by name) available to you
    /// that accepts the type.
    #[schema(schema_with = schema::group_name_or_null)]
    pub scaling_group: Option<String>,
    /// Slots per kernel: `cpu` (cores, decimal), `mem` (bytes or `"4g"`), accelerators.
    #[schema(schema_with = schema::request_slots)]
    pub resources: serde_json::Value,
    /// Kernels (default 1).
    #[schema(schema_with = schema::cluster_size_or_null)]
    pub cluster_size: Option<serde_json::Number>,
    /// 0..=100 (default 10).
    #[schema(schema_with = schema::priority_or_null)]
    pub priority: Option<serde_json::Number>,
    /// Batch only: not scheduled before this time.
    #[schema(schema_with = schema::date_time_or_null)]
    pub starts_at: Option<DateTime<Utc>>,
    /// Batch only: seconds it may run.
    #[schema(schema_with = schema::batch_timeout_or_null)]
    pub batch_timeout: Option<serde_json::Number>,
    /// Batch only: the command to run.
    #[schema(schema_with = schema::startup_command_or_null)]
    pub startup_command: Option<String>,
    /// Your own sessions that must have TERMINATED successfully first.
    #[serde(default)]
    #[schema(schema_with = schema::dependencies)]
    pub dependencies: Vec<Uuid>,
    /// Free-form labels.
    #[serde(default)]
    #[schema(schema_with = schema::labels)]
    pub labels: BTreeMap<String, String>,
    /// The owner: admins must name one; a user key may only name its own.
    #[schema(schema_with = schema::owner_or_null)]
    pub owner: Option<String>,
    /// Where this session's status changes are also POSTed, signed with the owner's
    /// callback secret (`GET /v1/users/{owner}/callback-secret`); checked like a
    /// webhook subscription's URL. Backend.AI's aliases `callbackUrl` and `callbackURL`
    /// are accepted.
    #[serde(default, alias = "callbackUrl", alias = "callbackURL")]
    pub callback_url: Option<String>,
}

impl EnqueueSession {
    /// Validates every field into a spec for `owner` under `session_id`, and returns the
    /// group asked for. The spec's `scaling_group` is left for the caller to set to the
    /// resolved group (SPEC §2.1).
    pub fn into_spec(
        self,
        session_id: Uuid,
        owner: Owner,
    ) -> Result<(SessionSpec, Option<GroupName>), ApiError> {
        let number =
            |field: &str, n: Option<&serde_json::Number>| n.map(|n| integer(field, n)).transpose();
        let requested = self
            .scaling_group
            .as_deref()
            .map(|g| GroupName::parse("scaling_group", g))
            .transpose()?;
        let spec = SessionSpec {
            callback_url: self
                .callback_url
                .as_deref()
                .map(|u| domain::webhook::WebhookUrl::parse("callback_url", u))
                .transpose()?,
            session_id,
            name: SessionName::parse("name", &self.name)?,
            owner,
            session_type: self.session_type,
            image: ImageRef::parse("image", &self.image)?,
            scaling_group: GroupName::from_stored(String::new()),
            resources: ResourceSlots::parse(&self.resources, "resources", SlotUse::Request)?,
            cluster_size: match number("cluster_size", self.cluster_size.as_ref())? {
                Some(n) => ClusterSize::parse("cluster_size", n)?,
                None => ClusterSize::default(),
            },
            priority: match number("priority", self.priority.as_ref())? {
                Some(n) => Priority::parse("priority", n)?,
                None => Priority::default(),
            },
            starts_at: self.starts_at,
            batch_timeout: number("batch_timeout", self.batch_timeout.as_ref())?
                .map(|n| BatchTimeout::parse("batch_timeout", n))
                .transpose()?,
            startup_command: self
                .startup_command
                .as_deref()
                .map(|c| parse_startup_command("startup_command", c))
                .transpose()?,
            dependencies: parse_dependencies("dependencies", self.dependencies)?,
            labels: parse_labels("labels", self.labels)?,
        };
        domain::session::validate_spec(&SessionSpec {
            // The group is not known yet; every other rule is checked now.
            scaling_group: GroupName::from_stored("pending-resolution"),
            ..spec.clone()
        })?;
        Ok((spec, requested))
    }
}

/// A session command's result: the session, its status, and the consistency token.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionWritten {
    /// The session.
    pub session_id: String,
    /// Its status after the command.
    #[schema(schema_with = status_schema)]
    pub status: String,
    /// Pass as `?min_position=` to read your write.
    pub position: i64,
}

fn written(state: &Session, session_id: &str, position: i64) -> SessionWritten {
    SessionWritten {
        session_id: session_id.to_string(),
        status: state
            .status
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        position,
    }
}

/// Whether an error response is replayed to a retry with the same `Idempotency-Key`.
/// Transient outcomes (a conflict that outlived the retries, 429, 5xx) are not: the key
/// is released and a retry runs afresh.
fn replayable(e: &ApiError) -> bool {
    let status = e.status_code();
    status.is_client_error()
        && status != StatusCode::TOO_MANY_REQUESTS
        && e.code != ErrorCode::Conflict
}

/// The `Idempotency-Key` header: 1-255 printable ASCII characters (`None`: absent);
/// anything else is 422 naming the header.
pub fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .filter(|k| {
            !k.is_empty()
                && k.len() <= idempotency::MAX_KEY_LEN
                && k.chars().all(|c| c.is_ascii_graphic())
        })
        .map(|k| Some(k.to_string()))
        .ok_or_else(|| {
            ApiError::validation(
                "Idempotency-Key",
                "must be 1-255 printable ASCII characters",
            )
        })
}

/// Enqueue a session (PENDING). With `Idempotency-Key`, a retry with the same key and
/// body returns the original response and creates nothing; another body is 422.
#[utoipa::path(post, path = "/v1/sessions", tag = "sessions",
    request_body = EnqueueSession,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
            description = "Makes retries safe (1-255 printable ASCII characters)")),
    responses(
        (status = 201, body = SessionWritten),
        (status = 400, description = "malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "an agent key, or another owner", body = ErrorBody),
        (status = 409, description = "name_conflict", body = ErrorBody),
        (status = 413, description = "body over 1 MiB", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 422, description = "validation_error, no_scaling_group, scaling_group_not_found, session_type_not_allowed, idempotency_key_reused", body = ErrorBody),
        (status = 429, description = "pending_limit_exceeded", body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn enqueue_session(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    JsonObject(value): JsonObject,
) -> Result<Response, ApiError> {
    caller.require_user_or_admin()?;
    let key = idempotency_key(&headers)?;
    let hash = key.as_ref().map(|_| idempotency::request_hash(&value));
    let body: EnqueueSession = super::extract::from_value(value)?;
    let mut meta = state.metadata(&caller.0);
    let (Some(key), Some(hash)) = (key, hash) else {
        let out = enqueue(&state, &caller, body, &meta, None).await?;
        return Ok((StatusCode::CREATED, axum::Json(out)).into_response());
    };
    let db = state.app.db();
    let scope = match &caller.0.role {
        Role::User { owner } => format!("user:{owner}"),
        _ => "admin".to_string(),
    };
    match idempotency::begin(db, &scope, &key, &hash, state.config.idempotency_wait).await? {
        Begin::Replay { status, body } => {
            super::metrics::idempotent_replay();
            let status = StatusCode::from_u16(status).map_err(ApiError::internal)?;
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
            Ok(response)
        }
        Begin::Mismatch => Err(ApiError::new(
            ErrorCode::IdempotencyKeyReused,
            "Idempotency-Key: already used with a different request body",
        )),
        Begin::StillRunning => Err(ApiError::conflict(
            "a request with this Idempotency-Key is still being processed; retry",
        )),
        Begin::Run { request_id } => {
            meta.correlation_id = request_id.clone();
            meta.causation_id = request_id.clone();
            // The session id is derived from the key: a retry after a crash between the
            // append and `finish` finds the session it created.
            let session_id = idempotency::session_id_for(&scope, &key);
            let created = match enqueue(&state, &caller, body, &meta, Some(session_id)).await {
                Err(e) if e.code == ErrorCode::AlreadyExists => {
                    existing_session(&state, session_id).await
                }
                other => other,
            };
            let how = match &created {
                Ok(out) => Finish::Record {
                    status: StatusCode::CREATED.as_u16(),
                    body: serde_json::to_string(out).map_err(ApiError::internal)?,
                },
                Err(e) if replayable(e) => Finish::Record {
                    status: e.status_code().as_u16(),
                    body: serde_json::to_string(&e.body()).map_err(ApiError::internal)?,
                },
                Err(_) => Finish::Release,
            };
            if let Err(e) = idempotency::finish(db, &scope, &key, &request_id, how).await {
                tracing::warn!(error = %e, "cannot finish an idempotency record");
            }
            created.map(|out| (StatusCode::CREATED, axum::Json(out)).into_response())
        }
    }
}

/// The response for a session an earlier attempt of an idempotent request created.
async fn existing_session(state: &AppState, session_id: Uuid) -> Result<SessionWritten, ApiError> {
    let id = session_id.to_string();
    let session: Session = state.app.commands.load(&id).await?;
    let position = state.stream_position::<Session>(&id).await?;
    Ok(written(&session, &id, position))
}

/// Who a new session belongs to: a user key's own owner; an admin names one.
fn owner_of(caller: &Caller, asked: Option<&str>) -> Result<Owner, ApiError> {
    match (&caller.0.role, asked) {
        (Role::User { owner }, None) => Ok(Owner::from_stored(owner.clone())),
        (Role::User { owner }, Some(asked)) if asked == owner => Ok(Owner::parse("owner", asked)?),
        (Role::User { .. }, Some(_)) => Err(ApiError::forbidden(
            "owner: a user key may only enqueue its own sessions",
        )),
        (_, Some(asked)) => Ok(Owner::parse("owner", asked)?),
        (_, None) => Err(ApiError::validation(
            "owner",
            "required when enqueueing with an admin key",
        )),
    }
}

/// Validates the body, resolves the group and runs the enqueue service.
async fn enqueue(
    state: &AppState,
    caller: &Caller,
    body: EnqueueSession,
    meta: &crate::store::EventMetadata,
    session_id: Option<Uuid>,
) -> Result<SessionWritten, ApiError> {
    let owner = owner_of(caller, body.owner.as_deref())?;
    let id = session_id.unwrap_or_else(Uuid::new_v4);
    let (mut spec, requested) = body.into_spec(id, owner)?;
    if let Some(url) = &spec.callback_url {
        super::webhooks::check_url(state, "callback_url", url.as_str()).await?;
        // The owner's callback secret exists before the first delivery needs it.
        crate::webhooks::subscriptions::callback_secret(
            &state.app,
            &state.app.webhook_secrets,
            &spec.owner,
        )
        .await?;
    }
    spec.scaling_group = crate::sessions::resolve_group(
        &state.app,
        &spec.owner,
        spec.session_type,
        requested.as_ref(),
    )
    .await?;
    let committed = crate::sessions::enqueue(&state.app, spec, meta).await?;
    super::metrics::command_attempts(committed.attempts);
    let position = committed
        .last_position()
        .map(|p| p.global_position)
        .unwrap_or(0);
    Ok(written(&committed.state, &id.to_string(), position))
}

/// Query parameters of `DELETE /v1/sessions/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    /// Admins: end it at once (`force-terminated`).
    #[serde(default)]
    pub forced: bool,
}

/// Cancel (PENDING..CREATING) or terminate (RUNNING, RESTARTING, RUNNING_DEGRADED,
/// ERROR) a session; TERMINATING is a 202 no-op; an ended session is 409;
/// `?forced=true` (admins) ends it at once.
#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, format = Uuid, description = "Session id"), DeleteParams),
    responses((status = 200, body = SessionWritten),
              (status = 202, description = "already TERMINATING", body = SessionWritten),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "illegal_transition (already ended)", body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn delete_session(
    State(state): State<AppState>,
    caller: Caller,
    id: SessionId,
    Query(params): Query<DeleteParams>,
) -> Result<(StatusCode, axum::Json<SessionWritten>), ApiError> {
    visible_stream(&state, &caller, id).await?;
    if params.forced {
        caller.require_admin()?;
    }
    let text = id.0.to_string();
    let meta = state.metadata(&caller.0);
    let deleted = crate::sessions::delete(&state.app, id.0, params.forced, &meta).await?;
    super::metrics::command_attempts(deleted.committed.attempts);
    let position = match deleted.committed.last_position() {
        Some(p) => p.global_position,
        None => state.stream_position::<Session>(&text).await?,
    };
    let status = if deleted.already_terminating {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        axum::Json(written(&deleted.committed.state, &text, position)),
    ))
}

/// Body of `POST /v1/sessions/{id}/kernel-events`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelEventBody {
    /// `preparing | pulling | prepared | creating | started | terminated | failed`.
    #[schema(schema_with = event_schema)]
    pub event: String,
    /// With `terminated`: the kernel's exit code (non-zero without a stop request: ERROR).
    #[schema(schema_with = schema::exit_code_or_null)]
    pub exit_code: Option<serde_json::Number>,
    /// Short machine-readable reason, e.g. `image-pull-failed`.
    #[schema(schema_with = schema::reason_or_null)]
    pub reason: Option<String>,
    /// With `terminated` or `failed`: the last 16 KiB (at most) of the kernel's stdout
    /// and stderr, served at `GET /v1/sessions/{id}/logs` (ignored with other events).
    pub logs: Option<LogTails>,
}

/// The tails of a kernel's output an agent sends with its final report.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogTails {
    /// The end of stdout (at most 16384 bytes of UTF-8).
    #[serde(default)]
    #[schema(max_length = 16384)]
    pub stdout: String,
    /// The end of stderr (at most 16384 bytes of UTF-8).
    #[serde(default)]
    #[schema(max_length = 16384)]
    pub stderr: String,
}

/// An agent's report about a session placed on it (agent keys: only their own
/// sessions, 404 otherwise; admins may report for any agent).
#[utoipa::path(post, path = "/v1/sessions/{id}/kernel-events", tag = "sessions",
    params(("id" = String, Path, format = Uuid, description = "Session id")),
    request_body = KernelEventBody,
    responses((status = 200, body = SessionWritten),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, description = "a user key", body = ErrorBody),
              (status = 404, description = "no such session, or not placed on this agent", body = ErrorBody),
              (status = 409, description = "illegal_transition", body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn kernel_event(
    State(state): State<AppState>,
    caller: Caller,
    id: SessionId,
    Json(body): Json<KernelEventBody>,
) -> Result<axum::Json<SessionWritten>, ApiError> {
    let agent = match &caller.0.role {
        Role::Agent { agent_id } => Some(agent_id.clone()),
        Role::Admin => None,
        Role::User { .. } => {
            return Err(ApiError::forbidden(
                "kernel events are reported by agent keys",
            ))
        }
    };
    let reason = body
        .reason
        .as_deref()
        .map(|r| Reason::parse("reason", r))
        .transpose()?;
    let exit_code = body
        .exit_code
        .as_ref()
        .map(|n| {
            integer("exit_code", n).and_then(|c| {
                i32::try_from(c).map_err(|_| {
                    ApiError::validation("exit_code", "must be a 32-bit signed whole number")
                })
            })
        })
        .transpose()?;
    let event = KernelEvent::parse(&body.event, exit_code, reason).ok_or_else(|| {
        ApiError::validation(
            "event",
            format!("must be one of {}", KERNEL_EVENTS.join(", ")),
        )
    })?;
    let logs = match body.logs {
        None => None,
        // Kept with a final report only; a progress report's are ignored.
        Some(_) if !event.is_final() => None,
        Some(l) => {
            for (field, text) in [("logs.stdout", &l.stdout), ("logs.stderr", &l.stderr)] {
                if text.len() > LOG_TAIL_BYTES {
                    return Err(ApiError::validation(
                        field,
                        format!("must be at most {LOG_TAIL_BYTES} bytes (the end of the output)"),
                    ));
                }
            }
            Some((l.stdout, l.stderr))
        }
    };
    let text = id.0.to_string();
    let meta = state.metadata(&caller.0);
    let committed =
        crate::sessions::kernel_event(&state.app, id.0, agent.as_deref(), event, logs, &meta)
            .await?;
    super::metrics::command_attempts(committed.attempts);
    let position = match committed.last_position() {
        Some(p) => p.global_position,
        None => state.stream_position::<Session>(&text).await?,
    };
    Ok(axum::Json(written(&committed.state, &text, position)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_id_is_a_hyphenated_uuid_in_any_case() {
        let id = "5E55A0B1-0000-4000-8000-00000000000A";
        assert_eq!(
            SessionId::parse(id)
                .map(|s| s.0.to_string())
                .ok()
                .as_deref(),
            Some("5e55a0b1-0000-4000-8000-00000000000a")
        );
        for bad in [
            "{5e55a0b1-0000-4000-8000-00000000000a}",
            "urn:uuid:5e55a0b1-0000-4000-8000-00000000000a",
            "5e55a0b100004000800000000000000a",
            "not-a-uuid",
            "",
        ] {
            assert!(SessionId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_are_c_and_digits_only() {
        assert_eq!(decode_cursor("c42"), Some(42));
        for bad in ["c", "c-1", "42", "c1e3", "c+1", "c99999999999999999999"] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
