//! Document read models: one row per aggregate, its folded state as JSON (`doc`) plus
//! indexed columns. A batch loads the rows it touches once, folds every event of the
//! batch in memory, and writes each touched row back once (one upsert statement).
//!
//! The three document tables share their statements (`sql/*/documents/*.sql`, which
//! name the table as `{table}`), except the upsert, which lists each table's columns.

use async_trait::async_trait;
use domain::agent::Agent;
use domain::bgtask::BackgroundTask;
use domain::scaling_group::ScalingGroup;
use domain::session::Session;
use domain::vfolder::VFolder;
use domain::webhook::WebhookSubscription;
use domain::Decider;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use store::db::{Db, Statement, Tx};
use store::{args, sql, RecordedEvent};

use super::{AGENT_OCCUPANCY, BACKGROUND_TASKS, SCALING_GROUPS, SESSIONS, VFOLDERS, WEBHOOKS};
use crate::{Projection, ProjectionError};

/// A read model of folded `A` aggregates.
pub struct DocProjection<A: Decider> {
    name: &'static str,
    tables: &'static [&'static str],
    /// Writes a batch of rows (the table's own column list).
    upsert: Statement,
    /// The indexed columns of a row, computed from the folded state.
    columns: fn(&A) -> Map<String, Value>,
}

impl<A: Decider> std::fmt::Debug for DocProjection<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocProjection")
            .field("name", &self.name)
            .finish()
    }
}

/// The `sessions` read model.
pub fn sessions() -> DocProjection<Session> {
    DocProjection {
        name: SESSIONS,
        tables: &["rm_sessions"],
        upsert: sql!("documents/upsert_rm_sessions"),
        columns: |s| {
            let spec = s.spec.as_ref();
            let text = |v: Option<String>| Value::String(v.unwrap_or_default());
            let mut m = Map::new();
            m.insert("owner".into(), text(spec.map(|p| p.owner.to_string())));
            m.insert("name".into(), text(spec.map(|p| p.name.to_string())));
            m.insert(
                "status".into(),
                text(s.status.map(|st| st.as_str().to_string())),
            );
            m.insert(
                "scaling_group".into(),
                text(spec.map(|p| p.scaling_group.to_string())),
            );
            m.insert(
                "session_type".into(),
                text(spec.map(|p| p.session_type.as_str().to_string())),
            );
            m.insert(
                "agent_id".into(),
                text(s.agent_to_notify().map(str::to_string)),
            );
            m
        },
    }
}

/// The `scaling_groups` read model.
pub fn scaling_groups() -> DocProjection<ScalingGroup> {
    DocProjection {
        name: SCALING_GROUPS,
        tables: &["rm_scaling_groups"],
        upsert: sql!("documents/upsert_rm_scaling_groups"),
        columns: |g| {
            let mut m = Map::new();
            m.insert("is_active".into(), json!(i64::from(g.is_active)));
            m
        },
    }
}

/// The `agent_occupancy` read model.
pub fn agent_occupancy() -> DocProjection<Agent> {
    DocProjection {
        name: AGENT_OCCUPANCY,
        tables: &["rm_agent_occupancy"],
        upsert: sql!("documents/upsert_rm_agent_occupancy"),
        columns: |a| {
            let mut m = Map::new();
            m.insert("scaling_group".into(), json!(a.scaling_group));
            m.insert("status".into(), json!(a.status.as_str()));
            m
        },
    }
}

/// The `vfolders` read model (SPEC §7.1).
pub fn vfolders() -> DocProjection<VFolder> {
    DocProjection {
        name: VFOLDERS,
        tables: &["rm_vfolders"],
        upsert: sql!("documents/upsert_rm_vfolders"),
        columns: |v| {
            let spec = v.spec.as_ref();
            let mut m = Map::new();
            m.insert(
                "owner".into(),
                json!(spec.map(|s| s.owner.as_str()).unwrap_or_default()),
            );
            m.insert(
                "name".into(),
                json!(spec.map(|s| s.name.as_str()).unwrap_or_default()),
            );
            m.insert(
                "host".into(),
                json!(spec.map(|s| s.host.as_str()).unwrap_or_default()),
            );
            m.insert(
                "status".into(),
                json!(v.status.map(|s| s.as_str()).unwrap_or_default()),
            );
            m
        },
    }
}

/// The `background_tasks` read model (SPEC §7.2).
pub fn background_tasks() -> DocProjection<BackgroundTask> {
    DocProjection {
        name: BACKGROUND_TASKS,
        tables: &["rm_background_tasks"],
        upsert: sql!("documents/upsert_rm_background_tasks"),
        columns: |t| {
            let mut m = Map::new();
            m.insert(
                "owner".into(),
                json!(t.owner.as_ref().map(|o| o.as_str()).unwrap_or_default()),
            );
            m.insert(
                "kind".into(),
                json!(t
                    .params
                    .as_ref()
                    .map(|p| p.kind().as_str())
                    .unwrap_or_default()),
            );
            m.insert(
                "status".into(),
                json!(t.status.map(|s| s.as_str()).unwrap_or_default()),
            );
            m
        },
    }
}

/// The `webhooks` read model (SPEC §8).
pub fn webhooks() -> DocProjection<WebhookSubscription> {
    DocProjection {
        name: WEBHOOKS,
        tables: &["rm_webhooks"],
        upsert: sql!("documents/upsert_rm_webhooks"),
        columns: |w| {
            let mut m = Map::new();
            m.insert("enabled".into(), json!(i64::from(w.is_enabled())));
            m
        },
    }
}

struct Row<A> {
    state: A,
    first_position: i64,
    last_position: i64,
}

#[async_trait]
impl<A: Decider + 'static> Projection for DocProjection<A>
where
    A::Event: Send + Sync,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn tables(&self) -> &'static [&'static str] {
        self.tables
    }

    async fn apply(
        &self,
        tx: &mut Tx,
        generation: i64,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let relevant: Vec<&RecordedEvent> = events
            .iter()
            .filter(|e| e.aggregate_type == A::TYPE)
            .collect();
        if relevant.is_empty() {
            return Ok(());
        }
        let mut ids: Vec<&str> = relevant.iter().map(|e| e.aggregate_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        // A stream whose first event in this batch is its sequence 1 has no row yet:
        // only the others are looked up.
        let mut born_here = HashSet::new();
        let mut seen = HashSet::new();
        for e in &relevant {
            if seen.insert(e.aggregate_id.as_str()) && e.sequence == 1 {
                born_here.insert(e.aggregate_id.as_str());
            }
        }
        let lookups: Vec<String> = ids
            .iter()
            .filter(|id| !born_here.contains(*id))
            .map(|id| id.to_string())
            .collect();

        // Load the touched rows once (one statement).
        let mut rows: HashMap<String, Row<A>> = HashMap::with_capacity(ids.len());
        if !lookups.is_empty() {
            let load = self.statement(sql!("documents/load"))?;
            let found: Vec<(String, String, i64, i64)> =
                tx.fetch_all(&load, args![generation, lookups]).await?;
            for (id, doc, first_position, last_position) in found {
                let state: A =
                    serde_json::from_str(&doc).map_err(|source| ProjectionError::Decode {
                        event_type: format!("{} read-model row {id}", A::TYPE),
                        global_position: last_position,
                        source,
                    })?;
                rows.insert(
                    id,
                    Row {
                        state,
                        first_position,
                        last_position,
                    },
                );
            }
        }

        // Fold the batch in memory.
        for e in &relevant {
            let event: A::Event = e.decode()?;
            let row = rows.entry(e.aggregate_id.clone()).or_insert_with(|| Row {
                state: A::default(),
                first_position: e.global_position,
                last_position: e.global_position,
            });
            row.state.evolve(&event);
            row.last_position = e.global_position;
        }

        // Write each touched row back once (one statement).
        let mut batch = Vec::with_capacity(ids.len());
        for id in &ids {
            let Some(row) = rows.get(*id) else {
                continue;
            };
            let doc = serde_json::to_string(&row.state).map_err(|e| {
                ProjectionError::Handler(format!("cannot encode {} {id}: {e}", A::TYPE))
            })?;
            let mut object = (self.columns)(&row.state);
            object.insert("id".into(), json!(id));
            object.insert("doc".into(), Value::String(doc));
            object.insert("first_position".into(), json!(row.first_position));
            object.insert("last_position".into(), json!(row.last_position));
            batch.push(Value::Object(object));
        }
        tx.execute(&self.upsert, args![generation, Value::Array(batch)])
            .await?;
        Ok(())
    }
}

impl<A: Decider> DocProjection<A> {
    /// A shared document statement over this read model's table.
    fn statement(&self, statement: Statement) -> Result<store::db::Rendered, ProjectionError> {
        let table = self.tables.first().copied().unwrap_or_default();
        Ok(statement.for_table(table, self.tables)?)
    }

    /// One row of the live generation.
    pub async fn get(&self, db: &Db, id: &str) -> Result<Option<A>, ProjectionError> {
        let doc: Option<(String,)> = db
            .fetch_optional(
                &self.statement(sql!(common "documents/get"))?,
                args![self.name, id],
            )
            .await?;
        doc.map(|(d,)| self.decode(&d)).transpose()
    }

    /// The rows of the live generation with these ids (unknown ids are skipped), in no
    /// particular order, in one statement.
    pub async fn get_many(&self, db: &Db, ids: &[String]) -> Result<Vec<A>, ProjectionError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let docs: Vec<(String,)> = db
            .fetch_all(
                &self.statement(sql!("documents/get_many"))?,
                args![self.name, ids.to_vec()],
            )
            .await?;
        docs.iter().map(|(d,)| self.decode(d)).collect()
    }

    /// Every row of the live generation, decoded, in first-position order.
    pub async fn all(&self, db: &Db) -> Result<Vec<A>, ProjectionError> {
        let docs: Vec<(String,)> = db
            .fetch_all(
                &self.statement(sql!(common "documents/all"))?,
                args![self.name],
            )
            .await?;
        docs.iter().map(|(d,)| self.decode(d)).collect()
    }

    /// The rows of the live generation whose `status` column is `status`, in
    /// first-position order (tables with a status column).
    pub async fn with_status(&self, db: &Db, status: &str) -> Result<Vec<A>, ProjectionError> {
        let docs: Vec<(String,)> = db
            .fetch_all(
                &self.statement(sql!(common "documents/with_status"))?,
                args![self.name, status],
            )
            .await?;
        docs.iter().map(|(d,)| self.decode(d)).collect()
    }

    /// The rows of the live generation that `owner` owns, in first-position order
    /// (tables with an owner column).
    pub async fn of_owner(&self, db: &Db, owner: &str) -> Result<Vec<A>, ProjectionError> {
        let docs: Vec<(String,)> = db
            .fetch_all(
                &self.statement(sql!(common "documents/of_owner"))?,
                args![self.name, owner],
            )
            .await?;
        docs.iter().map(|(d,)| self.decode(d)).collect()
    }

    fn decode(&self, doc: &str) -> Result<A, ProjectionError> {
        decode_doc(doc)
    }

    /// Every row of the live generation as `(id, doc JSON)`, ordered by id (for
    /// comparisons with a fresh fold).
    pub async fn all_docs(&self, db: &Db) -> Result<Vec<(String, Value)>, ProjectionError> {
        let rows: Vec<(String, String)> = db
            .fetch_all(
                &self.statement(sql!(common "documents/all_by_id"))?,
                args![self.name],
            )
            .await?;
        rows.into_iter()
            .map(|(id, doc)| {
                let v = serde_json::from_str(&doc).map_err(|source| ProjectionError::Decode {
                    event_type: format!("{} read-model row {id}", A::TYPE),
                    global_position: 0,
                    source,
                })?;
                Ok((id, v))
            })
            .collect()
    }
}

pub(crate) fn decode_doc<A: Decider>(doc: &str) -> Result<A, ProjectionError> {
    serde_json::from_str(doc).map_err(|source| ProjectionError::Decode {
        event_type: format!("{} read-model row", A::TYPE),
        global_position: 0,
        source,
    })
}

/// The agents of `scaling_group`, in registration order (through the group index).
pub async fn agents_of_group(db: &Db, scaling_group: &str) -> Result<Vec<Agent>, ProjectionError> {
    let docs: Vec<(String,)> = db
        .fetch_all(
            &sql!(common "documents/agents_of_group"),
            args![AGENT_OCCUPANCY, scaling_group],
        )
        .await?;
    docs.iter().map(|(d,)| decode_doc(d)).collect()
}

/// The sessions agent `agent_id` must act on now: its assignments and abort notices
/// (the `agent_id` column, [`Session::agent_to_notify`]), by session id.
pub async fn sessions_of_agent(db: &Db, agent_id: &str) -> Result<Vec<Session>, ProjectionError> {
    let docs: Vec<(String,)> = db
        .fetch_all(
            &sql!(common "documents/sessions_of_agent"),
            args![SESSIONS, agent_id],
        )
        .await?;
    docs.iter().map(|(d,)| decode_doc(d)).collect()
}

/// `owner`'s sessions that count against their limits: neither PENDING nor terminal.
pub async fn live_sessions_of(db: &Db, owner: &str) -> Result<Vec<Session>, ProjectionError> {
    let docs: Vec<(String,)> = db
        .fetch_all(
            &sql!(common "documents/live_sessions_of"),
            args![SESSIONS, owner],
        )
        .await?;
    docs.iter().map(|(d,)| decode_doc(d)).collect()
}
