//! `sessiond demo` as a newcomer runs it (with `--no-tui`, the same view as lines) for a
//! minute: every status shows up within it, SIGINT ends it with exit 0, and no process
//! of it is left.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::arithmetic_side_effects)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn processes_with(marker: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == me {
            continue;
        }
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&c).replace('\0', " ");
            if text.contains(marker) {
                found.push(format!("{name}: {text}"));
            }
        }
    }
    found
}

#[test]
fn the_demo_shows_every_status_and_ends_cleanly_on_sigint() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["demo", "--no-tui"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let marker = format!("sessiond-demo-{}", child.id());
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all
    });
    let wanted = [
        "PENDING=",
        "RUNNING=",
        "TERMINATED=",
        "ERROR(",
        "CANCELLED(pending_timeout)=",
        "waiting behind",
        "rejected at enqueue",
    ];
    let mut seen = [false; 7];
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    while !seen.iter().all(|s| *s) {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the demo never showed all of {wanted:?} (seen {seen:?})"));
        for (i, w) in wanted.iter().enumerate() {
            if line.contains(w) {
                seen[i] = true;
            }
        }
    }
    // It keeps running (and drawing) for the rest of a minute.
    let minute = started + Duration::from_secs(60);
    while Instant::now() < minute {
        let left = minute.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_secs(10))) {
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() >= minute => break,
            Err(e) => panic!("the demo stopped drawing before a minute was up: {e}"),
        }
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    let lines = reader.join().unwrap();
    let text = lines.join("\n");
    assert!(
        text.contains("(cancelled by the pending timeout)"),
        "{text}"
    );
    assert!(text.contains("SessionCancelled"), "{text}");
    assert!(
        text.contains("(failed)") && text.contains("exit-code-3"),
        "{text}"
    );
    assert!(
        text.contains("no such file: data.csv"),
        "the failed session's log tail: {text}"
    );
    assert!(
        processes_with(&marker).is_empty(),
        "left behind: {:?}",
        processes_with(&marker)
    );
}
