//! Real processes for integration tests: a `sessiond serve` on its own SQLite file,
//! `sessionctl keys create` against it, `sessiond agent` processes, and waiting for a
//! condition with a deadline (never a fixed sleep as synchronisation).
//!
//! The binaries' paths come from the calling test (`env!("CARGO_BIN_EXE_sessiond")`
//! is only defined in the package's own integration tests): see [`Bins`].

use reqwest::Method;
use serde_json::{json, Value};
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The first admin key of every server started here (`SESSIOND_BOOTSTRAP_ADMIN_KEY`).
pub const ADMIN_KEY: &str = "testkit-serve-admin-key-0123456789abcdef";

/// Paths of the binaries under test.
#[derive(Debug, Clone, Copy)]
pub struct Bins {
    /// `sessiond`.
    pub sessiond: &'static str,
    /// `sessionctl`.
    pub sessionctl: &'static str,
}

/// A child process killed (and reaped) on drop.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Forwards `r`'s lines to the returned channel (and to stderr, prefixed with `name`,
/// when `TEST_LOG` is set).
pub fn echo_lines(
    name: &'static str,
    r: impl std::io::Read + Send + 'static,
) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let echo = std::env::var_os("TEST_LOG").is_some();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if echo {
                eprintln!("[{name}] {line}");
            }
            let _ = tx.send(line);
        }
    });
    rx
}

/// Every line a process wrote to stderr so far (its log), shared with the thread that
/// collects them.
pub type Logs = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Collects the lines still to come from `rx` into `logs` (on a thread of its own, so
/// the process never blocks on a full pipe).
fn collect_into(rx: mpsc::Receiver<String>, logs: Logs) {
    std::thread::spawn(move || {
        for line in rx {
            if let Ok(mut l) = logs.lock() {
                l.push(line);
            }
        }
    });
}

/// Waits until `check` returns `Some`, trying every 50 ms for at most `within`; panics
/// naming `what` (with the last value `describe` gave) when it never does.
pub async fn wait_until<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(found) => return found,
            Err(last) => assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}; last seen: {last}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `sessiond serve` process on its own SQLite file in its own directory (removed on
/// drop).
#[derive(Debug)]
pub struct Server {
    /// The process (replace it to restart the server).
    pub proc: Proc,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Its database URL.
    pub db: String,
    /// A client for [`Server::call`].
    pub http: reqwest::Client,
    /// The binaries.
    pub bins: Bins,
    /// The server's log lines (stderr) since it started.
    pub logs: Logs,
    /// The log lines of every agent started with [`Server::agent`].
    pub agent_logs: Logs,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Server {
    /// Starts a server on a new SQLite file with `envs` set; answers once it listens.
    pub fn start(bins: Bins, envs: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("sessiond-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("test directory");
        let db = format!("sqlite://{}", dir.join("s.db").display());
        let (proc, base, logs) = spawn_serve_logged(bins, &dir, &db, "127.0.0.1:0", envs);
        Self {
            proc,
            base,
            dir,
            db,
            http: reqwest::Client::new(),
            bins,
            logs,
            agent_logs: Logs::default(),
        }
    }

    /// A request with `key`; the status and the JSON body (`Null` when there is none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (s, v) = crate::http::call(
            &self.http,
            method,
            format!("{}{path}", self.base),
            key,
            body,
        )
        .await;
        (s.as_u16(), v)
    }

    /// `sessionctl` with `args` against this server's store; its exit status, stdout
    /// and stderr.
    pub fn sessionctl(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(self.bins.sessionctl)
            .args(args)
            .args(["--database-url", &self.db])
            .env_remove("SESSIOND_DATABASE_URL")
            .output()
            .expect("sessionctl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    /// A key made with `sessionctl keys create <args>`, once the server accepts it.
    pub async fn key(&self, args: &[&str]) -> String {
        let mut all = vec!["keys", "create"];
        all.extend_from_slice(args);
        let (ok, key, err) = self.sessionctl(&all);
        assert!(ok, "{err}");
        wait_until(
            "the server accepts the new key",
            Duration::from_secs(30),
            || {
                let key = key.clone();
                async move {
                    // Anything but 401 means the key is known (an agent key may get 403).
                    let (s, b) = self
                        .call(Method::GET, "/v1/scaling-groups", &key, None)
                        .await;
                    if s == 401 {
                        Err(b.to_string())
                    } else {
                        Ok(key)
                    }
                }
            },
        )
        .await
    }

    /// Creates scaling group `name` (FIFO, default options).
    pub async fn group(&self, name: &str) {
        self.group_with(name, json!({})).await;
    }

    /// Creates scaling group `name` with these `scheduler_opts`.
    pub async fn group_with(&self, name: &str, scheduler_opts: Value) {
        let (s, b) = self
            .call(
                Method::POST,
                "/v1/scaling-groups",
                ADMIN_KEY,
                Some(json!({"name": name, "description": "test group",
                            "scheduler_opts": scheduler_opts})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }

    /// Enqueues `body` with `key`; the new session's id.
    pub async fn enqueue(&self, key: &str, body: Value) -> String {
        let (s, b) = self
            .call(Method::POST, "/v1/sessions", key, Some(body))
            .await;
        assert_eq!(s, 201, "{b}");
        b["session_id"].as_str().unwrap_or_default().to_string()
    }

    /// `GET /v1/sessions/{id}` with `key` (must be 200).
    pub async fn session(&self, key: &str, id: &str) -> Value {
        let (s, b) = self
            .call(Method::GET, &format!("/v1/sessions/{id}"), key, None)
            .await;
        assert_eq!(s, 200, "{b}");
        b
    }

    /// Waits until `pred` holds for the session (returning it), for at most 90 s.
    pub async fn wait_session(
        &self,
        key: &str,
        id: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let pred = &pred;
        wait_until(
            &format!("session {id} {what}"),
            Duration::from_secs(90),
            || async move {
                let s = self.session(key, id).await;
                if pred(&s) {
                    Ok(s)
                } else {
                    Err(s.to_string())
                }
            },
        )
        .await
    }

    /// A `sessiond agent` process serving group `group` with `--slots slots`, its state
    /// in `work_dir`, and `extra` arguments (e.g. `--simulate`).
    pub fn agent(
        &self,
        key: &str,
        agent_id: &str,
        group: &str,
        slots: &str,
        work_dir: &Path,
        extra: &[&str],
    ) -> Proc {
        let mut child = Command::new(self.bins.sessiond)
            .args([
                "agent",
                "--server",
                &self.base,
                "--key",
                key,
                "--agent-id",
                agent_id,
                "--scaling-group",
                group,
                "--slots",
                slots,
                "--heartbeat-secs",
                "1",
                "--work-dir",
            ])
            .arg(work_dir)
            .args(extra)
            .env_remove("SESSIOND_KEY")
            .env_remove("SESSIOND_SERVER")
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("sessiond agent starts");
        if let Some(stderr) = child.stderr.take() {
            collect_into(echo_lines("agent", stderr), self.agent_logs.clone());
        }
        Proc(child)
    }
}

/// Starts `sessiond serve` on `db` listening on `listen` in `dir`; answers once it
/// logs `listening on <addr>`, with the process and `http://<addr>`.
pub fn spawn_serve(
    bins: Bins,
    dir: &Path,
    db: &str,
    listen: &str,
    envs: &[(&str, &str)],
) -> (Proc, String) {
    let (proc, base, _) = spawn_serve_logged(bins, dir, db, listen, envs);
    (proc, base)
}

/// Like [`spawn_serve`], also with the server's log lines (collected as they come).
pub fn spawn_serve_logged(
    bins: Bins,
    dir: &Path,
    db: &str,
    listen: &str,
    envs: &[(&str, &str)],
) -> (Proc, String, Logs) {
    let mut cmd = Command::new(bins.sessiond);
    cmd.args(["serve", "--database-url", db, "--listen", listen])
        .current_dir(dir)
        .env_remove("SESSIOND_DATABASE_URL")
        .env_remove("SESSIOND_LISTEN")
        .env("RUST_LOG", "info")
        .env("SESSIOND_BOOTSTRAP_ADMIN_KEY", ADMIN_KEY)
        .env("SESSIOND_SCHEDULER_INTERVAL_MS", "100")
        .stderr(Stdio::piped())
        .stdout(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("sessiond serve starts");
    let rx = echo_lines("sessiond", child.stderr.take().expect("piped stderr"));
    let proc = Proc(child);
    let logs = Logs::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no 'listening on' line from sessiond serve");
        let addr = line.split("listening on ").nth(1).map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect::<String>()
        });
        if let Ok(mut l) = logs.lock() {
            l.push(line);
        }
        if let Some(addr) = addr {
            // Keep collecting stderr so the server never blocks on a full pipe.
            collect_into(rx, logs.clone());
            return (proc, format!("http://{addr}"), logs);
        }
    }
}
