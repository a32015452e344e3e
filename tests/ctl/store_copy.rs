//! `sessionctl store copy` with the real binaries: a deployment built by a real
//! `sessiond serve` on SQLite (groups, keys, a revoked key, a keypair, a webhook
//! subscription, sessions through their lifecycle on a simulated agent, an idempotent
//! enqueue) is copied to PostgreSQL and served from there identically; a PostgreSQL
//! store is copied back to SQLite; a non-empty target and a missing source are refused.

use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

use super::remote::{one_line, sessionctl, BINS};
use sessiond::store::{EventStore, RecordedEvent, StoreOptions};
use testkit::db::{fresh_url, Backend};
use testkit::serve::{spawn_serve_logged, wait_until, Logs, Server, ADMIN_KEY};

/// Every event of a store's log, in position order.
pub(crate) async fn full_log(url: &str) -> Vec<RecordedEvent> {
    let store = EventStore::open(url, &StoreOptions::default())
        .await
        .unwrap();
    let db = store.db();
    let mut all = Vec::new();
    let mut cursor = sessiond::store::LogPosition::START;
    loop {
        let batch = db.read_log(cursor, 5000).await.unwrap();
        let Some(last) = batch.last() else { break };
        cursor = last.log_position();
        all.extend(batch);
    }
    store.close().await;
    all.sort_by_key(|e| e.global_position);
    all
}

/// `keys list --json` of a store.
async fn keys(url: &str) -> Value {
    let (code, out, err) = sessionctl(&["--database-url", url, "keys", "list", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// What a copied log must keep of each event (the transaction id is the store's own).
fn kept(log: &[RecordedEvent]) -> Vec<Value> {
    log.iter()
        .map(|e| {
            json!([
                e.global_position,
                e.aggregate_type,
                e.aggregate_id,
                e.sequence,
                e.event_type,
                e.event_version,
                e.payload,
                e.metadata,
                e.recorded_at
            ])
        })
        .collect()
}

/// `sessionctl store copy --from FROM --to TO`.
async fn copy(from: &str, to: &str) -> (i32, String, String) {
    sessionctl(&["store", "copy", "--from", from, "--to", to]).await
}

/// A key made with `sessionctl keys create` on `server`'s store: (id, key), once the
/// server accepts it.
async fn key_with_id(server: &Server, args: &[&str]) -> (String, String) {
    let mut all = vec!["keys", "create"];
    all.extend_from_slice(args);
    let (ok, key, err) = server.sessionctl(&all);
    assert!(ok, "{err}");
    let id = err
        .split_whitespace()
        .find(|w| w.starts_with("key_"))
        .unwrap()
        .to_string();
    wait_until("the key is accepted", Duration::from_secs(30), || {
        let key = key.clone();
        async move {
            let (s, b) = server.call(Method::GET, "/v1/sessions", &key, None).await;
            if s == 200 {
                Ok(())
            } else {
                Err(b.to_string())
            }
        }
    })
    .await;
    (id, key)
}

/// POST /v1/sessions with an `Idempotency-Key`: status and body.
async fn enqueue_idempotent(base: &str, key: &str, idem: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/v1/sessions"))
        .bearer_auth(key)
        .header("Idempotency-Key", idem)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn batch(name: &str) -> Value {
    json!({"name": name, "image": "sh", "type": "batch", "scaling_group": "g",
           "resources": {"cpu": 1, "mem": "64m"}, "startup_command": "true"})
}

fn interactive(name: &str, cpu: u32) -> Value {
    json!({"name": name, "image": "python:3.12", "type": "interactive", "scaling_group": "g",
           "resources": {"cpu": cpu, "mem": "64m"}})
}

/// The session and its history, as the API answers them.
async fn seen(server: &Server, key: &str, id: &str) -> (Value, Value) {
    let s = server.session(key, id).await;
    let (code, h) = server
        .call(
            Method::GET,
            &format!("/v1/sessions/{id}/history"),
            key,
            None,
        )
        .await;
    assert_eq!(code, 200, "{h}");
    (s, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_copied_from_sqlite_to_postgres_serves_the_same_sessions_keys_and_history() {
    // Arrange: a real deployment on SQLite.
    let server = Server::start(BINS, &[("SESSIOND_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8")]);
    server.group("g").await;
    let agent_key = server.key(&["--role", "agent", "--agent-id", "a1"]).await;
    let agent = server.agent(
        &agent_key,
        "a1",
        "g",
        "cpu=4,mem=8g",
        &server.dir.join("a1"),
        &["--simulate", "--step-delay-ms", "20", "--run-ms", "200"],
    );
    let (_, alice) = key_with_id(&server, &["--role", "user", "--owner", "alice"]).await;
    let (bob_id, bob) = key_with_id(&server, &["--role", "user", "--owner", "bob"]).await;
    let (ok, _, err) = server.sessionctl(&["keys", "create", "--role", "admin", "--keypair"]);
    assert!(ok, "{err}");
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (s, hook) = server
        .call(
            Method::POST,
            "/v1/webhooks",
            ADMIN_KEY,
            Some(json!({"url": format!("http://127.0.0.1:{down}/hook")})),
        )
        .await;
    assert_eq!(s, 201, "{hook}");

    let (s, done) = enqueue_idempotent(&server.base, &alice, "nightly-1", &batch("done")).await;
    assert_eq!(s, 201, "{done}");
    let done = done["session_id"].as_str().unwrap().to_string();
    let live = server.enqueue(&alice, interactive("live", 1)).await;
    let by_bob = server.enqueue(&bob, batch("bobs")).await;
    server
        .wait_session(&alice, &done, "TERMINATED", |s| s["status"] == "TERMINATED")
        .await;
    server
        .wait_session(&alice, &live, "RUNNING", |s| s["status"] == "RUNNING")
        .await;
    server
        .wait_session(&bob, &by_bob, "TERMINATED", |s| s["status"] == "TERMINATED")
        .await;
    // One that can never be placed (the group is a strict FIFO: enqueued last), cancelled.
    let huge = server.enqueue(&alice, interactive("huge", 64)).await;
    let (s, b) = server
        .call(
            Method::DELETE,
            &format!("/v1/sessions/{huge}"),
            &alice,
            None,
        )
        .await;
    assert!(s < 300, "{s} {b}");
    server
        .wait_session(&alice, &huge, "CANCELLED", |s| s["status"] == "CANCELLED")
        .await;
    let (ok, _, err) = server.sessionctl(&["keys", "revoke", &bob_id]);
    assert!(ok, "{err}");
    wait_until("bob's key is refused", Duration::from_secs(30), || async {
        let (s, b) = server.call(Method::GET, "/v1/sessions", &bob, None).await;
        if s == 401 {
            Ok(())
        } else {
            Err(b.to_string())
        }
    })
    .await;
    let ids = [done.clone(), live.clone(), huge.clone()];
    let mut before = Vec::new();
    for id in &ids {
        before.push(seen(&server, &alice, id).await);
    }
    // Stop the deployment: the server first, then its agent.
    let mut server = server;
    server.proc.0.kill().unwrap();
    server.proc.0.wait().unwrap();
    drop(agent);
    let (ok, audit, err) = server.sessionctl(&["audit", "verify"]);
    assert!(ok, "the source is not sound: {audit}\n{err}");
    let source_log = full_log(&server.db).await;
    let source_keys = keys(&server.db).await;
    let head = source_log.last().unwrap().global_position;

    // Act: copy to a fresh PostgreSQL database.
    let pg = fresh_url(Backend::Postgres).await;
    let started = std::time::Instant::now();
    let (code, out, err) = copy(&server.db, &pg).await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("copied {} events", source_log.len())) && out.contains("audit clean"),
        "{out}"
    );
    assert!(out.contains("SESSIOND_SECRET_KEY"), "{out}");
    eprintln!(
        "store copy: {} events in {secs:.2}s (whole command): {out}",
        source_log.len()
    );

    // Assert: the log and the keys are the source's.
    assert_eq!(kept(&full_log(&pg).await), kept(&source_log));
    assert_eq!(keys(&pg).await, source_keys);

    // ... and `sessiond serve` on the copy serves the same deployment.
    let secret_key = std::fs::read_to_string(format!(
        "{}.secret-key",
        server.db.trim_start_matches("sqlite://")
    ))
    .unwrap();
    let dir = std::env::temp_dir().join(format!("sessiond-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (proc, base, logs) = spawn_serve_logged(
        BINS,
        &dir,
        &pg,
        "127.0.0.1:0",
        &[
            ("SESSIOND_SECRET_KEY", secret_key.trim()),
            ("SESSIOND_AGENT_LOST_AFTER_SECS", "600"),
        ],
    );
    let target = Server {
        proc,
        base,
        dir,
        db: pg.clone(),
        http: reqwest::Client::new(),
        bins: BINS,
        logs,
        agent_logs: Logs::default(),
    };
    for (id, (session, history)) in ids.iter().zip(&before) {
        let (s, h) = seen(&target, &alice, id).await;
        assert_eq!(s["session_id"], session["session_id"]);
        assert_eq!(s["status"], session["status"], "{id}");
        assert_eq!(&h, history, "history of {id}");
    }
    let (_, list_after) = target.call(Method::GET, "/v1/sessions", &alice, None).await;
    let statuses = |l: &Value| -> Vec<(Value, Value)> {
        l["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["session_id"].clone(), s["status"].clone()))
            .collect()
    };
    // The list shows alice's sessions as they were (each as its GET answered it).
    let mut listed = statuses(&list_after);
    listed.sort_by_key(|(id, _)| id.to_string());
    let mut expected: Vec<(Value, Value)> = before
        .iter()
        .map(|(s, _)| (s["session_id"].clone(), s["status"].clone()))
        .collect();
    expected.sort_by_key(|(id, _)| id.to_string());
    assert_eq!(listed, expected);
    // The revoked key is still refused; the old admin key still works.
    let (s, _) = target.call(Method::GET, "/v1/sessions", &bob, None).await;
    assert_eq!(s, 401);
    let (s, b) = target
        .call(Method::GET, "/v1/webhooks", ADMIN_KEY, None)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["items"].as_array().map(Vec::len), Some(1), "{b}");
    // A retry of the idempotent enqueue answers the session it created.
    let (s, again) = enqueue_idempotent(&target.base, &alice, "nightly-1", &batch("done")).await;
    assert_eq!(
        (s, again["session_id"].as_str()),
        (201, Some(done.as_str())),
        "{again}"
    );
    // A new enqueue continues after every copied position.
    let (s, new) = target
        .call(
            Method::POST,
            "/v1/sessions",
            &alice,
            Some(interactive("new", 1)),
        )
        .await;
    assert_eq!(s, 201, "{new}");
    assert!(
        new["position"].as_i64().unwrap() > head,
        "{new} after {head}"
    );
    let mut target = target;
    target.proc.0.kill().unwrap();
    target.proc.0.wait().unwrap();
    let (ok, out, err) = target.sessionctl(&["audit", "verify"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("0 problem(s)"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_store_copies_back_to_sqlite_and_a_non_empty_target_or_missing_source_is_refused(
) {
    // Arrange: a PostgreSQL store with a log and keys.
    let pg = fresh_url(Backend::Postgres).await;
    let store = EventStore::open(&pg, &StoreOptions::default())
        .await
        .unwrap();
    testkit::world::generate(&store, 2000, &|_| {})
        .await
        .unwrap();
    store.close().await;
    for args in [
        vec!["--role", "user", "--owner", "alice"],
        vec!["--role", "agent", "--agent-id", "a1"],
    ] {
        let mut all = vec!["--database-url", pg.as_str(), "keys", "create"];
        all.extend(args);
        let (code, _, err) = sessionctl(&all).await;
        assert_eq!(code, 0, "{err}");
    }
    let source_log = full_log(&pg).await;
    let source_keys = keys(&pg).await;

    // Act: the way back.
    let sqlite = fresh_url(Backend::Sqlite).await;
    let started = std::time::Instant::now();
    let (code, out, err) = copy(&pg, &sqlite).await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{out}\n{err}");
    eprintln!(
        "store copy back: {} events in {secs:.2}s: {out}",
        source_log.len()
    );
    assert!(
        out.contains(&format!("copied {} events in ", source_log.len()))
            && out.contains(" streams, 2 keys and "),
        "{out}"
    );

    // Assert: the same log and keys; new appends continue after the copied positions.
    let copied_log = full_log(&sqlite).await;
    assert_eq!(kept(&copied_log), kept(&source_log));
    assert_eq!(keys(&sqlite).await, source_keys);
    // ... and there again: SQLite to a second PostgreSQL database gives the same log.
    let pg2 = fresh_url(Backend::Postgres).await;
    let started = std::time::Instant::now();
    let (code, out, err) = copy(&sqlite, &pg2).await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "{out}\n{err}");
    eprintln!(
        "store copy there again: {} events in {secs:.2}s: {out}",
        source_log.len()
    );
    assert_eq!(kept(&full_log(&pg2).await), kept(&source_log));
    assert_eq!(keys(&pg2).await, source_keys);
    let head = source_log.last().unwrap().global_position;
    let copied = EventStore::open(&sqlite, &StoreOptions::default())
        .await
        .unwrap();
    let next = copied
        .append(&[sessiond::store::NewEvent {
            aggregate_type: "Test".into(),
            aggregate_id: "after-copy".into(),
            sequence: 1,
            event_type: "Probe".into(),
            event_version: "1".into(),
            payload: json!({}),
            metadata: json!({}),
        }])
        .await
        .unwrap();
    assert!(next[0].global_position > head);
    copied.close().await;

    // A non-empty target is refused in one line and left as it was.
    let before = full_log(&sqlite).await;
    let (code, _, err) = copy(&pg, &sqlite).await;
    assert_eq!(code, 1);
    let line = one_line(&err);
    assert!(
        line.contains("not empty") && line.contains("events"),
        "{line}"
    );
    assert_eq!(kept(&full_log(&sqlite).await), kept(&before));
    // So is a PostgreSQL target that holds only keys (and its keys stay).
    let keys_only = fresh_url(Backend::Postgres).await;
    let (code, _, err) = sessionctl(&[
        "--database-url",
        &keys_only,
        "keys",
        "create",
        "--role",
        "admin",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = copy(&sqlite, &keys_only).await;
    assert_eq!(code, 1);
    assert!(one_line(&err).contains("api_keys: 1"), "{err}");
    assert!(full_log(&keys_only).await.is_empty());

    // A source that does not open: one line, exit 1, and no file created.
    let missing = std::env::temp_dir().join(format!("no-such-{}.db", uuid::Uuid::new_v4()));
    let missing_url = format!("sqlite://{}", missing.display());
    let fresh = fresh_url(Backend::Sqlite).await;
    let (code, _, err) = copy(&missing_url, &fresh).await;
    assert_eq!(code, 1);
    assert!(
        one_line(&err).contains("cannot open the source store"),
        "{err}"
    );
    assert!(!missing.exists());
    let (code, _, err) = copy("postgres://nobody:secret@127.0.0.1:1/none", &fresh).await;
    assert_eq!(code, 1);
    let line = one_line(&err);
    assert!(
        line.contains("cannot open the source store") && !line.contains("secret"),
        "{line}"
    );
}
