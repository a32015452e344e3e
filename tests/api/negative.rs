//! Refusals: each one answers with the right status and `{"error": {"code", "message"}}`
//! and leaves the store unchanged (no event, no key, no idempotency record).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{both_backends, spawn_app, Backend, TestApp, ADMIN_KEY};

/// A group, an agent `a1` in it, and alice's session (PENDING, or SCHEDULED on a1 when
/// `schedule`). Returns (alice's key, a1's key, session id).
async fn arrange(app: &TestApp, schedule: bool) -> (String, String, String) {
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    let agent = if schedule {
        app.register_agent("a1", "default").await
    } else {
        app.agent_key("a1").await
    };
    let r = app.enqueue(&alice, "s1").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["session_id"].as_str().unwrap().to_string();
    if schedule {
        app.wait_for_status(&alice, &id, "SCHEDULED").await;
    } else {
        app.wait_until_waiting(&alice, &id).await;
    }
    (alice, agent, id)
}

async fn a_missing_or_invalid_key_is_401(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, id) = arrange(&app, false).await;
    let before = app.store_fingerprint().await;
    for key in [None, Some("sdk_not-a-key"), Some("")] {
        let r = app.get("/v1/sessions", key).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(r.code(), "unauthorized");
        assert_eq!(
            r.headers
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer")
        );
        let r = app.get(&format!("/v1/sessions/{id}"), key).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = app
            .post(
                "/v1/sessions",
                key,
                &json!({"name": "x", "type": "batch", "image": "i", "resources": {}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.code(), "unauthorized");
    }
    // A revoked key is refused too.
    let bob = app.user_key("bob").await;
    let bob_id = sessiond::auth::authenticate(app.app.db(), &bob)
        .await
        .unwrap()
        .unwrap()
        .key_id;
    sessiond::auth::revoke_key(app.app.db(), &bob_id)
        .await
        .unwrap();
    let before = (before.0, before.1 + 1, before.2);
    let r = app.get("/v1/sessions", Some(&bob)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.store_fingerprint().await, before);
    app.stop().await;
}

async fn a_user_reading_another_users_session_gets_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, _, id) = arrange(&app, false).await;
    let bob = app.user_key("bob").await;
    let before = app.store_fingerprint().await;
    for path in [
        format!("/v1/sessions/{id}"),
        format!("/v1/sessions/{id}/history"),
        format!("/v1/sessions/{id}?at=2100-01-01T00:00:00Z"),
        format!("/v1/events/sessions?session_id={id}"),
    ] {
        let r = app.get(&path, Some(&bob)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {:?}", r.body);
        assert_eq!(r.code(), "not_found");
        // Exactly what an unknown session gets: nothing leaks.
        let unknown = path.replace(&id, &uuid::Uuid::new_v4().to_string());
        let u = app.get(&unknown, Some(&bob)).await;
        assert_eq!(u.status, StatusCode::NOT_FOUND);
    }
    let r = app.delete(&format!("/v1/sessions/{id}"), Some(&bob)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Bob's list does not show it; alice's does.
    let r = app.get("/v1/sessions", Some(&bob)).await;
    assert_eq!(r.body["items"], json!([]));
    let r = app.get("/v1/sessions", Some(&alice)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = app.get("/v1/sessions?owner=alice", Some(&bob)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.store_fingerprint().await, before);
    app.stop().await;
}

async fn an_agent_reporting_on_a_session_not_placed_on_it_gets_the_404_of_an_unknown_session(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (alice, _a1, id) = arrange(&app, true).await;
    // a2 registers after the session was placed on a1.
    let a2 = app.register_agent("a2", "default").await;
    let before = app.store_fingerprint().await;
    let r = app
        .kernel_event(&a2, &id, json!({"event": "preparing"}))
        .await;
    // The same answer as for a session that does not exist: an agent cannot tell which
    // session ids exist elsewhere.
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert_eq!(r.code(), "not_found");
    let unknown = app
        .post(
            &format!("/v1/sessions/{}/kernel-events", uuid::Uuid::new_v4()),
            Some(&a2),
            &json!({"event": "preparing"}),
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.body.clone()),
        (r.status, r.body.clone())
    );
    // Nor may an agent key act for another agent, nor a user report kernel events.
    let r = app
        .post("/v1/agents/a1/heartbeat", Some(&a2), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app.get("/v1/agents/a1/assignments", Some(&a2)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .kernel_event(&alice, &id, json!({"event": "preparing"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app.get("/v1/sessions", Some(&a2)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.store_fingerprint().await, before);
    app.wait_for_status(&alice, &id, "SCHEDULED").await;
    app.stop().await;
}

async fn an_illegal_transition_is_409_and_appends_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, agent, id) = arrange(&app, true).await;
    let before = app.store_fingerprint().await;
    // SCHEDULED -> RUNNING skips the table.
    let r = app
        .kernel_event(&agent, &id, json!({"event": "started"}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "illegal_transition");
    assert!(
        r.message().contains("SCHEDULED") && r.message().contains("RUNNING"),
        "{}",
        r.message()
    );
    assert_eq!(app.store_fingerprint().await, before);
    // An ended session cannot be deleted again.
    let r = app
        .delete(&format!("/v1/sessions/{id}"), Some(&alice))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "CANCELLED");
    // The slot-release process manager gives a1's slots back; let it finish first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !app
        .app
        .store
        .read_stream("Agent", "a1")
        .await
        .unwrap()
        .iter()
        .any(|e| e.event_type == "SlotsReleased")
    {
        assert!(std::time::Instant::now() < deadline, "slots never released");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let before = app.store_fingerprint().await;
    let r = app
        .delete(&format!("/v1/sessions/{id}"), Some(&alice))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "illegal_transition");
    assert_eq!(app.store_fingerprint().await, before);
    app.stop().await;
}

async fn malformed_json_is_400_and_unknown_fields_422(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, _, _) = arrange(&app, false).await;
    let before = app.store_fingerprint().await;
    for body in [&b"{\"name\": "[..], b"not json", b"", b"{\"name\": \"x\",}"] {
        let r = app
            .post_raw("/v1/sessions", Some(&alice), body.to_vec())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body:?}: {:?}", r.body);
        assert_eq!(r.code(), "malformed_json");
    }
    let r = app
        .post(
            "/v1/sessions",
            Some(&alice),
            &json!({"name": "x", "type": "interactive", "image": "i", "resources": {},
                    "gpus": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.code(), "validation_error");
    assert!(r.message().contains("gpus"), "{}", r.message());
    // Wrong types and bad values name the field.
    for (body, field) in [
        (
            json!({"name": "x", "type": "gaming", "image": "i", "resources": {}}),
            "type",
        ),
        (
            json!({"name": "x", "type": "batch", "image": "i", "resources": {"mem": "lots"}}),
            "resources.mem",
        ),
        (
            json!({"name": "x", "type": "batch", "image": "i", "resources": {}, "priority": "high"}),
            "priority",
        ),
        (
            json!({"type": "batch", "image": "i", "resources": {}}),
            "name",
        ),
    ] {
        let r = app.post("/v1/sessions", Some(&alice), &body).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert!(r.message().contains(field), "{field}: {}", r.message());
    }
    // A non-JSON content type is 415.
    let r = app
        .client
        .post(app.url("/v1/sessions"))
        .bearer_auth(&alice)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.store_fingerprint().await, before);
    app.stop().await;
}

async fn invalid_scheduler_opts_are_422_naming_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    let before = app.store_fingerprint().await;
    for (opts, field) in [
        (
            json!({"pending_timeout": -5}),
            "scheduler_opts.pending_timeout",
        ),
        (
            json!({"pending_timeout": "10"}),
            "scheduler_opts.pending_timeout",
        ),
        (
            json!({"pending_timeuot": 3}),
            "scheduler_opts.pending_timeuot",
        ),
        (
            json!({"allowed_session_types": ["gaming"]}),
            "scheduler_opts.allowed_session_types",
        ),
        (
            json!({"agent_selection_strategy": "random"}),
            "scheduler_opts.agent_selection_strategy",
        ),
        (
            json!({"config": {"num_retries_to_skip": -1}}),
            "scheduler_opts.config.num_retries_to_skip",
        ),
    ] {
        let r = app
            .post(
                "/v1/scaling-groups",
                Some(ADMIN_KEY),
                &json!({"name": "gpu", "scheduler_opts": opts}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{opts}: {:?}",
            r.body
        );
        assert_eq!(r.code(), "validation_error");
        assert!(r.message().starts_with(field), "{field}: {}", r.message());
        let r = app
            .patch(
                "/v1/scaling-groups/default",
                Some(ADMIN_KEY),
                &json!({"scheduler_opts": opts}),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{opts}: {:?}",
            r.body
        );
        assert!(r.message().starts_with(field), "{field}: {}", r.message());
    }
    assert_eq!(app.store_fingerprint().await, before);
    // A valid patch merges only the given keys.
    let r = app
        .patch(
            "/v1/scaling-groups/default",
            Some(ADMIN_KEY),
            &json!({"scheduler_opts": {"pending_timeout": 30}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["scheduler_opts"]["pending_timeout"], 30);
    assert_eq!(
        r.body["scheduler_opts"]["allowed_session_types"],
        json!(["interactive", "batch", "inference"])
    );
    app.stop().await;
}

async fn an_oversized_body_is_413(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, _, _) = arrange(&app, false).await;
    let before = app.store_fingerprint().await;
    let big = format!(
        r#"{{"name": "x", "type": "batch", "image": "i", "resources": {{}}, "labels": {{"pad": "{}"}}}}"#,
        "a".repeat(1024 * 1024 + 1)
    );
    let r = app
        .post_raw("/v1/sessions", Some(&alice), big.into_bytes())
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", r.body);
    assert_eq!(r.code(), "payload_too_large");
    assert_eq!(app.store_fingerprint().await, before);
    app.stop().await;
}

async fn enqueue_time_checks_answer_with_their_codes(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user_key("alice").await;
    let before = app.store_fingerprint().await;
    // No group at all.
    let r = app.enqueue(&alice, "x").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.code(), "no_scaling_group");
    assert_eq!(app.store_fingerprint().await, before);
    let r = app
        .post(
            "/v1/scaling-groups",
            Some(ADMIN_KEY),
            &json!({"name": "gpu-batch", "scheduler_opts": {"allowed_session_types": ["batch"]}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let before = app.store_fingerprint().await;
    let body = |group: &str| {
        json!({"name": "x", "type": "interactive", "image": "i", "resources": {"cpu": 1},
               "scaling_group": group})
    };
    let r = app
        .post("/v1/sessions", Some(&alice), &body("gpu-batch"))
        .await;
    assert_eq!(r.code(), "session_type_not_allowed", "{:?}", r.body);
    assert!(r.message().contains("allowed: batch"), "{}", r.message());
    let r = app.post("/v1/sessions", Some(&alice), &body("nope")).await;
    assert_eq!(r.code(), "scaling_group_not_found", "{:?}", r.body);
    assert_eq!(app.store_fingerprint().await, before);
    // Pending limit (429) and name conflict (409).
    let r = app
        .put(
            "/v1/users/alice/resource-policy",
            Some(ADMIN_KEY),
            &json!({"max_pending_sessions": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let batch =
        |name: &str| json!({"name": name, "type": "batch", "image": "i", "resources": {"cpu": 1}});
    let r = app.post("/v1/sessions", Some(&alice), &batch("one")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    app.wait_until_waiting(&alice, r.body["session_id"].as_str().unwrap())
        .await;
    let p = r.body["position"].as_i64().unwrap();
    app.get(&format!("/v1/sessions?min_position={p}"), Some(&alice))
        .await;
    let before = app.store_fingerprint().await;
    let r = app.post("/v1/sessions", Some(&alice), &batch("one")).await;
    assert!(
        r.status == StatusCode::CONFLICT || r.status == StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        r.body
    );
    let r = app.post("/v1/sessions", Some(&alice), &batch("two")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    assert_eq!(r.code(), "pending_limit_exceeded");
    assert_eq!(app.store_fingerprint().await, before);
    let r = app
        .put(
            "/v1/users/alice/resource-policy",
            Some(ADMIN_KEY),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let p = r.body["position"].as_i64().unwrap();
    app.get(&format!("/v1/sessions?min_position={p}"), Some(&alice))
        .await;
    let before = app.store_fingerprint().await;
    let r = app.post("/v1/sessions", Some(&alice), &batch("one")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "name_conflict");
    assert_eq!(app.store_fingerprint().await, before);
    // Users cannot manage groups or policies.
    let r = app
        .post("/v1/scaling-groups", Some(&alice), &json!({"name": "mine"}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .put("/v1/users/alice/resource-policy", Some(&alice), &json!({}))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.store_fingerprint().await, before);
    app.stop().await;
}

both_backends!(
    a_missing_or_invalid_key_is_401,
    a_user_reading_another_users_session_gets_404,
    an_agent_reporting_on_a_session_not_placed_on_it_gets_the_404_of_an_unknown_session,
    an_illegal_transition_is_409_and_appends_nothing,
    malformed_json_is_400_and_unknown_fields_422,
    invalid_scheduler_opts_are_422_naming_the_field,
    an_oversized_body_is_413,
    enqueue_time_checks_answer_with_their_codes,
);
