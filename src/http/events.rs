//! `GET /v1/events/sessions`: Server-Sent Events of session lifecycle events, read from
//! the global log in commit order (SPEC §3), so a client never misses an event that
//! committed late. Each SSE `id` is the event's global position; a client that
//! reconnects with `Last-Event-ID` (or `?last_event_id=`) resumes right after it, with
//! no gap and no duplicate.
//!
//! Where a new stream starts: after `Last-Event-ID` if given; else, with
//! `?session_id=`, at that session's first event (its whole lifecycle); else at the
//! head of the log (only what happens from now on).
//!
//! Streams share the process's one log follower ([`crate::follower`]): an open stream
//! holds no database connection while it waits, and at most
//! [`super::ApiConfig::max_streams_per_key`] are open per API key (429
//! `too_many_streams` beyond, with `Retry-After`). A stream ends when its key is
//! revoked (within the key watcher's interval, on every replica), and when the server
//! shuts down.
//!
//! Users receive events of their own sessions only; `?session_id=` of a session they
//! may not see is 404, like every other read.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use domain::bgtask::{BackgroundTask, BackgroundTaskEvent, TaskStatus};
use domain::session::SessionEvent;
use futures::Stream;
use projections::{LogPosition, RecordedEvent};
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{Caller, Query};
use super::limits::StreamPermit;
use super::sessions::SessionId;
use super::{schema, AppState};
use crate::auth::Role;
use crate::follower::{Followed, Subscription};

/// `router()` of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(session_events))
        .routes(routes!(background_task_events))
}

/// Query parameters of the session event stream.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// Only this session's events (starts at its first event unless resuming).
    #[param(format = Uuid)]
    pub session_id: Option<String>,
    /// Only events of sessions in this scaling group.
    #[param(schema_with = schema::group_name)]
    pub scaling_group: Option<String>,
    /// Resume after this event id (same as the `Last-Event-ID` header, which wins).
    #[param(minimum = 0)]
    pub last_event_id: Option<i64>,
}

/// The `data` of one SSE event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionEventData {
    /// Global position (also the SSE `id`).
    pub position: i64,
    /// The session.
    pub session_id: String,
    /// Position in the session's stream.
    pub sequence: i64,
    /// e.g. `SessionScheduled` (also the SSE `event`).
    pub event_type: String,
    /// The status the session entered (`null` for a scheduling failure, which keeps it
    /// PENDING).
    pub status: Option<String>,
    /// Short reason of the transition.
    pub status_info: Option<String>,
    /// When it happened (domain time).
    pub occurred_at: String,
    /// When the store accepted it.
    pub recorded_at: String,
    /// Who caused it.
    pub actor: String,
    /// The event body.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// `Last-Event-ID` (the header wins) or `?last_event_id=` (`query`): a position,
/// `>= 0` (0: from the first event); anything else is 422 naming `Last-Event-ID`.
pub fn last_event_id(headers: &HeaderMap, query: Option<i64>) -> Result<Option<i64>, ApiError> {
    let parsed = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::validation("Last-Event-ID", "must be an event id (a position >= 0)")
                })?,
        ),
        None => query,
    };
    match parsed {
        Some(p) if p < 0 => Err(ApiError::validation(
            "Last-Event-ID",
            "must be an event id (a position >= 0)",
        )),
        other => Ok(other),
    }
}

/// Session lifecycle events as Server-Sent Events (`id` = position, `event` =
/// event type, `data` = JSON of [`SessionEventData`]), resumable with `Last-Event-ID`.
#[utoipa::path(get, path = "/v1/events/sessions", tag = "events",
    params(StreamParams,
           ("Last-Event-ID" = Option<i64>, Header, minimum = 0, description = "Resume after this event id")),
    responses((status = 200, description = "text/event-stream: frames `id: <position>`, `event: <event type>`, `data: <SessionEventData as JSON>`", content_type = "text/event-stream", body = String),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 429, description = "too_many_streams", body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn session_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(params): Query<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let owner = visible_owner(&caller)?;
    let last_event_id = last_event_id(&headers, params.last_event_id)?;
    let session_id = params
        .session_id
        .as_deref()
        .map(SessionId::parse)
        .transpose()?
        .map(|s| s.0.to_string());
    if let Some(g) = &params.scaling_group {
        domain::ids::GroupName::parse("scaling_group", g)?;
    }
    let permit = state.streams.acquire(&caller.0.key_id)?;
    let follower = state.app.follower.clone();
    let db = state.app.db().clone();
    if let Some(id) = &session_id {
        let visible = follower
            .session_facts(id)
            .await?
            .is_some_and(|s| owner.as_ref().is_none_or(|o| &s.owner == o));
        if !visible {
            return Err(ApiError::not_found("session", id));
        }
    }
    let cursor = match (last_event_id, &session_id) {
        (None, Some(id)) => {
            let first = db
                .read_first(<domain::session::Session as domain::Decider>::TYPE, id)
                .await?
                .map(|e| e.log_position());
            match first {
                Some(p) => LogPosition {
                    transaction_id: p.transaction_id,
                    global_position: p.global_position.saturating_sub(1),
                },
                None => LogPosition::START,
            }
        }
        (last, _) => resume_at(&state, last).await?,
    };
    let filter = Filter {
        session_id,
        scaling_group: params.scaling_group,
        owner,
    };
    Ok(follow(&state, &caller, permit, cursor, filter))
}

#[derive(Debug)]
struct Filter {
    session_id: Option<String>,
    scaling_group: Option<String>,
    owner: Option<String>,
}

impl Filter {
    fn matches(&self, f: &Followed) -> bool {
        let e = &f.event;
        if e.aggregate_type != <domain::session::Session as domain::Decider>::TYPE {
            return false;
        }
        if self
            .session_id
            .as_ref()
            .is_some_and(|id| &e.aggregate_id != id)
        {
            return false;
        }
        if self.owner.is_none() && self.scaling_group.is_none() {
            return true;
        }
        let Some(facts) = &f.session else {
            return false;
        };
        self.owner.as_ref().is_none_or(|o| &facts.owner == o)
            && self
                .scaling_group
                .as_ref()
                .is_none_or(|g| &facts.scaling_group == g)
    }
}

/// What a stream sends for each followed event (`None`: nothing).
pub(crate) trait Frames: Send {
    /// The frame of `f`, if this stream shows it.
    fn frame(&mut self, f: &Followed) -> impl std::future::Future<Output = Option<Event>> + Send;
}

impl Frames for Filter {
    async fn frame(&mut self, f: &Followed) -> Option<Event> {
        self.matches(f).then(|| sse_event(&f.event))
    }
}

/// One open stream: its place in the log, what it shows, and its slot.
struct StreamState<F> {
    subscription: Subscription,
    frames: F,
    key_id: String,
    state: AppState,
    revocations: tokio::sync::watch::Receiver<i64>,
    _permit: StreamPermit,
}

impl<F: Frames> StreamState<F> {
    /// The next event to send; `None` ends the stream (shutdown, revoked key, or a log
    /// that cannot be read).
    async fn next(&mut self) -> Option<Event> {
        let mut shutdown = self.state.shutdown.clone();
        loop {
            if *shutdown.borrow() || self.state.app.keys.is_revoked(&self.key_id) {
                return None;
            }
            tokio::select! {
                next = self.subscription.next() => match next {
                    Ok(f) => {
                        if let Some(frame) = self.frames.frame(&f).await {
                            return Some(frame);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %crate::telemetry::error_chain(&e), "SSE stream: cannot read the log; closing");
                        return None;
                    }
                },
                _ = shutdown.changed() => return None,
                _ = self.revocations.changed() => {}
            }
        }
    }
}

/// An SSE response following the log from `cursor` with `frames`.
fn follow<F: Frames + 'static>(
    state: &AppState,
    caller: &Caller,
    permit: StreamPermit,
    cursor: LogPosition,
    frames: F,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = StreamState {
        subscription: state.app.follower.subscribe(cursor),
        frames,
        key_id: caller.0.key_id.clone(),
        state: state.clone(),
        revocations: state.app.keys.revocations(),
        _permit: permit,
    };
    let events = futures::stream::unfold(stream, |mut s| async move {
        s.next().await.map(|event| (Ok(event), s))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// Whose events a stream may carry: a user's own (`Some`), or everyone's for an admin
/// (`None`); an agent key is 403.
fn visible_owner(caller: &Caller) -> Result<Option<String>, ApiError> {
    caller.require_user_or_admin()?;
    Ok(match &caller.0.role {
        Role::User { owner } => Some(owner.clone()),
        _ => None,
    })
}

/// Where a stream starts: after `Last-Event-ID` (0: the first event), else at the head.
async fn resume_at(state: &AppState, last_event_id: Option<i64>) -> Result<LogPosition, ApiError> {
    Ok(match last_event_id {
        Some(0) => LogPosition::START,
        Some(p) => state
            .app
            .db()
            .position_of(p)
            .await?
            .ok_or_else(|| ApiError::validation("Last-Event-ID", format!("no event {p}")))?,
        None => state.app.follower.position(),
    })
}

/// Query parameters of the background-task event stream.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TaskStreamParams {
    /// Resume after this event id (same as the `Last-Event-ID` header, which wins).
    #[param(minimum = 0)]
    pub last_event_id: Option<i64>,
}

/// The `data` of one background-task event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskEventData {
    /// Global position (also the SSE `id`).
    pub position: i64,
    /// The task.
    pub task_id: String,
    /// e.g. `BackgroundTaskProgressed` (also the SSE `event`).
    pub event_type: String,
    /// The status the task is in after it: `running | done | failed | cancelled`.
    pub status: String,
    /// Units done, for `BackgroundTaskStarted` (0) and `BackgroundTaskProgressed`.
    pub current_progress: Option<u64>,
    /// Units in all, for the same two.
    pub total_progress: Option<u64>,
    /// The progress message, the final message or the failure reason.
    pub message: Option<String>,
    /// When it happened (domain time).
    pub occurred_at: String,
}

/// The background-task events a caller may see: every task's for admins, their own
/// tasks' for users (a task's owner is read from its first event, once per task).
struct TaskFrames {
    owner: Option<String>,
    owners: std::collections::HashMap<String, Option<String>>,
    state: AppState,
}

impl TaskFrames {
    async fn visible(&mut self, task_id: &str) -> bool {
        let Some(me) = &self.owner else {
            return true;
        };
        if !self.owners.contains_key(task_id) {
            let first = self
                .state
                .app
                .store
                .load_first::<BackgroundTask>(task_id)
                .await
                .ok()
                .flatten();
            let owner = match first {
                Some(BackgroundTaskEvent::BackgroundTaskStarted { owner, .. }) => {
                    Some(owner.to_string())
                }
                _ => None,
            };
            self.owners.insert(task_id.to_string(), owner);
        }
        self.owners
            .get(task_id)
            .is_some_and(|o| o.as_ref() == Some(me))
    }
}

impl Frames for TaskFrames {
    async fn frame(&mut self, f: &Followed) -> Option<Event> {
        let e = &f.event;
        if e.aggregate_type != <BackgroundTask as domain::Decider>::TYPE {
            return None;
        }
        let decoded = e.decode::<BackgroundTaskEvent>().ok()?;
        if !self.visible(&e.aggregate_id).await {
            return None;
        }
        let (status, current, total, message) = match &decoded {
            BackgroundTaskEvent::BackgroundTaskStarted { total, .. } => {
                (TaskStatus::Running, Some(0), Some(*total), None)
            }
            BackgroundTaskEvent::BackgroundTaskProgressed {
                current,
                total,
                message,
                ..
            } => (
                TaskStatus::Running,
                Some(*current),
                Some(*total),
                Some(message.clone()),
            ),
            BackgroundTaskEvent::BackgroundTaskResumed { reason, .. } => {
                (TaskStatus::Running, None, None, Some(reason.clone()))
            }
            BackgroundTaskEvent::BackgroundTaskCompleted { message, .. } => {
                (TaskStatus::Done, None, None, Some(message.clone()))
            }
            BackgroundTaskEvent::BackgroundTaskFailed { reason, .. } => {
                (TaskStatus::Failed, None, None, Some(reason.clone()))
            }
            BackgroundTaskEvent::BackgroundTaskCancelled { .. } => {
                (TaskStatus::Cancelled, None, None, None)
            }
        };
        let data = TaskEventData {
            position: e.global_position,
            task_id: e.aggregate_id.clone(),
            event_type: e.event_type.clone(),
            status: status.as_str().to_string(),
            current_progress: current,
            total_progress: total,
            message,
            occurred_at: decoded
                .occurred_at()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        };
        let id = e.global_position.to_string();
        Some(
            Event::default()
                .id(id.clone())
                .event(&e.event_type)
                .json_data(&data)
                .unwrap_or_else(|_| Event::default().id(id).event(&e.event_type).data("{}")),
        )
    }
}

/// Every background task's lifecycle events as Server-Sent Events (`id` = position,
/// `event` = event type, `data` = JSON of [`TaskEventData`]): starts, persisted
/// progress, ends. From the head of the log unless resuming with `Last-Event-ID`. Users
/// receive their own tasks' events. For one task's live progress in Backend.AI's
/// protocol, see `GET /v1/events/background-task?task_id=`. The `Last-Event-ID` header
/// is honoured as on every stream (it wins over `?last_event_id=`); it is not declared
/// as a parameter here, see docs/CONTRACT.md.
#[utoipa::path(get, path = "/v1/events/background-tasks", tag = "events",
    params(TaskStreamParams),
    responses((status = 200, description = "text/event-stream: frames `id: <position>`, `event: <event type>`, `data: <TaskEventData as JSON>`", content_type = "text/event-stream", body = String),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody),
              (status = 429, description = "too_many_streams", body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn background_task_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(params): Query<TaskStreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let owner = visible_owner(&caller)?;
    let last_event_id = last_event_id(&headers, params.last_event_id)?;
    let permit = state.streams.acquire(&caller.0.key_id)?;
    let cursor = resume_at(&state, last_event_id).await?;
    let frames = TaskFrames {
        owner,
        owners: Default::default(),
        state: state.clone(),
    };
    Ok(follow(&state, &caller, permit, cursor, frames))
}

fn sse_event(e: &RecordedEvent) -> Event {
    let decoded = e.decode::<SessionEvent>().ok();
    let data = SessionEventData {
        position: e.global_position,
        session_id: e.aggregate_id.clone(),
        sequence: e.sequence,
        event_type: e.event_type.clone(),
        status: decoded
            .as_ref()
            .and_then(SessionEvent::target_status)
            .map(|s| s.as_str().to_string()),
        status_info: decoded.as_ref().and_then(SessionEvent::status_info),
        occurred_at: decoded
            .as_ref()
            .map(|d| d.occurred_at())
            .unwrap_or(e.recorded_at)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        recorded_at: e
            .recorded_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        actor: e.actor().to_string(),
        payload: e.payload.clone(),
    };
    let event = Event::default()
        .id(e.global_position.to_string())
        .event(&e.event_type);
    match event.json_data(&data) {
        Ok(ev) => ev,
        Err(_) => Event::default()
            .id(e.global_position.to_string())
            .event(&e.event_type)
            .data("{}"),
    }
}
