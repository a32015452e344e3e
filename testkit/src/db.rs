//! Fresh stores: a new PostgreSQL database per test (from the admin URL in
//! `DATABASE_URL`, which `scripts/test` provides) and a new SQLite file.
//!
//! PostgreSQL test databases are named `sessiond_t_<run>_<uuid>`, `<run>` from
//! `SESSIOND_TEST_RUN` (set by `scripts/test`), so the script drops exactly this run's
//! databases when it ends — also on a developer's own server.

use sessiond::store::{EventStore, LogPosition, RecordedEvent, StoreOptions};
use std::time::{Duration, Instant};

/// Which backend a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL (production).
    Postgres,
    /// An SQLite file (the embedded default).
    Sqlite,
}

/// The admin URL of the test PostgreSQL server. Missing is a failure, not a skip.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run the suite with scripts/test, which starts a throwaway PostgreSQL")
    })
}

/// The prefix of this run's PostgreSQL test databases.
pub fn run_prefix() -> String {
    let run: String = std::env::var("SESSIOND_TEST_RUN")
        .unwrap_or_else(|_| "local".into())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(16)
        .collect();
    format!("sessiond_t_{run}_")
}

/// A URL for a brand-new, empty database of `backend`.
pub async fn fresh_url(backend: Backend) -> String {
    match backend {
        Backend::Postgres => {
            let admin = admin_url();
            let name = format!("{}{}", run_prefix(), uuid::Uuid::new_v4().simple());
            let pool = sqlx::PgPool::connect(&admin)
                .await
                .expect("connect to the admin database");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&pool)
                .await
                .expect("create a test database");
            pool.close().await;
            let base = admin.split('?').next().unwrap_or(&admin);
            let (server, _) = base
                .rsplit_once('/')
                .expect("DATABASE_URL has a database path");
            format!("{server}/{name}")
        }
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(format!("sessiond-test-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).expect("create a temp dir");
            format!("sqlite://{}", dir.join("store.db").display())
        }
    }
}

/// Opens a fresh store (migrations applied).
pub async fn fresh_store(backend: Backend) -> EventStore {
    let url = fresh_url(backend).await;
    EventStore::open(
        &url,
        &StoreOptions {
            max_connections: 8,
            ..StoreOptions::default()
        },
    )
    .await
    .expect("open the store")
}

/// Reads the global log from `cursor` in batches of `batch` until `want` more events
/// arrived or 20 s passed. An empty batch only means "nothing readable yet": on
/// PostgreSQL any open transaction in the cluster (other tests run in parallel) holds the
/// reader's horizon back for a moment.
pub async fn read_until(
    store: &EventStore,
    cursor: &mut LogPosition,
    want: usize,
    batch: i64,
) -> Vec<RecordedEvent> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while out.len() < want && Instant::now() < deadline {
        let events = store.read_log(*cursor, batch).await.expect("read the log");
        for e in &events {
            assert!(e.log_position() > *cursor, "strictly after the cursor");
            *cursor = e.log_position();
        }
        if events.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        out.extend(events);
    }
    out
}

/// The integer a test's own portable query returns (e.g. a `count(*)`), read through the
/// store's backend abstraction. Test code only: the service's statements are files.
pub async fn scalar(db: &store::Db, sql: &'static str) -> i64 {
    let statement = store::db::Statement::new("test", sql, sql);
    let (n,): (i64,) = db
        .fetch_one(&statement, vec![])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    n
}
