//! Plans PostgreSQL must not choose, whatever its statistics say (the class of trap a
//! fresh or quickly changing table sets): the outbox's chain check never scans every
//! open delivery per candidate, and tables that grew without ever being analyzed are
//! analyzed by the maintenance pass. On SQLite, every statement that takes a JSON batch
//! reaches each table through its key once per element (the scheduler's queue-order
//! update once searched the whole queue for each element: seconds on the one writer).

use sessiond::store::{EventStore, StoreOptions};
use testkit::db::{fresh_url, Backend};

const DUE: &str = include_str!("../../projections/sql/common/outbox/due.sql");

/// A fresh PostgreSQL store (migrations applied) and one connection to it, so that
/// session settings and prepared statements hold for every statement sent.
async fn postgres() -> (EventStore, sqlx::PgPool) {
    let url = fresh_url(Backend::Postgres).await;
    let store = EventStore::open(&url, &StoreOptions::default())
        .await
        .expect("open the store");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("connect");
    (store, pool)
}

/// Inserts `n` deliveries of one subscription with `status`, one session (chain) each,
/// from position `from`.
async fn deliveries(pool: &sqlx::PgPool, from: i64, n: i64, status: &str) {
    sqlx::query(
        "INSERT INTO webhook_deliveries (delivery_id, target, session_id, owner, position, \
         status, next_attempt_ms, created_ms, body) \
         SELECT 'msg_' || p, 'w1', 's' || p, 'alice', p, $3, 1000, 1000, '{}' \
         FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) AS p",
    )
    .bind(from)
    .bind(n)
    .bind(status)
    .execute(pool)
    .await
    .expect("insert deliveries");
}

/// `EXPLAIN ANALYZE` of the due query's generic plan (the one a prepared statement
/// settles on), one line per row.
async fn due_plan(pool: &sqlx::PgPool) -> Vec<String> {
    let body: String = DUE
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(pool)
        .await
        .unwrap();
    sqlx::raw_sql(&format!("PREPARE due(text, bigint, bigint) AS {body}"))
        .execute(pool)
        .await
        .expect("prepare the due query");
    sqlx::query_scalar("EXPLAIN ANALYZE EXECUTE due('webhook_outbox', 9000000000000, 64)")
        .fetch_all(pool)
        .await
        .expect("explain")
}

#[tokio::test]
async fn the_outbox_chain_check_never_scans_every_open_delivery_on_stale_statistics() {
    // Given an outbox analyzed while nothing was open (the planner believes one open row)
    let (_store, pool) = postgres().await;
    sqlx::query(
        "INSERT INTO rm_webhook_targets VALUES (1, 'w1', 1, 'https://example.com/', '{}', '[]')",
    )
    .execute(&pool)
    .await
    .unwrap();
    deliveries(&pool, 1, 2_000, "delivered").await;
    sqlx::query("ANALYZE webhook_deliveries")
        .execute(&pool)
        .await
        .unwrap();
    // When 2,000 chains become open at once and the due query is planned
    let open = 2_000;
    deliveries(&pool, 10_001, open, "pending").await;
    let plan = due_plan(&pool).await;
    let text = plan.join("\n");
    // Then the chain check (alias e) is not answered by walking the open deliveries
    assert!(
        !plan
            .iter()
            .any(|l| l.contains("webhook_deliveries_due on webhook_deliveries e")),
        "the chain check walks the due index:\n{text}"
    );
    // And no join compares each candidate with every open delivery
    let removed: i64 = plan
        .iter()
        .filter_map(|l| l.split("Rows Removed by Join Filter: ").nth(1))
        .filter_map(|n| n.trim().parse::<i64>().ok())
        .sum();
    assert!(
        removed < 10 * open,
        "{removed} rows removed by join filters:\n{text}"
    );
    // And it found the due heads
    assert!(
        plan.iter()
            .any(|l| l.starts_with("Limit") && l.contains("rows=64 ")),
        "{text}"
    );
}

#[tokio::test]
async fn a_table_that_grew_without_ever_being_analyzed_gets_statistics() {
    // Given a table of 2,000 rows PostgreSQL has never analyzed
    let (store, pool) = postgres().await;
    sqlx::raw_sql(
        "CREATE TABLE grew_fast (id BIGINT); \
         INSERT INTO grew_fast SELECT generate_series(1, 2000)",
    )
    .execute(&pool)
    .await
    .unwrap();
    // When the maintenance pass runs (the cumulative statistics that count the rows
    // reach the view within about a second, so it is run until it sees them)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let analyzed = loop {
        let analyzed = store::maintenance::analyze_young_tables(&store.db())
            .await
            .expect("the maintenance pass");
        if analyzed.iter().any(|t| t == "grew_fast") {
            break analyzed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "grew_fast was never analyzed: {analyzed:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(analyzed.contains(&"grew_fast".to_string()));
    // Then it has statistics, and the next pass leaves it alone
    let has_stats: bool = sqlx::query_scalar(
        "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'grew_fast'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(has_stats);
    let again = store::maintenance::analyze_young_tables(&store.db())
        .await
        .unwrap();
    assert!(!again.contains(&"grew_fast".to_string()), "{again:?}");
}

#[tokio::test]
async fn the_maintenance_pass_has_nothing_to_do_on_sqlite() {
    let url = fresh_url(Backend::Sqlite).await;
    let store = EventStore::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    assert!(store::maintenance::analyze_young_tables(&store.db())
        .await
        .unwrap()
        .is_empty());
}

/// Every SQLite statement file under `dir` (recursively) that reads a JSON batch with
/// `json_each`.
fn json_batch_statements(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read the SQL directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            json_batch_statements(&path, out);
        } else if path.extension().is_some_and(|e| e == "sql") {
            let text = std::fs::read_to_string(&path).expect("read a statement");
            if text.contains("json_each") {
                out.push((path.display().to_string(), text));
            }
        }
    }
}

#[tokio::test]
async fn no_sqlite_batch_statement_walks_a_whole_table_for_each_element_of_its_batch() {
    // Given a migrated SQLite store and every statement that takes a JSON batch
    let url = fresh_url(Backend::Sqlite).await;
    let store = EventStore::open(&url, &StoreOptions::default())
        .await
        .expect("open the store");
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("connect");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut statements = Vec::new();
    json_batch_statements(&root.join("projections/sql/sqlite"), &mut statements);
    json_batch_statements(&root.join("store/sql/sqlite"), &mut statements);
    assert!(statements.len() >= 10, "{statements:?}");
    let mut slow = Vec::new();
    for (path, text) in &statements {
        let body: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut sql = body.replace("{table}", "rm_sessions");
        for n in (1..=9).rev() {
            sql = sql.replace(&format!("${n}"), &format!("?{n}"));
        }
        // When SQLite plans it
        let plan: Vec<String> = {
            use sqlx::Row;
            sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
                .fetch_all(&pool)
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"))
                .iter()
                .map(|r| r.get::<String, _>("detail"))
                .collect()
        };
        // Then every table is reached through its key, once per element of the batch:
        // none is searched by its generation alone (every row of the read model) or
        // scanned.
        for line in &plan {
            let by_generation_only = line.starts_with("SEARCH") && line.ends_with("(generation=?)");
            let scanned = line.starts_with("SCAN ")
                && !line.starts_with("SCAN json_each")
                && !line.starts_with("SCAN r");
            if by_generation_only || scanned {
                slow.push(format!("{path}: {line}"));
            }
        }
    }
    assert!(slow.is_empty(), "{slow:#?}");
    store.close().await;
}
