//! Projection engine and read models against real PostgreSQL and SQLite: every read
//! model equals a fresh fold of the event streams after catch-up, failures stop only the
//! failing projection and apply nothing twice, rebuilds swap with zero downtime, late
//! commits are never skipped, pending timeouts and consistency tokens work, and the
//! projection lease fails over (SPEC §5).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::arithmetic_side_effects)]

mod second_process;
mod wrappers;

use domain::session::{Session, SessionEvent, SessionStatus};
use projections::engine::{read_checkpoint, rebuild, reset, status_of, RebuildProgress};
use projections::models::audit_log::AuditLog;
use projections::models::documents;
use projections::models::pending_queue::PendingQueue;
use projections::{Engine, EngineConfig, LogPosition, Projection, RecordedEvent};
use serde_json::json;
use sessiond::store::EventStore;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::db::Db;
use testkit::world::{at, enqueue_session, World};
use testkit::Backend;
use tokio::sync::watch;
use uuid::Uuid;
use wrappers::{Counting, Failing};

testkit::conformance!(
    catching_up_after_a_mixed_workload_makes_every_read_model_equal_a_fresh_fold,
    a_failing_batch_stops_only_its_projection_and_after_the_retry_nothing_is_applied_twice,
    a_rebuild_under_load_keeps_the_live_model_serving_and_swaps_in_an_identical_one,
    a_session_cancelled_for_pending_timeout_shows_the_reason_and_leaves_the_queue,
    changing_a_groups_pending_timeout_recomputes_the_deadlines_of_waiting_sessions,
    a_consistency_token_is_awaited_until_a_running_engine_applied_it,
    a_caught_up_runner_is_woken_by_an_append_without_waiting_for_the_poll_interval,
    a_pending_sessions_view_shows_the_scheduler_status_data_until_it_leaves_pending,
);

// ---- helpers ------------------------------------------------------------------------------

fn config(batch_size: i64) -> EngineConfig {
    EngineConfig {
        batch_size,
        poll_interval: Duration::from_millis(50),
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        ..EngineConfig::default()
    }
}

/// Polls `check` until it holds; fails the test after `timeout`.
async fn eventually(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Catches every projection of `engine` up until each has applied `target`. On
/// PostgreSQL an open transaction anywhere in the cluster (other tests run in parallel)
/// holds the readable horizon back for a moment, so one `catch_up_all` may stop short.
async fn catch_up_to(engine: &Engine, target: LogPosition) {
    let db = engine.db().clone();
    let names = engine.names();
    eventually(
        "every projection caught up",
        Duration::from_secs(20),
        async || {
            engine.catch_up_all().await.unwrap();
            for name in &names {
                if read_checkpoint(&db, name).await.unwrap().position < target {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

async fn stop_runners(stop: &watch::Sender<bool>, handles: Vec<tokio::task::JoinHandle<()>>) {
    stop.send(true).unwrap();
    for h in handles {
        tokio::time::timeout(Duration::from_secs(10), h)
            .await
            .expect("a runner stops when told to")
            .unwrap();
    }
}

/// One `i64` from raw SQL with one bound `i64`, on either backend.
async fn scalar(db: &Db, sql: &str, bind: i64) -> i64 {
    match db {
        Db::Postgres(p) => sqlx::query_scalar(sql)
            .bind(bind)
            .fetch_one(p)
            .await
            .unwrap(),
        Db::Sqlite { readers, .. } => sqlx::query_scalar(sql)
            .bind(bind)
            .fetch_one(readers)
            .await
            .unwrap(),
    }
}

// ---- 1. catch-up == fresh fold ------------------------------------------------------------

async fn catching_up_after_a_mixed_workload_makes_every_read_model_equal_a_fresh_fold(
    store: EventStore,
) {
    let w = testkit::world::mixed(store).await;
    let engine = Engine::new(w.db.clone(), projections::models::all(), config(7));
    catch_up_to(&engine, w.last).await;

    for status in engine.status().await.unwrap() {
        assert_eq!(status.position, w.last.global_position, "{status:?}");
        assert_eq!(status.lag_events, 0, "{status:?}");
        assert_eq!(status.generation, 1, "{status:?}");
        assert_eq!((status.last_error.as_deref(), status.failures), (None, 0));
    }
    testkit::world::assert_all_match_fold(&w).await;

    // The workload covered what it claims to.
    let mut statuses = BTreeSet::new();
    for id in &w.sessions {
        statuses.insert(w.fold_session(*id).await.status.unwrap());
    }
    for s in [
        SessionStatus::Pending,
        SessionStatus::Scheduled,
        SessionStatus::Running,
        SessionStatus::Terminated,
        SessionStatus::Cancelled,
        SessionStatus::Error,
    ] {
        assert!(statuses.contains(&s), "{s:?} in {statuses:?}");
    }

    // Catching up again applies nothing and changes nothing.
    assert_eq!(engine.catch_up_all().await.unwrap(), 0);
    testkit::world::assert_all_match_fold(&w).await;
}

// ---- 2. injected failures -----------------------------------------------------------------

/// Folds the Session events of `log` up to and including `upto`.
fn fold_prefix(log: &[RecordedEvent], upto: LogPosition) -> BTreeMap<String, serde_json::Value> {
    let mut folds: BTreeMap<String, Session> = BTreeMap::new();
    for e in log.iter().filter(|e| e.log_position() <= upto) {
        if e.aggregate_type == "Session" {
            let event: SessionEvent = e.decode().unwrap();
            folds
                .entry(e.aggregate_id.clone())
                .or_default()
                .apply(&event);
        }
    }
    folds
        .into_iter()
        .map(|(id, s)| (id, serde_json::to_value(s).unwrap()))
        .collect()
}

async fn sessions_docs(db: &Db) -> BTreeMap<String, serde_json::Value> {
    documents::sessions()
        .all_docs(db)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

async fn a_failing_batch_stops_only_its_projection_and_after_the_retry_nothing_is_applied_twice(
    store: EventStore,
) {
    let w = testkit::world::mixed(store).await;
    let db = w.db.clone();
    let log = w.full_log().await;
    let head = w.last;

    let sessions = Arc::new(Failing::new(Arc::new(documents::sessions()), 3));
    let audit = Arc::new(Failing::new(Arc::new(AuditLog), 5));
    let others = ["scaling_groups", "agent_occupancy", "pending_queue"];
    let engine = Arc::new(
        Engine::new(
            db.clone(),
            vec![
                sessions.clone(),
                Arc::new(documents::scaling_groups()),
                Arc::new(documents::agent_occupancy()),
                Arc::new(PendingQueue),
                audit.clone(),
            ],
            config(7),
        )
        .with_waker(w.store.appended()),
    );
    let (stop, rx) = watch::channel(false);
    let runners = engine.spawn_all(rx);

    // Both failing projections stop, and keep failing (retried with backoff) while held.
    eventually(
        "both failures are recorded and retried",
        Duration::from_secs(20),
        async || {
            let s = status_of(&db, "sessions").await.unwrap();
            let a = status_of(&db, "audit_log").await.unwrap();
            s.failures >= 2 && a.failures >= 2
        },
    )
    .await;

    // The others are unaffected: they catch up to the head meanwhile.
    for name in others {
        assert!(
            engine
                .wait_for(name, head.global_position, Duration::from_secs(20))
                .await
                .unwrap(),
            "{name} caught up while sessions and audit_log were stopped"
        );
        let st = status_of(&db, name).await.unwrap();
        assert_eq!((st.last_error, st.failures), (None, 0), "{name}");
    }

    // (a) The checkpoint stays at the last good batch; the failed batch left nothing.
    for (p, calls_at_least) in [(&sessions, 3), (&audit, 5)] {
        let name = p.name();
        let cp = read_checkpoint(&db, name).await.unwrap().position;
        assert!(p.calls() >= calls_at_least, "{name}: {} calls", p.calls());
        assert!(p.max_batch() <= 7, "batches of at most 7");
        assert_eq!(
            Some(cp),
            p.last_ok(),
            "{name}: checkpoint at the last good batch"
        );
        assert!(cp < head, "{name} is stopped before the head");
        let next = log.iter().find(|e| e.log_position() > cp).unwrap();
        assert_eq!(
            p.failed_at(),
            Some(next.log_position()),
            "{name}: the failing batch starts right after the checkpoint"
        );
        // (b) visible in status
        let st = status_of(&db, name).await.unwrap();
        assert_eq!(st.position, cp.global_position);
        assert!(st.lag_events > 0, "{st:?}");
        assert!(st.lag_seconds > 0.0, "lag in seconds is reported: {st:?}");
        assert!(
            st.last_error
                .as_deref()
                .is_some_and(|e| e.contains("injected failure")),
            "{st:?}"
        );
        assert!(st.failures >= 2, "{st:?}");
        assert!(engine.failure_counts().get(name).copied().unwrap_or(0) >= 2);
        assert!(p.injected() as i64 >= st.failures);
    }
    let cp = read_checkpoint(&db, "sessions").await.unwrap().position;
    assert_eq!(
        sessions_docs(&db).await,
        fold_prefix(&log, cp),
        "the sessions model holds exactly the events up to its checkpoint"
    );
    let cp = read_checkpoint(&db, "audit_log").await.unwrap().position;
    let entries = AuditLog.entries(&db).await.unwrap();
    let prefix: Vec<i64> = log
        .iter()
        .filter(|e| e.log_position() <= cp)
        .map(|e| e.global_position)
        .collect();
    assert_eq!(
        entries
            .iter()
            .map(|e| e.global_position)
            .collect::<Vec<_>>(),
        prefix,
        "the audit log holds exactly the events up to its checkpoint"
    );

    // (c) The retry succeeds once the failure clears; nothing is applied twice.
    sessions.release();
    audit.release();
    for name in ["sessions", "audit_log"] {
        assert!(engine
            .wait_for(name, head.global_position, Duration::from_secs(20))
            .await
            .unwrap());
        let st = status_of(&db, name).await.unwrap();
        assert_eq!((st.last_error, st.failures, st.lag_events), (None, 0, 0));
    }
    stop_runners(&stop, runners).await;
    testkit::world::assert_all_match_fold(&w).await;
    for id in &w.sessions {
        let stream = w
            .store
            .read_stream("Session", &id.to_string())
            .await
            .unwrap();
        let doc = documents::sessions()
            .get(&db, &id.to_string())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(doc.version, stream.len() as u64, "every event applied once");
    }

    // A model built from scratch by a second engine after a reset is identical.
    let live_sessions = sessions_docs(&db).await;
    let live_audit = AuditLog.entries(&db).await.unwrap();
    reset(&db, &documents::sessions()).await.unwrap();
    reset(&db, &AuditLog).await.unwrap();
    assert!(sessions_docs(&db).await.is_empty());
    assert!(AuditLog.entries(&db).await.unwrap().is_empty());
    let fresh = Engine::new(db.clone(), projections::models::all(), config(1000));
    catch_up_to(&fresh, head).await;
    assert_eq!(sessions_docs(&db).await, live_sessions);
    assert_eq!(AuditLog.entries(&db).await.unwrap(), live_audit);
}

// ---- 3. zero-downtime rebuild -------------------------------------------------------------

async fn a_rebuild_under_load_keeps_the_live_model_serving_and_swaps_in_an_identical_one(
    store: EventStore,
) {
    let mut w = testkit::world::mixed(store).await;
    let db = w.db.clone();
    let engine = Arc::new(
        Engine::new(db.clone(), projections::models::all(), config(7))
            .with_waker(w.store.appended()),
    );
    catch_up_to(&engine, w.last).await;
    let gen0 = read_checkpoint(&db, "sessions").await.unwrap().generation;
    let start = documents::sessions().all_docs(&db).await.unwrap().len();
    assert_eq!(start, w.sessions.len());
    let events_before = w.events() as u64;

    let (stop_engine, rx) = watch::channel(false);
    let runners = engine.spawn_all(rx);

    // (a) a reader of the live model
    let stop_reader = Arc::new(AtomicBool::new(false));
    let reader = {
        let db = db.clone();
        let stop = stop_reader.clone();
        tokio::spawn(async move {
            let (mut last, mut reads) = (start, 0u64);
            while !stop.load(Ordering::SeqCst) {
                let n = documents::sessions().all_docs(&db).await.unwrap().len();
                assert!(n > 0, "the live model never reads empty");
                assert!(
                    n >= start,
                    "never fewer than the {start} rows at the start: {n}"
                );
                assert!(
                    n >= last,
                    "never fewer rows than a previous read ({last}, then {n})"
                );
                last = n;
                reads += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            reads
        })
    };

    // (b) a writer enqueuing new sessions
    let stop_writer = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    // The same count as a watch, so the rebuild's callback can wait for appends.
    let (count_tx, count_rx) = watch::channel(0usize);
    let writer = {
        let handler = w.handler.clone();
        let stop = stop_writer.clone();
        let written = written.clone();
        let count_tx = count_tx.clone();
        let base = w.clock;
        tokio::spawn(async move {
            let mut out = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let id = Uuid::new_v4();
                let c = enqueue_session(&handler, id, "alpha", 30, "dave", at(base + i)).await;
                out.push((id, c.positions[0]));
                let n = written.fetch_add(1, Ordering::SeqCst) + 1;
                count_tx.send_replace(n);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            out
        })
    };
    eventually(
        "the writer is writing",
        Duration::from_secs(10),
        async || written.load(Ordering::SeqCst) >= 2,
    )
    .await;

    // (d) the rebuild, while (c) the engine runs. After its first shadow batch it lets a
    // few appends land, so the tail really is caught up during the rebuild.
    let mut progress: Vec<RebuildProgress> = Vec::new();
    let replayed = rebuild(&db, &documents::sessions(), 5, |p| {
        if progress.is_empty() {
            // The callback is synchronous: block this worker thread (telling the
            // runtime) until three more appends have landed.
            let target = written.load(Ordering::SeqCst) + 3;
            let mut count = count_rx.clone();
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    tokio::time::timeout(Duration::from_secs(10), count.wait_for(|n| *n >= target))
                        .await
                        .expect("the writer keeps writing")
                        .expect("the writer is alive");
                })
            });
        }
        progress.push(p);
    })
    .await
    .unwrap();

    stop_writer.store(true, Ordering::SeqCst);
    let new = writer.await.unwrap();
    assert!(new.len() >= 5, "the writer wrote during the rebuild");
    for (id, pos) in &new {
        w.sessions.push(*id);
        w.enqueue_positions.insert(*id, pos.global_position);
        w.actors.insert(pos.global_position, "user:dave".into());
        w.last = w.last.max(*pos);
    }
    assert!(
        replayed >= events_before,
        "replayed {replayed} of {events_before}"
    );
    assert!(progress.len() > 2, "progress after every batch");
    assert!(progress.windows(2).all(|p| p[0].replayed < p[1].replayed
        || (p[0].replayed == p[1].replayed && p[0].position == p[1].position)));

    for name in engine.names() {
        assert!(
            engine
                .wait_for(name, w.last.global_position, Duration::from_secs(20))
                .await
                .unwrap(),
            "{name} caught up after the rebuild"
        );
    }
    stop_reader.store(true, Ordering::SeqCst);
    let reads = reader.await.unwrap();
    assert!(reads > 0);
    stop_runners(&stop_engine, runners).await;

    let cp = read_checkpoint(&db, "sessions").await.unwrap();
    assert_eq!(
        cp.generation,
        gen0 + 1,
        "the rebuild swapped in a new generation"
    );
    for name in [
        "scaling_groups",
        "agent_occupancy",
        "pending_queue",
        "audit_log",
    ] {
        assert_eq!(read_checkpoint(&db, name).await.unwrap().generation, gen0);
    }
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM rm_sessions WHERE generation <> $1",
            cp.generation
        )
        .await,
        0,
        "the old generation's rows were deleted"
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM rm_sessions WHERE generation = $1",
            cp.generation
        )
        .await,
        w.sessions.len() as i64
    );
    testkit::world::assert_all_match_fold(&w).await;
}

// ---- 4. late commits (PostgreSQL) ---------------------------------------------------------

const INSERT_ENQUEUED: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, \
    event_type, event_version, payload, metadata) \
    VALUES ('Session', $1, 1, 'SessionEnqueued', '1', $2, $3) RETURNING global_position";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_an_event_committed_after_a_higher_position_still_reaches_the_read_models() {
    let store = testkit::db::fresh_store(Backend::Postgres).await;
    let EventStore::Postgres(pg) = &store else {
        unreachable!()
    };
    let pool = pg.pool().clone();
    let mut w = World::new(store.clone());
    let db = w.db.clone();
    w.group("alpha", json!({"pending_timeout": 60})).await;
    let template_id = w.enqueue("alpha", 10, "alice").await;
    let template = store
        .read_stream("Session", &template_id.to_string())
        .await
        .unwrap()
        .remove(0);
    let engine = Engine::new(db.clone(), projections::models::all(), config(100));
    catch_up_to(&engine, w.last).await;

    let payload_for = |id: Uuid| {
        let mut p = template.payload.clone();
        p["SessionEnqueued"]["spec"]["session_id"] = json!(id);
        p["SessionEnqueued"]["spec"]["name"] = json!(format!("late-{}", id.simple()));
        p
    };
    let (high_id, low_id) = (Uuid::new_v4(), Uuid::new_v4());

    // T1 takes the older transaction id; T2 inserts first (the LOWER position), then T1.
    let mut t1 = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *t1)
        .await
        .unwrap();
    let mut t2 = pool.begin().await.unwrap();
    let low: i64 = sqlx::query_scalar(INSERT_ENQUEUED)
        .bind(low_id.to_string())
        .bind(payload_for(low_id))
        .bind(&template.metadata)
        .fetch_one(&mut *t2)
        .await
        .unwrap();
    let high: i64 = sqlx::query_scalar(INSERT_ENQUEUED)
        .bind(high_id.to_string())
        .bind(payload_for(high_id))
        .bind(&template.metadata)
        .fetch_one(&mut *t1)
        .await
        .unwrap();
    assert!(low < high);

    // The higher position commits first and is projected...
    t1.commit().await.unwrap();
    eventually(
        "the first committed event is projected",
        Duration::from_secs(20),
        async || {
            engine.catch_up_all().await.unwrap();
            documents::sessions()
                .get(&db, &high_id.to_string())
                .await
                .unwrap()
                .is_some()
        },
    )
    .await;
    assert!(documents::sessions()
        .get(&db, &low_id.to_string())
        .await
        .unwrap()
        .is_none());
    for name in engine.names() {
        let cp = read_checkpoint(&db, name).await.unwrap().position;
        assert_eq!(
            cp.global_position, high,
            "{name} stands past the lower, uncommitted position: a reader by position \
             would now skip it"
        );
    }

    // ...and the lower position, committed later, is projected too.
    t2.commit().await.unwrap();
    let low_pos = store
        .read_stream("Session", &low_id.to_string())
        .await
        .unwrap()[0]
        .log_position();
    let high_pos = store
        .read_stream("Session", &high_id.to_string())
        .await
        .unwrap()[0]
        .log_position();
    assert!(
        low_pos > high_pos,
        "in commit order the lower position comes last"
    );
    catch_up_to(&engine, low_pos).await;

    for (id, pos) in [(high_id, high_pos), (low_id, low_pos)] {
        w.sessions.push(id);
        w.enqueue_positions.insert(id, pos.global_position);
        w.actors.insert(pos.global_position, "user:alice".into());
        w.last = w.last.max(pos);
    }
    testkit::world::assert_all_match_fold(&w).await;
    let tail: Vec<i64> = AuditLog
        .entries(&db)
        .await
        .unwrap()
        .iter()
        .rev()
        .take(2)
        .map(|e| e.global_position)
        .collect();
    assert_eq!(tail, [low, high], "the audit log is in commit order");
}

// ---- 5. pending_timeout cancellation ------------------------------------------------------

async fn a_session_cancelled_for_pending_timeout_shows_the_reason_and_leaves_the_queue(
    store: EventStore,
) {
    let mut w = World::new(store);
    let db = w.db.clone();
    w.group("alpha", json!({"pending_timeout": 60})).await;
    let keep = w.enqueue("alpha", 10, "alice").await;
    let id = w.enqueue("alpha", 10, "bob").await;
    let engine = Engine::new(db.clone(), projections::models::all(), config(7));
    catch_up_to(&engine, w.last).await;

    let queue = PendingQueue.queue(&db, "alpha").await.unwrap();
    let ids: Vec<String> = queue.iter().map(|e| e.session_id.clone()).collect();
    assert_eq!(ids, [keep.to_string(), id.to_string()]);
    let enqueued_ms = w
        .fold_session(id)
        .await
        .enqueued_at
        .unwrap()
        .timestamp_millis();
    assert_eq!(queue[1].deadline_ms, Some(enqueued_ms + 60_000));
    let expired = PendingQueue
        .expired(&db, enqueued_ms + 60_000, 10)
        .await
        .unwrap();
    assert!(expired.iter().any(|e| e.session_id == id.to_string()));
    assert!(PendingQueue
        .expired(&db, enqueued_ms + 59_999, 10)
        .await
        .unwrap()
        .iter()
        .all(|e| e.session_id != id.to_string()));

    // The sweeper cancels it.
    w.advance(60);
    w.cancel(id, "pending_timeout", "scheduler").await;
    let cancelled_at = at(w.clock);
    catch_up_to(&engine, w.last).await;

    let doc = documents::sessions()
        .get(&db, &id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(doc.status, Some(SessionStatus::Cancelled));
    assert_eq!(doc.status_info.as_deref(), Some("pending_timeout"));
    assert_eq!(doc.status_changed, Some(cancelled_at));
    assert_eq!(
        doc.status_history.keys().copied().collect::<Vec<_>>(),
        [SessionStatus::Pending, SessionStatus::Cancelled]
    );
    assert_eq!(doc.status_history[&SessionStatus::Cancelled], cancelled_at);
    let raw = documents::sessions().all_docs(&db).await.unwrap();
    let raw = &raw.iter().find(|(k, _)| *k == id.to_string()).unwrap().1;
    assert_eq!(raw["status"], "CANCELLED");
    assert_eq!(raw["status_info"], "pending_timeout");
    assert!(raw["status_history"]["PENDING"].is_string());
    assert!(raw["status_history"]["CANCELLED"].is_string());

    let left: Vec<String> = PendingQueue
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.session_id)
        .collect();
    assert_eq!(left, [keep.to_string()], "gone from the pending queue");
    assert!(PendingQueue
        .expired(&db, i64::MAX / 2, 10)
        .await
        .unwrap()
        .iter()
        .all(|e| e.session_id != id.to_string()));
    let last = AuditLog.entries(&db).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.event_type.as_str(), last.actor.as_str()),
        ("SessionCancelled", "scheduler")
    );
    testkit::world::assert_all_match_fold(&w).await;
}

// ---- 6. changing pending_timeout ----------------------------------------------------------

async fn deadlines(db: &Db, group: &str) -> BTreeMap<String, Option<i64>> {
    PendingQueue
        .queue(db, group)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.session_id, e.deadline_ms))
        .collect()
}

async fn changing_a_groups_pending_timeout_recomputes_the_deadlines_of_waiting_sessions(
    store: EventStore,
) {
    let mut w = World::new(store);
    let db = w.db.clone();
    let engine = Engine::new(db.clone(), projections::models::all(), config(7));
    w.group("slow", json!({"pending_timeout": 600})).await;
    w.group("other", json!({"pending_timeout": 600})).await;
    let s1 = w.enqueue("slow", 10, "alice").await;
    w.advance(100);
    let s2 = w.enqueue("slow", 10, "alice").await;
    w.advance(100);
    let s3 = w.enqueue("slow", 10, "alice").await;
    let gone = w.enqueue("slow", 10, "alice").await;
    w.cancel(gone, "user-requested", "user:alice").await;
    let o1 = w.enqueue("other", 10, "bob").await;
    catch_up_to(&engine, w.last).await;

    let mut enq = BTreeMap::new();
    for id in [s1, s2, s3, o1] {
        let ms = w
            .fold_session(id)
            .await
            .enqueued_at
            .unwrap()
            .timestamp_millis();
        enq.insert(id.to_string(), ms);
    }
    let with = |enq: &BTreeMap<String, i64>, ids: &[Uuid], timeout: Option<i64>| {
        ids.iter()
            .map(|id| {
                let k = id.to_string();
                let d = timeout.map(|t| enq[&k] + t * 1000);
                (k, d)
            })
            .collect::<BTreeMap<String, Option<i64>>>()
    };
    assert_eq!(
        deadlines(&db, "slow").await,
        with(&enq, &[s1, s2, s3], Some(600))
    );
    assert_eq!(deadlines(&db, "other").await, with(&enq, &[o1], Some(600)));

    // Lowered: applies to the sessions already waiting, only in that group.
    w.update_group("slow", None, Some(json!({"pending_timeout": 150})))
        .await;
    catch_up_to(&engine, w.last).await;
    assert_eq!(
        deadlines(&db, "slow").await,
        with(&enq, &[s1, s2, s3], Some(150))
    );
    assert_eq!(deadlines(&db, "other").await, with(&enq, &[o1], Some(600)));
    let expired = |now_ms: i64| {
        let db = db.clone();
        async move {
            PendingQueue
                .expired(&db, now_ms, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.session_id)
                .collect::<Vec<_>>()
        }
    };
    let d2 = enq[&s2.to_string()] + 150_000;
    assert_eq!(expired(d2).await, [s1.to_string(), s2.to_string()]);
    assert_eq!(expired(d2 - 1).await, [s1.to_string()]);
    assert_eq!(
        expired(enq[&s1.to_string()] + 149_999).await,
        Vec::<String>::new()
    );

    // A session enqueued after the change gets the new timeout.
    let s4 = w.enqueue("slow", 10, "alice").await;
    catch_up_to(&engine, w.last).await;
    let ms4 = w
        .fold_session(s4)
        .await
        .enqueued_at
        .unwrap()
        .timestamp_millis();
    enq.insert(s4.to_string(), ms4);
    assert_eq!(
        deadlines(&db, "slow").await,
        with(&enq, &[s1, s2, s3, s4], Some(150))
    );

    // 0 disables the timeout: no deadlines, nothing of that group ever expires.
    w.update_group("slow", None, Some(json!({"pending_timeout": 0})))
        .await;
    catch_up_to(&engine, w.last).await;
    assert_eq!(
        deadlines(&db, "slow").await,
        with(&enq, &[s1, s2, s3, s4], None)
    );
    assert_eq!(expired(i64::MAX / 2).await, [o1.to_string()]);

    // Raised again: recomputed from the enqueue time.
    w.update_group("slow", None, Some(json!({"pending_timeout": 1000})))
        .await;
    catch_up_to(&engine, w.last).await;
    assert_eq!(
        deadlines(&db, "slow").await,
        with(&enq, &[s1, s2, s3, s4], Some(1000))
    );
    testkit::world::assert_all_match_fold(&w).await;
}

// ---- 7. consistency tokens ----------------------------------------------------------------

async fn a_consistency_token_is_awaited_until_a_running_engine_applied_it(store: EventStore) {
    let mut w = World::new(store);
    let db = w.db.clone();
    w.group("alpha", json!({})).await;
    let engine = Arc::new(
        Engine::new(db.clone(), projections::models::all(), config(100))
            .with_waker(w.store.appended()),
    );
    let (stop, rx) = watch::channel(false);
    let runners = engine.spawn_all(rx);

    let id = w.enqueue("alpha", 10, "alice").await;
    let token = w.enqueue_positions[&id];
    assert!(engine
        .wait_for("sessions", token, Duration::from_secs(5))
        .await
        .unwrap());
    let doc = documents::sessions()
        .get(&db, &id.to_string())
        .await
        .unwrap();
    assert_eq!(
        doc.unwrap().status,
        Some(SessionStatus::Pending),
        "read-your-writes"
    );
    assert!(engine
        .wait_for("pending_queue", token, Duration::from_secs(5))
        .await
        .unwrap());
    assert_eq!(PendingQueue.queue(&db, "alpha").await.unwrap().len(), 1);

    w.cancel(id, "user-requested", "user:alice").await;
    assert!(engine
        .wait_for("sessions", w.last.global_position, Duration::from_secs(5))
        .await
        .unwrap());
    let doc = documents::sessions()
        .get(&db, &id.to_string())
        .await
        .unwrap();
    assert_eq!(doc.unwrap().status, Some(SessionStatus::Cancelled));

    // Nobody projects: the wait gives up after its (short) timeout.
    stop_runners(&stop, runners).await;
    let id2 = w.enqueue("alpha", 10, "alice").await;
    let token2 = w.enqueue_positions[&id2];
    let started = Instant::now();
    let applied = engine
        .wait_for("sessions", token2, Duration::from_millis(300))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(!applied, "no engine running");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert!(documents::sessions()
        .get(&db, &id2.to_string())
        .await
        .unwrap()
        .is_none());
    // A token naming no event is never reached.
    assert!(!engine
        .wait_for("sessions", token2 + 1_000_000, Duration::from_millis(100))
        .await
        .unwrap());

    catch_up_to(&engine, w.last).await;
    assert!(engine
        .wait_for("sessions", token2, Duration::from_millis(1))
        .await
        .unwrap());
    testkit::world::assert_all_match_fold(&w).await;
}

/// SPEC §5: runners follow the log "woken by LISTEN/NOTIFY on PostgreSQL (in-process
/// signal on SQLite) with a polling fallback". The poll interval here is far longer than
/// the test, so only a wake-up can explain the progress. On PostgreSQL the engine gets no
/// in-process waker: only the `sessiond_events` notification (which every replica's
/// appends raise) can wake it.
async fn a_caught_up_runner_is_woken_by_an_append_without_waiting_for_the_poll_interval(
    store: EventStore,
) {
    let mut w = World::new(store.clone());
    let db = w.db.clone();
    w.group("alpha", json!({})).await;
    let slow = EngineConfig {
        poll_interval: Duration::from_secs(60),
        ..config(100)
    };
    let engine = match store.backend() {
        sessiond::store::Backend::Postgres => {
            Engine::new(db.clone(), projections::models::all(), slow)
        }
        sessiond::store::Backend::Sqlite => {
            Engine::new(db.clone(), projections::models::all(), slow).with_waker(store.appended())
        }
    };
    catch_up_to(&engine, w.last).await;
    let engine = Arc::new(engine);
    let (stop, rx) = watch::channel(false);
    let runners = engine.spawn_all(rx);
    // Wait until every runner has found nothing to do and is asleep (a runner still
    // mid-step would apply the next event without being woken).
    let all = projections::models::all().len();
    let mut idle = engine.idle_runners();
    tokio::time::timeout(Duration::from_secs(20), idle.wait_for(|n| *n == all))
        .await
        .expect("every runner goes to sleep")
        .expect("the engine is alive");

    // Each append is a new wake-up. On PostgreSQL a runner woken while any older
    // transaction in the cluster is still open (other tests run in parallel) finds the
    // new event not yet readable and goes back to sleep, so appends are repeated until
    // one wake-up lands on a free horizon -- well within the 60 s poll interval.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut woken = false;
    while !woken && Instant::now() < deadline {
        w.enqueue("alpha", 10, "alice").await;
        woken = engine
            .wait_for(
                "sessions",
                w.last.global_position,
                Duration::from_millis(500),
            )
            .await
            .unwrap();
    }
    assert!(woken, "a sleeping runner was woken by the appends");
    stop_runners(&stop, runners).await;
    testkit::world::assert_sessions_match_fold(&w, &w.sessions).await;
}

// ---- 8. lease fail-over (PostgreSQL) ------------------------------------------------------

async fn advisory_locks(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_one_replica_runs_a_projection_and_another_takes_over_when_it_stops() {
    let store = testkit::db::fresh_store(Backend::Postgres).await;
    let EventStore::Postgres(pg) = &store else {
        unreachable!()
    };
    let pool = pg.pool().clone();
    let mut w = World::new(store.clone());
    let db = w.db.clone();
    w.group("alpha", json!({})).await;
    w.enqueue("alpha", 10, "alice").await;

    let (pa, applied_a) = Counting::new(Arc::new(documents::sessions()));
    let (pb, applied_b) = Counting::new(Arc::new(documents::sessions()));
    let a = Arc::new(Engine::new(db.clone(), vec![pa.clone()], config(100)));
    let b = Arc::new(Engine::new(db.clone(), vec![pb.clone()], config(100)));

    let (stop_a, rx_a) = watch::channel(false);
    let run_a = {
        let a = a.clone();
        tokio::spawn(async move { a.run(pa, rx_a).await })
    };
    eventually(
        "replica A holds the lease and projects",
        Duration::from_secs(10),
        async || advisory_locks(&pool).await == 1 && applied_a.load(Ordering::SeqCst) > 0,
    )
    .await;
    let (stop_b, rx_b) = watch::channel(false);
    let run_b = {
        let b = b.clone();
        tokio::spawn(async move { b.run(pb, rx_b).await })
    };

    for _ in 0..3 {
        w.enqueue("alpha", 10, "alice").await;
    }
    assert!(a
        .wait_for("sessions", w.last.global_position, Duration::from_secs(10))
        .await
        .unwrap());
    // B asks for the lease again after A applied the events, is refused, and has
    // applied nothing.
    let mut refusals = b.lease_refusals();
    let before = *refusals.borrow_and_update();
    tokio::time::timeout(Duration::from_secs(20), refusals.wait_for(|n| *n > before))
        .await
        .expect("B polls for the lease")
        .expect("B is alive");
    assert_eq!(applied_b.load(Ordering::SeqCst), 0, "B waits for the lease");
    assert_eq!(advisory_locks(&pool).await, 1);

    // A stops: B takes over.
    stop_a.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), run_a)
        .await
        .unwrap()
        .unwrap();
    for _ in 0..3 {
        w.enqueue("alpha", 10, "alice").await;
    }
    assert!(b
        .wait_for("sessions", w.last.global_position, Duration::from_secs(10))
        .await
        .unwrap());
    assert!(applied_b.load(Ordering::SeqCst) > 0, "B projected");
    assert_eq!(advisory_locks(&pool).await, 1);
    testkit::world::assert_sessions_match_fold(&w, &w.sessions).await;

    // B's lease connection dies (a replica losing its database connection): the lease
    // frees itself and B takes it again.
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(killed, [true]);
    w.enqueue("alpha", 10, "alice").await;
    assert!(b
        .wait_for("sessions", w.last.global_position, Duration::from_secs(10))
        .await
        .unwrap());
    eventually(
        "B holds the lease again",
        Duration::from_secs(10),
        async || advisory_locks(&pool).await == 1,
    )
    .await;
    testkit::world::assert_sessions_match_fold(&w, &w.sessions).await;

    stop_b.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), run_b)
        .await
        .unwrap()
        .unwrap();
    eventually(
        "the lease is released",
        Duration::from_secs(10),
        async || advisory_locks(&pool).await == 0,
    )
    .await;
}

// ---- the API's view of a session (SPEC §1.2) ---------------------------------------------

/// The API's view of a session, from the read models (`None`: unknown).
async fn view_of(db: &Db, id: &str) -> Option<serde_json::Value> {
    let session = documents::sessions().get(db, id).await.unwrap()?;
    let queue = PendingQueue.get(db, id).await.unwrap();
    Some(
        serde_json::to_value(sessiond::http::sessions::SessionView::of(
            &session,
            queue.as_ref(),
        )?)
        .unwrap(),
    )
}

async fn a_pending_sessions_view_shows_the_scheduler_status_data_until_it_leaves_pending(
    store: EventStore,
) {
    let mut w = World::new(store);
    let db = w.db.clone();
    w.group("alpha", json!({})).await;
    let id = w.enqueue("alpha", 10, "alice").await;
    w.scheduling_failure(id, "no agent in 'alpha' can host {cpu: 2}")
        .await;
    let engine = Engine::new(db.clone(), projections::models::all(), config(50));
    catch_up_to(&engine, w.last).await;

    let view = view_of(&db, &id.to_string()).await.unwrap();
    assert_eq!(view["status"], "PENDING");
    assert_eq!(view["status_info"], "predicate-checks-failed");
    let scheduler = &view["status_data"]["scheduler"];
    assert_eq!(
        scheduler["failed_predicates"][0]["msg"],
        "no agent in 'alpha' can host {cpu: 2}"
    );
    assert_eq!(scheduler["retries"], 0);
    assert!(scheduler["last_try"].is_null());
    assert!(view["status_history"]["PENDING"].is_string());

    w.cancel(id, "pending_timeout", "scheduler").await;
    catch_up_to(&engine, w.last).await;
    let view = view_of(&db, &id.to_string()).await.unwrap();
    assert_eq!(view["status"], "CANCELLED");
    assert_eq!(view["status_info"], "pending_timeout");
    assert_eq!(view["status_data"], json!({}));
    assert!(view_of(&db, "no-such-session").await.is_none());
}

/// A rebuild never swaps in a read model behind the one it replaces: while a transaction
/// left open elsewhere in the cluster holds the commit-order reader back, the rebuild
/// waits for the head instead of swapping in what it could see (it once swapped in an
/// empty generation this way).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_a_rebuild_waits_for_a_transaction_open_elsewhere_instead_of_swapping_in_less() {
    let store = testkit::db::fresh_store(Backend::Postgres).await;
    let EventStore::Postgres(pg) = &store else {
        unreachable!()
    };
    let pool = pg.pool().clone();
    // A transaction with an id, left open (as a stuck client would), from before the
    // events: the commit-order reader cannot pass it.
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("SELECT txid_current()")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let mut w = World::new(store.clone());
    let db = w.db.clone();
    w.group("alpha", json!({})).await;
    for i in 0..20 {
        w.enqueue("alpha", i, "alice").await;
    }
    let live = sessions_docs(&db).await;
    let rebuilding = {
        let db = db.clone();
        tokio::spawn(async move { rebuild(&db, &documents::sessions(), 7, |_| {}).await })
    };
    let mut rebuilding = rebuilding;
    // It cannot finish while the reader is held back below the head.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut rebuilding)
            .await
            .is_err(),
        "the rebuild swapped in before it could read the head"
    );
    assert_eq!(sessions_docs(&db).await, live, "nothing was swapped in");
    blocker.rollback().await.unwrap();
    let replayed = rebuilding.await.unwrap().unwrap();
    assert!(replayed >= 21, "{replayed}");
    assert_eq!(
        sessions_docs(&db).await.len(),
        20,
        "the rebuilt model has every session"
    );
}
