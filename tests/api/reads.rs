//! Reads: list filters and keyset pagination, `?at=`, `?min_position=`, scaling-group
//! visibility, `/metrics`, `/openapi.json`, and the bootstrap key.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{both_backends, spawn_app, spawn_app_with, Backend, ADMIN_KEY};

async fn lists_filter_and_paginate_by_keyset(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    let bob = app.user_key("bob").await;
    let mut last = 0;
    for i in 0..5 {
        let r = app.enqueue(&alice, &format!("a{i}")).await;
        last = r.body["position"].as_i64().unwrap();
    }
    let r = app
        .post(
            "/v1/sessions",
            Some(&bob),
            &json!({"name": "b", "type": "batch", "image": "i", "resources": {"cpu": 1}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let last = last.max(r.body["position"].as_i64().unwrap());

    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/sessions?limit=2&cursor={c}&min_position={last}"),
            None => format!("/v1/sessions?limit=2&min_position={last}"),
        };
        let r = app.get(&path, Some(&alice)).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        for s in r.body["items"].as_array().unwrap() {
            names.push(s["name"].as_str().unwrap().to_string());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(names, ["a0", "a1", "a2", "a3", "a4"]);
    let r = app.get("/v1/sessions?type=batch", Some(ADMIN_KEY)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["items"][0]["owner"], "bob");
    let r = app
        .get(
            "/v1/sessions?scaling_group=default&owner=alice",
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 5);
    for (q, field) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("status=SLEEPING", "status"),
        ("type=gaming", "type"),
        ("cursor=zzz", "cursor"),
        ("limit=ten", "limit"),
    ] {
        let r = app.get(&format!("/v1/sessions?{q}"), Some(&alice)).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{q}: {:?}",
            r.body
        );
        assert!(r.message().starts_with(field), "{q}: {}", r.message());
    }
    app.stop().await;
}

async fn at_folds_the_stream_up_to_a_time(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    let r = app.enqueue(&alice, "past").await;
    let id = r.body["session_id"].as_str().unwrap().to_string();
    let h = app
        .get(&format!("/v1/sessions/{id}/history"), Some(&alice))
        .await;
    let enqueued_at = h.body["items"][0]["occurred_at"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .delete(&format!("/v1/sessions/{id}"), Some(&alice))
        .await;
    assert_eq!(r.body["status"], "CANCELLED");
    app.wait_for_status(&alice, &id, "CANCELLED").await;

    let at = |t: &str| format!("/v1/sessions/{id}?at={}", t.replace('+', "%2B"));
    let r = app.get(&at(&enqueued_at), Some(&alice)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "PENDING");
    assert_eq!(r.body["name"], "past");
    let r = app.get(&at("2100-01-01T00:00:00Z"), Some(&alice)).await;
    assert_eq!(r.body["status"], "CANCELLED");
    let r = app.get(&at("2000-01-01T00:00:00Z"), Some(&alice)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.get(&at("yesterday"), Some(&alice)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.message().starts_with("at"));
    app.stop().await;
}

async fn users_see_only_available_groups_and_every_write_has_a_position(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_group("public").await;
    let r = app
        .post(
            "/v1/scaling-groups",
            Some(ADMIN_KEY),
            &json!({"name": "private", "public": false, "owners": ["bob"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let p = r.body["position"].as_i64().unwrap();
    let alice = app.user_key("alice").await;
    let r = app
        .get(
            &format!("/v1/scaling-groups?min_position={p}"),
            Some(&alice),
        )
        .await;
    let names: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["public"]);
    let r = app.get("/v1/scaling-groups/private", Some(&alice)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.get("/v1/scaling-groups/private", Some(ADMIN_KEY)).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .put(
            "/v1/users/alice/resource-policy",
            Some(ADMIN_KEY),
            &json!({"max_concurrent_sessions": 2, "total_resource_slots": {"cpu": 8, "mem": "32g"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.body["position"].as_i64().unwrap() > p);
    let r = app
        .get("/v1/users/alice/resource-policy", Some(&alice))
        .await;
    assert_eq!(r.body["max_concurrent_sessions"], 2);
    let r = app
        .put(
            "/v1/users/alice/resource-policy",
            Some(ADMIN_KEY),
            &json!({"total_resource_slots": {"mem": "lots"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.message().starts_with("total_resource_slots.mem"));
    // A position that does not exist cannot be waited for.
    let r = app
        .get("/v1/sessions?min_position=999999", Some(&alice))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
}

async fn metrics_and_openapi_describe_the_api(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    let r = app.enqueue(&alice, "m").await;
    let p = r.body["position"].as_i64().unwrap();
    app.get(&format!("/v1/sessions?min_position={p}"), Some(&alice))
        .await;
    app.get("/v1/sessions", None).await;
    let text = app.metrics_text().await;
    // The metrics registry is the process's (several test apps share it), so values
    // are checked as "at least", names exactly.
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("missing {prefix} in\n{text}"))
    };
    assert!(
        value("sessiond_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/sessions\",status=\"201\",le=\"+Inf\"}") >= 1.0
    );
    assert!(
        value("sessiond_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/sessions\",status=\"401\"}") >= 1.0
    );
    assert!(value("sessiond_http_errors_total{code=\"unauthorized\"}") >= 1.0);
    for needle in [
        "sessiond_sessions{status=\"PENDING\"}",
        "sessiond_sessions{status=\"RUNNING\"}",
        "sessiond_projection_lag_events{projection=\"sessions\"}",
        "sessiond_command_conflicts_total",
        "sessiond_command_retries_total",
        "# TYPE sessiond_scheduler_scheduled_total counter",
        "# TYPE sessiond_http_request_duration_seconds histogram",
        "sessiond_scheduler_passes_total",
        "sessiond_slot_releases_total",
        "sessiond_worker_up{worker=\"scheduler\"} 1",
        "sessiond_worker_up{worker=\"projection:sessions\"} 1",
        "sessiond_streams_open",
        "sessiond_background_tasks_started_total{kind=\"vfolder-clone\"}",
        "sessiond_clone_bytes_copied_total",
        "sessiond_task_runner_leases_held",
        "sessiond_worker_up{worker=\"task_runner\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let doc = app.get("/openapi.json", None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3."));
    for (path, method) in [
        ("/v1/sessions", "post"),
        ("/v1/sessions", "get"),
        ("/v1/sessions/{id}", "get"),
        ("/v1/sessions/{id}", "delete"),
        ("/v1/sessions/{id}/history", "get"),
        ("/v1/sessions/{id}/kernel-events", "post"),
        ("/v1/scaling-groups", "post"),
        ("/v1/scaling-groups/{name}", "patch"),
        ("/v1/users/{owner}/resource-policy", "put"),
        ("/v1/agents", "post"),
        ("/v1/agents/{id}/heartbeat", "post"),
        ("/v1/agents/{id}/assignments", "get"),
        ("/v1/events/sessions", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            doc.body["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    // The documented session schema names every key the read model produces.
    let r = app
        .get(
            &format!("/v1/sessions/{}", r.body["session_id"].as_str().unwrap()),
            Some(&alice),
        )
        .await;
    let documented = &doc.body["components"]["schemas"]["SessionView"]["properties"];
    for key in r.body.as_object().unwrap().keys() {
        assert!(documented.get(key).is_some(), "SessionView lacks '{key}'");
    }
    app.stop().await;
}

async fn the_bootstrap_key_is_created_once(backend: Backend) {
    let app = spawn_app_with(backend, |o| o.bootstrap_admin_key = None).await;
    let keys = sessiond::auth::list_keys(app.app.db()).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].role, sessiond::auth::Role::Admin);
    // A second start on the same store creates nothing.
    let again = sessiond::auth::bootstrap_admin_key(app.app.db(), None)
        .await
        .unwrap();
    assert!(again.is_none());
    assert_eq!(
        sessiond::auth::list_keys(app.app.db()).await.unwrap().len(),
        1
    );
    // Too short a key from the environment is refused.
    assert!(sessiond::auth::bootstrap_admin_key(
        app.app.db(),
        Some(sessiond::auth::Secret::new("short"))
    )
    .await
    .is_err());
    app.stop().await;
}

both_backends!(
    lists_filter_and_paginate_by_keyset,
    at_folds_the_stream_up_to_a_time,
    users_see_only_available_groups_and_every_write_has_a_position,
    metrics_and_openapi_describe_the_api,
    the_bootstrap_key_is_created_once,
);
