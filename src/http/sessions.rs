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

use super::error::{ApiError, ErrorBody};
use super::extract::{Caller, MinPosition, Query};
use super::AppState;
use crate::auth::Role;

/// `router()` of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions))
        .routes(routes!(get_session))
        .routes(routes!(session_history))
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
