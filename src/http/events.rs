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
    OpenApiRouter::new().routes(routes!(session_events))
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

/// `Last-Event-ID`: a position, `>= 0` (0: from the first event).
pub(crate) fn last_event_id(
    headers: &HeaderMap,
    query: Option<i64>,
) -> Result<Option<i64>, ApiError> {
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
    caller.require_user_or_admin()?;
    let owner = match &caller.0.role {
        Role::User { owner } => Some(owner.clone()),
        _ => None,
    };
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
        (Some(0), _) => LogPosition::START,
        (Some(p), _) => db
            .position_of(p)
            .await?
            .ok_or_else(|| ApiError::validation("Last-Event-ID", format!("no event {p}")))?,
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
        (None, None) => follower.position(),
    };
    let stream = StreamState {
        subscription: follower.subscribe(cursor),
        filter: Filter {
            session_id,
            scaling_group: params.scaling_group,
            owner,
        },
        key_id: caller.0.key_id.clone(),
        state: state.clone(),
        revocations: state.app.keys.revocations(),
        _permit: permit,
    };
    let events = futures::stream::unfold(stream, |mut s| async move {
        s.next().await.map(|event| (Ok(event), s))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
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

/// One open stream: its place in the log, its filter, and its slot.
struct StreamState {
    subscription: Subscription,
    filter: Filter,
    key_id: String,
    state: AppState,
    revocations: tokio::sync::watch::Receiver<i64>,
    _permit: StreamPermit,
}

impl StreamState {
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
                    Ok(f) if self.filter.matches(&f) => return Some(sse_event(&f.event)),
                    Ok(_) => {}
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
