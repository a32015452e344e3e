//! Upkeep the database does not do soon enough on its own.
//!
//! PostgreSQL plans queries from table statistics that autovacuum gathers — within a
//! minute or so of a table growing. A table filled faster than that (the outbox of a
//! fresh deployment under load, a read model after an import) has none, and a plan
//! chosen for an "empty" table can cost the square of its real size; prepared
//! statements keep such a plan until the statistics change. [`analyze_young_tables`]
//! analyzes every table that has never been analyzed although it holds at least 1,000
//! rows. SQLite plans without statistics and needs nothing.

use crate::db::Db;
use crate::{args, sql};

/// Analyzes the tables PostgreSQL has never analyzed although they hold at least 1,000
/// rows; answers their names (empty on SQLite and when there are none).
pub async fn analyze_young_tables(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    if db.backend() != crate::Backend::Postgres {
        return Ok(Vec::new());
    }
    let young: Vec<(String,)> = db
        .fetch_all(&sql!(postgres "maintenance/young_tables"), args![])
        .await?;
    if young.is_empty() {
        return Ok(Vec::new());
    }
    db.execute(&sql!(postgres "maintenance/analyze_young_tables"), args![])
        .await?;
    Ok(young.into_iter().map(|(t,)| t).collect())
}
