//! `sessionctl projections rebuild` killed with SIGKILL at moments spread over its run —
//! before, around and after the swap of the shadow generation: whatever moment it dies
//! at, the read model is one whole generation equal to a fresh fold of the log (`audit
//! verify` and the in-memory fold agree), and a rebuild run again completes.

use std::process::{Command, Stdio};
use std::time::Instant;
use testkit::db::Backend;

use crate::{fresh_fold, read_model, sessionctl, store_with_sessions};

fn generation(url: &str) -> i64 {
    let (code, out, err) = sessionctl(url, &["projections", "status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    status
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "sessions")
        .and_then(|s| s["generation"].as_i64())
        .unwrap()
}

#[allow(clippy::print_stdout)]
async fn rebuild_killed_at_any_moment_leaves_one_whole_generation(backend: Backend) {
    let (url, store) = store_with_sessions(backend, 500).await;
    // How long a whole rebuild takes here (the kills are spread over it)
    let started = Instant::now();
    let (code, _, err) = sessionctl(&url, &["projections", "rebuild", "sessions"]);
    assert_eq!(code, 0, "{err}");
    let whole = started.elapsed();
    let mut outcomes = Vec::new();
    for percent in [20u32, 50, 80, 95, 105, 120, 150, 200] {
        let before = generation(&url);
        let mut child = Command::new(env!("CARGO_BIN_EXE_sessionctl"))
            .args(["--database-url", &url, "projections", "rebuild", "sessions"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Fault timing, not synchronisation: the kill lands wherever the rebuild is.
        std::thread::sleep(whole * percent / 100);
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        let after = generation(&url);
        assert!(
            after == before || after == before + 1,
            "{backend:?} {percent}%: generation {before} -> {after}"
        );
        outcomes.push(format!(
            "{percent}%: {}",
            if after > before {
                "swapped"
            } else {
                "not swapped"
            }
        ));
        // The live read model is one whole generation, equal to a fresh fold
        assert_eq!(
            read_model(&store).await,
            fresh_fold(&store).await,
            "{backend:?} killed at {percent}% ({status})"
        );
        let (code, out, err) = sessionctl(&url, &["audit", "verify"]);
        assert_eq!(
            code, 0,
            "{backend:?} {percent}%: audit verify\n{out}\n{err}"
        );
    }
    // And a rebuild run again completes and swaps in
    let before = generation(&url);
    let (code, out, err) = sessionctl(&url, &["projections", "rebuild", "sessions"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sessions: rebuilt from 3500 events"), "{out}");
    assert_eq!(generation(&url), before + 1);
    assert_eq!(read_model(&store).await, fresh_fold(&store).await);
    println!(
        "[{backend:?}] a whole rebuild took {whole:?}; kills: {}",
        outcomes.join(", ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_killed_at_any_moment_on_postgres_leaves_one_whole_generation() {
    rebuild_killed_at_any_moment_leaves_one_whole_generation(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_killed_at_any_moment_on_sqlite_leaves_one_whole_generation() {
    rebuild_killed_at_any_moment_leaves_one_whole_generation(Backend::Sqlite).await;
}
