//! Drives the real `sessiond` binary: start-up on each backend (migrations applied,
//! readiness, the `listening on` line), graceful shutdown, and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::arithmetic_side_effects)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use testkit::db::{fresh_url, Backend};

struct Server {
    child: Child,
    addr: String,
    lines: mpsc::Receiver<String>,
}

/// Kills the child if a test panics before stopping it.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// The child is owned by `Server`, whose Drop kills and reaps it.
#[allow(clippy::zombie_processes)]
fn start(args: &[&str], cwd: &std::path::Path) -> Server {
    start_with(Command::new(env!("CARGO_BIN_EXE_sessiond")), args, cwd)
}

// The child is owned by `Server`, whose Drop kills and reaps it.
#[allow(clippy::zombie_processes)]
fn start_with(mut command: Command, args: &[&str], cwd: &std::path::Path) -> Server {
    let mut child = command
        .args(args)
        .current_dir(cwd)
        .env_remove("SESSIOND_DATABASE_URL")
        .env_remove("SESSIOND_LISTEN")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn sessiond");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let echo = std::env::var_os("TEST_LOG").is_some();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if echo {
                eprintln!("[sessiond] {line}");
            }
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no 'listening on' line; saw: {seen:#?}")
            });
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().to_string();
            return Server {
                child,
                addr,
                lines: rx,
            };
        }
        seen.push(line);
    }
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = resp
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

fn terminate(server: Server) -> Vec<String> {
    let mut server = server;
    Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    // Everything it logged until it closed stderr.
    let mut rest = Vec::new();
    while let Ok(line) = server.lines.recv_timeout(Duration::from_secs(10)) {
        rest.push(line);
    }
    rest
}

fn temp_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sessiond-serve-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn serve_on_postgres_applies_migrations_reports_ready_and_stops_on_sigterm() {
    let url = fresh_url(Backend::Postgres).await;
    let admin = format!("serve-admin-key-{}", uuid::Uuid::new_v4().simple());
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessiond"));
    command.env("SESSIOND_BOOTSTRAP_ADMIN_KEY", &admin);
    let server = start_with(
        command,
        &["serve", "--database-url", &url, "--listen", "127.0.0.1:0"],
        &temp_dir(),
    );
    assert_eq!(get(&server.addr, "/healthz").0, 200);
    let (status, body) = get(&server.addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count() as i64;
    assert_eq!(applied, files, "every migration file is applied");

    // A write, then a read that waits for it: every projection has applied it and the
    // lag gauges say so (on a store that has events, not an empty one).
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let written: serde_json::Value = http
        .post(format!("{base}/v1/scaling-groups"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "default"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let position = written["position"].as_i64().expect("a position");
    assert!(position >= 1, "{written}");
    let r = http
        .get(format!(
            "{base}/v1/scaling-groups/default?min_position={position}"
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The read waited for the read model it reads; the gauges are the other runners'
    // (each has applied the event by the time it shows 0 lag and that position).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let (status, metrics) = get(&server.addr, "/metrics");
        assert_eq!(status, 200);
        let caught_up = ["sessions", "pending_queue", "audit_log", "scaling_groups"]
            .iter()
            .all(|name| {
                metrics.contains(&format!(
                    "sessiond_projection_lag_events{{projection=\"{name}\"}} 0"
                )) && metrics.contains(&format!(
                    "sessiond_projection_position{{projection=\"{name}\"}} {position}"
                ))
            });
        if caught_up {
            break metrics;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "projections did not reach position {position}: {metrics}"
        );
        std::thread::sleep(Duration::from_millis(20)); // poll interval of a bounded wait
    };
    assert!(metrics.contains("sessiond_http_request_duration_seconds"));
    let rest = terminate(server);
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:#?}");
}

#[test]
fn serve_without_a_database_url_creates_the_embedded_sqlite_file_in_the_working_directory() {
    let dir = temp_dir();
    let server = start(&["serve", "--listen", "127.0.0.1:0"], &dir);
    assert_eq!(get(&server.addr, "/readyz").0, 200);
    assert!(dir.join("sessiond.db").exists());
    terminate(server);
    // Restarting on the same file works (migrations are not re-applied).
    let server = start(&["serve", "--listen", "127.0.0.1:0"], &dir);
    assert_eq!(get(&server.addr, "/readyz").0, 200);
    terminate(server);
}

#[test]
fn an_unsupported_database_url_is_a_one_line_error_and_a_non_zero_exit() {
    let out = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args([
            "serve",
            "--database-url",
            "mysql://u:secret@h/db",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unsupported database URL"), "{stderr}");
    assert!(
        !stderr.contains("secret"),
        "the password is never printed: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_read_only_store_at_start_up_is_one_clear_line_and_a_non_zero_exit() {
    // Given a store that exists (created and migrated by sessionctl)
    let dir = temp_dir();
    let db = dir.join("s.db");
    let url = format!("sqlite://{}", db.display());
    let made = Command::new(env!("CARGO_BIN_EXE_sessionctl"))
        .args(["--database-url", &url, "keys", "list"])
        .env_remove("SESSIOND_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    // When sessiond serve opens it read-only (as root, file permissions do not stop
    // writes; `mode=ro` makes SQLite refuse them the same way a read-only file does)
    let out = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args([
            "serve",
            "--database-url",
            &format!("{url}?mode=ro"),
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("SESSIOND_DATABASE_URL")
        .env("SESSIOND_VOLUMES", format!("local={}", dir.display()))
        .current_dir(&dir)
        .output()
        .unwrap();
    // Then it exits non-zero with one line saying so, before listening
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // (the log also records the failure, as for every start-up error)
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("sessiond: ") && l.contains("read-only"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("readonly database"),
        "the cause is named: {stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue #11: a burst of enqueues with one name is one 201 and 409s, and the expected
/// optimistic conflicts behind it are not logged as errors (debug, plus a counter).
async fn same_name_burst_logs_no_errors(backend: Backend) {
    let url = fresh_url(backend).await;
    let admin = format!("serve-admin-key-{}", uuid::Uuid::new_v4().simple());
    let dir = temp_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessiond"));
    child.env("SESSIOND_BOOTSTRAP_ADMIN_KEY", &admin);
    let server = start_with(
        child,
        &["serve", "--database-url", &url, "--listen", "127.0.0.1:0"],
        &dir,
    );
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{base}/v1/scaling-groups"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"name": "default"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let request_id = created
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("an x-request-id")
        .to_string();
    let body = serde_json::json!({
        "name": "burst", "owner": "alice", "type": "interactive", "image": "python:3.12",
        "resources": {"cpu": 1, "mem": "1g"}, "scaling_group": "default"
    });
    let posts = (0..50).map(|_| {
        let http = http.clone();
        let (url, key, body) = (format!("{base}/v1/sessions"), admin.clone(), body.clone());
        async move {
            let r = http
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    });
    let mut statuses = futures::future::join_all(posts).await;
    statuses.sort_unstable();
    let created = statuses.iter().filter(|s| **s == 201).count();
    let conflicts = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((created, conflicts), (1, 49), "{statuses:?}");
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines = terminate(server);
    let errors: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    assert!(errors.is_empty(), "no errors or warnings: {errors:#?}");
    // Every answered request is logged, in its span with the request id it echoed.
    assert!(
        lines.iter().any(|l| l.contains(&request_id)
            && l.contains("/v1/scaling-groups")
            && l.contains("201")),
        "a log line of request {request_id}: {lines:#?}"
    );
    assert!(
        metrics.contains("sessiond_http_errors_total{code=\"name_conflict\"} 49"),
        "the refusals are counted: {metrics}"
    );
}

#[tokio::test]
async fn a_same_name_burst_on_postgres_is_one_201_and_logs_no_errors() {
    same_name_burst_logs_no_errors(Backend::Postgres).await;
}

#[tokio::test]
async fn a_same_name_burst_on_sqlite_is_one_201_and_logs_no_errors() {
    same_name_burst_logs_no_errors(Backend::Sqlite).await;
}
mod clone_crash;
mod keypairs;
mod webhooks_crash;
