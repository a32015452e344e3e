//! `audit_log`: a flat timeline of every event (position, aggregate, event type, actor,
//! time), one multi-row insert per batch.

use async_trait::async_trait;

use super::{live_generation, CHUNK};
use crate::db::{Db, Tx};
use crate::log::RecordedEvent;
use crate::{exec_tx, on_pool, Projection, ProjectionError};

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
        "audit_log"
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
        for chunk in events.chunks(CHUNK) {
            exec_tx!(tx, c => {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO rm_audit_log (generation, global_position, transaction_id, \
                     aggregate_type, aggregate_id, sequence, event_type, actor, occurred_at, recorded_at) ",
                );
                qb.push_values(chunk, |mut sep, e| {
                    sep.push_bind(generation)
                        .push_bind(e.global_position)
                        .push_bind(e.transaction_id)
                        .push_bind(e.aggregate_type.clone())
                        .push_bind(e.aggregate_id.clone())
                        .push_bind(e.sequence)
                        .push_bind(e.event_type.clone())
                        .push_bind(e.actor().to_string())
                        .push_bind(occurred_at(&e.payload))
                        .push_bind(e.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
                });
                qb.build().execute(c).await
            })?;
        }
        Ok(())
    }
}

impl AuditLog {
    /// The whole live timeline in log order.
    pub async fn entries(&self, db: &Db) -> Result<Vec<AuditEntry>, ProjectionError> {
        let sql = format!(
            "SELECT global_position, aggregate_type, aggregate_id, sequence, event_type, actor, \
             occurred_at, recorded_at FROM rm_audit_log WHERE generation = {} \
             ORDER BY transaction_id, global_position",
            live_generation(1)
        );
        Ok(on_pool!(db, p => sqlx::query_as(&sql).bind("audit_log").fetch_all(p).await)?)
    }
}
