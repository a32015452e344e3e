//! Queries of the `sessions` read model for the HTTP API: filtered lists with keyset
//! pagination, counts by status (for `/metrics`), and the pending-queue entries of a
//! page of sessions in one statement. Read-only: this module adds no projection.

use domain::session::Session;

use super::live_generation;
use super::pending_queue::PendingEntry;
use crate::db::Db;
use crate::{on_pool, ProjectionError};

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
    let mut sql = format!(
        "SELECT doc, first_position FROM rm_sessions WHERE generation = {} AND first_position > $2",
        live_generation(1)
    );
    let mut binds: Vec<&str> = Vec::new();
    for (column, value) in [
        ("owner", &filter.owner),
        ("status", &filter.status),
        ("scaling_group", &filter.scaling_group),
        ("session_type", &filter.session_type),
    ] {
        if let Some(v) = value {
            binds.push(v);
            sql.push_str(&format!(
                " AND {column} = ${}",
                binds.len().saturating_add(2)
            ));
        }
    }
    sql.push_str(&format!(
        " ORDER BY first_position LIMIT ${}",
        binds.len().saturating_add(3)
    ));
    let rows: Vec<(String, i64)> = on_pool!(db, p => {
        let mut q = sqlx::query_as(&sql).bind("sessions").bind(after);
        for b in &binds {
            q = q.bind(*b);
        }
        q.bind(limit.saturating_add(1)).fetch_all(p).await
    })?;
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
    let sql = format!(
        "SELECT status, count(*) FROM rm_sessions WHERE generation = {} GROUP BY status ORDER BY status",
        live_generation(1)
    );
    Ok(on_pool!(db, p => sqlx::query_as(&sql).bind("sessions").fetch_all(p).await)?)
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
    const COLUMNS: &str = "session_id, scaling_group, owner, session_type, priority, \
        enqueue_position, enqueued_at, deadline_ms, retries, last_try";
    Ok(match db {
        Db::Postgres(p) => {
            sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM rm_pending_queue WHERE generation = {} AND session_id = ANY($2)",
            live_generation(1)
        ))
            .bind("pending_queue")
            .bind(session_ids)
            .fetch_all(p)
            .await?
        }
        Db::Sqlite { readers, .. } => {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM rm_pending_queue WHERE generation = {} \
                 AND session_id IN (SELECT value FROM json_each($2))",
                live_generation(1)
            ))
            .bind("pending_queue")
            .bind(serde_json::Value::from(session_ids.to_vec()).to_string())
            .fetch_all(readers)
            .await?
        }
    })
}
