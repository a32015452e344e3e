//! Issue #19, SPEC §4: a GET of one session by id reflects every acknowledged event of
//! it without a `?min_position` token, even while every projection is held back; and
//! `?min_position` waits only for the read models the endpoint reads.

use reqwest::StatusCode;
use std::time::Duration;
use testkit::db::Backend;
use testkit::serve::wait_until;

use crate::helpers::{spawn_app, TestApp, ADMIN_KEY};

/// Holds every projection runner and waits until each has stopped at its hold point
/// (no step of any is under way).
async fn hold_every_projection(app: &TestApp) -> Vec<String> {
    let workers: Vec<String> = app
        .app
        .engine
        .names()
        .iter()
        .map(|n| format!("projection:{n}"))
        .collect();
    for w in &workers {
        app.app.supervisor.hold(w);
    }
    wait_until(
        "every projection runner held",
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
    let workers = hold_every_projection(&app).await;

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
    let list = app
        .get(
            &format!("/v1/sessions?min_position={position}"),
            Some(&alice),
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    assert!(listed(&list.body, &id), "{:?}", list.body);
    app.stop().await;
}

async fn a_session_read_with_a_token_waits_only_for_the_read_models_it_reads(backend: Backend) {
    // Given the audit log's projection held (as if it were failing)
    let app = spawn_app(backend).await;
    group_in_read_model(&app).await;
    let alice = app.user_key("alice").await;
    app.app.supervisor.hold("projection:audit_log");
    wait_until("the audit log held", Duration::from_secs(20), || async {
        if app.app.supervisor.is_holding("projection:audit_log") {
            Ok(())
        } else {
            Err("still running".to_string())
        }
    })
    .await;

    // When alice enqueues and lists her sessions with the command's token
    let r = app.enqueue(&alice, "token").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["session_id"].as_str().unwrap().to_string();
    let position = r.body["position"].as_i64().unwrap();
    let list = app
        .get(
            &format!("/v1/sessions?min_position={position}"),
            Some(&alice),
        )
        .await;

    // Then the list answers with it: it waited for the session read models only
    assert_eq!(list.status, StatusCode::OK, "{:?}", list.body);
    assert!(listed(&list.body, &id), "{:?}", list.body);
    app.app.supervisor.release("projection:audit_log");
    app.stop().await;
}

testkit::both_backends!(
    a_session_is_read_back_by_id_at_once_while_the_read_models_are_held_back,
    a_session_read_with_a_token_waits_only_for_the_read_models_it_reads,
);
