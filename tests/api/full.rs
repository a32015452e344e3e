//! The embedded store runs out of space while the service runs (issue #18): commands are
//! 503 `store_full` with a message saying so, nothing of a refused command is kept, reads
//! go on, and once space returns the service accepts commands again by itself (no
//! restart) and its read models equal a fresh fold.
//!
//! The space limit is SQLite's own `max_page_count`, set on the store's one writer
//! connection (every write of an SQLite store goes through it), which is what a full
//! disk looks like to SQLite: `SQLITE_FULL` on the write that needs a new page. Raising it
//! again is space returning. (A size-limited file system would need mount privileges a
//! test machine may not give.)

use serde_json::json;
use testkit::db::Backend;

use crate::helpers::{audit_clean, spawn_app, TestApp};

/// Runs a PRAGMA on the store's writer connection (test code: the text is built here).
async fn writer_pragma(app: &TestApp, pragma: String) {
    let text: &'static str = Box::leak(pragma.into_boxed_str());
    let statement = sessiond::store::db::Statement::new("test", "", text);
    app.app.db().execute(&statement, vec![]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_sqlite_store_refuses_commands_with_store_full_serves_reads_and_recovers_by_itself()
{
    // Given a running service with sessions in its store
    let app = spawn_app(Backend::Sqlite).await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    let mut created = Vec::new();
    for i in 0..5 {
        let r = app.enqueue(&alice, &format!("before-{i}")).await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        created.push(r.body["session_id"].as_str().unwrap().to_string());
    }

    // When the store's file may not grow any more
    let pages =
        testkit::db::scalar(app.app.db(), "SELECT page_count FROM pragma_page_count()").await;
    writer_pragma(&app, format!("PRAGMA max_page_count = {pages}")).await;

    // Then commands are refused with 503 store_full as soon as a write needs a page
    // (the free pages inside the file may take a few), each saying why and when to retry
    let mut refused = None;
    for i in 0..2000 {
        let before = app.store_fingerprint().await;
        let r = app
            .post(
                "/v1/sessions",
                Some(&alice),
                &json!({"name": format!("full-{i}"), "type": "batch", "image": "python:3.12",
                        "resources": {"cpu": 1}}),
            )
            .await;
        if r.status == 201 {
            continue;
        }
        assert_eq!(r.status, 503, "{:?}", r.body);
        assert_eq!(r.code(), "store_full", "{:?}", r.body);
        assert!(r.message().contains("out of space"), "{}", r.message());
        assert_eq!(
            r.headers.get("retry-after").and_then(|v| v.to_str().ok()),
            Some("30")
        );
        // And nothing of the refused command was kept: no key or idempotency record, and
        // no event of its session (the scheduler may meanwhile record its verdict on the
        // sessions accepted before: those events are not the refused command's, so the
        // event count alone cannot tell).
        let (_, keys, idempotency) = app.store_fingerprint().await;
        assert_eq!((keys, idempotency), (before.1, before.2));
        let name = format!("\"full-{i}\"");
        let kept: Vec<String> = app
            .all_events()
            .await
            .into_iter()
            .filter(|e| e.payload.to_string().contains(&name))
            .map(|e| format!("{} {}", e.event_type, e.aggregate_id))
            .collect();
        assert!(kept.is_empty(), "the refused command left {kept:?}");
        refused = Some(format!("full-{i}"));
        break;
    }
    let refused = refused.expect("a write was refused once the file could not grow");
    // And a second command is refused the same way (the limit holds)
    let r = app.enqueue(&alice, "still-full").await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (503, "store_full"),
        "{:?}",
        r.body
    );

    // And reads go on: a session by id, the list, the service's health
    for id in &created {
        let r = app.get(&format!("/v1/sessions/{id}"), Some(&alice)).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["status"], "PENDING");
    }
    // (the list is the read model, which may not have applied the last sessions
    // before the file filled: it answers, with no session that was not created)
    let r = app.get("/v1/sessions?limit=100", Some(&alice)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for item in r.body["items"].as_array().unwrap() {
        let id = item["session_id"].as_str().unwrap_or_default();
        assert!(created.iter().any(|c| c == id), "{item:?}");
    }
    assert_eq!(app.get("/healthz", None).await.status, 200);

    // When space returns
    writer_pragma(&app, "PRAGMA max_page_count = 1073741823".into()).await;

    // Then the service accepts commands again by itself, including the refused one
    let r = app.enqueue(&alice, &refused).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = app.enqueue(&alice, "after").await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // And its read models catch up: the list holds every session created
    let position = r.body["position"].as_i64().unwrap();
    let r = app
        .get(
            &format!("/v1/sessions?limit=1000&min_position={position}"),
            Some(&alice),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let listed: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["session_id"].as_str())
        .collect();
    for id in &created {
        assert!(listed.contains(&id.as_str()), "{id} not in {listed:?}");
    }
    // And they equal a fresh fold
    audit_clean(&app).await;
    app.stop().await;
}
