//! Migrations across releases: a store created before the benchmark's table left the
//! service (it has migration 0003_bench applied and the table) still opens, and loses
//! the table; a fresh store applies every migration file this build has.

use sessiond::store::{EventStore, StoreOptions};
use testkit::db::{fresh_url, Backend};

fn migration_files(backend: &str) -> i64 {
    let dir = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count() as i64
}

async fn applied_and_bench_table(backend: Backend, url: &str) -> (i64, Vec<i64>, bool) {
    match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let versions: Vec<i64> = sqlx::query_scalar(
                "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            let table: Option<String> =
                sqlx::query_scalar("SELECT to_regclass('bench_session_status')::text")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            pool.close().await;
            (versions.len() as i64, versions, table.is_some())
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let versions: Vec<i64> = sqlx::query_scalar(
                "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            let table: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'bench_session_status'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            pool.close().await;
            (versions.len() as i64, versions, table == 1)
        }
    }
}

/// Makes a fresh store look like one created by a release that still had 0003_bench.
async fn as_before_the_bench_moved(backend: Backend, url: &str) {
    match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query("CREATE TABLE bench_session_status (id text PRIMARY KEY, status text NOT NULL, updated_at timestamptz)")
                .execute(&pool).await.unwrap();
            sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (3, 'bench', TRUE, '\\x00'::bytea, 0)")
                .execute(&pool).await.unwrap();
            sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 8")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::query("CREATE TABLE bench_session_status (id TEXT PRIMARY KEY, status TEXT NOT NULL, updated_at TEXT)")
                .execute(&pool).await.unwrap();
            sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (3, 'bench', 1, x'00', 0)")
                .execute(&pool).await.unwrap();
            sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 8")
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

fn dir(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    }
}

async fn a_fresh_store_applies_every_migration_file(backend: Backend) {
    let url = fresh_url(backend).await;
    let store = EventStore::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.close().await;
    let (applied, _, bench) = applied_and_bench_table(backend, &url).await;
    assert_eq!(applied, migration_files(dir(backend)));
    assert!(!bench, "a fresh store has no benchmark table");
}

async fn a_store_from_before_the_bench_moved_opens_and_loses_the_bench_table(backend: Backend) {
    let url = fresh_url(backend).await;
    EventStore::open(&url, &StoreOptions::default())
        .await
        .unwrap()
        .close()
        .await;
    as_before_the_bench_moved(backend, &url).await;
    let (_, versions, bench) = applied_and_bench_table(backend, &url).await;
    assert!(
        versions.contains(&3) && bench,
        "the old layout: {versions:?}"
    );

    let store = EventStore::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.ping().await.unwrap();
    store.close().await;
    let (_, versions, bench) = applied_and_bench_table(backend, &url).await;
    assert!(versions.contains(&8), "0008 ran: {versions:?}");
    assert!(!bench, "the benchmark table was dropped");
}

testkit::both_backends!(
    a_fresh_store_applies_every_migration_file,
    a_store_from_before_the_bench_moved_opens_and_loses_the_bench_table,
);
