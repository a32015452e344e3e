//! Document read models: one row per aggregate, its folded state as JSON (`doc`) plus
//! indexed columns. A batch loads the rows it touches once, folds every event of the
//! batch in memory, and writes each touched row back once (multi-row upsert).

use async_trait::async_trait;
use domain::agent::Agent;
use domain::scaling_group::ScalingGroup;
use domain::session::Session;
use domain::Decider;
use std::collections::HashMap;

use super::{live_generation, SqlValue, CHUNK};
use crate::db::{Db, Tx};
use crate::log::RecordedEvent;
use crate::{on_pool, push_value, Projection, ProjectionError};

/// A read model of folded `A` aggregates.
pub struct DocProjection<A: Decider> {
    name: &'static str,
    table: &'static str,
    tables: &'static [&'static str],
    /// Extra indexed columns and how to compute them from the folded state.
    extra: &'static [&'static str],
    columns: fn(&A) -> Vec<SqlValue>,
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
        name: "sessions",
        table: "rm_sessions",
        tables: &["rm_sessions"],
        extra: &["owner", "name", "status", "scaling_group", "session_type"],
        columns: |s| {
            let spec = s.spec.as_ref();
            vec![
                SqlValue::Text(spec.map(|p| p.owner.to_string()).unwrap_or_default()),
                SqlValue::Text(spec.map(|p| p.name.to_string()).unwrap_or_default()),
                SqlValue::Text(
                    s.status
                        .map(|st| st.as_str().to_string())
                        .unwrap_or_default(),
                ),
                SqlValue::Text(
                    spec.map(|p| p.scaling_group.to_string())
                        .unwrap_or_default(),
                ),
                SqlValue::Text(
                    spec.map(|p| p.session_type.as_str().to_string())
                        .unwrap_or_default(),
                ),
            ]
        },
    }
}

/// The `scaling_groups` read model.
pub fn scaling_groups() -> DocProjection<ScalingGroup> {
    DocProjection {
        name: "scaling_groups",
        table: "rm_scaling_groups",
        tables: &["rm_scaling_groups"],
        extra: &["is_active"],
        columns: |g| vec![SqlValue::Int(i64::from(g.is_active))],
    }
}

/// The `agent_occupancy` read model.
pub fn agent_occupancy() -> DocProjection<Agent> {
    DocProjection {
        name: "agent_occupancy",
        table: "rm_agent_occupancy",
        tables: &["rm_agent_occupancy"],
        extra: &["scaling_group", "status"],
        columns: |a| {
            vec![
                SqlValue::Text(a.scaling_group.clone()),
                SqlValue::Text(a.status.as_str().to_string()),
            ]
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
        let mut born_here = std::collections::HashSet::new();
        let mut seen = std::collections::HashSet::new();
        for e in &relevant {
            if seen.insert(e.aggregate_id.as_str()) && e.sequence == 1 {
                born_here.insert(e.aggregate_id.as_str());
            }
        }
        let lookups: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !born_here.contains(id))
            .collect();

        // Load the touched rows once.
        let mut rows: HashMap<String, Row<A>> = HashMap::with_capacity(ids.len());
        // PostgreSQL: one statement with an array parameter (one prepared statement,
        // one plan, whatever the batch); SQLite: IN lists within its parameter limit.
        let chunk_size = if tx.is_postgres() {
            lookups.len().max(1)
        } else {
            CHUNK
        };
        for chunk in lookups.chunks(chunk_size) {
            let found: Vec<(String, String, i64, i64)> = match &mut *tx {
                Tx::Postgres(t) => {
                    sqlx::query_as(&format!(
                        "SELECT id, doc, first_position, last_position FROM {} \
                         WHERE generation = $1 AND id = ANY($2)",
                        self.table
                    ))
                    .bind(generation)
                    .bind(chunk)
                    .fetch_all(&mut **t)
                    .await?
                }
                Tx::Sqlite(t) => {
                    let mut qb = sqlx::QueryBuilder::new(format!(
                        "SELECT id, doc, first_position, last_position FROM {} WHERE generation = ",
                        self.table
                    ));
                    qb.push_bind(generation).push(" AND id IN (");
                    let mut sep = qb.separated(", ");
                    for id in chunk {
                        sep.push_bind(*id);
                    }
                    qb.push(")");
                    qb.build_query_as().fetch_all(&mut **t).await?
                }
            };
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

        // Write each touched row back once.
        let touched: Vec<(&str, &Row<A>)> = ids
            .iter()
            .filter_map(|id| rows.get(*id).map(|r| (*id, r)))
            .collect();
        let columns = self.extra.join(", ");
        let updates: String = self
            .extra
            .iter()
            .map(|c| format!(", {c} = excluded.{c}"))
            .collect();
        let conflict = format!(
            " ON CONFLICT (generation, id) DO UPDATE SET doc = excluded.doc, \
             last_position = excluded.last_position{updates}"
        );
        let chunk_size = if tx.is_postgres() {
            touched.len().max(1)
        } else {
            CHUNK
        };
        for chunk in touched.chunks(chunk_size) {
            let mut values = Vec::with_capacity(chunk.len());
            for (id, row) in chunk {
                let doc = serde_json::to_string(&row.state).map_err(|e| {
                    ProjectionError::Handler(format!("cannot encode {} {id}: {e}", A::TYPE))
                })?;
                values.push((*id, doc, *row, (self.columns)(&row.state)));
            }
            match &mut *tx {
                // One statement of arrays: one prepared statement whatever the batch size.
                Tx::Postgres(t) => {
                    let arrays: Vec<String> = (0..self.extra.len())
                        .map(|i| {
                            let int = values
                                .iter()
                                .any(|v| matches!(v.3.get(i), Some(SqlValue::Int(_))));
                            format!(
                                "${}::{}[]",
                                i.saturating_add(6),
                                if int { "bigint" } else { "text" }
                            )
                        })
                        .collect();
                    let sql = format!(
                        "INSERT INTO {} (generation, id, doc, first_position, last_position, {columns}) \
                         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::bigint[], {}){conflict}",
                        self.table,
                        arrays.join(", ")
                    );
                    let mut q = sqlx::query(&sql)
                        .bind(generation)
                        .bind(values.iter().map(|v| v.0).collect::<Vec<_>>())
                        .bind(values.iter().map(|v| v.1.as_str()).collect::<Vec<_>>())
                        .bind(
                            values
                                .iter()
                                .map(|v| v.2.first_position)
                                .collect::<Vec<_>>(),
                        )
                        .bind(values.iter().map(|v| v.2.last_position).collect::<Vec<_>>());
                    for (i, array) in arrays.iter().enumerate() {
                        if array.ends_with("bigint[]") {
                            q = q.bind(
                                values
                                    .iter()
                                    .map(|v| match v.3.get(i) {
                                        Some(SqlValue::Int(n)) => Some(*n),
                                        _ => None,
                                    })
                                    .collect::<Vec<_>>(),
                            );
                        } else {
                            q = q.bind(
                                values
                                    .iter()
                                    .map(|v| match v.3.get(i) {
                                        Some(SqlValue::Text(s)) => Some(s.clone()),
                                        _ => None,
                                    })
                                    .collect::<Vec<_>>(),
                            );
                        }
                    }
                    q.execute(&mut **t).await?;
                }
                Tx::Sqlite(t) => {
                    let mut qb = sqlx::QueryBuilder::new(format!(
                        "INSERT INTO {} (generation, id, doc, first_position, last_position, {columns}) ",
                        self.table
                    ));
                    qb.push_values(&values, |mut sep, (id, doc, row, extra)| {
                        sep.push_bind(generation)
                            .push_bind(*id)
                            .push_bind(doc.clone())
                            .push_bind(row.first_position)
                            .push_bind(row.last_position);
                        for v in extra {
                            push_value!(sep, v);
                        }
                    });
                    qb.push(&conflict);
                    qb.build().execute(&mut **t).await?;
                }
            }
        }
        Ok(())
    }
}

impl<A: Decider> DocProjection<A> {
    /// One row of the live generation.
    pub async fn get(&self, db: &Db, id: &str) -> Result<Option<A>, ProjectionError> {
        let sql = format!(
            "SELECT doc FROM {} WHERE generation = {} AND id = $2",
            self.table,
            live_generation(1)
        );
        let doc: Option<String> = on_pool!(db, p => sqlx::query_scalar(&sql)
            .bind(self.name).bind(id).fetch_optional(p).await)?;
        doc.map(|d| {
            serde_json::from_str(&d).map_err(|source| ProjectionError::Decode {
                event_type: format!("{} read-model row {id}", A::TYPE),
                global_position: 0,
                source,
            })
        })
        .transpose()
    }

    /// The rows of the live generation with these ids (unknown ids are skipped), in no
    /// particular order. One statement: an array parameter on PostgreSQL, a JSON array
    /// on SQLite.
    pub async fn get_many(&self, db: &Db, ids: &[String]) -> Result<Vec<A>, ProjectionError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let docs: Vec<String> = match db {
            Db::Postgres(p) => {
                sqlx::query_scalar(&format!(
                    "SELECT doc FROM {} WHERE generation = {} AND id = ANY($2)",
                    self.table,
                    live_generation(1)
                ))
                .bind(self.name)
                .bind(ids)
                .fetch_all(p)
                .await?
            }
            Db::Sqlite { readers, .. } => {
                let list = serde_json::Value::from(ids.to_vec()).to_string();
                sqlx::query_scalar(&format!(
                    "SELECT doc FROM {} WHERE generation = {} \
                     AND id IN (SELECT value FROM json_each($2))",
                    self.table,
                    live_generation(1)
                ))
                .bind(self.name)
                .bind(list)
                .fetch_all(readers)
                .await?
            }
        };
        docs.iter().map(|d| self.decode(d)).collect()
    }

    /// The rows of the live generation whose indexed column `column` (one of this read
    /// model's extra columns) equals `value`, in first-position order.
    pub async fn find_by(
        &self,
        db: &Db,
        column: &str,
        value: &str,
    ) -> Result<Vec<A>, ProjectionError> {
        if !self.extra.contains(&column) {
            return Err(ProjectionError::Handler(format!(
                "{} has no column '{column}'",
                self.name
            )));
        }
        let sql = format!(
            "SELECT doc FROM {} WHERE generation = {} AND {column} = $2 ORDER BY first_position",
            self.table,
            live_generation(1)
        );
        let docs: Vec<String> = on_pool!(db, p => sqlx::query_scalar(&sql).bind(self.name).bind(value).fetch_all(p).await)?;
        docs.iter().map(|d| self.decode(d)).collect()
    }

    /// Every row of the live generation, decoded, in first-position order.
    pub async fn all(&self, db: &Db) -> Result<Vec<A>, ProjectionError> {
        let sql = format!(
            "SELECT doc FROM {} WHERE generation = {} ORDER BY first_position",
            self.table,
            live_generation(1)
        );
        let docs: Vec<String> =
            on_pool!(db, p => sqlx::query_scalar(&sql).bind(self.name).fetch_all(p).await)?;
        docs.iter().map(|d| self.decode(d)).collect()
    }

    fn decode(&self, doc: &str) -> Result<A, ProjectionError> {
        serde_json::from_str(doc).map_err(|source| ProjectionError::Decode {
            event_type: format!("{} read-model row", A::TYPE),
            global_position: 0,
            source,
        })
    }

    /// Every row of the live generation as `(id, doc JSON)`, ordered by id (for
    /// comparisons with a fresh fold).
    pub async fn all_docs(
        &self,
        db: &Db,
    ) -> Result<Vec<(String, serde_json::Value)>, ProjectionError> {
        let sql = format!(
            "SELECT id, doc FROM {} WHERE generation = {} ORDER BY id",
            self.table,
            live_generation(1)
        );
        let rows: Vec<(String, String)> =
            on_pool!(db, p => sqlx::query_as(&sql).bind(self.name).fetch_all(p).await)?;
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

/// `owner`'s sessions that count against their limits: neither PENDING nor terminal.
pub async fn live_sessions_of(db: &Db, owner: &str) -> Result<Vec<Session>, ProjectionError> {
    let sql = format!(
        "SELECT doc FROM rm_sessions WHERE generation = {} AND owner = $2 \
         AND status NOT IN ('PENDING', 'TERMINATED', 'CANCELLED')",
        live_generation(1)
    );
    let docs: Vec<String> = on_pool!(db, p => sqlx::query_scalar(&sql).bind("sessions").bind(owner).fetch_all(p).await)?;
    docs.iter()
        .map(|d| {
            serde_json::from_str(d).map_err(|source| ProjectionError::Decode {
                event_type: "Session read-model row".into(),
                global_position: 0,
                source,
            })
        })
        .collect()
}
