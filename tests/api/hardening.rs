//! Hardening: hostile or careless input is refused with the right status, code and
//! field, and leaves the store unchanged; bad data already in the store, a panicking
//! worker and concurrent writers cannot break the invariants or stop the service.

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::helpers::{both_backends, spawn_app, spawn_app_with, Backend, Resp, TestApp, ADMIN_KEY};

// ---------------------------------------------------------------------------------
// Helpers (local to this file).
// ---------------------------------------------------------------------------------

/// Asserts a refusal: `status`, `error.code` and (when given) a message that starts with
/// `field`.
#[track_caller]
fn assert_refused(r: &Resp, status: StatusCode, code: &str, field: Option<&str>, what: &str) {
    assert_eq!(r.status, status, "{what}: {:?}", r.body);
    assert_eq!(r.code(), code, "{what}: {:?}", r.body);
    if let Some(field) = field {
        assert!(
            r.message().starts_with(field),
            "{what}: the message should start with '{field}': {:?}",
            r.message()
        );
    }
}

/// 422 `validation_error` naming `field`.
#[track_caller]
fn assert_invalid(r: &Resp, field: &str, what: &str) {
    assert_refused(
        r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
        Some(field),
        what,
    );
}

/// A valid interactive session body named `name`, with `extra` merged over it.
fn session_body(name: &str, extra: Value) -> Value {
    let mut body = json!({"name": name, "type": "interactive", "image": "python:3.12",
                          "resources": {"cpu": 1, "mem": "1g"}});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    body
}

fn id_of(r: &Resp) -> String {
    r.body["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no session_id in {:?}", r.body))
        .to_string()
}

async fn readyz(app: &TestApp) -> Resp {
    app.get("/readyz", None).await
}

/// The greatest global position in the log now (0: empty).
async fn head(app: &TestApp) -> i64 {
    app.all_events()
        .await
        .last()
        .map(|e| e.global_position)
        .unwrap_or(0)
}

/// The distinct correlation ids of the events appended after `after` by anyone but the
/// scheduler: one per request that wrote something.
async fn writers_since(app: &TestApp, after: i64) -> BTreeSet<String> {
    app.all_events()
        .await
        .into_iter()
        .filter(|e| e.global_position > after && e.actor() != "scheduler")
        .map(|e| {
            e.metadata["correlation_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// Alice's sessions (as alice sees them), after the read models reached `min_position`.
async fn sessions_of(app: &TestApp, key: &str, query: &str, min_position: i64) -> Vec<Value> {
    let sep = if query.is_empty() { "" } else { "&" };
    let r = app
        .get(
            &format!("/v1/sessions?limit=1000&min_position={min_position}{sep}{query}"),
            Some(key),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["items"].as_array().cloned().unwrap_or_default()
}

/// The value of the first Prometheus sample whose line starts with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Polls `/readyz` until `pred` holds (20 s at most); returns the matching answer.
async fn wait_for_readyz(app: &TestApp, what: &str, pred: impl Fn(&Resp) -> bool) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = readyz(app).await;
        if pred(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never became {what}; last: {} {:?}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------
// 1. Overflow payloads.
// ---------------------------------------------------------------------------------

async fn overflowing_payloads_are_422_naming_the_field_and_stop_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    app.register_agent("a1", "default").await;
    let a2 = app.agent_key("a2").await;
    let r = readyz(&app).await;
    assert_eq!(r.status, StatusCode::OK, "readyz before: {:?}", r.body);
    let before = app.store_fingerprint().await;

    for (extra, fields) in [
        (
            json!({"resources": {"mem": "999999999999g"}, "cluster_size": 100_000_000}),
            &["resources.mem", "cluster_size"][..],
        ),
        (
            json!({"resources": {"cpu": "79228162514264337593543950335"}, "cluster_size": 1000}),
            &["resources.cpu", "cluster_size"][..],
        ),
        (json!({"cluster_size": 129}), &["cluster_size"][..]),
        (json!({"priority": 101}), &["priority"][..]),
        (
            json!({"type": "batch", "batch_timeout": 315_360_001u64}),
            &["batch_timeout"][..],
        ),
    ] {
        let body = session_body("overflow", extra.clone());
        let r = app.post("/v1/sessions", Some(&alice), &body).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{extra}: {:?}",
            r.body
        );
        assert_eq!(r.code(), "validation_error", "{extra}: {:?}", r.body);
        assert!(
            fields.iter().any(|f| r.message().starts_with(f)),
            "{extra}: the message should name one of {fields:?}: {}",
            r.message()
        );
    }

    let r = app
        .post(
            "/v1/scaling-groups",
            Some(ADMIN_KEY),
            &json!({"name": "ovf", "scheduler_opts": {"pending_timeout": 9_223_372_036_854_776u64}}),
        )
        .await;
    assert_invalid(
        &r,
        "scheduler_opts.pending_timeout",
        "pending_timeout overflow",
    );

    let r = app
        .post(
            "/v1/agents",
            Some(&a2),
            &json!({"agent_id": "a2", "scaling_group": "default", "addr": "10.0.0.2:6001",
                    "available_slots": {"cpu": "79228162514264337593543950335", "mem": "16g"}}),
        )
        .await;
    assert_invalid(&r, "available_slots.cpu", "agent capacity overflow");
    assert_eq!(
        app.store_fingerprint().await,
        before,
        "a refusal wrote something"
    );

    // Nothing stopped: a normal session is scheduled, every worker is up.
    let r = app
        .post(
            "/v1/sessions",
            Some(&alice),
            &session_body("normal", json!({"resources": {"cpu": 1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    app.wait_for_status(&alice, &id_of(&r), "SCHEDULED").await;
    let r = readyz(&app).await;
    assert_eq!(r.status, StatusCode::OK, "readyz after: {:?}", r.body);
    assert_eq!(app.app.supervisor.down(), vec![]);
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// 2. A poisoned session already in the store.
// ---------------------------------------------------------------------------------

async fn a_poisoned_session_in_the_store_waits_with_a_reason_and_stops_nothing(backend: Backend) {
    use domain::session::{Session, SessionEvent};
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    app.register_agent("a1", "default").await;
    let alice = app.user_key("alice").await;

    // What an old store might hold: Decimal::MAX cores times 128 kernels.
    let poisoned = uuid::Uuid::new_v4();
    let mut spec = testkit::fixtures::spec_in(poisoned, "default", "alice");
    spec.resources = serde_json::from_value::<domain::ResourceSlots>(
        json!({"cpu": "79228162514264337593543950335"}),
    )
    .expect("Decimal::MAX slots");
    spec.cluster_size =
        domain::bounds::ClusterSize::parse("cluster_size", 128).expect("a cluster size");
    let event = SessionEvent::SessionEnqueued {
        spec,
        occurred_at: chrono::Utc::now(),
    };
    let rows = sessiond::command::new_events::<Session>(
        &poisoned.to_string(),
        0,
        &[event],
        &testkit::fixtures::meta("user:alice"),
    )
    .expect("rows");
    app.app.store.append(&rows).await.expect("plant the event");

    let r = app.enqueue(&alice, "normal").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let normal = id_of(&r);
    app.wait_for_status(&alice, &normal, "SCHEDULED").await;

    // The poisoned one waits, with the reason.
    let poisoned = poisoned.to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let view = loop {
        let r = app
            .get(&format!("/v1/sessions/{poisoned}"), Some(&alice))
            .await;
        let failed = r.body["status_data"]["scheduler"]["failed_predicates"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if r.status == StatusCode::OK && failed.iter().any(|p| p["name"] == "resources") {
            break r.body;
        }
        assert!(
            Instant::now() < deadline,
            "the poisoned session never showed a 'resources' failure: {} {:?}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(view["status"], "PENDING", "{view}");
    assert_eq!(view["agents"], json!([]), "{view}");
    let r = readyz(&app).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(app.app.supervisor.down(), vec![]);
    // Later passes still skip it and go on.
    let r = app.enqueue(&alice, "later").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    app.wait_for_status(&alice, &id_of(&r), "SCHEDULED").await;
    let r = app
        .get(&format!("/v1/sessions/{poisoned}"), Some(&alice))
        .await;
    assert_eq!(r.body["status"], "PENDING");
    assert_eq!(app.app.supervisor.down(), vec![]);
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// 3. Injected panics.
// ---------------------------------------------------------------------------------

async fn a_panic_in_a_worker_is_visible_and_the_worker_restarts(backend: Backend) {
    let app = spawn_app_with(backend, |o| {
        o.supervisor.first_backoff = Duration::from_secs(1);
    })
    .await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    app.register_agent("a1", "default").await;
    let r = readyz(&app).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // A scaling group's pass.
    app.app.supervisor.inject_panic("scheduler:default");
    let r = wait_for_readyz(&app, "503 naming scheduler:default", |r| {
        r.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert_eq!(r.code(), "not_ready", "{:?}", r.body);
    assert!(r.message().contains("scheduler:default"), "{}", r.message());
    wait_for_readyz(&app, "200 again", |r| r.status == StatusCode::OK).await;
    let metrics = app.metrics_text().await;
    let panics = sample(
        &metrics,
        "sessiond_worker_panics_total{worker=\"scheduler:default\"}",
    );
    assert!(
        panics.is_some_and(|n| n >= 1.0),
        "sessiond_worker_panics_total{{worker=\"scheduler:default\"}} is {panics:?}"
    );
    let health = app.app.supervisor.health("scheduler:default").unwrap();
    assert!(health.up && health.panics >= 1, "{health:?}");
    let r = app.enqueue(&alice, "after-scheduler-panic").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    app.wait_for_status(&alice, &id_of(&r), "SCHEDULED").await;

    // A projection runner: it reaches its fault point on its next step, which an
    // append wakes.
    app.app.supervisor.inject_panic("projection:sessions");
    let r = app.enqueue(&alice, "during-projection-panic").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = wait_for_readyz(&app, "503 naming projection:sessions", |r| {
        r.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert_eq!(r.code(), "not_ready", "{:?}", r.body);
    assert!(
        r.message().contains("projection:sessions"),
        "{}",
        r.message()
    );
    wait_for_readyz(&app, "200 again", |r| r.status == StatusCode::OK).await;
    let r = app.enqueue(&alice, "after-projection-panic").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = app.get("/v1/sessions?limit=1000", Some(&alice)).await;
        let names: BTreeSet<String> = r.body["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s["name"].as_str().map(str::to_string))
            .collect();
        if names.contains("during-projection-panic") && names.contains("after-projection-panic") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "GET /v1/sessions never listed the sessions enqueued around the projection panic: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let health = app.app.supervisor.health("projection:sessions").unwrap();
    assert!(health.up && health.panics >= 1, "{health:?}");
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// 4. One name, many writers.
// ---------------------------------------------------------------------------------

async fn concurrent_enqueues_with_one_name_create_exactly_one_session(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    let bob = app.user_key("bob").await;
    let before = app.store_fingerprint().await;
    let start = head(&app).await;

    let body = session_body("same", json!({}));
    let results =
        futures::future::join_all((0..50).map(|_| app.post("/v1/sessions", Some(&alice), &body)))
            .await;
    let created: Vec<&Resp> = results
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    let others: Vec<(StatusCode, String)> = results
        .iter()
        .filter(|r| r.status != StatusCode::CREATED)
        .map(|r| (r.status, r.code().to_string()))
        .collect();
    assert_eq!(created.len(), 1, "201s; the others: {others:?}");
    for r in results.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_refused(
            r,
            StatusCode::CONFLICT,
            "name_conflict",
            Some("name"),
            "same name",
        );
    }
    // The 49 refusals wrote nothing: every event since is the one request's (or the
    // scheduler's), and no key or idempotency record appeared.
    assert_eq!(writers_since(&app, start).await.len(), 1);
    let after = app.store_fingerprint().await;
    assert_eq!((after.1, after.2), (before.1, before.2));

    let id = id_of(created[0]);
    let position = created[0].body["position"].as_i64().unwrap();
    let same: Vec<Value> = sessions_of(&app, &alice, "", position)
        .await
        .into_iter()
        .filter(|s| s["name"] == "same")
        .collect();
    assert_eq!(same.len(), 1, "{same:?}");
    assert_eq!(same[0]["status"], "PENDING");
    assert_eq!(same[0]["session_id"], id.as_str());

    // Names are per owner.
    let r = app.post("/v1/sessions", Some(&bob), &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "bob: {:?}", r.body);

    // Cancelled, the name is free again.
    let r = app
        .delete(&format!("/v1/sessions/{id}"), Some(&alice))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "CANCELLED");
    let r = app.post("/v1/sessions", Some(&alice), &body).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "after the cancel: {:?}",
        r.body
    );
    assert_ne!(id_of(&r), id);
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// 5. The pending limit under concurrency.
// ---------------------------------------------------------------------------------

async fn concurrent_enqueues_never_exceed_the_pending_limit(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    let r = app
        .put(
            "/v1/users/alice/resource-policy",
            Some(ADMIN_KEY),
            &json!({"max_pending_sessions": 2}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let before = app.store_fingerprint().await;
    let start = head(&app).await;

    let bodies: Vec<Value> = (0..50)
        .map(|i| session_body(&format!("p{i}"), json!({})))
        .collect();
    let results = futures::future::join_all(
        bodies
            .iter()
            .map(|b| app.post("/v1/sessions", Some(&alice), b)),
    )
    .await;
    let created: Vec<&Resp> = results
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .collect();
    let others: Vec<(StatusCode, String)> = results
        .iter()
        .filter(|r| r.status != StatusCode::CREATED)
        .map(|r| (r.status, r.code().to_string()))
        .collect();
    let last = created
        .iter()
        .filter_map(|r| r.body["position"].as_i64())
        .max()
        .unwrap_or(0);
    let pending = sessions_of(&app, &alice, "status=PENDING", last).await;
    assert_eq!(
        created.len(),
        2,
        "201s with max_pending_sessions 2 ({} PENDING listed for alice); the others: {others:?}",
        pending.len()
    );
    for r in results.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_refused(
            r,
            StatusCode::TOO_MANY_REQUESTS,
            "pending_limit_exceeded",
            None,
            "over the pending limit",
        );
    }
    assert_eq!(writers_since(&app, start).await.len(), 2);
    let after = app.store_fingerprint().await;
    assert_eq!((after.1, after.2), (before.1, before.2));

    assert_eq!(pending.len(), 2, "{pending:?}");

    // Cancelling one frees one place, never more.
    let cancelled = id_of(created[0]);
    let r = app
        .delete(&format!("/v1/sessions/{cancelled}"), Some(&alice))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let cancel_position = r.body["position"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut attempt = 0;
    let created_after = loop {
        attempt += 1;
        let r = app
            .post(
                "/v1/sessions",
                Some(&alice),
                &session_body(&format!("after-{attempt}"), json!({})),
            )
            .await;
        let pending = sessions_of(&app, &alice, "status=PENDING", cancel_position).await;
        assert!(
            pending.len() <= 2,
            "more than 2 PENDING sessions: {}",
            pending.len()
        );
        if r.status == StatusCode::CREATED {
            break r;
        }
        assert_refused(
            &r,
            StatusCode::TOO_MANY_REQUESTS,
            "pending_limit_exceeded",
            None,
            "after the cancel",
        );
        assert!(
            Instant::now() < deadline,
            "no enqueue succeeded within 20 s after the cancel"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let p = created_after.body["position"].as_i64().unwrap();
    let pending = sessions_of(&app, &alice, "status=PENDING", p).await;
    assert_eq!(pending.len(), 2, "{pending:?}");
    // And the place is taken again.
    let r = app
        .post(
            "/v1/sessions",
            Some(&alice),
            &session_body("one-too-many", json!({})),
        )
        .await;
    assert_refused(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        "pending_limit_exceeded",
        None,
        "full again",
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// 6. Dependencies.
// ---------------------------------------------------------------------------------

async fn a_dependency_on_another_owners_session_is_refused_like_an_unknown_one(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    let bob = app.user_key("bob").await;
    // Both placed on an agent, so the scheduler has nothing more to write.
    app.register_agent("a1", "default").await;
    let r = app.enqueue(&bob, "bobs").await;
    assert_eq!(r.status, StatusCode::CREATED);
    let bobs = id_of(&r);
    let r = app.enqueue(&alice, "mine").await;
    assert_eq!(r.status, StatusCode::CREATED);
    let mine = id_of(&r);
    app.wait_for_status(&bob, &bobs, "SCHEDULED").await;
    app.wait_for_status(&alice, &mine, "SCHEDULED").await;
    let before = app.store_fingerprint().await;

    let unknown = uuid::Uuid::new_v4().to_string();
    let with_dep = |dep: &str| session_body("dependent", json!({"dependencies": [dep]}));
    let other = app
        .post("/v1/sessions", Some(&alice), &with_dep(&bobs))
        .await;
    assert_invalid(&other, "dependencies[0]", "another owner's session");
    let missing = app
        .post("/v1/sessions", Some(&alice), &with_dep(&unknown))
        .await;
    assert_invalid(&missing, "dependencies[0]", "an unknown session");
    assert_eq!(
        other.body.to_string().replace(&bobs, "<id>"),
        missing.body.to_string().replace(&unknown, "<id>"),
        "the answers differ beyond the id"
    );
    assert_eq!(other.status, missing.status);
    assert_eq!(app.store_fingerprint().await, before);

    let r = app
        .post("/v1/sessions", Some(&alice), &with_dep(&mine))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = app
        .get(&format!("/v1/sessions/{}", id_of(&r)), Some(&alice))
        .await;
    assert_eq!(r.body["dependencies"], json!([mine]));
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// 7. Agents and identifiers in paths.
// ---------------------------------------------------------------------------------

async fn agent_registration_and_identifiers_are_validated(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    let a1 = app.register_agent("a1", "default").await;
    let r = app
        .post(
            "/v1/sessions",
            Some(&alice),
            &session_body("big", json!({"resources": {"cpu": 4}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let big = id_of(&r);
    app.wait_for_status(&alice, &big, "SCHEDULED").await;
    let before = app.store_fingerprint().await;

    let register = |agent_id: &str, group: &str| {
        json!({"agent_id": agent_id, "scaling_group": group, "addr": "10.0.0.9:6001",
               "available_slots": {"cpu": 8, "mem": "16g"}})
    };
    let r = app
        .post("/v1/agents", Some(&a1), &register("a1", "nope"))
        .await;
    assert_invalid(&r, "scaling_group", "unknown scaling group");
    let r = app
        .post(
            "/v1/agents",
            Some(ADMIN_KEY),
            &register("evil\n2026-12-01 INFO forged", "default"),
        )
        .await;
    assert_invalid(&r, "agent_id", "agent id with a newline");
    let r = app
        .post(
            "/v1/agents",
            Some(ADMIN_KEY),
            &register(&"a".repeat(65), "default"),
        )
        .await;
    assert_invalid(&r, "agent_id", "agent id of 65 characters");
    for name in [".", ".."] {
        let r = app
            .post(
                "/v1/scaling-groups",
                Some(ADMIN_KEY),
                &json!({"name": name}),
            )
            .await;
        assert_invalid(&r, "name", &format!("group name {name:?}"));
    }
    let r = app
        .put(
            "/v1/users/ali%0Ace/resource-policy",
            Some(ADMIN_KEY),
            &json!({"max_pending_sessions": 1}),
        )
        .await;
    assert_invalid(&r, "owner", "owner with a newline");
    assert_eq!(app.store_fingerprint().await, before);

    // Re-registering with less than it holds: accepted, reported, and nothing new fits.
    let r = app
        .post(
            "/v1/agents",
            Some(&a1),
            &json!({"agent_id": "a1", "scaling_group": "default", "addr": "10.0.0.1:6001",
                    "available_slots": {"cpu": 2, "mem": "16g"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["over_capacity"], json!(true), "{:?}", r.body);
    let occupied = &r.body["occupied_slots"]["cpu"];
    let occupied = occupied
        .as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .or_else(|| occupied.as_f64());
    assert_eq!(occupied, Some(4.0), "{:?}", r.body);
    let r = app
        .post(
            "/v1/sessions",
            Some(&alice),
            &session_body("small", json!({"resources": {"cpu": 1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let small = id_of(&r);
    app.wait_until_waiting(&alice, &small).await;
    let r = app
        .get(&format!("/v1/sessions/{small}"), Some(&alice))
        .await;
    assert_eq!(r.body["status"], "PENDING", "{:?}", r.body);
    assert_eq!(r.body["agents"], json!([]), "{:?}", r.body);
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// 8. PATCH validates the merged whole.
// ---------------------------------------------------------------------------------

async fn patch_validates_the_merged_group_exactly_as_create(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_group("tuned").await;
    app.create_group("plain").await;
    let r = app
        .patch(
            "/v1/scaling-groups/tuned",
            Some(ADMIN_KEY),
            &json!({"scheduler_opts": {"config": {"num_retries_to_skip": 2}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["scheduler_opts"]["config"]["num_retries_to_skip"], 2);
    let before = app.store_fingerprint().await;
    let r = app
        .patch(
            "/v1/scaling-groups/tuned",
            Some(ADMIN_KEY),
            &json!({"scheduler": "drf"}),
        )
        .await;
    assert_invalid(
        &r,
        "scheduler_opts.config.num_retries_to_skip",
        "drf with a fifo-only key",
    );
    assert_eq!(app.store_fingerprint().await, before);
    let tuned = app.get("/v1/scaling-groups/tuned", Some(ADMIN_KEY)).await;
    assert_eq!(tuned.body["scheduler"], "fifo", "{:?}", tuned.body);
    assert_eq!(
        tuned.body["scheduler_opts"]["config"]["num_retries_to_skip"],
        2
    );

    let r = app
        .patch(
            "/v1/scaling-groups/plain",
            Some(ADMIN_KEY),
            &json!({"scheduler": "drf"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["scheduler"], "drf");
    assert_eq!(
        r.body["scheduler_opts"]["config"],
        json!({}),
        "{:?}",
        r.body
    );

    // What GET shows, create accepts.
    for (source, copy) in [("plain", "plain-copy"), ("tuned", "tuned-copy")] {
        let shown = app
            .get(&format!("/v1/scaling-groups/{source}"), Some(ADMIN_KEY))
            .await;
        assert_eq!(shown.status, StatusCode::OK);
        let r = app
            .post(
                "/v1/scaling-groups",
                Some(ADMIN_KEY),
                &json!({"name": copy, "scheduler": shown.body["scheduler"],
                        "scheduler_opts": shown.body["scheduler_opts"]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{copy}: {:?}", r.body);
        assert_eq!(r.body["scheduler"], shown.body["scheduler"]);
        assert_eq!(r.body["scheduler_opts"], shown.body["scheduler_opts"]);
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// 9. Strict request framing.
// ---------------------------------------------------------------------------------

/// A raw request's status, headers and JSON body.
async fn raw(req: reqwest::RequestBuilder) -> Resp {
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    Resp {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    }
}

#[track_caller]
fn assert_json_error(r: &Resp, status: StatusCode, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {:?}", r.body);
    assert!(
        r.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json")),
        "{what}: not a JSON response: {:?}",
        r.headers.get("content-type")
    );
    assert_eq!(r.code(), code, "{what}: {:?}", r.body);
    assert!(!r.message().is_empty(), "{what}: no message: {:?}", r.body);
}

async fn request_framing_is_strict_and_errors_are_json(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    let before = app.store_fingerprint().await;
    let send = |method: reqwest::Method, path: &str, key: &str, ct: Option<&str>, body: &str| {
        let mut req = app
            .client
            .request(method, app.url(path))
            .bearer_auth(key)
            .body(body.to_string());
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        raw(req)
    };
    let json_ct = Some("application/json");
    let valid = session_body("strict", json!({})).to_string();

    // Anything but one object, and duplicate keys, are 400.
    for (method, path, key, body) in [
        (
            reqwest::Method::POST,
            "/v1/scaling-groups",
            ADMIN_KEY,
            r#"[{"name": "arr"}]"#.to_string(),
        ),
        (
            reqwest::Method::PUT,
            "/v1/users/alice/resource-policy",
            ADMIN_KEY,
            r#"[{"max_pending_sessions": 1}]"#.to_string(),
        ),
        (
            reqwest::Method::POST,
            "/v1/sessions",
            alice.as_str(),
            format!("[{valid}]"),
        ),
        (
            reqwest::Method::POST,
            "/v1/scaling-groups",
            ADMIN_KEY,
            r#"{"name": "a", "name": "b"}"#.to_string(),
        ),
        (
            reqwest::Method::POST,
            "/v1/sessions",
            alice.as_str(),
            r#"{"name": "a", "name": "b", "type": "interactive", "image": "python:3.12", "resources": {"cpu": 1}}"#
                .to_string(),
        ),
        (
            reqwest::Method::POST,
            "/v1/sessions",
            alice.as_str(),
            r#"{"name": "a", "type": "interactive", "image": "python:3.12", "resources": {"cpu": 1, "cpu": 1000}}"#
                .to_string(),
        ),
    ] {
        let r = send(method.clone(), path, key, json_ct, &body).await;
        assert_json_error(
            &r,
            StatusCode::BAD_REQUEST,
            "malformed_json",
            &format!("{method} {path} {body}"),
        );
    }
    assert_eq!(app.store_fingerprint().await, before);

    // Only JSON (UTF-8) is parsed.
    for ct in [
        None,
        Some("application/merge-patch+json"),
        Some("text/plain"),
        Some("application/json; charset=iso-8859-1"),
    ] {
        let r = send(reqwest::Method::POST, "/v1/sessions", &alice, ct, &valid).await;
        assert_json_error(
            &r,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            &format!("POST /v1/sessions with {ct:?}"),
        );
        let r = send(
            reqwest::Method::POST,
            "/v1/scaling-groups",
            ADMIN_KEY,
            ct,
            r#"{"name": "typed"}"#,
        )
        .await;
        assert_json_error(
            &r,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            &format!("POST /v1/scaling-groups with {ct:?}"),
        );
    }
    assert_eq!(app.store_fingerprint().await, before);

    // A wrong method, a long URI and too many headers are JSON errors too.
    let r = raw(app.client.put(app.url("/v1/sessions")).bearer_auth(&alice)).await;
    assert_json_error(
        &r,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "PUT /v1/sessions",
    );
    let long = format!("/v1/sessions?pad={}", "a".repeat(20 * 1024));
    let r = raw(app.client.get(app.url(&long)).bearer_auth(&alice)).await;
    assert_json_error(&r, StatusCode::URI_TOO_LONG, "uri_too_long", "20 KiB query");
    let mut req = app.client.get(app.url("/v1/sessions")).bearer_auth(&alice);
    for i in 0..150 {
        req = req.header(format!("x-pad-{i}"), "v");
    }
    let r = raw(req).await;
    assert_json_error(
        &r,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
        "150 headers",
    );
    assert_eq!(app.store_fingerprint().await, before);

    // JSON declared as UTF-8 is accepted.
    let r = send(
        reqwest::Method::POST,
        "/v1/sessions",
        &alice,
        Some("application/json; charset=utf-8"),
        &valid,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = send(
        reqwest::Method::POST,
        "/v1/scaling-groups",
        ADMIN_KEY,
        Some("application/json; charset=utf-8"),
        r#"{"name": "typed"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // Nothing the refused requests carried was created.
    for name in ["arr", "a", "b"] {
        let r = app
            .get(&format!("/v1/scaling-groups/{name}"), Some(ADMIN_KEY))
            .await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "group {name}: {:?}",
            r.body
        );
    }
    let r = app
        .get("/v1/users/alice/resource-policy", Some(ADMIN_KEY))
        .await;
    assert_eq!(r.body["max_pending_sessions"], Value::Null, "{:?}", r.body);
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// 10. Loose fields.
// ---------------------------------------------------------------------------------

async fn loose_fields_are_422_naming_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    let agent = app.register_agent("a1", "default").await;
    let r = app.enqueue(&alice, "placed").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = id_of(&r);
    app.wait_for_status(&alice, &id, "SCHEDULED").await;
    let before = app.store_fingerprint().await;

    let labels: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    for (extra, field) in [
        (json!({"image": "python\u{0}:3.12"}), "image"),
        (json!({"image": "python\n:3.12"}), "image"),
        (json!({"image": "i".repeat(300)}), "image"),
        (json!({ "labels": labels }), "labels"),
        (json!({"labels": {"k": "v".repeat(257)}}), "labels.k"),
        (json!({"resources": {}}), "resources"),
        (json!({"resources": {"cpu": 0}}), "resources.cpu"),
        (json!({"resources": {"mem": 0.5}}), "resources.mem"),
        (json!({"resources": {"mem": "1.3g"}}), "resources.mem"),
        (
            json!({"type": "interactive", "startup_command": "python train.py"}),
            "startup_command",
        ),
    ] {
        let r = app
            .post(
                "/v1/sessions",
                Some(&alice),
                &session_body("loose", extra.clone()),
            )
            .await;
        assert_invalid(&r, field, &extra.to_string());
    }
    for reason in ["r".repeat(100), "a b".to_string()] {
        let r = app
            .kernel_event(&agent, &id, json!({"event": "preparing", "reason": reason}))
            .await;
        assert_invalid(&r, "reason", &format!("reason {reason:?}"));
    }
    let r = app.get("/v1/sessions?owner=", Some(&alice)).await;
    assert_invalid(&r, "owner", "empty owner filter");
    let r = app
        .get(&format!("/v1/sessions/{}", id.to_uppercase()), Some(&alice))
        .await;
    assert_eq!(r.status, StatusCode::OK, "upper-case id: {:?}", r.body);
    assert_eq!(r.body["session_id"], id.as_str());
    let r = app
        .get(&format!("/v1/sessions/{{{id}}}"), Some(&alice))
        .await;
    assert_invalid(&r, "session_id", "braces form");
    let r = raw(app
        .client
        .get(app.url("/v1/events/sessions"))
        .bearer_auth(&alice)
        .header("Last-Event-ID", "-5"))
    .await;
    assert_invalid(&r, "Last-Event-ID", "Last-Event-ID: -5");
    for q in ["limit=0", "limit=1001"] {
        let r = app.get(&format!("/v1/sessions?{q}"), Some(&alice)).await;
        assert_invalid(&r, "limit", q);
    }
    let beyond = head(&app).await + 1000;
    let r = app
        .get(&format!("/v1/sessions?min_position={beyond}"), Some(&alice))
        .await;
    assert_invalid(&r, "min_position", "min_position beyond the head");
    assert_eq!(app.store_fingerprint().await, before);
    app.stop().await;
}

both_backends!(
    overflowing_payloads_are_422_naming_the_field_and_stop_nothing,
    a_poisoned_session_in_the_store_waits_with_a_reason_and_stops_nothing,
    a_panic_in_a_worker_is_visible_and_the_worker_restarts,
    concurrent_enqueues_with_one_name_create_exactly_one_session,
    concurrent_enqueues_never_exceed_the_pending_limit,
    a_dependency_on_another_owners_session_is_refused_like_an_unknown_one,
    agent_registration_and_identifiers_are_validated,
    patch_validates_the_merged_group_exactly_as_create,
    request_framing_is_strict_and_errors_are_json,
    loose_fields_are_422_naming_the_field,
);
