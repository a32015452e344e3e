//! Issue #12: a request that outlives the request timeout is a JSON 503 `timeout`;
//! streams (SSE) and long-polls are exempt; every answered request is logged and
//! counted with its request id, echoed in `x-request-id`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use testkit::db::Backend;

use crate::helpers::{spawn_app_with_settings, TestApp};

async fn readyz_down(app: &TestApp, worker: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = app.get("/readyz", None).await;
        if r.status == StatusCode::SERVICE_UNAVAILABLE && r.message().contains(worker) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{worker} never reported down: {:?}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(10)).await; // poll interval of a bounded wait
    }
}

async fn a_slow_request_is_a_json_503_timeout_and_a_stream_outlives_the_timeout(backend: Backend) {
    let app = spawn_app_with_settings(
        backend,
        |s| s.request_timeout_ms = 300,
        |o| {
            // A `?min_position` wait longer than the request timeout, and a stopped
            // projection that is not restarted during the test.
            o.api.min_position_timeout = Duration::from_secs(20);
            o.supervisor.first_backoff = Duration::from_secs(600);
            o.supervisor.max_backoff = Duration::from_secs(600);
        },
    )
    .await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;

    // An event stream, opened first.
    let resp = app
        .client
        .get(app.url("/v1/events/sessions"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let opened = Instant::now();
    let mut stream = resp.bytes_stream();

    // The sessions read model stops (its runner panics at its next step and is not
    // restarted during the test), and only then is a session enqueued: a read waiting
    // for it outlives the timeout. Enqueueing first would race a step already under way,
    // which could apply the session before the runner stops.
    app.app.supervisor.inject_panic("projection:sessions");
    readyz_down(&app, "projection:sessions").await;
    let first = app.enqueue(&alice, "first").await;
    let position = first.body["position"].as_i64().unwrap();
    let asked = Instant::now();
    let r = app
        .get(
            &format!("/v1/sessions?min_position={position}"),
            Some(&alice),
        )
        .await;
    let waited = asked.elapsed();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(r.code(), "timeout", "{:?}", r.body);
    assert!(
        r.headers
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/json")),
        "{:?}",
        r.headers
    );
    assert!(
        waited >= Duration::from_millis(300),
        "answered after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "answered after {waited:?}"
    );

    // The stream is still open past the timeout and delivers what happens next.
    let second = app.enqueue(&alice, "second").await;
    let id = second.body["session_id"].as_str().unwrap().to_string();
    let mut seen = String::new();
    let delivered = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains(&id) {
                return;
            }
        }
        panic!("the stream ended: {seen}");
    })
    .await;
    assert!(delivered.is_ok(), "the stream delivered {id}: {seen}");
    assert!(opened.elapsed() > Duration::from_millis(300));

    // Counted by method, matched route and status.
    let metrics = app.metrics_text().await;
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "sessiond_http_requests_total{method=\"GET\",route=\"/v1/sessions\",status=\"503\"}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("sessiond_http_errors_total{code=\"timeout\"}"),
        "{metrics}"
    );
    app.stop().await;
}

async fn every_response_echoes_a_request_id_and_a_given_one_is_kept(backend: Backend) {
    let app = spawn_app_with_settings(backend, |_| {}, |_| {}).await;
    let r = app.get("/healthz", None).await;
    let generated = r
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert_eq!(
        uuid::Uuid::parse_str(&generated).map(|_| ()),
        Ok(()),
        "{generated:?}"
    );
    let given = app
        .client
        .get(app.url("/v1/sessions"))
        .header("x-request-id", "req-from-the-client-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        given
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("req-from-the-client-42")
    );
    app.stop().await;
}

testkit::both_backends!(
    a_slow_request_is_a_json_503_timeout_and_a_stream_outlives_the_timeout,
    every_response_echoes_a_request_id_and_a_given_one_is_kept,
);
