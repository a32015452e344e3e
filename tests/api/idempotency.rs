//! `Idempotency-Key` on POST /v1/sessions: a retry with the same key and body returns the
//! original response and creates nothing; the same key with another body is 422.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;

use crate::helpers::{both_backends, spawn_app, Backend, ADMIN_KEY};

fn body(i: usize) -> Value {
    json!({"name": format!("job-{i}"), "type": "batch", "image": "python:3.12",
           "resources": {"cpu": "0.5", "mem": "256m"}, "startup_command": "true"})
}

async fn two_hundred_concurrent_posts_with_fifty_duplicated_keys_create_150_sessions(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;

    // 150 distinct keys; the first 50 are sent twice, all 200 requests at once.
    let requests: Vec<usize> = (0..150).chain(0..50).collect();
    let responses = futures::future::join_all(requests.iter().map(|&i| {
        let req = app
            .client
            .post(app.url("/v1/sessions"))
            .bearer_auth(&alice)
            .header("Idempotency-Key", format!("key-{i}"))
            .json(&body(i));
        async move {
            let r = req.send().await.expect("request");
            let status = r.status();
            let v: Value = r.json().await.expect("json");
            (i, status, v)
        }
    }))
    .await;

    let mut by_key: HashMap<usize, Vec<Value>> = HashMap::new();
    for (i, status, v) in responses {
        assert_eq!(status, StatusCode::CREATED, "key-{i}: {v:?}");
        by_key.entry(i).or_default().push(v);
    }
    assert_eq!(by_key.len(), 150);
    let mut max_position = 0;
    for (i, answers) in &by_key {
        let first = &answers[0];
        for other in answers {
            assert_eq!(other, first, "key-{i} answered differently");
        }
        max_position = max_position.max(first["position"].as_i64().unwrap());
    }

    // Exactly 150 sessions, in the log and in the read model.
    let enqueued = app.count_of("SessionEnqueued").await;
    assert_eq!(enqueued, 150);
    let list = app
        .get(
            &format!("/v1/sessions?owner=alice&limit=1000&min_position={max_position}"),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 150);

    // A later retry replays the stored response.
    let again = app
        .client
        .post(app.url("/v1/sessions"))
        .bearer_auth(&alice)
        .header("Idempotency-Key", "key-7")
        .json(&body(7))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    let v: Value = again.json().await.unwrap();
    assert_eq!(v, by_key[&7][0]);

    // The same key with another body is 422 and creates nothing.
    let before = app.event_count().await;
    let other = app
        .client
        .post(app.url("/v1/sessions"))
        .bearer_auth(&alice)
        .header("Idempotency-Key", "key-7")
        .json(&body(999))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = other.json().await.unwrap();
    assert_eq!(v["error"]["code"], "idempotency_key_reused");
    let after = app.count_of("SessionEnqueued").await;
    assert_eq!(after, 150);
    assert!(app.event_count().await >= before);

    // Keys are per caller: bob may use key-7 for his own session.
    let bob = app.user_key("bob").await;
    let r = app
        .client
        .post(app.url("/v1/sessions"))
        .bearer_auth(&bob)
        .header("Idempotency-Key", "key-7")
        .json(&body(7))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    assert_ne!(v["session_id"], by_key[&7][0]["session_id"]);
    app.stop().await;
}

/// The process crashed after appending the session but before storing the idempotency
/// record (simulated by deleting the record). The retry must find the session it
/// created — same id, 201 — and create nothing.
async fn a_retry_after_a_crash_between_append_and_record_finds_the_created_session(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    let send = || {
        app.client
            .post(app.url("/v1/sessions"))
            .bearer_auth(&alice)
            .header("Idempotency-Key", "crashy")
            .json(&body(1))
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let db = app.app.db();
    let delete = "DELETE FROM idempotency_keys";
    match db {
        store::db::Db::Postgres(p) => sqlx::query(delete).execute(p).await.map(|_| ()),
        store::db::Db::Sqlite { writer, .. } => {
            sqlx::query(delete).execute(writer).await.map(|_| ())
        }
    }
    .unwrap();

    let retry = send().await.unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED, "{backend:?}");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry["session_id"], first["session_id"]);
    let enqueued = app.count_of("SessionEnqueued").await;
    assert_eq!(enqueued, 1, "{backend:?}");
    app.stop().await;
}

both_backends!(
    two_hundred_concurrent_posts_with_fifty_duplicated_keys_create_150_sessions,
    a_retry_after_a_crash_between_append_and_record_finds_the_created_session
);
