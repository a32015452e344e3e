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
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessiond"))
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
    let server = start(
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
    assert!(applied >= 1);
    let (status, metrics) = get(&server.addr, "/metrics");
    assert_eq!(status, 200);
    for name in ["sessions", "pending_queue", "audit_log"] {
        assert!(
            metrics.contains(&format!(
                "sessiond_projection_lag_events{{projection=\"{name}\"}} 0"
            )),
            "{metrics}"
        );
    }
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
