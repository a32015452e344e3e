//! Agent heartbeats: a plain upsert per agent, not events (SPEC §1.4), read by the
//! liveness check.

use std::collections::HashMap;

use crate::db::Db;
use crate::{args, sql};

/// Records agent `agent_id`'s heartbeat at `now_ms` (epoch ms; never moves back).
pub async fn record(db: &Db, agent_id: &str, now_ms: i64) -> Result<(), sqlx::Error> {
    db.execute(&sql!(common "heartbeats/record"), args![agent_id, now_ms])
        .await?;
    Ok(())
}

/// Every agent's last heartbeat, epoch milliseconds.
pub async fn all(db: &Db) -> Result<HashMap<String, i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> = db
        .fetch_all(&sql!(common "heartbeats/all"), args![])
        .await?;
    Ok(rows.into_iter().collect())
}
