//! A session walked through its whole lifecycle by the scheduler and agent kernel
//! events, asserting the read model, `status_history` and `/history` at each step.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{both_backends, spawn_app, Backend, TestApp, ADMIN_KEY, LIFECYCLE};

/// Reads the session at `position` (read-your-writes) and its history; checks the
/// status, `status_history`, and that the history's lifecycle events are exactly
/// `so_far` (scheduler failure records, which may come and go while it waits, aside),
/// the newest caused by `actor` at `position`.
async fn check_step(
    app: &TestApp,
    key: &str,
    id: &str,
    position: i64,
    status: &str,
    so_far: &[&str],
    actor: &str,
) -> Value {
    let r = app
        .get(
            &format!("/v1/sessions/{id}?min_position={position}"),
            Some(key),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], status, "{:?}", r.body);
    assert!(
        r.body["status_history"].get(status).is_some(),
        "status_history has {status}: {:?}",
        r.body["status_history"]
    );
    let h = app
        .get(&format!("/v1/sessions/{id}/history"), Some(key))
        .await;
    assert_eq!(h.status, StatusCode::OK);
    let items = h.body["items"].as_array().unwrap();
    for (i, e) in items.iter().enumerate() {
        assert_eq!(e["sequence"], i as i64 + 1, "gapless sequences");
        assert_eq!(e["event_version"], "1");
        assert!(e["occurred_at"].is_string() && e["recorded_at"].is_string());
    }
    let lifecycle: Vec<&Value> = items
        .iter()
        .filter(|e| e["event_type"] != "SessionSchedulingFailed")
        .collect();
    let types: Vec<&str> = lifecycle
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, so_far);
    let last = lifecycle.last().unwrap();
    assert_eq!(last["actor"], actor);
    if position > 0 {
        assert_eq!(last["position"], position);
    }
    r.body
}

async fn a_session_walks_from_pending_to_terminated(backend: Backend) {
    // Arrange: a group and a user (the agent comes after the PENDING checks, so the
    // session cannot be scheduled before they are made).
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    let alice_id = sessiond::auth::authenticate(app.app.db(), &alice)
        .await
        .unwrap()
        .unwrap()
        .key_id;

    // Act: enqueue.
    let r = app.enqueue(&alice, "walk").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["status"], "PENDING");
    let id = r.body["session_id"].as_str().unwrap().to_string();
    let position = r.body["position"].as_i64().unwrap();
    assert!(position > 0);
    let mut so_far = vec!["SessionEnqueued"];
    let view = check_step(&app, &alice, &id, position, "PENDING", &so_far, &alice_id).await;
    assert_eq!(view["owner"], "alice");
    assert_eq!(view["scaling_group"], "default");

    // An agent with capacity registers; the scheduler places the session on it.
    let agent = app.register_agent("a1", "default").await;
    let view = app.wait_for_status(&alice, &id, "SCHEDULED").await;
    assert_eq!(view["agents"][0]["agent_id"], "a1", "{view:?}");
    so_far.push("SessionScheduled");
    check_step(&app, &alice, &id, 0, "SCHEDULED", &so_far, "scheduler").await;

    // The agent sees it among its assignments.
    let a = app
        .get("/v1/agents/a1/assignments?wait=5", Some(&agent))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{:?}", a.body);
    assert_eq!(a.body["items"][0]["session_id"], id.as_str());
    assert_eq!(a.body["items"][0]["action"], "start");

    // The agent reports each step.
    let steps = [
        ("preparing", "PREPARING", "SessionPreparing"),
        ("pulling", "PULLING", "SessionPulling"),
        ("prepared", "PREPARED", "SessionPrepared"),
        ("creating", "CREATING", "SessionCreating"),
        ("started", "RUNNING", "SessionStarted"),
    ];
    for (event, status, event_type) in steps {
        let r = app.kernel_event(&agent, &id, json!({"event": event})).await;
        assert_eq!(r.status, StatusCode::OK, "{event}: {:?}", r.body);
        assert_eq!(r.body["status"], status);
        assert_eq!(r.body["session_id"], id.as_str());
        so_far.push(event_type);
        let p = r.body["position"].as_i64().unwrap();
        // The same report again (an agent retrying after its response was lost) is
        // acknowledged at the same position and appends nothing (history unchanged).
        let again = app.kernel_event(&agent, &id, json!({"event": event})).await;
        assert_eq!(
            (again.status, &again.body["status"], &again.body["position"]),
            (StatusCode::OK, &json!(status), &json!(p)),
            "{event} again: {:?}",
            again.body
        );
        check_step(&app, &alice, &id, p, status, &so_far, "agent:a1").await;
    }

    // The user asks to stop it; the agent reports the kernel gone.
    let r = app
        .delete(&format!("/v1/sessions/{id}"), Some(&alice))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "TERMINATING");
    so_far.push("SessionTerminating");
    let p = r.body["position"].as_i64().unwrap();
    let view = check_step(&app, &alice, &id, p, "TERMINATING", &so_far, &alice_id).await;
    assert_eq!(view["status_info"], "user-requested");
    // A second DELETE while TERMINATING is a 202 no-op.
    let again = app
        .delete(&format!("/v1/sessions/{id}"), Some(&alice))
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{:?}", again.body);
    let stop = app.get("/v1/agents/a1/assignments", Some(&agent)).await;
    assert_eq!(stop.body["items"][0]["action"], "stop", "{:?}", stop.body);

    let r = app
        .kernel_event(&agent, &id, json!({"event": "terminated", "exit_code": 0}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "TERMINATED");
    so_far.push("SessionTerminated");
    let p = r.body["position"].as_i64().unwrap();
    let view = check_step(&app, &alice, &id, p, "TERMINATED", &so_far, "agent:a1").await;
    let history = view["status_history"].as_object().unwrap();
    for s in LIFECYCLE {
        assert!(
            history.contains_key(s),
            "status_history lacks {s}: {history:?}"
        );
    }
    assert_eq!(view["exit_code"], 0);

    // The admin sees it too, with the status filter.
    let list = app
        .get(
            "/v1/sessions?status=TERMINATED&owner=alice",
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}

both_backends!(a_session_walks_from_pending_to_terminated);
