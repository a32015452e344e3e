//! Issue #19, SPEC §4: a GET of one session by id reflects every acknowledged event of
//! it without a `?min_position` token, even while every projection is held back; and
//! `?min_position` waits only for the read models the endpoint reads.

use reqwest::StatusCode;
use std::time::Duration;
use testkit::db::Backend;
use testkit::serve::wait_until;

use crate::helpers::{spawn_app, TestApp, ADMIN_KEY};

/// Holds the projection runners `names` and waits until each has stopped at its hold
/// point (no step of any is under way); answers their worker names.
async fn hold(app: &TestApp, names: &[&str]) -> Vec<String> {
    let workers: Vec<String> = names.iter().map(|n| format!("projection:{n}")).collect();
    for w in &workers {
        app.app.supervisor.hold(w);
    }
    wait_until(
        "the projection runners held",
        Duration::from_secs(20),
        || async {
            let running: Vec<&String> = workers
                .iter()
                .filter(|w| !app.app.supervisor.is_holding(w))
                .collect();
            if running.is_empty() {
                Ok(())
            } else {
                Err(format!("still running: {running:?}"))
            }
        },
    )
    .await;
    workers
}

/// Lists `key`'s sessions with the token `position`; asserts the list holds `id`.
async fn assert_listed_at(app: &TestApp, key: &str, position: i64, id: &str) {
    let list = app
        .get(&format!("/v1/sessions?min_position={position}"), Some(key))
        .await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    assert!(listed(&list.body, id), "{:?}", list.body);
}

/// Creates the group `default` and waits until its read model holds it.
async fn group_in_read_model(app: &TestApp) {
    let g = app.create_group("default").await;
    let position = g.body["position"].as_i64().unwrap();
    let r = app
        .get(
            &format!("/v1/scaling-groups?min_position={position}"),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

fn listed(body: &serde_json::Value, id: &str) -> bool {
    body["items"]
        .as_array()
        .is_some_and(|items| items.iter().any(|s| s["session_id"] == id))
}

async fn a_session_is_read_back_by_id_at_once_while_the_read_models_are_held_back(
    backend: Backend,
) {
    // Given a group (in its read model: enqueue resolves groups there), a user, and
    // every projection runner held
    let app = spawn_app(backend).await;
    group_in_read_model(&app).await;
    let alice = app.user_key("alice").await;
    let workers = hold(&app, &app.app.engine.names()).await;

    // When alice enqueues a session and reads it back at once, without a token
    let r = app.enqueue(&alice, "read-back").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["session_id"].as_str().unwrap().to_string();
    let got = app.get(&format!("/v1/sessions/{id}"), Some(&alice)).await;

    // Then the GET returns it as enqueued, though the read model does not hold it
    assert_eq!(got.status, StatusCode::OK, "{:?}", got.body);
    assert_eq!(got.body["session_id"], id.as_str());
    assert_eq!(got.body["name"], "read-back");
    assert_eq!(got.body["status"], "PENDING");
    let list = app.get("/v1/sessions", Some(&alice)).await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    assert!(
        !listed(&list.body, &id),
        "the read model moved: {:?}",
        list.body
    );

    // And a cancellation is reflected by the next GET as well
    let d = app
        .delete(&format!("/v1/sessions/{id}"), Some(&alice))
        .await;
    assert_eq!(d.status, StatusCode::OK, "{:?}", d.body);
    let got = app.get(&format!("/v1/sessions/{id}"), Some(&alice)).await;
    assert_eq!(got.status, StatusCode::OK, "{:?}", got.body);
    assert_eq!(got.body["status"], "CANCELLED", "{:?}", got.body);

    // And once released, the read models catch up to the same answer
    for w in &workers {
        app.app.supervisor.release(w);
    }
    let position = d.body["position"].as_i64().unwrap();
    assert_listed_at(&app, &alice, position, &id).await;
    app.stop().await;
}

async fn a_session_read_with_a_token_waits_only_for_the_read_models_it_reads(backend: Backend) {
    // Given the audit log's projection held (as if it were failing)
    let app = spawn_app(backend).await;
    group_in_read_model(&app).await;
    let alice = app.user_key("alice").await;
    let held = hold(&app, &["audit_log"]).await;

    // When alice enqueues, and lists her sessions with the command's token
    let r = app.enqueue(&alice, "token").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["session_id"].as_str().unwrap().to_string();
    let position = r.body["position"].as_i64().unwrap();

    // Then the list answers with it: it waited for the session read models only
    assert_listed_at(&app, &alice, position, &id).await;
    for w in &held {
        app.app.supervisor.release(w);
    }
    app.stop().await;
}

testkit::both_backends!(
    a_session_is_read_back_by_id_at_once_while_the_read_models_are_held_back,
    a_session_read_with_a_token_waits_only_for_the_read_models_it_reads,
);
