//! Queries of the `sessions` read model for the HTTP API: filtered lists with keyset
//! pagination, counts by status (for `/metrics`) and by group and status (for the
//! dashboard), the pending-queue entries of a page of sessions in one statement, and
//! everything a GET of one session reads in one statement. Read-only: this module adds
//! no projection.

use domain::session::Session;

use store::db::Db;
use store::{args, sql};

use super::pending_queue::PendingEntry;
use super::{PENDING_QUEUE, SESSIONS};
use crate::ProjectionError;

/// What `GET /v1/sessions/{id}` reads, from one statement.
#[derive(Debug, Clone, PartialEq)]
pub struct OneSession {
    /// The read model's document (`None`: not projected, or no such session).
    pub session: Option<Session>,
    /// Its pending-queue row, if queued.
    pub queue: Option<PendingEntry>,
    /// The last sequence of its stream in the store (`None`: no such stream): the
    /// document is behind when this is ahead of its version.
    pub last_sequence: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct OneSessionRow {
    doc: Option<String>,
    last_sequence: Option<i64>,
    session_id: Option<String>,
    scaling_group: Option<String>,
    owner: Option<String>,
    session_type: Option<String>,
    priority: Option<i64>,
    enqueue_position: Option<i64>,
    enqueued_at: Option<String>,
    deadline_ms: Option<i64>,
    retries: Option<i64>,
    last_try: Option<String>,
    queue_position: Option<i64>,
    queue_reason: Option<String>,
}

/// Session `id`'s document, queue row and stream's last sequence, in one statement
/// (one snapshot on PostgreSQL; the single writer's order on SQLite).
pub async fn get_one(db: &Db, id: &str) -> Result<OneSession, ProjectionError> {
    let row: OneSessionRow = db
        .fetch_one(
            &sql!(common "session_list/get_one"),
            args![
                SESSIONS,
                id,
                PENDING_QUEUE,
                <Session as domain::Decider>::TYPE
            ],
        )
        .await?;
    let session = row
        .doc
        .as_deref()
        .map(super::documents::decode_doc::<Session>)
        .transpose()?;
    let last_sequence = row.last_sequence;
    let queue = match row {
        OneSessionRow {
            session_id: Some(session_id),
            scaling_group: Some(scaling_group),
            owner: Some(owner),
            session_type: Some(session_type),
            priority: Some(priority),
            enqueue_position: Some(enqueue_position),
            enqueued_at: Some(enqueued_at),
            retries: Some(retries),
            deadline_ms,
            last_try,
            queue_position,
            queue_reason,
            ..
        } => Some(PendingEntry {
            session_id,
            scaling_group,
            owner,
            session_type,
            priority,
            enqueue_position,
            enqueued_at,
            deadline_ms,
            retries,
            last_try,
            queue_position,
            queue_reason,
        }),
        _ => None,
    };
    Ok(OneSession {
        session,
        queue,
        last_sequence,
    })
}

/// Filters of a session list; `None` = any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only this owner's sessions.
    pub owner: Option<String>,
    /// Only sessions in this status (wire name, e.g. `RUNNING`).
    pub status: Option<String>,
    /// Only sessions of this scaling group.
    pub scaling_group: Option<String>,
    /// Only sessions of this type (`interactive | batch | inference`).
    pub session_type: Option<String>,
}

/// One page of sessions in enqueue order.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPage {
    /// The sessions, oldest enqueue first.
    pub items: Vec<Session>,
    /// Pass as `after` to get the next page; `None` on the last page.
    pub next_after: Option<i64>,
}

/// Sessions matching `filter` whose enqueue position is after `after` (keyset
/// pagination on the `(generation, first_position)` / `(generation, owner,
/// first_position)` indexes), at most `limit` of them.
pub async fn list_sessions(
    db: &Db,
    filter: &SessionFilter,
    after: i64,
    limit: i64,
) -> Result<SessionPage, ProjectionError> {
    let mut args = args![
        SESSIONS,
        after,
        filter.status.clone(),
        filter.scaling_group.clone(),
        filter.session_type.clone(),
        limit.saturating_add(1)
    ];
    let rows: Vec<(String, i64)> = match &filter.owner {
        Some(owner) => {
            args.push(owner.into());
            db.fetch_all(&sql!("session_list/page_of_owner"), args)
                .await?
        }
        None => db.fetch_all(&sql!("session_list/page"), args).await?,
    };
    let more = rows.len() as i64 > limit;
    let mut items = Vec::with_capacity(rows.len());
    let mut last = None;
    for (doc, position) in rows.into_iter().take(usize::try_from(limit).unwrap_or(0)) {
        let session: Session =
            serde_json::from_str(&doc).map_err(|source| ProjectionError::Decode {
                event_type: "Session read-model row".into(),
                global_position: position,
                source,
            })?;
        items.push(session);
        last = Some(position);
    }
    Ok(SessionPage {
        items,
        next_after: if more { last } else { None },
    })
}

/// Number of sessions per status (wire names), from the live generation.
pub async fn count_by_status(db: &Db) -> Result<Vec<(String, i64)>, ProjectionError> {
    Ok(db
        .fetch_all(
            &sql!(common "session_list/count_by_status"),
            args![SESSIONS],
        )
        .await?)
}

/// Number of sessions per `(scaling group, status)` (wire names) in the live
/// generation, optionally of one owner and one group, ordered by group then status.
pub async fn count_by_group(
    db: &Db,
    owner: Option<&str>,
    scaling_group: Option<&str>,
) -> Result<Vec<(String, String, i64)>, ProjectionError> {
    Ok(db
        .fetch_all(
            &sql!("session_list/count_by_group"),
            args![
                SESSIONS,
                owner.map(str::to_string),
                scaling_group.map(str::to_string)
            ],
        )
        .await?)
}

/// The pending-queue entries of these sessions (unknown or no longer pending ids are
/// skipped), in one statement.
pub async fn pending_entries(
    db: &Db,
    session_ids: &[String],
) -> Result<Vec<PendingEntry>, ProjectionError> {
    if session_ids.is_empty() {
        return Ok(vec![]);
    }
    Ok(db
        .fetch_all(
            &sql!("session_list/pending_entries"),
            args![PENDING_QUEUE, session_ids.to_vec()],
        )
        .await?)
}
