//! Drives the real binaries: `sessionctl projections ...`, and a `sessiond serve`
//! killed with SIGKILL in the middle of a projection catch-up.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::arithmetic_side_effects)]

mod copy_kill;
mod rebuild_kill;
mod remote;
mod scheduler_kill;
mod session;
mod store_copy;
use domain::session::{Session, SessionEvent};
use domain::Decider;
use projections::engine::read_checkpoint;
use projections::LogPosition;
use sessiond::store::{EventStore, StoreOptions};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::db::{fresh_url, Backend};

fn sessionctl(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sessionctl"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Folds every Session stream of the log in memory: the read model built from scratch.
async fn fresh_fold(store: &EventStore) -> BTreeMap<String, serde_json::Value> {
    let db = store.db();
    let mut cursor = LogPosition::START;
    let mut states: BTreeMap<String, Session> = BTreeMap::new();
    loop {
        let batch = db.read_log(cursor, 5000).await.unwrap();
        let Some(last) = batch.last() else { break };
        cursor = last.log_position();
        for e in batch.iter().filter(|e| e.aggregate_type == "Session") {
            let ev: SessionEvent = e.decode().unwrap();
            states
                .entry(e.aggregate_id.clone())
                .or_default()
                .evolve(&ev);
        }
    }
    states
        .into_iter()
        .map(|(k, v)| (k, serde_json::to_value(v).unwrap()))
        .collect()
}

async fn read_model(store: &EventStore) -> BTreeMap<String, serde_json::Value> {
    projections::models::documents::sessions()
        .all_docs(&store.db())
        .await
        .unwrap()
        .into_iter()
        .collect()
}

async fn store_with_sessions(backend: Backend, sessions: usize) -> (String, EventStore) {
    let url = fresh_url(backend).await;
    let store = EventStore::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    testkit::world::generate(&store, sessions, &|_| {})
        .await
        .unwrap();
    (url, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessionctl_rebuilds_a_projection_and_reports_its_status_on_both_backends() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let (url, store) = store_with_sessions(backend, 50).await;
        // A batch size that would read nothing is refused, and nothing is swapped in.
        for bad in ["0", "-5", "100001"] {
            let (code, _, err) = sessionctl(
                &url,
                &[
                    "projections",
                    "rebuild",
                    "sessions",
                    &format!("--batch-size={bad}"),
                ],
            );
            assert_eq!(code, 2, "--batch-size {bad}: {err}");
            assert!(err.contains("batch-size"), "{err}");
        }
        let (code, out, err) = sessionctl(&url, &["projections", "rebuild", "sessions"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("sessions: rebuilt from 350 events"),
            "{backend:?} {url} {out}"
        );
        assert_eq!(read_model(&store).await, fresh_fold(&store).await);

        let (code, out, err) = sessionctl(&url, &["projections", "status", "--json"]);
        assert_eq!(code, 0, "{err}");
        let status: serde_json::Value = serde_json::from_str(&out).unwrap();
        let sessions = status
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "sessions")
            .unwrap();
        assert_eq!(sessions["lag_events"], 0);
        assert_eq!(sessions["generation"], 2);
        let audit = status
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "audit_log")
            .unwrap();
        assert_eq!(
            audit["lag_events"], 350,
            "not rebuilt, not run: everything still to do"
        );

        let (code, out, _) = sessionctl(&url, &["projections", "reset", "sessions"]);
        assert_eq!(code, 0);
        assert!(out.contains("350 events to replay"), "{out}");
        assert!(read_model(&store).await.is_empty());
    }
}

#[test]
fn sessionctl_bad_input_is_a_one_line_error_and_a_non_zero_exit() {
    let dir = std::env::temp_dir().join(format!("sessionctl-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("s.db").display());
    for args in [
        vec!["projections", "rebuild", "no-such-projection"],
        vec!["projections", "reset", "nope"],
    ] {
        let (code, _, err) = sessionctl(&url, &args);
        assert_eq!(code, 1);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("unknown projection"), "{err}");
    }
    let (code, _, err) = sessionctl("mysql://u:pw@h/db", &["projections", "status"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("unsupported database URL") && !err.contains("pw@"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

struct Killable(Child);

impl Drop for Killable {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A volume root for the servers these tests start.
fn test_volume() -> std::path::PathBuf {
    let root = std::env::temp_dir().join("sessiond-test-volume");
    std::fs::create_dir_all(&root).unwrap();
    root
}

fn serve(url: &str) -> Killable {
    serve_with(url, &[])
}

/// `sessiond serve` on `url` with `envs` set, once it listens.
// The child is owned by `Killable`, whose Drop kills and reaps it.
#[allow(clippy::zombie_processes)]
fn serve_with(url: &str, envs: &[(&str, &str)]) -> Killable {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["serve", "--database-url", url, "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env(
            "SESSIOND_VOLUMES",
            format!("local={}", test_volume().display()),
        )
        .envs(envs.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let guard = Killable(child);
    for line in lines.by_ref() {
        if line.unwrap().contains("listening on") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    guard
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_catch_up_restarts_and_ends_identical_to_a_fresh_fold() {
    let (url, store) = store_with_sessions(Backend::Postgres, 6000).await;
    let head = 6000 * 7;
    let db = store.db();

    let mut server = serve(&url);
    // Kill it once the sessions projection has applied something, but not everything.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = read_checkpoint(&db, "sessions")
            .await
            .unwrap()
            .position
            .global_position;
        if p > 0 {
            assert!(p < head, "caught up before the kill: make the log longer");
            break;
        }
        assert!(Instant::now() < deadline, "the projection never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    let at_kill = read_checkpoint(&db, "sessions")
        .await
        .unwrap()
        .position
        .global_position;
    assert!(at_kill < head);

    let _server = serve(&url);
    let deadline = Instant::now() + Duration::from_secs(120);
    while read_checkpoint(&db, "sessions")
        .await
        .unwrap()
        .position
        .global_position
        < head
    {
        assert!(Instant::now() < deadline, "no catch-up after restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rm = read_model(&store).await;
    assert_eq!(rm.len(), 6000);
    assert_eq!(
        rm,
        fresh_fold(&store).await,
        "nothing lost, nothing applied twice"
    );
    for doc in rm.values() {
        assert_eq!(doc["version"], 7, "each event applied exactly once");
    }
}
