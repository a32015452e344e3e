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
//! Users receive events of their own sessions only; `?session_id=` of a session they
//! may not see is 404, like every other read. The stream ends when the server shuts
//! down.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use domain::session::SessionEvent;
use futures::Stream;
use projections::db::Db;
use projections::{on_pool, LogPosition, RecordedEvent};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{Caller, Query};
use super::AppState;
use crate::auth::Role;

/// `router()` of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(session_events))
}

/// Query parameters of the session event stream.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Only this session's events (starts at its first event unless resuming).
    pub session_id: Option<String>,
    /// Only events of sessions in this scaling group.
    pub scaling_group: Option<String>,
    /// Resume after this event id (same as the `Last-Event-ID` header, which wins).
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

/// Session lifecycle events as Server-Sent Events (`id` = position, `event` =
/// event type, `data` = JSON), resumable with `Last-Event-ID`.
#[utoipa::path(get, path = "/v1/events/sessions", tag = "events",
    params(StreamParams,
           ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id")),
    responses((status = 200, description = "text/event-stream of SessionEventData", content_type = "text/event-stream", body = SessionEventData),
              (status = 404, body = ErrorBody)))]
async fn session_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Query(params): Query<StreamParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require_user_or_admin()?;
    let owner = match &caller.0.role {
        Role::User { owner } => Some(owner.clone()),
        _ => None,
    };
    let last_event_id = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::validation("Last-Event-ID", "must be an event id (a position)")
                })?,
        ),
        None => params.last_event_id,
    };
    let db = state.app.db().clone();
    let mut lookup = SessionLookup::default();
    if let Some(id) = &params.session_id {
        let visible = lookup
            .get(&state, id)
            .await?
            .is_some_and(|s| owner.as_ref().is_none_or(|o| &s.owner == o));
        if !visible {
            return Err(ApiError::not_found("session", id));
        }
    }
    let cursor = match (last_event_id, &params.session_id) {
        (Some(p), _) if p <= 0 => LogPosition::START,
        (Some(p), _) => db
            .position_of(p)
            .await?
            .ok_or_else(|| ApiError::validation("Last-Event-ID", format!("no event {p}")))?,
        (None, Some(id)) => {
            let first = state
                .app
                .store
                .read_stream("Session", id)
                .await?
                .first()
                .map(|e| e.global_position)
                .unwrap_or(0);
            match db.position_of(first).await? {
                Some(p) => LogPosition {
                    transaction_id: p.transaction_id,
                    global_position: p.global_position - 1,
                },
                None => LogPosition::START,
            }
        }
        (None, None) => head(&db).await?,
    };
    let follower = Follower {
        state: state.clone(),
        cursor,
        buffer: VecDeque::new(),
        filter: Filter {
            session_id: params.session_id,
            scaling_group: params.scaling_group,
            owner,
        },
        lookup,
    };
    let stream = futures::stream::unfold(follower, |mut f| async move {
        f.next().await.map(|event| (Ok(event), f))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The newest readable position: a stream without a start point begins here.
async fn head(db: &Db) -> Result<LogPosition, ApiError> {
    let row: Option<(i64, i64)> = match db {
        Db::Postgres(p) => {
            sqlx::query_as(
                "SELECT transaction_id::text::bigint, global_position FROM events \
                 WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY events.transaction_id DESC, events.global_position DESC LIMIT 1",
            )
            .fetch_optional(p)
            .await?
        }
        Db::Sqlite { .. } => on_pool!(db, p => sqlx::query_as(
            "SELECT 0, global_position FROM events ORDER BY global_position DESC LIMIT 1")
            .fetch_optional(p)
            .await)?,
    };
    Ok(row
        .map(|(transaction_id, global_position)| LogPosition {
            transaction_id,
            global_position,
        })
        .unwrap_or(LogPosition::START))
}

/// What a session's events are filtered by.
#[derive(Debug, Clone)]
struct SessionFacts {
    owner: String,
    scaling_group: String,
}

/// Owner and group of sessions, from their `SessionEnqueued` (cached).
#[derive(Debug, Default)]
struct SessionLookup {
    cache: HashMap<String, Option<SessionFacts>>,
}

const CACHE_LIMIT: usize = 100_000;

impl SessionLookup {
    fn learn(&mut self, e: &RecordedEvent) {
        if e.sequence != 1 {
            return;
        }
        if let Ok(SessionEvent::SessionEnqueued { spec, .. }) = e.decode::<SessionEvent>() {
            if self.cache.len() >= CACHE_LIMIT {
                self.cache.clear();
            }
            self.cache.insert(
                e.aggregate_id.clone(),
                Some(SessionFacts {
                    owner: spec.owner,
                    scaling_group: spec.scaling_group,
                }),
            );
        }
    }

    async fn get(&mut self, state: &AppState, id: &str) -> Result<Option<SessionFacts>, ApiError> {
        if let Some(f) = self.cache.get(id) {
            return Ok(f.clone());
        }
        let facts = match state.app.store.read_stream("Session", id).await?.first() {
            Some(first) => match first.decode::<SessionEvent>() {
                Ok(SessionEvent::SessionEnqueued { spec, .. }) => Some(SessionFacts {
                    owner: spec.owner,
                    scaling_group: spec.scaling_group,
                }),
                _ => None,
            },
            None => None,
        };
        if facts.is_some() {
            if self.cache.len() >= CACHE_LIMIT {
                self.cache.clear();
            }
            self.cache.insert(id.to_string(), facts.clone());
        }
        Ok(facts)
    }
}

#[derive(Debug)]
struct Filter {
    session_id: Option<String>,
    scaling_group: Option<String>,
    owner: Option<String>,
}

/// Follows the log from `cursor`, yielding matching session events as SSE events.
struct Follower {
    state: AppState,
    cursor: LogPosition,
    buffer: VecDeque<Event>,
    filter: Filter,
    lookup: SessionLookup,
}

const BATCH: i64 = 500;

impl Follower {
    /// The next event to send; `None` ends the stream (shutdown or store failure).
    async fn next(&mut self) -> Option<Event> {
        let mut shutdown = self.state.shutdown.clone();
        let appended = self.state.app.store.appended();
        loop {
            if *shutdown.borrow() {
                return None;
            }
            if let Some(e) = self.buffer.pop_front() {
                return Some(e);
            }
            // Register for the wake-up before reading, so an append between the read and
            // the wait is not missed.
            let notified = appended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let batch = match self.state.app.store.read_log(self.cursor, BATCH).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %crate::cli::error_chain(&e), "SSE stream: cannot read the log; closing");
                    return None;
                }
            };
            let full = batch.len() as i64 == BATCH;
            for e in batch {
                self.cursor = e.log_position();
                if e.aggregate_type != "Session" {
                    continue;
                }
                self.lookup.learn(&e);
                match self.matches(&e).await {
                    Ok(true) => self.buffer.push_back(sse_event(&e)),
                    Ok(false) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, "SSE stream: cannot look up a session; closing");
                        return None;
                    }
                }
            }
            if !self.buffer.is_empty() || full {
                continue;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(self.state.config.sse_poll_interval) => {}
                _ = shutdown.changed() => return None,
            }
        }
    }

    async fn matches(&mut self, e: &RecordedEvent) -> Result<bool, ApiError> {
        if let Some(id) = &self.filter.session_id {
            if &e.aggregate_id != id {
                return Ok(false);
            }
        }
        if self.filter.owner.is_none() && self.filter.scaling_group.is_none() {
            return Ok(true);
        }
        let Some(facts) = self.lookup.get(&self.state, &e.aggregate_id).await? else {
            return Ok(false);
        };
        Ok(self.filter.owner.as_ref().is_none_or(|o| &facts.owner == o)
            && self
                .filter
                .scaling_group
                .as_ref()
                .is_none_or(|g| &facts.scaling_group == g))
    }
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
