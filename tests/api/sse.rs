//! `GET /v1/events/sessions`: a client receives each lifecycle event of its session in
//! order, reconnects with `Last-Event-ID` and receives what it missed, with no
//! duplicates; users see only their own sessions.

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::pin::Pin;
use std::time::Duration;

use crate::helpers::{both_backends, spawn_app, Backend, TestApp};

/// One server-sent event.
#[derive(Debug, Clone)]
pub(crate) struct SseEvent {
    pub(crate) id: i64,
    pub(crate) event: String,
    pub(crate) data: Value,
}

type ByteStream = Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// A connected SSE client.
pub(crate) struct SseClient {
    stream: ByteStream,
    buf: String,
}

impl SseClient {
    async fn connect(app: &TestApp, key: &str, query: &str, last_event_id: Option<i64>) -> Self {
        Self::connect_to(
            app,
            key,
            &format!("/v1/events/sessions{query}"),
            last_event_id,
        )
        .await
    }

    /// Connects to the stream at `path` (e.g. `/v1/events/background-tasks`).
    pub(crate) async fn connect_to(
        app: &TestApp,
        key: &str,
        path: &str,
        last_event_id: Option<i64>,
    ) -> Self {
        let mut req = app.client.get(app.url(path)).bearer_auth(key);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = req.send().await.expect("connect");
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Self {
            stream: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped); panics after 20 s.
    pub(crate) async fn next(&mut self) -> SseEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let Some(id) = id {
                    return SseEvent {
                        id,
                        event,
                        data: serde_json::from_str(&data).expect("JSON data"),
                    };
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("an event within 20 s")
                .expect("stream open")
                .expect("chunk");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn report(app: &TestApp, agent: &str, id: &str, event: &str) {
    let r = app.kernel_event(agent, id, json!({"event": event})).await;
    assert_eq!(r.status, StatusCode::OK, "{event}: {:?}", r.body);
}

async fn a_client_gets_every_lifecycle_event_in_order_and_resumes_with_last_event_id(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    let agent = app.register_agent("a1", "default").await;
    let alice = app.user_key("alice").await;
    let bob = app.user_key("bob").await;

    // Alice follows the log from now on; bob's session must not show up in it.
    let mut sse = SseClient::connect(&app, &alice, "", None).await;
    let r = app.enqueue(&bob, "bobs").await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app.enqueue(&alice, "watched").await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["session_id"].as_str().unwrap().to_string();

    let mut received = vec![sse.next().await];
    assert_eq!(received[0].event, "SessionEnqueued");
    app.wait_for_status(&alice, &id, "SCHEDULED").await;
    loop {
        let e = sse.next().await;
        let done = e.event == "SessionScheduled";
        received.push(e);
        if done {
            break;
        }
    }
    report(&app, &agent, &id, "preparing").await;
    received.push(sse.next().await);
    assert_eq!(received.last().unwrap().event, "SessionPreparing");
    let last_seen = received.last().unwrap().id;
    drop(sse);

    // Missed while disconnected.
    for event in ["pulling", "prepared", "creating", "started"] {
        report(&app, &agent, &id, event).await;
    }
    let mut sse = SseClient::connect(&app, &alice, "", Some(last_seen)).await;
    for _ in 0..4 {
        received.push(sse.next().await);
    }
    let r = app
        .delete(&format!("/v1/sessions/{id}"), Some(&alice))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    report(&app, &agent, &id, "terminated").await;
    received.push(sse.next().await);
    received.push(sse.next().await);

    // Exactly the session's history, in order, each once.
    let history = app
        .get(&format!("/v1/sessions/{id}/history"), Some(&alice))
        .await;
    let expected: Vec<(i64, String)> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["position"].as_i64().unwrap(),
                e["event_type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let got: Vec<(i64, String)> = received.iter().map(|e| (e.id, e.event.clone())).collect();
    assert_eq!(got, expected);
    for e in &received {
        assert_eq!(e.data["session_id"], id.as_str());
        assert_eq!(e.data["position"], e.id);
        assert_eq!(e.data["event_type"], e.event.as_str());
    }
    assert_eq!(received.last().unwrap().data["status"], "TERMINATED");

    // A new client asking for this session gets its whole lifecycle from the start.
    let mut whole = SseClient::connect(&app, &alice, &format!("?session_id={id}"), None).await;
    for (position, event_type) in &expected {
        let e = whole.next().await;
        assert_eq!((&e.id, &e.event), (position, event_type));
    }
    // Bob may not follow alice's session.
    let r = app
        .get(&format!("/v1/events/sessions?session_id={id}"), Some(&bob))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    drop(whole);
    app.stop().await;
}

async fn an_open_stream_ends_when_the_server_shuts_down(backend: Backend) {
    let app = spawn_app(backend).await;
    let alice = app.user_key("alice").await;
    let mut sse = SseClient::connect(&app, &alice, "", None).await;
    // Graceful shutdown completes although a stream is open, and closes it.
    tokio::time::timeout(Duration::from_secs(20), app.stop())
        .await
        .expect("shutdown does not wait for open streams");
    let end = tokio::time::timeout(Duration::from_secs(5), sse.stream.next())
        .await
        .expect("the stream ends");
    assert!(end.is_none() || end.is_some_and(|c| c.is_err()));
}

both_backends!(
    a_client_gets_every_lifecycle_event_in_order_and_resumes_with_last_event_id,
    an_open_stream_ends_when_the_server_shuts_down,
);
