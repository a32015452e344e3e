//! An SQLite store out of space: the write is refused as 503 `store_full` (not a 500),
//! nothing of it is kept, and reads go on. The space limit is SQLite's own
//! `max_page_count` (a size-limited file system needs privileges a test machine may
//! not give).

#[tokio::test]
async fn an_sqlite_store_out_of_space_is_503_store_full_and_keeps_nothing_of_the_write() {
    use sqlx::{ConnectOptions, Connection};
    // Given an SQLite database that may not grow past its current size
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .in_memory(true)
        .connect()
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (v TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    let (pages,): (i64,) = sqlx::query_as("PRAGMA page_count")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!("PRAGMA max_page_count = {}", pages + 2))
        .execute(&mut conn)
        .await
        .unwrap();
    // When a write needs more pages than that
    let err = sqlx::query("INSERT INTO t VALUES (?)")
        .bind("x".repeat(64 * 1024))
        .execute(&mut conn)
        .await
        .unwrap_err();
    // Then it is 503 store_full with a message saying what to do, for the raw
    // error and as the store reports it
    let e = sessiond::http::ApiError::from(err);
    assert_eq!(
        e.code,
        sessiond::http::ErrorCode::StoreFull,
        "{:?}",
        e.source
    );
    assert_eq!(e.status_code(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert!(e.message.contains("out of space"), "{}", e.message);
    let err = sqlx::query("INSERT INTO t VALUES (?)")
        .bind("x".repeat(64 * 1024))
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(
        sessiond::http::ApiError::from(sessiond::store::StoreError::Database(err)).code,
        sessiond::http::ErrorCode::StoreFull
    );
    // And nothing of the refused writes was kept; reads still work
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM t")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    conn.close().await.unwrap();
}
