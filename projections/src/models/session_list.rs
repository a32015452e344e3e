//! Queries of the `sessions` read model for the HTTP API: filtered lists with keyset
//! pagination, counts by status (for `/metrics`) and by group and status (for the
//! dashboard), and the pending-queue entries of a
//! page of sessions in one statement. Read-only: this module adds no projection.

use domain::session::Session;

use store::db::Db;
use store::{args, sql};

use super::pending_queue::PendingEntry;
use super::{PENDING_QUEUE, SESSIONS};
use crate::ProjectionError;

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
