//! What the dashboard reads, through the documented API on both backends: session
//! counts per group and status (a user's own only), the agent list with occupancy and
//! liveness (admins only), webhook subscriptions with their delivery health, the
//! background-task event stream (a user's own tasks only, resumable), and the page's
//! own files with their security headers.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{both_backends, spawn_app, Backend, TestApp, ADMIN_KEY};
use crate::sse::SseClient;

/// `(group, status, count)` of a counts answer.
fn counts(body: &Value) -> Vec<(String, String, i64)> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["scaling_group"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
                c["count"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn pending(group: &str, n: i64) -> (String, String, i64) {
    (group.to_string(), "PENDING".to_string(), n)
}

async fn session_counts_are_per_group_and_status_and_a_user_counts_only_their_own(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.create_group("g").await;
    app.create_group("h").await;
    let alice = app.user_key("alice").await;
    let bob = app.user_key("bob").await;
    let agent = app.agent_key("a1").await;
    let mut last = 0;
    for (key, name, group) in [
        (&alice, "a1", "g"),
        (&alice, "a2", "h"),
        (&alice, "a3", "h"),
        (&bob, "b1", "g"),
    ] {
        let r = app
            .post(
                "/v1/sessions",
                Some(key),
                &json!({"name": name, "type": "interactive", "image": "python:3.12",
                        "scaling_group": group, "resources": {"cpu": 1, "mem": "1g"}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        last = r.body["position"].as_i64().unwrap();
    }
    let at = |q: &str| format!("/v1/session-counts?min_position={last}{q}");
    let r = app.get(&at(""), Some(&alice)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(counts(&r.body), vec![pending("g", 1), pending("h", 2)]);
    let r = app.get(&at(""), Some(&bob)).await;
    assert_eq!(counts(&r.body), vec![pending("g", 1)]);
    let r = app.get(&at(""), Some(ADMIN_KEY)).await;
    assert_eq!(counts(&r.body), vec![pending("g", 2), pending("h", 2)]);
    let r = app.get(&at("&owner=bob"), Some(ADMIN_KEY)).await;
    assert_eq!(counts(&r.body), vec![pending("g", 1)]);
    let r = app.get(&at("&scaling_group=h"), Some(ADMIN_KEY)).await;
    assert_eq!(counts(&r.body), vec![pending("h", 2)]);
    // Refusals: another owner (403), a malformed group (422), an agent key (403),
    // an unknown parameter (422), no key (401).
    let r = app.get(&at("&owner=bob"), Some(&alice)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let r = app
        .get("/v1/session-counts?scaling_group=no%20such", Some(&alice))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(r.message().contains("scaling_group"), "{:?}", r.body);
    let r = app.get("/v1/session-counts", Some(&agent)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let r = app.get("/v1/session-counts?colour=red", Some(&alice)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = app.get("/v1/session-counts", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
}

async fn the_agent_list_shows_occupancy_and_liveness_to_admins_only(backend: Backend) {
    let app = spawn_app(backend).await;
    app.create_group("g").await;
    let agent = app.agent_key("a1").await;
    let r = app
        .post(
            "/v1/agents",
            Some(&agent),
            &json!({"agent_id": "a1", "scaling_group": "g", "addr": "10.0.0.1:6001",
                    "available_slots": {"cpu": 8, "mem": "16g"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let position = r.body["position"].as_i64().unwrap();
    let alice = app.user_key("alice").await;
    let r = app
        .get(
            &format!("/v1/agents?min_position={position}"),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{:?}", r.body);
    let a = &items[0];
    assert_eq!(a["agent_id"], "a1");
    assert_eq!(a["scaling_group"], "g");
    assert_eq!(a["status"], "ALIVE");
    assert_eq!(a["available_slots"]["cpu"], "8");
    assert_eq!(a["sessions"], 0);
    assert_eq!(a["over_capacity"], false);
    // Registering counts as a heartbeat.
    assert!(a["last_heartbeat_at"].is_string(), "{a}");
    assert!(
        a["seconds_since_heartbeat"]
            .as_i64()
            .is_some_and(|s| (0..60).contains(&s)),
        "{a}"
    );
    for key in [&alice, &agent] {
        let r = app.get("/v1/agents", Some(key)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    }
}

async fn the_webhook_list_carries_each_subscriptions_delivery_health(backend: Backend) {
    let app = crate::helpers::spawn_app_with_settings(
        backend,
        |s| {
            s.secret_key = Some(sessiond::config::SecretText::new(crate::webhooks::KEK));
            s.webhooks.allow_networks = vec!["127.0.0.0/8".into()];
        },
        |_| {},
    )
    .await;
    let r = app
        .post(
            "/v1/webhooks",
            Some(ADMIN_KEY),
            &json!({"url": "http://127.0.0.1:9/hook"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let position = r.body["position"].as_i64().unwrap();
    let r = app
        .get(
            &format!("/v1/webhooks?min_position={position}"),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let d = &r.body["items"][0]["deliveries"];
    assert_eq!(
        (
            d["open"].as_i64(),
            d["delivered"].as_i64(),
            d["dead"].as_i64()
        ),
        (Some(0), Some(0), Some(0)),
        "{d}"
    );
    assert!(
        d["last_error"].is_null() && d["oldest_open_at"].is_null(),
        "{d}"
    );
    // A status change to a closed port: an open delivery, then its failure message.
    app.create_group("g").await;
    let alice = app.user_key("alice").await;
    let r = app.enqueue(&alice, "s1").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let d = testkit::serve::wait_until(
        "a failed delivery in the health",
        std::time::Duration::from_secs(30),
        || async {
            let r = app.get("/v1/webhooks", Some(ADMIN_KEY)).await;
            let d = r.body["items"][0]["deliveries"].clone();
            if d["open"].as_i64() == Some(1) && d["last_error"].is_string() {
                Ok(d)
            } else {
                Err(d.to_string())
            }
        },
    )
    .await;
    assert!(d["oldest_open_at"].is_string(), "{d}");
}

/// Creates vfolder `name` for `key` with one file and clones it; the task id.
async fn clone_one(app: &TestApp, key: &str, name: &str) -> String {
    let r = app
        .post("/v1/vfolders", Some(key), &json!({"name": name}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = app
        .client
        .put(app.url(&format!("/v1/vfolders/{name}/files/f.txt")))
        .bearer_auth(key)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = app
        .post(
            &format!("/v1/vfolders/{name}/clone"),
            Some(key),
            &json!({"target_name": format!("{name}-copy")}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    r.body["bgtask_id"].as_str().unwrap().to_string()
}

/// Events of the stream until one of `task` ends (its event types, in order).
async fn until_done(sse: &mut SseClient, task: &str) -> Vec<String> {
    let mut seen = vec![];
    loop {
        let e = sse.next().await;
        assert_eq!(e.data["position"].as_i64(), Some(e.id), "{:?}", e.data);
        if e.data["task_id"] != task {
            seen.push(format!("other:{}", e.event));
            continue;
        }
        seen.push(e.event.clone());
        if e.event == "BackgroundTaskCompleted" {
            assert_eq!(e.data["status"], "done", "{:?}", e.data);
            return seen;
        }
    }
}

async fn the_task_stream_shows_a_user_only_their_own_tasks_and_resumes_after_the_last_event(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let alice = app.user_key("alice").await;
    let bob = app.user_key("bob").await;
    let path = "/v1/events/background-tasks";
    let mut as_alice = SseClient::connect_to(&app, &alice, path, None).await;
    let mut as_admin = SseClient::connect_to(&app, ADMIN_KEY, path, None).await;
    let bobs = clone_one(&app, &bob, "bobs").await;
    let hers = clone_one(&app, &alice, "hers").await;
    let seen = until_done(&mut as_alice, &hers).await;
    assert_eq!(
        seen.first().map(String::as_str),
        Some("BackgroundTaskStarted"),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|e| e.starts_with("other:")),
        "alice saw bob's task: {seen:?}"
    );
    let _ = bobs;
    // The admin sees both tasks.
    let mut tasks = std::collections::BTreeSet::new();
    while tasks.len() < 2 {
        let e = as_admin.next().await;
        tasks.insert(e.data["task_id"].as_str().unwrap().to_string());
    }
    // Resuming after alice's first event gives her next one, no duplicate.
    drop(as_alice);
    let mut again = SseClient::connect_to(&app, &alice, path, Some(0)).await;
    let first = again.next().await;
    assert_eq!(first.data["task_id"], hers.as_str());
    let mut resumed = SseClient::connect_to(&app, &alice, path, Some(first.id)).await;
    let second = resumed.next().await;
    assert!(second.id > first.id, "{} after {}", second.id, first.id);
    assert_eq!(second.data["task_id"], hers.as_str());
    // A malformed Last-Event-ID is a 422.
    let r = app
        .client
        .get(app.url(path))
        .bearer_auth(&alice)
        .header("Last-Event-ID", "soon")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn the_dashboard_page_is_served_with_a_strict_content_security_policy(backend: Backend) {
    let app = spawn_app(backend).await;
    for (path, kind) in [
        ("/ui", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let h = r.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}: {h:?}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    let r = app.get("/ui/secrets.txt", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert_eq!(r.code(), "not_found");
}

both_backends!(
    session_counts_are_per_group_and_status_and_a_user_counts_only_their_own,
    the_agent_list_shows_occupancy_and_liveness_to_admins_only,
    the_webhook_list_carries_each_subscriptions_delivery_health,
    the_task_stream_shows_a_user_only_their_own_tasks_and_resumes_after_the_last_event,
    the_dashboard_page_is_served_with_a_strict_content_security_policy,
);
