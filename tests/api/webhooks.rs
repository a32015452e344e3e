//! Webhooks end to end (SPEC §8, issue #15): a real loopback receiver that verifies
//! every request with its own HMAC over the raw bytes it received (no code of the
//! dispatcher's), status changes delivered in order per session after the receiver
//! recovers from 500s, the delivery log, and bad subscription input refused with
//! nothing stored.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxStatus};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::{both_backends, spawn_app_with_settings, Backend, TestApp, ADMIN_KEY};

const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SCHEMA: &str = include_str!("../../schemas/session-status-changed.v1.json");

/// One request as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    answered: u16,
}

/// A loopback HTTP receiver: answers 500 to the first `fail_first` requests, 200 after.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    /// Notified after each request is recorded.
    arrived: Arc<tokio::sync::Notify>,
}

async fn receiver(fail_first: usize) -> Receiver {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let seen = Arc::new(AtomicUsize::new(0));
    let store = got.clone();
    let arrived: Arc<tokio::sync::Notify> = Arc::default();
    let notify = arrived.clone();
    let handler = move |headers: HeaderMap, body: Bytes| {
        let store = store.clone();
        let seen = seen.clone();
        let notify = notify.clone();
        async move {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let status = if n < fail_first { 500 } else { 200 };
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
            });
            notify.notify_waiters();
            AxStatus::from_u16(status).unwrap()
        }
    };
    let app = axum::Router::new().route("/hook", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, got, arrived }
}

/// Verifies a request the way a receiver would (Standard Webhooks, written here from
/// the spec): HMAC-SHA256 over `id.timestamp.body` with the secret's bytes; any `v1,`
/// entry may match.
fn verifies(secret: &str, r: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", r.id, r.timestamp).as_bytes());
    mac.update(&r.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    r.signature.split(' ').any(|entry| entry == expected)
}

/// Checks a body against the schema's closed shape: every required field present, no
/// other field, the enums and constants respected.
fn conforms(body: &Value) {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    let check = |value: &Value, schema: &Value| {
        let obj = value.as_object().expect("an object");
        let props = schema["properties"].as_object().unwrap();
        for r in schema["required"].as_array().unwrap() {
            assert!(
                obj.contains_key(r.as_str().unwrap()),
                "missing {r} in {value}"
            );
        }
        for k in obj.keys() {
            assert!(props.contains_key(k), "unexpected field {k} in {value}");
        }
    };
    check(body, &schema);
    check(&body["data"], &schema["properties"]["data"]);
    assert_eq!(body["type"], "session.status_changed");
    let statuses = schema["properties"]["data"]["properties"]["status"]["enum"]
        .as_array()
        .unwrap();
    assert!(statuses.contains(&body["data"]["status"]), "{body}");
    assert!(body["data"]["position"].as_i64().unwrap() >= 1);
}

async fn app(backend: Backend) -> TestApp {
    spawn_app_with_settings(
        backend,
        |s| {
            s.secret_key = Some(sessiond::config::SecretText::new(KEK));
            s.webhooks.allow_networks = vec!["127.0.0.0/8".into(), "::1/128".into()];
            s.webhooks.retry_schedule = vec![0.0, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2];
        },
        |_| {},
    )
    .await
}

/// Waits until `cond` holds on what the receiver got (at most 30 s).
async fn wait_for(rx: &Receiver, what: &str, cond: impl Fn(&[Received]) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        // Registered before the check, so a request recorded in between is not missed.
        let next = rx.arrived.notified();
        tokio::pin!(next);
        next.as_mut().enable();
        if cond(&rx.got.lock().unwrap()) {
            return;
        }
        assert!(
            tokio::time::timeout_at(deadline, next).await.is_ok(),
            "timed out waiting for {what}"
        );
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

both_backends!(
    every_status_change_arrives_signed_in_order_per_session_after_the_receiver_recovers,
    bad_subscription_input_is_422_naming_the_field_and_stores_nothing,
    a_callback_url_gets_its_sessions_changes_signed_with_the_owners_secret,
);
