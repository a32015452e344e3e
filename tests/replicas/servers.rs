//! Real `sessiond serve` processes: start-up, their stderr lines, and SIGKILL.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `sessiond serve`; killed and reaped on drop.
pub struct Replica {
    pub name: &'static str,
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    pub log: Vec<String>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The volume every replica shares (as replicas share their storage).
pub fn test_volume() -> std::path::PathBuf {
    let root = std::env::temp_dir().join("sessiond-test-volume");
    std::fs::create_dir_all(&root).expect("a volume root");
    root
}

impl Replica {
    /// Starts `sessiond serve` on `url` with a 200 ms scheduler timer and waits for its
    /// `listening on` line.
    // The child is owned by `Replica`, whose Drop kills and reaps it.
    #[allow(clippy::zombie_processes)]
    pub fn start(name: &'static str, url: &str) -> Replica {
        Self::start_with_env(name, url, &[])
    }

    /// Like [`Replica::start`], with more environment variables.
    #[allow(clippy::zombie_processes)]
    pub fn start_with_env(name: &'static str, url: &str, env: &[(&str, String)]) -> Replica {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sessiond"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(["serve", "--database-url", url, "--listen", "127.0.0.1:0"])
            .env_remove("SESSIOND_DATABASE_URL")
            .env_remove("SESSIOND_LISTEN")
            .env_remove("SESSIOND_LOG_FORMAT")
            .env_remove("SESSIOND_AGENT_LOST_AFTER_SECS")
            .env("RUST_LOG", "info")
            .env("SESSIOND_SCHEDULER_INTERVAL_MS", "200")
            .env(
                "SESSIOND_VOLUMES",
                format!("local={}", test_volume().display()),
            )
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
                    eprintln!("[{name}] {line}");
                }
                let _ = tx.send(line);
            }
        });
        let mut replica = Replica {
            name,
            child: Some(child),
            lines: rx,
            log: Vec::new(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !replica.log.iter().any(|l| l.contains("listening on")) {
            assert!(
                std::time::Instant::now() < deadline,
                "{name}: no 'listening on' line; saw: {:#?}",
                replica.log
            );
            match replica.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => replica.log.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("{name}: exited during start-up; saw: {:#?}", replica.log)
                }
            }
        }
        replica
    }

    /// The address from its `listening on` line.
    pub fn addr(&self) -> String {
        self.log
            .iter()
            .find_map(|l| l.split("listening on ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .expect("a 'listening on' line")
            .to_string()
    }

    /// Reads the lines logged since the last call (without waiting).
    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
    }

    /// Whether it logged that it took lease `lease`.
    pub fn took(&mut self, lease: &str) -> bool {
        self.drain();
        self.log
            .iter()
            .any(|l| l.contains("lease taken") && mentions(l, lease))
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let mut c = self.child.take().expect("still running");
        c.kill().expect("SIGKILL");
        c.wait().expect("reap");
    }

    /// Still running (not exited on its own).
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }
}

/// Whether a log line names exactly `lease` (not a longer name it is a prefix of).
fn mentions(line: &str, lease: &str) -> bool {
    line.match_indices(lease).any(|(i, _)| {
        let after = line[i + lease.len()..].chars().next();
        !matches!(after, Some(c) if c.is_alphanumeric() || c == '-' || c == '_' || c == '.')
    })
}

/// `sessionctl --database-url url <args>`; its trimmed stdout (a failure is a panic with
/// both outputs).
pub fn sessionctl(url: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sessionctl"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env_remove("SESSIOND_DATABASE_URL")
        .output()
        .expect("run sessionctl");
    assert!(
        out.status.success(),
        "sessionctl {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
