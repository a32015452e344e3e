//! Webhooks end to end (SPEC §8, issue #15): a real loopback receiver that verifies
//! every request with its own HMAC over the raw bytes it received (no code of the
//! dispatcher's), status changes delivered in order per session after the receiver
//! recovers from 500s, the delivery log, and bad subscription input refused with
//! nothing stored.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxStatus};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::helpers::{
    audit_clean, both_backends, spawn_app_with_settings, Backend, TestApp, ADMIN_KEY, LIFECYCLE,
};

pub(crate) const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SCHEMA: &str = include_str!("../../schemas/session-status-changed.v1.json");

/// One request as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    answered: u16,
    at: Instant,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// `(session_id, status)` of the change it carries.
    fn change(&self) -> (String, String) {
        let body = self.json();
        (
            body["data"]["session_id"].as_str().unwrap().to_string(),
            body["data"]["status"].as_str().unwrap().to_string(),
        )
    }
}

/// How the receiver answers its `n`th request (from 0): status and `Retry-After`.
type Answer = Arc<dyn Fn(usize) -> (u16, Option<u64>) + Send + Sync>;

/// A loopback HTTP receiver that records every request.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    /// Notified after each request is recorded.
    arrived: Arc<tokio::sync::Notify>,
}

/// A receiver that answers 500 to the first `fail_first` requests, 200 after.
async fn receiver(fail_first: usize) -> Receiver {
    receiver_answering(Arc::new(move |n| {
        (if n < fail_first { 500 } else { 200 }, None)
    }))
    .await
}

async fn receiver_answering(answer: Answer) -> Receiver {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let seen = Arc::new(AtomicUsize::new(0));
    let store = got.clone();
    let arrived: Arc<tokio::sync::Notify> = Arc::default();
    let notify = arrived.clone();
    let handler = move |headers: HeaderMap, body: Bytes| {
        let store = store.clone();
        let seen = seen.clone();
        let notify = notify.clone();
        let answer = answer.clone();
        async move {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let (status, retry_after) = answer(n);
            let h = |k: &str| {
                headers
                    .get(k)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            store.lock().unwrap().push(Received {
                id: h("webhook-id"),
                timestamp: h("webhook-timestamp"),
                signature: h("webhook-signature"),
                body: body.to_vec(),
                answered: status,
                at: Instant::now(),
            });
            notify.notify_waiters();
            let mut response = axum::response::Response::new(axum::body::Body::empty());
            *response.status_mut() = AxStatus::from_u16(status).unwrap();
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
            }
            response
        }
    };
    let app = axum::Router::new().route("/hook", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, got, arrived }
}

/// The `v1,` entries of a request's signature that verify with `secret`, checked the
/// way a receiver would (Standard Webhooks, written here from the spec): HMAC-SHA256
/// over `id.timestamp.body` with the secret's bytes.
fn entries_verifying(secret: &str, r: &Received) -> usize {
    testkit::webhooks::signature_entries(secret, &r.id, &r.timestamp, &r.body, &r.signature)
}

/// Whether any entry of the request's signature verifies with `secret`.
fn verifies(secret: &str, r: &Received) -> bool {
    entries_verifying(secret, r) > 0
}

/// The payload schema, compiled by a JSON Schema (2020-12) validator.
fn schema() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "the schema declares its draft"
        );
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .expect("the schema compiles")
    })
}

/// Asserts that a body validates against `schemas/session-status-changed.v1.json`.
fn conforms(body: &Value) {
    let errors: Vec<String> = schema().iter_errors(body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{body} does not validate: {errors:?}");
    assert!(body["data"]["position"].as_i64().unwrap() >= 1);
}

#[test]
fn the_payload_schema_refuses_what_the_contract_forbids() {
    // Given a body as the dispatcher sends it
    let good = json!({
        "type": "session.status_changed",
        "timestamp": "2026-12-02T10:00:00Z",
        "data": {
            "session_id": "0b6a3f4e-8a43-4a7e-9b59-1c1c7f0e2a10",
            "name": "s", "owner": "alice", "type": "interactive",
            "scaling_group": "default", "status": "RUNNING", "previous_status": "CREATING",
            "status_info": null, "position": 7,
            "status_changed": "2026-12-02T10:00:00Z"
        }
    });
    // Then it validates (so the cases below fail for their own reason)
    let errors: Vec<String> = schema().iter_errors(&good).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    // And each change to what the contract forbids is refused
    let mut cases = Vec::new();
    let mut extra = good.clone();
    extra["data"]["colour"] = json!("red");
    cases.push(("an unknown field", extra));
    let mut status = good.clone();
    status["data"]["status"] = json!("SLEEPING");
    cases.push(("an unknown status", status));
    let mut missing = good.clone();
    missing["data"]
        .as_object_mut()
        .unwrap()
        .remove("session_id");
    cases.push(("a missing session_id", missing));
    let mut kind = good.clone();
    kind["type"] = json!("session.created");
    cases.push(("another type", kind));
    let mut when = good.clone();
    when["timestamp"] = json!("yesterday");
    cases.push(("a timestamp that is not RFC 3339", when));
    for (what, body) in cases {
        assert!(!schema().is_valid(&body), "{what} was accepted: {body}");
    }
}

async fn app(backend: Backend) -> TestApp {
    app_with(backend, |_| {}, |_| {}).await
}

/// An app that may deliver to loopback receivers, retrying every 0.2 s (7 attempts),
/// with `change` applied to its webhook settings and `options` to its serve options.
async fn app_with(
    backend: Backend,
    change: impl FnOnce(&mut sessiond::config::WebhookConfig),
    options: impl FnOnce(&mut sessiond::server::ServeOptions),
) -> TestApp {
    spawn_app_with_settings(
        backend,
        |s| {
            s.secret_key = Some(sessiond::config::SecretText::new(KEK));
            s.webhooks.allow_networks = vec!["127.0.0.0/8".into(), "::1/128".into()];
            s.webhooks.retry_schedule = vec![0.0, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2];
            change(&mut s.webhooks);
        },
        options,
    )
    .await
}

/// Subscribes `url` with `filter` (`null`: every change); returns its id and secret.
async fn subscribe(app: &TestApp, url: &str, filter: Value) -> (String, String) {
    let mut body = json!({"url": url});
    if !filter.is_null() {
        body["filter"] = filter;
    }
    let r = app.post("/v1/webhooks", Some(ADMIN_KEY), &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    (
        r.body["webhook_id"].as_str().unwrap().to_string(),
        r.body["secret"].as_str().unwrap().to_string(),
    )
}

/// The delivery log of a subscription (`status` may be empty: all).
async fn deliveries(app: &TestApp, webhook_id: &str, status: &str) -> Vec<Value> {
    let filter = if status.is_empty() {
        String::new()
    } else {
        format!("&status={status}")
    };
    let r = app
        .get(
            &format!("/v1/webhooks/{webhook_id}/deliveries?limit=500{filter}"),
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body["items"].as_array().unwrap().clone()
}

/// Polls `check` until it holds (at most 30 s): for conditions only the API can show.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A counter's value in `/metrics` (0 when absent).
async fn metric(app: &TestApp, line_prefix: &str) -> f64 {
    app.metrics_text()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The number of delivery rows of a target (a subscription id, or `callback`).
async fn delivery_rows(app: &TestApp, target: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM webhook_deliveries WHERE target = '{target}'");
    testkit::db::scalar(app.app.db(), Box::leak(sql.into_boxed_str())).await
}

/// Waits until `cond` holds on what the receiver got (at most 60 s).
async fn wait_for(rx: &Receiver, what: &str, cond: impl Fn(&[Received]) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        // Registered before the check, so a request recorded in between is not missed.
        let next = rx.arrived.notified();
        tokio::pin!(next);
        next.as_mut().enable();
        if cond(&rx.got.lock().unwrap()) {
            return;
        }
        if tokio::time::timeout_at(deadline, next).await.is_err() {
            // A copy, so the panic below does not poison the receiver's lock.
            let got = rx.got.lock().unwrap().clone();
            let answered: BTreeMap<u16, usize> = got.iter().fold(BTreeMap::new(), |mut m, r| {
                *m.entry(r.answered).or_default() += 1;
                m
            });
            // When they arrived (per 500 ms since the first): a stall shows as a gap.
            let mut per_half_second: BTreeMap<u128, usize> = BTreeMap::new();
            if let Some(first) = got.first() {
                for r in got.iter() {
                    *per_half_second
                        .entry(r.at.duration_since(first.at).as_millis() / 500)
                        .or_default() += 1;
                }
            }
            panic!(
                "timed out waiting for {what}: {} requests received, by answer {answered:?}, \
                 per 500 ms {per_half_second:?}",
                got.len()
            );
        }
    }
}

async fn every_status_change_arrives_signed_in_order_per_session_after_the_receiver_recovers(
    backend: Backend,
) {
    // Given a receiver that fails its first 5 requests and a subscription to it
    let app = app(backend).await;
    let rx = receiver(5).await;
    let created = app
        .post(
            "/v1/webhooks",
            Some(ADMIN_KEY),
            &json!({"url": rx.url, "description": "test receiver"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let webhook_id = created.body["webhook_id"].as_str().unwrap().to_string();
    let secret = created.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));

    // When 10 sessions are enqueued and then cancelled
    app.create_group("default").await;
    let user = app.user_key("alice").await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let r = app.enqueue(&user, &format!("s{i}")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        ids.push(r.body["session_id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        let r = app.delete(&format!("/v1/sessions/{id}"), Some(&user)).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }

    // Then every change (PENDING and CANCELLED of each) is received with a 200
    wait_for(&rx, "20 delivered changes", |got| {
        got.iter().filter(|r| r.answered == 200).count() >= 20
    })
    .await;
    let got = rx.got.lock().unwrap().clone();
    let mut by_session: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    let mut ids_of: HashMap<String, (String, String)> = HashMap::new();
    for r in &got {
        // each request verifies with the subscription's secret, from the raw bytes
        assert!(
            verifies(&secret, r),
            "signature of {} does not verify",
            r.id
        );
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        conforms(&body);
        let session = body["data"]["session_id"].as_str().unwrap().to_string();
        let status = body["data"]["status"].as_str().unwrap().to_string();
        // a retry of a change carries the same webhook-id; another change another one
        let key = (session.clone(), status.clone());
        match ids_of.get(&r.id) {
            Some(k) => assert_eq!(k, &key, "webhook-id {} reused for another change", r.id),
            None => {
                ids_of.insert(r.id.clone(), key);
            }
        }
        if r.answered == 200 {
            by_session
                .entry(session)
                .or_default()
                .push((body["data"]["position"].as_i64().unwrap(), status));
        }
    }
    assert_eq!(by_session.len(), 10);
    for (session, changes) in &by_session {
        // in log order per session: PENDING, then CANCELLED
        let statuses: Vec<&str> = changes.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(statuses, vec!["PENDING", "CANCELLED"], "{session}");
        assert!(changes.windows(2).all(|w| w[0].0 < w[1].0));
    }
    assert!(got.iter().any(|r| r.answered == 500));

    // And the delivery log shows every delivery delivered, some after several attempts
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = app
            .get(
                &format!("/v1/webhooks/{webhook_id}/deliveries?status=delivered"),
                Some(ADMIN_KEY),
            )
            .await;
        assert_eq!(log.status, StatusCode::OK, "{:?}", log.body);
        if log.body["items"].as_array().unwrap().len() == 20 || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 20, "{:?}", log.body);
    assert!(items.iter().any(|d| d["attempts"].as_i64().unwrap() > 1));
    assert!(items.iter().all(|d| d["delivered_at"].is_string()));

    // And a redelivery sends a delivery again with the same webhook-id
    let first = items[0]["delivery_id"].as_str().unwrap().to_string();
    let before = rx.got.lock().unwrap().len();
    let r = app
        .post(
            &format!("/v1/webhooks/{webhook_id}/deliveries/{first}/redeliver"),
            Some(ADMIN_KEY),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    wait_for(&rx, "the redelivery", |got| {
        got.len() > before && got[before..].iter().any(|r| r.id == first)
    })
    .await;
    app.stop().await;
}

async fn bad_subscription_input_is_422_naming_the_field_and_stores_nothing(backend: Backend) {
    let app = app(backend).await;
    let before = app.event_count().await;
    for (body, field) in [
        (json!({"url": "ftp://example.com/hook"}), "url"),
        (json!({"url": "http://user:pw@example.com/hook"}), "url"),
        (json!({"url": "http://10.1.2.3/hook"}), "url"),
        (json!({"url": "http://[fd00::1]/hook"}), "url"),
        (json!({"url": "https://example.com/#frag"}), "url"),
        (
            json!({"url": "https://8.8.8.8/", "filter": {"statuses": ["RUNNING", "SLEEPING"]}}),
            "filter.statuses[1]",
        ),
        (
            json!({"url": "https://8.8.8.8/", "colour": "red"}),
            "colour",
        ),
    ] {
        let r = app.post("/v1/webhooks", Some(ADMIN_KEY), &body).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {:?}",
            r.body
        );
        assert!(r.message().contains(field), "{body}: {}", r.message());
    }
    // A user key may not subscribe
    let user = app.user_key("alice").await;
    let r = app
        .post(
            "/v1/webhooks",
            Some(&user),
            &json!({"url": "https://example.com/"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A callback_url is checked like a subscription's
    app.create_group("default").await;
    let r = app
        .post(
            "/v1/sessions",
            Some(&user),
            &json!({"name": "s", "type": "interactive", "image": "python:3.12",
                    "resources": {"cpu": 1}, "callback_url": "http://169.254.169.254/x"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert!(r.message().starts_with("callback_url"), "{}", r.message());
    // Nothing but the group was stored
    assert_eq!(app.event_count().await, before + 1);
    app.stop().await;
}

async fn a_callback_url_gets_its_sessions_changes_signed_with_the_owners_secret(backend: Backend) {
    let app = app(backend).await;
    let rx = receiver(0).await;
    app.create_group("default").await;
    let user = app.user_key("bob").await;
    let r = app
        .post(
            "/v1/sessions",
            Some(&user),
            &json!({"name": "cb", "type": "interactive", "image": "python:3.12",
                    "resources": {"cpu": 1}, "callbackUrl": rx.url}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["session_id"].as_str().unwrap().to_string();
    let secret = app.get("/v1/users/bob/callback-secret", Some(&user)).await;
    assert_eq!(secret.status, StatusCode::OK, "{:?}", secret.body);
    let secret = secret.body["secret"].as_str().unwrap().to_string();
    // another user cannot read it
    let eve = app.user_key("eve").await;
    let r = app.get("/v1/users/bob/callback-secret", Some(&eve)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    app.delete(&format!("/v1/sessions/{id}"), Some(&user)).await;
    wait_for(&rx, "PENDING and CANCELLED", |got| got.len() >= 2).await;
    let got = rx.got.lock().unwrap().clone();
    for r in &got {
        assert!(verifies(&secret, r));
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        conforms(&body);
        assert_eq!(body["data"]["session_id"], id.as_str());
    }
    app.stop().await;
}

async fn a_429_with_retry_after_delays_the_next_attempt_by_at_least_that(backend: Backend) {
    // Given a receiver that answers its first request 429 with `Retry-After: 2` (the
    // schedule alone would retry after 0.2 s)
    let app = app(backend).await;
    let rx = receiver_answering(Arc::new(
        |n| {
            if n == 0 {
                (429, Some(2))
            } else {
                (200, None)
            }
        },
    ))
    .await;
    let (webhook_id, _) = subscribe(&app, &rx.url, Value::Null).await;
    // When a change is made
    app.create_group("default").await;
    let user = app.user_key("alice").await;
    assert_eq!(app.enqueue(&user, "s").await.status, StatusCode::CREATED);
    // Then the second attempt comes at least 2 s after the first, with the same id
    wait_for(&rx, "the retry", |got| got.len() >= 2).await;
    let got = rx.got.lock().unwrap().clone();
    assert_eq!((got[0].answered, got[1].answered), (429, 200));
    assert_eq!(got[0].id, got[1].id);
    let gap = got[1].at.duration_since(got[0].at);
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}");
    // And the log says so
    eventually("the delivery recorded", || async {
        let log = deliveries(&app, &webhook_id, "delivered").await;
        log.len() == 1 && log[0]["attempts"] == 2
    })
    .await;
    app.stop().await;
}

async fn a_410_disables_the_subscription_and_re_enabling_resumes_from_what_is_pending(
    backend: Backend,
) {
    // Given a receiver that answers its first request 410, and a second subscription
    // that sees every change (the witness that the dispatcher went on)
    let app = app(backend).await;
    let gone =
        receiver_answering(Arc::new(|n| if n == 0 { (410, None) } else { (200, None) })).await;
    let witness = receiver(0).await;
    let (gone_id, gone_secret) = subscribe(&app, &gone.url, Value::Null).await;
    subscribe(&app, &witness.url, Value::Null).await;
    app.create_group("default").await;
    let user = app.user_key("alice").await;
    let first = app.enqueue(&user, "s0").await;
    let s0 = first.body["session_id"].as_str().unwrap().to_string();

    // When its endpoint answers 410 Gone
    wait_for(&gone, "the 410", |got| !got.is_empty()).await;
    // Then the subscription is disabled, saying why
    eventually("the subscription disabled", || async {
        let w = app
            .get(&format!("/v1/webhooks/{gone_id}"), Some(ADMIN_KEY))
            .await;
        w.body["enabled"] == false
    })
    .await;
    let w = app
        .get(&format!("/v1/webhooks/{gone_id}"), Some(ADMIN_KEY))
        .await;
    assert!(w.body["disabled_reason"].as_str().unwrap().contains("410"));

    // And later changes are not attempted (a disabled subscription gets no deliveries):
    // the witness gets them, the gone one does not
    let s1 = app.enqueue(&user, "s1").await.body["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.delete(&format!("/v1/sessions/{s0}"), Some(&user)).await;
    wait_for(&witness, "the witness's 3 changes", |got| {
        got.iter().filter(|r| r.answered == 200).count() >= 3
    })
    .await;
    assert!(
        app.app
            .wait_for_head(&app.app.engine.names(), Duration::from_secs(20))
            .await
            .unwrap(),
        "the outbox caught up"
    );
    assert_eq!(
        gone.got.lock().unwrap().len(),
        1,
        "attempted while disabled"
    );
    let open = deliveries(&app, &gone_id, "").await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["status"], "failed");

    // When it is enabled again, and another change is made
    let r = app
        .patch(
            &format!("/v1/webhooks/{gone_id}"),
            Some(ADMIN_KEY),
            &json!({"enabled": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    app.delete(&format!("/v1/sessions/{s1}"), Some(&user)).await;
    // Then it resumes from what was pending (the change it answered 410), then the new one
    wait_for(&gone, "the pending and the new change", |got| {
        got.iter().filter(|r| r.answered == 200).count() >= 2
    })
    .await;
    let got = gone.got.lock().unwrap().clone();
    let delivered: Vec<(String, String)> = got
        .iter()
        .filter(|r| r.answered == 200)
        .map(|r| {
            assert!(verifies(&gone_secret, r));
            conforms(&r.json());
            r.change()
        })
        .collect();
    assert!(
        delivered.contains(&(s0.clone(), "PENDING".to_string())),
        "{delivered:?}"
    );
    assert!(
        delivered.contains(&(s1, "CANCELLED".to_string())),
        "{delivered:?}"
    );
    // The retry and the new change belong to different sessions' chains, which are
    // not ordered with each other: the retry is found by its change, not by its place.
    let resent = got
        .iter()
        .skip(1)
        .find(|r| r.answered == 200 && r.change() == (s0.clone(), "PENDING".to_string()))
        .map(|r| r.id.clone());
    assert_eq!(
        resent.as_deref(),
        Some(got[0].id.as_str()),
        "the 410'd delivery is sent again with its id"
    );
    eventually("both delivered", || async {
        deliveries(&app, &gone_id, "delivered").await.len() == 2
    })
    .await;
    app.stop().await;
}

async fn a_delivery_is_dead_after_its_last_attempt_and_redelivery_sends_it_again(backend: Backend) {
    // Given a schedule of 3 attempts and a receiver that fails until told otherwise
    let app = app_with(backend, |w| w.retry_schedule = vec![0.0, 0.1, 0.1], |_| {}).await;
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = failing.clone();
    let rx = receiver_answering(Arc::new(move |_| {
        if flag.load(Ordering::SeqCst) {
            (500, None)
        } else {
            (200, None)
        }
    }))
    .await;
    let (webhook_id, _) = subscribe(&app, &rx.url, Value::Null).await;
    let dead_metric = "sessiond_webhook_deliveries_total{outcome=\"dead\"} ";
    let dead_before = metric(&app, dead_metric).await;
    app.create_group("default").await;
    let user = app.user_key("alice").await;
    assert_eq!(app.enqueue(&user, "s").await.status, StatusCode::CREATED);

    // When every attempt fails
    wait_for(&rx, "3 attempts", |got| got.len() >= 3).await;
    // Then the delivery is dead after the third, in the log and in the metrics
    eventually("the delivery dead", || async {
        deliveries(&app, &webhook_id, "dead").await.len() == 1
    })
    .await;
    let dead = deliveries(&app, &webhook_id, "dead").await.remove(0);
    assert_eq!(dead["attempts"], 3, "{dead:?}");
    assert_eq!(dead["last_status_code"], 500);
    assert!(metric(&app, dead_metric).await >= dead_before + 1.0);
    assert_eq!(rx.got.lock().unwrap().len(), 3, "no attempt after the last");

    // When the receiver recovers and the delivery is redelivered
    failing.store(false, Ordering::SeqCst);
    let id = dead["delivery_id"].as_str().unwrap().to_string();
    let r = app
        .post(
            &format!("/v1/webhooks/{webhook_id}/deliveries/{id}/redeliver"),
            Some(ADMIN_KEY),
            &json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    // Then it arrives with the same webhook-id and is delivered
    wait_for(&rx, "the redelivery", |got| {
        got.iter().any(|r| r.answered == 200 && r.id == id)
    })
    .await;
    eventually("the redelivery recorded", || async {
        deliveries(&app, &webhook_id, "delivered").await.len() == 1
    })
    .await;
    app.stop().await;
}

async fn during_a_rotation_both_secrets_sign_and_after_the_overlap_only_the_new_one(
    backend: Backend,
) {
    // Given a controlled clock (ahead of the wall clock, so what the log records is
    // due) and a 10-minute overlap
    let clock = sessiond::clock::ManualClock::new(chrono::Utc::now() + chrono::Duration::hours(1));
    let shared = clock.clone();
    let app = app_with(
        backend,
        |w| w.rotation_overlap_secs = 600,
        |o| o.clock = Some(Arc::new(shared)),
    )
    .await;
    let rx = receiver(0).await;
    let (webhook_id, old) = subscribe(&app, &rx.url, Value::Null).await;
    app.create_group("default").await;
    let user = app.user_key("alice").await;
    let signed = |n: usize| {
        let got = rx.got.lock().unwrap().clone();
        got[n].clone()
    };
    app.enqueue(&user, "before").await;
    wait_for(&rx, "the first change", |got| !got.is_empty()).await;
    let r = signed(0);
    assert_eq!(r.signature.split(' ').count(), 1, "{}", r.signature);
    assert_eq!(entries_verifying(&old, &r), 1);

    // When the secret is rotated
    let rotated = app
        .post(
            &format!("/v1/webhooks/{webhook_id}/rotate-secret"),
            Some(ADMIN_KEY),
            &json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let new = rotated.body["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    // Then during the overlap both sign, each entry verifying with its own secret
    app.enqueue(&user, "during").await;
    wait_for(&rx, "the second change", |got| got.len() >= 2).await;
    let r = signed(1);
    assert_eq!(r.signature.split(' ').count(), 2, "{}", r.signature);
    assert_eq!(entries_verifying(&old, &r), 1);
    assert_eq!(entries_verifying(&new, &r), 1);

    // And after the overlap only the new one signs
    clock.advance(chrono::Duration::seconds(601));
    app.enqueue(&user, "after").await;
    wait_for(&rx, "the third change", |got| got.len() >= 3).await;
    let r = signed(2);
    assert_eq!(r.signature.split(' ').count(), 1, "{}", r.signature);
    assert_eq!(entries_verifying(&new, &r), 1);
    assert_eq!(entries_verifying(&old, &r), 0);
    app.stop().await;
}

async fn a_receiver_that_never_answers_costs_one_timeout_not_a_stuck_queue(backend: Backend) {
    // Given an endpoint that accepts connections and never answers, a 3 s timeout, and
    // a healthy receiver beside it
    let app = app_with(backend, |w| w.timeout_ms = 3_000, |_| {}).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let held_url = format!("http://{}/hook", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let healthy = receiver(0).await;
    let (held_id, _) = subscribe(&app, &held_url, Value::Null).await;
    subscribe(&app, &healthy.url, Value::Null).await;

    // When 5 sessions are enqueued and cancelled
    app.create_group("default").await;
    let user = app.user_key("alice").await;
    for i in 0..5 {
        let id = app.enqueue(&user, &format!("s{i}")).await.body["session_id"]
            .as_str()
            .unwrap()
            .to_string();
        app.delete(&format!("/v1/sessions/{id}"), Some(&user)).await;
    }
    // Then the healthy receiver gets all 10 changes while the held attempts are still
    // waiting for their answer
    wait_for(&healthy, "the healthy receiver's 10 changes", |got| {
        got.len() >= 10
    })
    .await;
    let held = deliveries(&app, &held_id, "").await;
    assert!(
        held.iter().all(|d| d["attempts"] == 0),
        "a held attempt ended before the healthy receiver got everything: {held:?}"
    );
    assert!(accepted.load(Ordering::SeqCst) >= 1);
    // And each held attempt ends with its one timeout, to be retried
    eventually("the held attempts timed out", || async {
        let log = deliveries(&app, &held_id, "failed").await;
        !log.is_empty()
            && log.iter().all(|d| {
                d["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("timed out") || e.contains("timeout"))
            })
    })
    .await;
    app.stop().await;
}

/// Drives session `id` on agent `agent_key` from SCHEDULED to TERMINATED.
async fn drive(app: &TestApp, user: &str, agent_key: &str, id: &str) {
    for event in ["preparing", "pulling", "prepared", "creating", "started"] {
        let r = app
            .kernel_event(agent_key, id, json!({"event": event}))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{event}: {:?}", r.body);
    }
    let r = app.delete(&format!("/v1/sessions/{id}"), Some(user)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = app
        .kernel_event(
            agent_key,
            id,
            json!({"event": "terminated", "exit_code": 0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

async fn a_hundred_sessions_lifecycles_arrive_in_order_and_filters_deliver_exactly_their_matches(
    backend: Backend,
) {
    // Given two groups with an agent each, two owners, and five subscriptions: every
    // change, by status, by group, by owner, and by status and owner together
    let app = app(backend).await;
    let mut agents = HashMap::new();
    for (agent, group) in [("a1", "g1"), ("a2", "g2")] {
        app.create_group(group).await;
        let key = app.agent_key(agent).await;
        let r = app
            .post(
                "/v1/agents",
                Some(&key),
                &json!({"agent_id": agent, "scaling_group": group, "addr": "10.0.0.1:6001",
                        "available_slots": {"cpu": 64, "mem": "256g"}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        agents.insert(group, key);
    }
    let keys = HashMap::from([
        ("alice", app.user_key("alice").await),
        ("bob", app.user_key("bob").await),
    ]);
    let filters = [
        Value::Null,
        json!({"statuses": ["RUNNING", "TERMINATED"]}),
        json!({"scaling_groups": ["g2"]}),
        json!({"owners": ["bob"]}),
        json!({"statuses": ["TERMINATED"], "owners": ["bob"]}),
    ];
    let mut subscribers = Vec::new();
    for filter in filters {
        let rx = receiver(0).await;
        let (id, secret) = subscribe(&app, &rx.url, filter.clone()).await;
        subscribers.push((filter, rx, id, secret));
    }

    // When 100 sessions are driven through their lifecycles
    let mut sessions = Vec::new();
    for i in 0..100 {
        let group = if i % 2 == 0 { "g1" } else { "g2" };
        let owner = if i % 5 == 0 { "bob" } else { "alice" };
        let r = app
            .post(
                "/v1/sessions",
                Some(&keys[owner]),
                &json!({"name": format!("w{i}"), "type": "interactive", "image": "python:3.12",
                        "resources": {"cpu": 1, "mem": "1g"}, "scaling_group": group}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        sessions.push((
            r.body["session_id"].as_str().unwrap().to_string(),
            group,
            owner,
        ));
    }
    for (id, _, owner) in &sessions {
        app.wait_for_status(&keys[owner], id, "SCHEDULED").await;
    }
    for chunk in sessions.chunks(20) {
        futures::future::join_all(
            chunk
                .iter()
                .map(|(id, group, owner)| drive(&app, &keys[owner], &agents[group], id)),
        )
        .await;
    }

    // Then each subscriber gets exactly the changes its filter matches, each at least
    // once, in order per session, signed, every body valid against the schema
    for (filter, rx, webhook_id, secret) in &subscribers {
        let matches = |group: &str, owner: &str, status: &str| {
            let any_or = |key: &str, value: &str| {
                filter[key]
                    .as_array()
                    .is_none_or(|set| set.iter().any(|v| v == value))
            };
            any_or("statuses", status) && any_or("scaling_groups", group) && any_or("owners", owner)
        };
        let mut expected: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (id, group, owner) in &sessions {
            let statuses: Vec<&str> = LIFECYCLE
                .iter()
                .copied()
                .filter(|s| matches(group, owner, s))
                .collect();
            if !statuses.is_empty() {
                expected.insert(id.clone(), statuses);
            }
        }
        let total: usize = expected.values().map(Vec::len).sum();
        wait_for(rx, &format!("{total} changes for {filter}"), |got| {
            got.iter()
                .filter(|r| r.answered == 200)
                .map(|r| &r.id)
                .collect::<std::collections::HashSet<_>>()
                .len()
                >= total
        })
        .await;
        let got = rx.got.lock().unwrap().clone();
        let mut ids_of: HashMap<String, (String, String)> = HashMap::new();
        let mut received: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
        for r in &got {
            assert!(verifies(secret, r), "{filter}: {} does not verify", r.id);
            let body = r.json();
            conforms(&body);
            let change = r.change();
            let first = ids_of.entry(r.id.clone()).or_insert_with(|| change.clone());
            assert_eq!(
                first, &change,
                "webhook-id {} reused for another change",
                r.id
            );
            let seen = received.entry(change.0.clone()).or_default();
            // a duplicate (same id) is allowed; the first receipt of each is in order
            if !seen.iter().any(|(_, s)| *s == change.1) {
                seen.push((body["data"]["position"].as_i64().unwrap(), change.1));
            }
        }
        let received: BTreeMap<String, Vec<&str>> = received
            .iter()
            .map(|(id, changes)| {
                assert!(
                    changes.windows(2).all(|w| w[0].0 < w[1].0),
                    "{filter}: {id} out of order"
                );
                (
                    id.clone(),
                    changes.iter().map(|(_, s)| s.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(received, expected, "{filter}");
        // And the outbox holds exactly one delivery row per matching change
        assert_eq!(
            delivery_rows(&app, webhook_id).await,
            total as i64,
            "{filter}"
        );
    }
    // And the outbox equals a fresh fold of the log
    audit_clean(&app).await;
    app.stop().await;
}

both_backends!(
    a_429_with_retry_after_delays_the_next_attempt_by_at_least_that,
    a_410_disables_the_subscription_and_re_enabling_resumes_from_what_is_pending,
    a_delivery_is_dead_after_its_last_attempt_and_redelivery_sends_it_again,
    during_a_rotation_both_secrets_sign_and_after_the_overlap_only_the_new_one,
    a_receiver_that_never_answers_costs_one_timeout_not_a_stuck_queue,
    a_hundred_sessions_lifecycles_arrive_in_order_and_filters_deliver_exactly_their_matches,
    every_status_change_arrives_signed_in_order_per_session_after_the_receiver_recovers,
    bad_subscription_input_is_422_naming_the_field_and_stores_nothing,
    a_callback_url_gets_its_sessions_changes_signed_with_the_owners_secret,
);
