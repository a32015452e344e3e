//! `/v1/background-tasks` and the task progress stream `/v1/events/background-task`
//! (SPEC §7.2). A user sees their own tasks (another owner's is 404); admins see all.
//!
//! The stream speaks Backend.AI's protocol exactly: `bgtask_updated` frames
//! (`{"task_id", "message", "current_progress", "total_progress"}`, numbers as floats),
//! then one terminal frame (`bgtask_done | bgtask_failed | bgtask_cancelled` with
//! `{"task_id", "message"}`), then `server_close` with `{}`, then the response ends. No
//! `retry:` field is sent (Backend.AI's client reads it in seconds; its default of 5 s
//! applies). Frames carry `id:` (a log position) and `Last-Event-ID` resumes. Live
//! progress comes from this process's runner as it copies; the log is the source of
//! truth for persisted progress and for the terminal frame.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use domain::bgtask::{BackgroundTask, BackgroundTaskEvent, TaskStatus};
use futures::Stream;
use projections::models::{documents, BACKGROUND_TASKS};
use projections::LogPosition;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{ApiError, ErrorBody};
use super::extract::{Caller, MinPosition, Query};
use super::schema;
use super::AppState;
use crate::auth::Role;
use crate::follower::Subscription;
use crate::tasks::Live;

/// `router()` of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tasks))
        .routes(routes!(get_task, cancel_task))
        .routes(routes!(task_events))
}

/// A background task as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskView {
    /// Its id.
    pub task_id: Uuid,
    /// `vfolder-clone | vfolder-delete`.
    pub kind: String,
    /// Whose it is.
    pub owner: String,
    /// `running | done | failed | cancelled`.
    pub status: String,
    /// Units done (bytes for a clone), as last persisted.
    pub current_progress: u64,
    /// Units in all.
    pub total_progress: u64,
    /// Progress message, or the final message / failure reason.
    pub message: String,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Runs so far (1 for the first; more after a runner died or a run failed).
    pub attempts: u32,
    /// What it works on.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
}

impl TaskView {
    fn of(t: &BackgroundTask) -> Option<Self> {
        Some(Self {
            task_id: t.task_id?,
            kind: t.params.as_ref()?.kind().as_str().to_string(),
            owner: t.owner.as_ref()?.to_string(),
            status: t.status?.as_str().to_string(),
            current_progress: t.current_progress,
            total_progress: t.total_progress,
            message: t.message.clone(),
            started_at: t.started_at,
            finished_at: t.finished_at,
            attempts: t.attempts,
            params: serde_json::to_value(t.params.as_ref()?).unwrap_or_default(),
        })
    }
}

/// A list of tasks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskList {
    /// Tasks, newest first.
    pub items: Vec<TaskView>,
}

/// A cancelled task and the consistency token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskWritten {
    /// The task.
    #[serde(flatten)]
    pub task: TaskView,
    /// Pass as `?min_position=` to read your write.
    pub position: i64,
}

/// `GET /v1/background-tasks` filters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TaskQuery {
    /// Only tasks with this status.
    #[param(schema_with = schema::task_status)]
    pub status: Option<String>,
    /// Wait until the read models include this position.
    #[param(minimum = 0)]
    pub min_position: Option<i64>,
}

fn visible(caller: &Caller, t: &BackgroundTask) -> bool {
    match &caller.0.role {
        Role::Admin => t.status.is_some(),
        Role::User { owner } => t.owner.as_ref().is_some_and(|o| o.as_str() == owner),
        Role::Agent { .. } => false,
    }
}

async fn load_visible(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(Uuid, BackgroundTask), ApiError> {
    let not_found = || ApiError::not_found("background task", id);
    let task_id = Uuid::parse_str(id).map_err(|_| not_found())?;
    let task: BackgroundTask = state.app.commands.load(&task_id.to_string()).await?;
    if visible(caller, &task) {
        Ok((task_id, task))
    } else {
        Err(not_found())
    }
}

/// The caller's background tasks (admins: all), newest first.
#[utoipa::path(get, path = "/v1/background-tasks", tag = "background-tasks",
    params(TaskQuery),
    responses((status = 200, body = TaskList),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn list_tasks(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<TaskQuery>,
) -> Result<axum::Json<TaskList>, ApiError> {
    caller.require_user_or_admin()?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            TaskStatus::parse(s).ok_or_else(|| {
                ApiError::validation("status", "must be one of running, done, failed, cancelled")
            })
        })
        .transpose()?;
    MinPosition {
        min_position: q.min_position,
    }
    .wait(&state, &[BACKGROUND_TASKS])
    .await?;
    let model = documents::background_tasks();
    let db = state.app.db();
    let mut tasks = match (&caller.0.role, status) {
        (Role::User { owner }, _) => model.of_owner(db, owner).await?,
        (_, Some(s)) => model.with_status(db, s.as_str()).await?,
        (_, None) => model.all(db).await?,
    };
    tasks.retain(|t| visible(&caller, t) && status.is_none_or(|s| t.status == Some(s)));
    tasks.reverse();
    Ok(axum::Json(TaskList {
        items: tasks.iter().filter_map(TaskView::of).collect(),
    }))
}

/// One background task (folded from its stream: exact).
#[utoipa::path(get, path = "/v1/background-tasks/{id}", tag = "background-tasks",
    params(("id" = String, Path, description = "Task id")),
    responses((status = 200, body = TaskView),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn get_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<TaskView>, ApiError> {
    caller.require_user_or_admin()?;
    let (_, task) = load_visible(&state, &caller, &id).await?;
    TaskView::of(&task)
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("background task", &id))
}

/// Cancel a running task: a clone stops, its target becomes `error`
/// (`clone-cancelled`) and its partial files are removed. A finished task, or a
/// deletion (which cannot be cancelled), is 409.
#[utoipa::path(delete, path = "/v1/background-tasks/{id}", tag = "background-tasks",
    params(("id" = String, Path, description = "Task id")),
    responses((status = 200, body = TaskWritten),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn cancel_task(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<TaskWritten>, ApiError> {
    caller.require_user_or_admin()?;
    let (task_id, _) = load_visible(&state, &caller, &id).await?;
    let meta = state.metadata(&caller.0);
    let (task, position) = crate::vfolders::end_task(
        &state.app,
        task_id,
        crate::vfolders::Ending::Cancelled(caller.0.actor()),
        &meta,
    )
    .await?;
    state.app.tasks.cancel_local(task_id);
    let task = TaskView::of(&task).ok_or_else(|| ApiError::not_found("background task", &id))?;
    Ok(axum::Json(TaskWritten {
        task,
        position: position.global_position,
    }))
}

/// `GET /v1/events/background-task` query (`task_id`, or Backend.AI SDK v2's `taskId`).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskEventsQuery {
    /// The task (one of `task_id` and `taskId` is required).
    #[param(schema_with = schema::uuid)]
    pub task_id: Option<String>,
    /// The same, as Backend.AI's SDK v2 spells it.
    #[serde(rename = "taskId")]
    #[param(rename = "taskId", schema_with = schema::uuid)]
    pub task_id_camel: Option<String>,
}

/// `bgtask_updated` data.
#[derive(Debug, Serialize)]
struct Updated<'a> {
    task_id: String,
    message: &'a str,
    current_progress: f64,
    total_progress: f64,
}

/// Terminal frame data.
#[derive(Debug, Serialize)]
struct Ended<'a> {
    task_id: String,
    message: &'a str,
}

fn updated(task_id: Uuid, id: i64, current: u64, total: u64, message: &str) -> Event {
    let data = Updated {
        task_id: task_id.to_string(),
        message,
        current_progress: current as f64,
        total_progress: total as f64,
    };
    Event::default()
        .id(id.to_string())
        .event("bgtask_updated")
        .json_data(&data)
        .unwrap_or_else(|_| Event::default().event("bgtask_updated").data("{}"))
}

fn terminal(task_id: Uuid, id: i64, status: TaskStatus, message: &str) -> Event {
    let name = match status {
        TaskStatus::Done => "bgtask_done",
        TaskStatus::Cancelled => "bgtask_cancelled",
        _ => "bgtask_failed",
    };
    let data = Ended {
        task_id: task_id.to_string(),
        message,
    };
    Event::default()
        .id(id.to_string())
        .event(name)
        .json_data(&data)
        .unwrap_or_else(|_| Event::default().event(name).data("{}"))
}

fn server_close() -> Event {
    Event::default().event("server_close").data("{}")
}

/// One open task stream.
struct TaskStream {
    task_id: Uuid,
    subscription: Subscription,
    live: Option<tokio::sync::watch::Receiver<Live>>,
    last_id: i64,
    /// The progress last sent: `bgtask_updated` frames only ever move forward (live
    /// progress runs ahead of the persisted events, which arrive later).
    sent: Option<u64>,
    queued: std::collections::VecDeque<Event>,
    closed: bool,
    state: AppState,
    _permit: super::limits::StreamPermit,
}

impl TaskStream {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.queued.pop_front() {
                return Some(e);
            }
            if self.closed {
                return None;
            }
            let mut shutdown = self.state.shutdown.clone();
            if *shutdown.borrow() {
                return None;
            }
            let live_changed = async {
                match self.live.as_mut() {
                    Some(rx) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        rx.changed().await.is_ok()
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                next = self.subscription.next() => match next {
                    Ok(f) => {
                        let e = &f.event;
                        if e.aggregate_type != <BackgroundTask as domain::Decider>::TYPE || e.aggregate_id != self.task_id.to_string() {
                            continue;
                        }
                        self.last_id = e.global_position;
                        let Ok(event) = e.decode::<BackgroundTaskEvent>() else { continue };
                        self.push(&event);
                    }
                    Err(e) => {
                        tracing::warn!(error = %crate::telemetry::error_chain(&e), "task stream: cannot read the log; closing");
                        return None;
                    }
                },
                ok = live_changed => {
                    if !ok {
                        self.live = None;
                        continue;
                    }
                    if let Some(rx) = self.live.as_mut() {
                        let l = rx.borrow_and_update().clone();
                        if l.total > 0 && self.forward(l.current) {
                            return Some(updated(self.task_id, self.last_id, l.current, l.total, &l.message));
                        }
                    }
                }
                _ = shutdown.changed() => return None,
            }
        }
    }

    /// Whether progress `current` moves forward from what was sent (and records it).
    fn forward(&mut self, current: u64) -> bool {
        if self.sent.is_some_and(|s| current <= s) {
            return false;
        }
        self.sent = Some(current);
        true
    }

    fn push(&mut self, event: &BackgroundTaskEvent) {
        let id = self.last_id;
        match event {
            BackgroundTaskEvent::BackgroundTaskStarted { total, .. } => {
                if self.forward(0) {
                    self.queued
                        .push_back(updated(self.task_id, id, 0, *total, "Task started"));
                }
            }
            BackgroundTaskEvent::BackgroundTaskProgressed {
                current,
                total,
                message,
                ..
            } => {
                if self.forward(*current) {
                    self.queued
                        .push_back(updated(self.task_id, id, *current, *total, message));
                }
            }
            BackgroundTaskEvent::BackgroundTaskResumed { .. } => {}
            BackgroundTaskEvent::BackgroundTaskCompleted { message, .. } => {
                self.close(TaskStatus::Done, message)
            }
            BackgroundTaskEvent::BackgroundTaskFailed { reason, .. } => {
                self.close(TaskStatus::Failed, reason)
            }
            BackgroundTaskEvent::BackgroundTaskCancelled { .. } => {
                self.close(TaskStatus::Cancelled, "Task cancelled")
            }
        }
    }

    fn close(&mut self, status: TaskStatus, message: &str) {
        self.queued
            .push_back(terminal(self.task_id, self.last_id, status, message));
        self.queued.push_back(server_close());
        self.closed = true;
    }
}

/// A background task's progress as Server-Sent Events, in Backend.AI's protocol
/// (see the module documentation). An unknown task, or another owner's, is 404.
#[utoipa::path(get, path = "/v1/events/background-task", tag = "events",
    params(TaskEventsQuery,
           ("Last-Event-ID" = Option<i64>, Header, minimum = 0, description = "Resume after this event id")),
    responses((status = 200, description = "text/event-stream: `bgtask_updated` frames, one terminal frame (`bgtask_done | bgtask_failed | bgtask_cancelled`), then `server_close`", content_type = "text/event-stream", body = String),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 429, description = "too_many_streams", body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub(crate) async fn task_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(q): Query<TaskEventsQuery>,
) -> Result<
    (
        StatusCode,
        Sse<impl Stream<Item = Result<Event, Infallible>>>,
    ),
    ApiError,
> {
    caller.require_user_or_admin()?;
    let id = q
        .task_id
        .or(q.task_id_camel)
        .ok_or_else(|| ApiError::validation("task_id", "is required"))?;
    let last_event_id = super::events::last_event_id(&headers, None)?;
    let permit = state.streams.acquire(&caller.0.key_id)?;
    let follower = state.app.follower.clone();
    // Subscribe first, then read the task: nothing falls between the two.
    let resume =
        match last_event_id {
            Some(0) => Some(LogPosition::START),
            Some(p) => {
                Some(state.app.db().position_of(p).await?.ok_or_else(|| {
                    ApiError::validation("Last-Event-ID", format!("no event {p}"))
                })?)
            }
            None => None,
        };
    let subscription = follower.subscribe(resume.unwrap_or_else(|| follower.position()));
    let (task_id, task) = load_visible(&state, &caller, &id).await?;
    let last_id = state
        .stream_position::<BackgroundTask>(&task_id.to_string())
        .await?;
    let mut stream = TaskStream {
        task_id,
        subscription,
        live: state.app.tasks.live(task_id),
        last_id,
        sent: None,
        queued: Default::default(),
        closed: false,
        state: state.clone(),
        _permit: permit,
    };
    if resume.is_none() {
        // The state as of now; later events arrive through the subscription.
        match task.status {
            Some(s) if s.is_terminal() => stream.close(s, &task.message),
            _ => {
                stream.sent = Some(task.current_progress);
                stream.queued.push_back(updated(
                    task_id,
                    last_id,
                    task.current_progress,
                    task.total_progress,
                    &task.message,
                ));
            }
        }
    }
    let events = futures::stream::unfold(stream, |mut s| async move {
        s.next().await.map(|event| (Ok(event), s))
    });
    Ok((
        StatusCode::OK,
        Sse::new(events).keep_alive(KeepAlive::default()),
    ))
}
