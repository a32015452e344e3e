//! Late commits: positions are assigned at INSERT time, so a transaction holding a lower
//! position can commit after one holding a higher position. The global-log reader must
//! deliver both, in commit order, and skip neither.

use sessiond::store::{EventStore, LogPosition, RecordedEvent, StoreOptions};

use sqlx::{Connection, Row};
use testkit::db::read_until;

use testkit::db::{fresh_store, fresh_url, Backend};

const INSERT: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
    event_version, payload, metadata) VALUES ('Counter', $1, 1, 'Incremented', '1', \
    '{\"Incremented\":{\"by\":1}}', '{}') RETURNING global_position";

fn ids(events: &[RecordedEvent]) -> Vec<&str> {
    events.iter().map(|e| e.aggregate_id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_lower_position_committed_late_is_delivered_in_commit_order_and_never_skipped() {
    let store = fresh_store(Backend::Postgres).await;
    let EventStore::Postgres(pg) = &store else {
        unreachable!()
    };
    let pool = pg.pool();

    // T_high takes its transaction id first, but inserts last: it holds the HIGHER position.
    let mut t_high = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *t_high)
        .await
        .unwrap();
    // T_low inserts first: it holds the LOWER position.
    let mut t_low = pool.begin().await.unwrap();
    let low: i64 = sqlx::query(INSERT)
        .bind("low")
        .fetch_one(&mut *t_low)
        .await
        .unwrap()
        .get(0);
    let high: i64 = sqlx::query(INSERT)
        .bind("high")
        .fetch_one(&mut *t_high)
        .await
        .unwrap()
        .get(0);
    assert!(low < high);

    // The higher position commits first.
    t_high.commit().await.unwrap();
    let mut cursor = LogPosition::START;
    let first = read_until(&store, &mut cursor, 1, 100).await;
    assert_eq!(ids(&first), ["high"]);

    // A reader that followed positions would now stand at `high` and never see `low`:
    let behind_high: i64 = sqlx::query("SELECT count(*) FROM events WHERE global_position > $1")
        .bind(high)
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(behind_high, 0);

    // While T_low is open, nothing more is delivered...
    assert!(store.read_log(cursor, 100).await.unwrap().is_empty());
    // ...and once it commits, the lower position is delivered after the higher one.
    t_low.commit().await.unwrap();
    let second = read_until(&store, &mut cursor, 1, 100).await;
    assert_eq!(ids(&second), ["low"]);
    assert_eq!(second[0].global_position, low);
    assert!(
        store.read_log(cursor, 100).await.unwrap().is_empty(),
        "no duplicates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_reader_never_passes_an_open_transaction_with_an_older_id() {
    let store = fresh_store(Backend::Postgres).await;
    let EventStore::Postgres(pg) = &store else {
        unreachable!()
    };
    let pool = pg.pool();

    // T_old: lower position and older transaction id, still open.
    let mut t_old = pool.begin().await.unwrap();
    sqlx::query(INSERT)
        .bind("old")
        .fetch_one(&mut *t_old)
        .await
        .unwrap();
    // Many later appends commit meanwhile.
    for i in 0..5 {
        let mut t = pool.begin().await.unwrap();
        sqlx::query(INSERT)
            .bind(format!("new{i}"))
            .fetch_one(&mut *t)
            .await
            .unwrap();
        t.commit().await.unwrap();
    }
    let mut cursor = LogPosition::START;
    assert!(
        store.read_log(cursor, 100).await.unwrap().is_empty(),
        "nothing after an open older transaction is delivered, so it cannot be skipped"
    );
    t_old.commit().await.unwrap();
    let all = read_until(&store, &mut cursor, 6, 100).await;
    assert_eq!(ids(&all), ["old", "new0", "new1", "new2", "new3", "new4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_a_second_writer_waits_so_positions_follow_commit_order() {
    let url = fresh_url(Backend::Sqlite).await;
    let store = EventStore::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    let mut raw = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut raw)
        .await
        .unwrap();
    let first: i64 = sqlx::query(INSERT)
        .bind("first")
        .fetch_one(&mut raw)
        .await
        .unwrap()
        .get(0);

    // The store's writer must wait for the open write transaction.
    let writer = store.clone();
    let second = tokio::spawn(async move {
        writer
            .append(&[sessiond::store::NewEvent {
                aggregate_type: "Counter".into(),
                aggregate_id: "second".into(),
                sequence: 1,
                event_type: "Incremented".into(),
                event_version: "1".into(),
                payload: serde_json::json!({"Incremented": {"by": 1}}),
                metadata: serde_json::json!({}),
            }])
            .await
    });
    let mut cursor = LogPosition::START;
    assert!(
        store.read_log(cursor, 100).await.unwrap().is_empty(),
        "uncommitted rows are invisible"
    );
    sqlx::query("COMMIT").execute(&mut raw).await.unwrap();
    let positions = second.await.unwrap().unwrap();
    assert!(positions[0].global_position > first);
    let all = read_until(&store, &mut cursor, 2, 100).await;
    assert_eq!(ids(&all), ["first", "second"]);
}
