//! `audit_log`: a flat timeline of every event (position, aggregate, event type, actor,
//! time), one insert statement per batch.

use async_trait::async_trait;

use serde_json::{json, Value};
use store::db::{Db, Tx};
use store::{args, sql, RecordedEvent};

use super::AUDIT_LOG;
use crate::{Projection, ProjectionError};

/// The audit-log projection.
#[derive(Debug, Clone, Copy)]
pub struct AuditLog;

/// One audit-log row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    /// Global position.
    pub global_position: i64,
    /// Aggregate type.
    pub aggregate_type: String,
    /// Aggregate id.
    pub aggregate_id: String,
    /// Sequence in the stream.
    pub sequence: i64,
    /// Event type.
    pub event_type: String,
    /// Who caused it.
    pub actor: String,
    /// Domain time (`occurred_at` of the payload), when present.
    pub occurred_at: Option<String>,
    /// Store time.
    pub recorded_at: String,
}

/// `occurred_at` of an externally tagged event payload (`{"Variant": {"occurred_at": ..}}`).
pub fn occurred_at(payload: &serde_json::Value) -> Option<String> {
    payload
        .as_object()?
        .values()
        .next()?
        .get("occurred_at")?
        .as_str()
        .map(str::to_string)
}

#[async_trait]
impl Projection for AuditLog {
    fn name(&self) -> &'static str {
        AUDIT_LOG
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_audit_log"]
    }

    async fn apply(
        &self,
        tx: &mut Tx,
        generation: i64,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let rows: Vec<Value> = events
            .iter()
            .map(|e| {
                json!({
                    "global_position": e.global_position,
                    "transaction_id": e.transaction_id,
                    "aggregate_type": e.aggregate_type,
                    "aggregate_id": e.aggregate_id,
                    "sequence": e.sequence,
                    "event_type": e.event_type,
                    "actor": e.actor(),
                    "occurred_at": occurred_at(&e.payload),
                    "recorded_at": e.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                })
            })
            .collect();
        tx.execute(
            &sql!("audit_log/insert"),
            args![generation, Value::Array(rows)],
        )
        .await?;
        Ok(())
    }
}

impl AuditLog {
    /// The whole live timeline in log order.
    pub async fn entries(&self, db: &Db) -> Result<Vec<AuditEntry>, ProjectionError> {
        Ok(db
            .fetch_all(&sql!(common "audit_log/entries"), args![AUDIT_LOG])
            .await?)
    }
}
