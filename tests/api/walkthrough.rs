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

#[test]
fn sessionctl_keys_create_prints_only_the_key_and_revoke_takes_effect() {
    let dir = std::env::temp_dir().join(format!("sessiond-keys-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("keys.db").display());
    let ctl = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sessionctl"))
            .args(["--database-url", &url])
            .args(args)
            .output()
            .expect("run sessionctl")
    };
    let out = ctl(&["keys", "create", "--role", "user", "--owner", "alice"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the key on stdout: {stdout:?}");
    let key = lines[0];
    assert!(key.starts_with("sdk_") && key.len() == 68, "{key}");

    let out = ctl(&["keys", "list", "--json"]);
    assert!(out.status.success());
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(keys[0]["role"], "user");
    assert_eq!(keys[0]["owner"], "alice");
    assert!(keys[0]["revoked_at"].is_null());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(key),
        "never the key itself"
    );
    let id = keys[0]["id"].as_str().unwrap().to_string();

    assert!(ctl(&["keys", "revoke", &id]).status.success());
    let out = ctl(&["keys", "list", "--json"]);
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(keys[0]["revoked_at"].is_string());

    // Usage errors are one line and a non-zero exit.
    let out = ctl(&["keys", "create", "--role", "agent"]);
    assert!(!out.status.success());
    let out = ctl(&["keys", "revoke", "key_nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no API key 'key_nope'"));
}
