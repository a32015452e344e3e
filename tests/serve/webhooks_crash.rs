//! Webhook deliveries survive `kill -9` of the server sending them (issue #15): the
//! restarted server sends every status change at least once, a change sent again keeps
//! its `webhook-id`, the outbox holds one delivery row per change and target, and
//! `sessionctl audit verify` is clean.
//!
//! The receiver is a loopback HTTP server in the test process that checks each request
//! with its own HMAC over the raw bytes. It answers its first few requests 200 (after a
//! small delay) and holds the ones after until the server has been killed, so some
//! deliveries are in flight — sent, not answered, not recorded — at the kill.

use axum::body::Bytes;
use axum::http::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::db::{fresh_url, Backend};
use testkit::http::call;

use super::{start_with, temp_dir, terminate, Server};

const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// Sessions enqueued and cancelled: two status changes each.
const SESSIONS: usize = 20;
/// Requests the receiver answers before the kill; the ones after are held.
const ANSWERED_BEFORE_KILL: usize = 4;
/// How long the receiver takes to answer.
const ANSWER_DELAY: Duration = Duration::from_millis(30);

/// One request as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    /// Its arrival number (from 0).
    n: usize,
    /// Whether it arrived after the restart.
    after_restart: bool,
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

impl Received {
    /// `(session_id, status)` of the change it carries.
    fn change(&self) -> (String, String) {
        let body: Value = serde_json::from_slice(&self.body).expect("a JSON body");
        (
            body["data"]["session_id"].as_str().unwrap().to_string(),
            body["data"]["status"].as_str().unwrap().to_string(),
        )
    }
}

/// A loopback receiver that records every request when it arrives.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    /// Notified after each request is recorded.
    arrived: Arc<tokio::sync::Notify>,
    /// Set once the server was killed: held requests go on, later ones are not held.
    killed: tokio::sync::watch::Sender<bool>,
}

async fn receiver() -> Receiver {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let arrived: Arc<tokio::sync::Notify> = Arc::default();
    let (killed, gate) = tokio::sync::watch::channel(false);
    let seen = Arc::new(AtomicUsize::new(0));
    let (store, notify) = (got.clone(), arrived.clone());
    let handler = move |headers: HeaderMap, body: Bytes| {
        let (store, notify, seen, mut gate) =
            (store.clone(), notify.clone(), seen.clone(), gate.clone());
        async move {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let h = |k: &str| {
                headers
                    .get(k)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            store.lock().unwrap().push(Received {
                n,
                after_restart: *gate.borrow(),
                id: h("webhook-id"),
                timestamp: h("webhook-timestamp"),
                signature: h("webhook-signature"),
                body: body.to_vec(),
            });
            notify.notify_waiters();
            if n >= ANSWERED_BEFORE_KILL {
                // In flight until the server is gone.
                let _ = gate.wait_for(|killed| *killed).await;
            }
            tokio::time::sleep(ANSWER_DELAY).await;
            axum::http::StatusCode::OK
        }
    };
    let app = axum::Router::new().route("/hook", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url,
        got,
        arrived,
        killed,
    }
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
            "timed out waiting for {what}: {} requests",
            rx.got.lock().unwrap().len()
        );
    }
}

/// Whether the request's signature verifies with `secret`, checked the way a receiver
/// would (Standard Webhooks, from the spec): HMAC-SHA256 over `id.timestamp.body`.
fn verifies(secret: &str, r: &Received) -> bool {
    testkit::webhooks::signature_entries(secret, &r.id, &r.timestamp, &r.body, &r.signature) > 0
}

fn serve(url: &str, admin: &str, cwd: &std::path::Path) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessiond"));
    command
        .env("SESSIOND_BOOTSTRAP_ADMIN_KEY", admin)
        .env("SESSIOND_SECRET_KEY", KEK)
        .env("SESSIOND_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8")
        .env(
            "SESSIOND_WEBHOOK_RETRY_SCHEDULE",
            "0,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2,0.2",
        )
        .env("SESSIOND_WEBHOOK_TIMEOUT_MS", "5000");
    start_with(
        command,
        &["serve", "--database-url", url, "--listen", "127.0.0.1:0"],
        cwd,
    )
}

/// Runs `sessionctl --database-url <url> <args>`: (exit code, stdout, stderr).
fn sessionctl(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sessionctl"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env_remove("SESSIOND_DATABASE_URL")
        .env("SESSIOND_SECRET_KEY", KEK)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn deliveries_survive_kill_9_of_the_server_sending_them(backend: Backend) {
    // Given a server that may deliver to loopback, a receiver and a subscription to it
    let url = fresh_url(backend).await;
    let admin = format!("serve-admin-key-{}", uuid::Uuid::new_v4().simple());
    let cwd = temp_dir();
    let client = reqwest::Client::new();
    let rx = receiver().await;
    let server = serve(&url, &admin, &cwd);
    let base = format!("http://{}", server.addr);
    let (s, created) = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/webhooks"),
        &admin,
        Some(json!({"url": rx.url})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let webhook_id = created["webhook_id"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();
    let (s, group) = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/scaling-groups"),
        &admin,
        Some(json!({"name": "default"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{group}");
    let (code, user, err) = sessionctl(
        &url,
        &["keys", "create", "--role", "user", "--owner", "alice"],
    );
    assert_eq!(code, 0, "{err}");
    let user = user.trim().to_string();

    // When 20 sessions are enqueued and cancelled (40 status changes)
    let mut sessions = Vec::new();
    for i in 0..SESSIONS {
        let (s, r) = call(
            &client,
            reqwest::Method::POST,
            format!("{base}/v1/sessions"),
            &user,
            Some(json!({"name": format!("s{i}"), "type": "interactive",
                        "image": "python:3.12", "resources": {"cpu": 1, "mem": "1g"}})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{r}");
        sessions.push(r["session_id"].as_str().unwrap().to_string());
    }
    for id in &sessions {
        let (s, r) = call(
            &client,
            reqwest::Method::DELETE,
            format!("{base}/v1/sessions/{id}"),
            &user,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{r}");
    }
    // And the server is killed with deliveries in flight (the receiver holds them)
    wait_for(&rx, "deliveries in flight", |got| {
        got.len() > ANSWERED_BEFORE_KILL
    })
    .await;
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    rx.killed.send_replace(true);
    let held: Vec<Received> = rx
        .got
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.n >= ANSWERED_BEFORE_KILL)
        .cloned()
        .collect();
    assert!(!held.is_empty());

    // And restarted on the same database
    let server = serve(&url, &admin, &cwd);
    let base = format!("http://{}", server.addr);

    // Then every change arrives at least once
    let expected: BTreeSet<(String, String)> = sessions
        .iter()
        .flat_map(|id| ["PENDING", "CANCELLED"].map(|status| (id.clone(), status.to_string())))
        .collect();
    assert_eq!(expected.len(), 2 * SESSIONS);
    wait_for(&rx, "every change", |got| {
        let changes: BTreeSet<(String, String)> = got.iter().map(Received::change).collect();
        expected.is_subset(&changes)
    })
    .await;
    // And the outbox records every delivery delivered (the 200s reached the server)
    let store = sessiond::store::EventStore::open(
        &url,
        &sessiond::store::StoreOptions {
            max_connections: 2,
            ..sessiond::store::StoreOptions::default()
        },
    )
    .await
    .unwrap();
    let db = store.db();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let delivered = testkit::db::scalar(
            &db,
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'",
        )
        .await;
        if delivered == 2 * SESSIONS as i64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{delivered} deliveries recorded delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval of a bounded wait
    }
    let got = rx.got.lock().unwrap().clone();

    // And each request verifies, and a webhook-id always carries the same change and a
    // change always the same webhook-id (a duplicate is a resend, not a second row)
    let mut change_of: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut id_of: BTreeMap<(String, String), String> = BTreeMap::new();
    for r in &got {
        assert!(
            verifies(&secret, r),
            "signature of {} does not verify",
            r.id
        );
        let change = r.change();
        assert!(expected.contains(&change), "{change:?} was not made");
        let id = change_of.entry(r.id.clone()).or_insert(change.clone());
        assert_eq!(id, &change, "webhook-id {} reused for another change", r.id);
        let first = id_of.entry(change.clone()).or_insert(r.id.clone());
        assert_eq!(first, &r.id, "{change:?} sent under two webhook-ids");
    }
    assert_eq!(change_of.len(), 2 * SESSIONS);
    // And every request held at the kill was sent again after the restart, same id
    for h in &held {
        assert!(
            got.iter().any(|r| r.after_restart && r.id == h.id),
            "{} (in flight at the kill) was not sent again",
            h.id
        );
    }

    // And the outbox has exactly one row per change and target, with those ids
    assert_eq!(
        testkit::db::scalar(&db, "SELECT count(*) FROM webhook_deliveries").await,
        2 * SESSIONS as i64
    );
    assert_eq!(
        testkit::db::scalar(
            &db,
            "SELECT count(*) FROM (SELECT DISTINCT target, session_id, position \
             FROM webhook_deliveries) AS d"
        )
        .await,
        2 * SESSIONS as i64
    );
    let (s, log) = call(
        &client,
        reqwest::Method::GET,
        format!("{base}/v1/webhooks/{webhook_id}/deliveries?limit=500"),
        &admin,
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{log}");
    let logged: BTreeSet<String> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["delivery_id"].as_str().unwrap().to_string())
        .collect();
    let sent: BTreeSet<String> = change_of.keys().cloned().collect();
    assert_eq!(logged, sent, "the ids sent are the delivery rows' ids");

    // And the audit is clean
    let (code, out, err) = sessionctl(&url, &["audit", "verify"]);
    assert_eq!(code, 0, "audit verify: {out}\n{err}");
    let lines = terminate(server);
    assert!(!lines.iter().any(|l| l.contains("panicked")), "{lines:#?}");
}

#[tokio::test]
async fn webhook_deliveries_on_postgres_survive_kill_9_of_the_server() {
    deliveries_survive_kill_9_of_the_server_sending_them(Backend::Postgres).await;
}

#[tokio::test]
async fn webhook_deliveries_on_sqlite_survive_kill_9_of_the_server() {
    deliveries_survive_kill_9_of_the_server_sending_them(Backend::Sqlite).await;
}
