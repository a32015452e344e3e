//! Long-lived responses under pressure: the per-key cap on open streams, revocation
//! ending open streams and long-polls, and streams that hold no database connection
//! while they wait.

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::helpers::{both_backends, spawn_app, spawn_app_with, Backend};

// ---------------------------------------------------------------------------------
// Helpers (local to this file).
// ---------------------------------------------------------------------------------

type ByteStream = Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// One server-sent event.
#[derive(Debug, Clone)]
struct SseEvent {
    event: String,
    data: Value,
}

/// A connected SSE client that reads frames.
struct SseReader {
    stream: ByteStream,
    buf: String,
}

impl SseReader {
    fn new(resp: reqwest::Response) -> Self {
        Self {
            stream: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next event (comments skipped), or an error saying why there was none by
    /// `deadline`.
    async fn next_by(&mut self, deadline: tokio::time::Instant) -> Result<SseEvent, String> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut has_id, mut event, mut data) = (false, String::new(), String::new());
                for line in block.lines() {
                    if line.starts_with("id:") {
                        has_id = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if has_id {
                    let data = serde_json::from_str(&data)
                        .map_err(|e| format!("data is not JSON ({e}): {data}"))?;
                    return Ok(SseEvent { event, data });
                }
                continue;
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return Err("no event by the deadline".into()),
                Ok(None) => return Err("the stream ended".into()),
                Ok(Some(Err(e))) => return Err(format!("the stream failed: {e}")),
                Ok(Some(Ok(chunk))) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
            }
        }
    }
}

fn is_event_stream(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// The `q`-quantile of `samples` (sorted in place).
fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((samples.len() as f64) * q).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

// ---------------------------------------------------------------------------------
// 11. The per-key cap.
// ---------------------------------------------------------------------------------

/// What one SSE connection attempt got.
enum Attempt {
    Open(reqwest::Response),
    Refused {
        status: StatusCode,
        code: String,
        retry_after: Option<String>,
    },
}

#[allow(clippy::print_stdout)]
async fn one_key_gets_at_most_its_share_of_streams_and_other_users_are_unaffected(
    backend: Backend,
) {
    const ATTEMPTS: usize = 1000;
    const PER_KEY: usize = 32;
    let app = spawn_app_with(backend, |o| o.api.max_streams_per_key = PER_KEY).await;
    app.create_group("default").await;
    let alice = app.user_key("alice").await;
    let bob = app.user_key("bob").await;
    let r = app.enqueue(&bob, "probe").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let bob_session = r.body["session_id"].as_str().unwrap().to_string();
    app.wait_until_waiting(&bob, &bob_session).await;
    let before = app.store_fingerprint().await;

    // Bob reads his session in a loop, on his own client, the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let client = reqwest::Client::new();
        let url = app.url(&format!("/v1/sessions/{bob_session}"));
        let bob = bob.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut statuses = Vec::new();
            while !stop.load(Ordering::SeqCst) || samples.len() < 200 {
                let started = Instant::now();
                let resp = client.get(&url).bearer_auth(&bob).send().await;
                let status = match resp {
                    Ok(resp) => {
                        let status = resp.status();
                        let _ = resp.bytes().await;
                        Some(status)
                    }
                    Err(_) => None,
                };
                samples.push(started.elapsed());
                statuses.push(status);
            }
            (samples, statuses)
        })
    };

    // Alice tries 1,000 streams; accepted ones stay open, unread.
    let sse_client = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()
        .unwrap();
    let url = app.url("/v1/events/sessions");
    let attempts: Vec<Attempt> = futures::stream::iter(0..ATTEMPTS)
        .map(|_| {
            let client = sse_client.clone();
            let url = url.clone();
            let alice = alice.clone();
            async move {
                let resp = client
                    .get(&url)
                    .bearer_auth(&alice)
                    .send()
                    .await
                    .expect("an SSE attempt");
                if resp.status() == StatusCode::OK && is_event_stream(&resp) {
                    return Attempt::Open(resp);
                }
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                Attempt::Refused {
                    status,
                    code: body["error"]["code"].as_str().unwrap_or("").to_string(),
                    retry_after,
                }
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    stop.store(true, Ordering::SeqCst);
    let (mut samples, statuses) = reader.await.unwrap();

    let mut open = Vec::new();
    let mut refused = 0;
    for a in attempts {
        match a {
            Attempt::Open(resp) => open.push(resp),
            Attempt::Refused {
                status,
                code,
                retry_after,
            } => {
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "code {code}");
                assert_eq!(code, "too_many_streams");
                assert!(
                    retry_after
                        .as_deref()
                        .is_some_and(|v| v.parse::<u32>().is_ok()),
                    "Retry-After: {retry_after:?}"
                );
                refused += 1;
            }
        }
    }
    let p50 = quantile(&mut samples, 0.50);
    let p99 = quantile(&mut samples, 0.99);
    let max = samples.last().copied().unwrap_or_default();
    let unavailable = statuses
        .iter()
        .filter(|s| **s == Some(StatusCode::SERVICE_UNAVAILABLE))
        .count();
    let not_ok: Vec<Option<StatusCode>> = statuses
        .iter()
        .filter(|s| **s != Some(StatusCode::OK))
        .copied()
        .collect();
    println!(
        "[{backend:?}] streams: {} open, {refused} refused; bob: {} requests, p50 {p50:?}, p99 {p99:?}, max {max:?}, {unavailable} x 503, non-200: {not_ok:?}",
        open.len(),
        samples.len()
    );
    assert_eq!(open.len(), PER_KEY, "streams accepted for one key");
    assert_eq!(refused, ATTEMPTS - PER_KEY);
    assert_eq!(unavailable, 0, "bob got 503s");
    assert!(not_ok.is_empty(), "bob's reads failed: {not_ok:?}");
    assert!(
        p99 < Duration::from_millis(100),
        "bob's p99 latency is {p99:?} (p50 {p50:?}, max {max:?}, {} requests)",
        samples.len()
    );
    assert_eq!(app.store_fingerprint().await, before);

    // Closed streams give their slots back.
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(20);
    let reopened = loop {
        let resp = app
            .client
            .get(&url)
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::OK {
            break resp;
        }
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            Instant::now() < deadline,
            "the key could not open a stream within 20 s of closing its streams"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(is_event_stream(&reopened));
    drop(reopened);
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// 12. Revocation.
// ---------------------------------------------------------------------------------

#[allow(clippy::print_stdout)]
async fn a_revoked_key_loses_its_open_stream_and_long_poll_within_a_second(backend: Backend) {
    use sessiond::auth::{create_key, revoke_key, Role};
    // One stream per key, so "the long-poll is waiting" can be observed as a 429.
    let app = spawn_app_with(backend, |o| o.api.max_streams_per_key = 1).await;
    app.create_group("default").await;

    // An SSE stream.
    let (info, secret) = create_key(
        app.app.db(),
        Role::User {
            owner: "alice".into(),
        },
        "stream",
    )
    .await
    .unwrap();
    let key = secret.expose().to_string();
    let resp = app
        .client
        .get(app.url("/v1/events/sessions"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(is_event_stream(&resp));
    let mut body = resp.bytes_stream();
    let reader = tokio::spawn(async move {
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
        Instant::now()
    });
    revoke_key(app.app.db(), &info.id).await.unwrap();
    let revoked = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(1), reader).await;
    let ended = match ended {
        Ok(at) => at.unwrap(),
        Err(_) => panic!("the stream of a revoked key was still open 1 s after the revocation"),
    };
    println!(
        "[{backend:?}] stream ended {:?} after the revocation",
        ended.saturating_duration_since(revoked)
    );
    let r = app.get("/v1/sessions", Some(&key)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    assert_eq!(r.code(), "unauthorized");

    // A long-poll.
    let (info, secret) = create_key(
        app.app.db(),
        Role::Agent {
            agent_id: "a1".into(),
        },
        "agent",
    )
    .await
    .unwrap();
    let agent = secret.expose().to_string();
    let r = app
        .post(
            "/v1/agents",
            Some(&agent),
            &serde_json::json!({"agent_id": "a1", "scaling_group": "default",
                                "addr": "10.0.0.1:6001", "available_slots": {"cpu": 8}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // The assignments read the agent_occupancy read model, which may lag the
    // registration for a moment (404 until then).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = app.get("/v1/agents/a1/assignments", Some(&agent)).await;
        if r.status == StatusCode::OK {
            break;
        }
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
        assert!(Instant::now() < deadline, "a1's assignments stayed 404");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let poll_url = app.url("/v1/agents/a1/assignments?wait=30");
    let probe_url = app.url("/v1/agents/a1/assignments?wait=1");
    let deadline = Instant::now() + Duration::from_secs(20);
    let long_poll = 'started: loop {
        let client = app.client.clone();
        let url = poll_url.clone();
        let k = agent.clone();
        let task = tokio::spawn(async move {
            let resp = client.get(&url).bearer_auth(&k).send().await.unwrap();
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (status, body, Instant::now())
        });
        // The long-poll holds the key's one slot once it waits: a probe is refused.
        loop {
            assert!(
                Instant::now() < deadline,
                "the long-poll never started waiting"
            );
            if task.is_finished() {
                let (status, body, _) = task.await.unwrap();
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body:?}");
                continue 'started;
            }
            let probe = app
                .client
                .get(&probe_url)
                .bearer_auth(&agent)
                .send()
                .await
                .unwrap();
            if probe.status() == StatusCode::TOO_MANY_REQUESTS {
                break 'started task;
            }
            assert_eq!(probe.status(), StatusCode::OK);
        }
    };
    revoke_key(app.app.db(), &info.id).await.unwrap();
    let revoked = Instant::now();
    let answered = tokio::time::timeout(Duration::from_secs(1), long_poll).await;
    let (status, body, at) = match answered {
        Ok(done) => done.unwrap(),
        Err(_) => {
            panic!("the long-poll of a revoked key was still waiting 1 s after the revocation")
        }
    };
    println!(
        "[{backend:?}] long-poll answered {status} {:?} after the revocation",
        at.saturating_duration_since(revoked)
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body:?}");
    assert_eq!(body["error"]["code"], "unauthorized", "{body:?}");
    let r = app.get("/v1/agents/a1/assignments", Some(&agent)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    app.stop().await;
}

// ---------------------------------------------------------------------------------
// 13. Streams hold no connection.
// ---------------------------------------------------------------------------------

async fn open_streams_hold_no_database_connection_while_they_wait(backend: Backend) {
    // spawn_app's pool has 8 connections; 40 streams wait at once.
    let app = spawn_app(backend).await;
    app.create_group("default").await;
    let owners = ["u0", "u1", "u2", "u3"];
    let mut keys = Vec::new();
    for o in owners {
        keys.push(app.user_key(o).await);
    }
    let carol = app.user_key("carol").await;

    let app_ref = &app;
    let connects = keys.iter().enumerate().flat_map(|(i, key)| {
        let app = app_ref;
        (0..10).map(move |_| {
            let req = app
                .client
                .get(app.url("/v1/events/sessions"))
                .bearer_auth(key);
            async move {
                let resp = req.send().await.expect("connect");
                assert_eq!(resp.status(), StatusCode::OK);
                assert!(is_event_stream(&resp));
                (i, SseReader::new(resp))
            }
        })
    });
    let mut streams: Vec<(usize, SseReader)> = futures::future::join_all(connects).await;
    assert_eq!(streams.len(), 40);

    // Carol's traffic and each owner's one session, at once.
    let load = futures::future::join_all((0..4).map(|w| {
        let app = &app;
        let carol = &carol;
        async move {
            let mut refused = Vec::new();
            for i in 0..8 {
                let r = app.enqueue(carol, &format!("c{w}-{i}")).await;
                if r.status != StatusCode::CREATED {
                    refused.push(format!("enqueue {}: {:?}", r.status, r.body));
                    continue;
                }
                let id = r.body["session_id"].as_str().unwrap().to_string();
                let r = app.delete(&format!("/v1/sessions/{id}"), Some(carol)).await;
                if r.status != StatusCode::OK {
                    refused.push(format!("cancel {}: {:?}", r.status, r.body));
                }
                let r = app.get(&format!("/v1/sessions/{id}"), Some(carol)).await;
                if r.status != StatusCode::OK {
                    refused.push(format!("get {}: {:?}", r.status, r.body));
                }
            }
            refused
        }
    }));
    let watched = futures::future::join_all(keys.iter().enumerate().map(|(i, key)| {
        let app = &app;
        async move {
            let r = app.enqueue(key, &format!("watched-{i}")).await;
            assert_eq!(r.status, StatusCode::CREATED, "{}: {:?}", owners[i], r.body);
            (
                r.body["session_id"].as_str().unwrap().to_string(),
                tokio::time::Instant::now(),
            )
        }
    }));
    let (refused, watched) = futures::future::join(load, watched).await;
    let refused: Vec<String> = refused.into_iter().flatten().collect();
    assert!(refused.is_empty(), "carol's requests failed: {refused:?}");

    // Every stream gets its owner's SessionEnqueued within 5 s of the enqueue.
    let results = futures::future::join_all(streams.iter_mut().map(|(i, s)| {
        let (id, at) = watched[*i].clone();
        let owner = owners[*i];
        async move {
            let deadline = at + Duration::from_secs(5);
            loop {
                match s.next_by(deadline).await {
                    Ok(e)
                        if e.event == "SessionEnqueued" && e.data["session_id"] == id.as_str() =>
                    {
                        return Ok(())
                    }
                    Ok(e) if e.data["session_id"] == id.as_str() => {}
                    Ok(e) => {
                        return Err(format!(
                            "{owner}: an event of another session: {} {}",
                            e.event, e.data
                        ))
                    }
                    Err(why) => return Err(format!("{owner}: {why} (waiting for {id})")),
                }
            }
        }
    }))
    .await;
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(
        failures.is_empty(),
        "{} of 40 streams did not get their SessionEnqueued within 5 s: {failures:?}",
        failures.len()
    );
    drop(streams);
    app.stop().await;
}

both_backends!(
    one_key_gets_at_most_its_share_of_streams_and_other_users_are_unaffected,
    a_revoked_key_loses_its_open_stream_and_long_poll_within_a_second,
    open_streams_hold_no_database_connection_while_they_wait,
);
