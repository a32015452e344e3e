//! The README's curl walk-through, run as it stands against the real `sessiond` binary
//! (SQLite), with `sessionctl` on the PATH: it cannot rot.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The shell block between the walk-through markers of README.md.
fn walkthrough() -> String {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("<!-- walkthrough:start -->")
        .expect("start marker");
    let end = readme.find("<!-- walkthrough:end -->").expect("end marker");
    let block = &readme[start..end];
    let body = block
        .split("```sh\n")
        .nth(1)
        .expect("a sh block")
        .split("```")
        .next()
        .expect("closed block");
    body.to_string()
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn readme_walkthrough_runs() {
    let dir = std::env::temp_dir().join(format!("sessiond-walk-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = Child(
        Command::new(env!("CARGO_BIN_EXE_sessiond"))
            .args([
                "serve",
                "--database-url",
                "sqlite://walkthrough.db",
                "--listen",
                "127.0.0.1:0",
            ])
            .current_dir(&dir)
            .env("SESSIOND_BOOTSTRAP_ADMIN_KEY", "walkthrough-admin-key")
            .env_remove("SESSIOND_DATABASE_URL")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sessiond"),
    );
    let stderr = server.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a 'listening on' line");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_sessionctl"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &walkthrough()])
        .current_dir(&dir)
        .env("PATH", path)
        .env("API", format!("http://{addr}"))
        .env_remove("ADMIN")
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the walk-through failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    for expected in [
        "\"status\":\"PENDING\"",
        "scheduler_opts.pending_timeout",
        "\"status\":\"RUNNING\"",
        "\"status\":\"TERMINATING\"",
        "\"status\":\"TERMINATED\"",
        "event: SessionStarted",
        "SessionTerminated",
    ] {
        assert!(stdout.contains(expected), "no {expected} in\n{stdout}");
    }
}
