//! The kill -9 matrix for the commands that write a whole log (issue #18):
//! `sessionctl events import` and `sessionctl store copy`, killed with SIGKILL at
//! moments spread over their measured run, on both backends.
//!
//! - An import is one transaction: whatever moment it dies at, the store holds none of
//!   the export or all of it, and an import run again (when it held none) completes.
//! - A copy writes batch by batch (no transaction held across batches), so a killed copy
//!   (of 100 events here) leaves part of a log. Its target is marked from before the first write until the
//!   copy is verified: `sessiond serve` refuses it with one line naming the unfinished
//!   copy, a second copy into it is refused, and a copy into a fresh target completes.
//!   The source is never written: its log and `audit verify` are unchanged.

use sessiond::store::{EventStore, StoreOptions};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::db::{fresh_url, Backend};

use crate::{sessionctl, store_with_sessions};

const PERCENTS: [u32; 10] = [4, 6, 8, 10, 12, 15, 20, 40, 70, 95];

/// Events (and rows) per copy transaction: small, so a kill lands between batches.
const BATCH: &str = "100";

/// Number of events in the store at `url`, counted exactly (the commit-order reader
/// behind `events export` may not yet return rows while other transactions of the
/// PostgreSQL cluster are open).
async fn events(url: &str) -> usize {
    let store = EventStore::open(url, &StoreOptions::default())
        .await
        .unwrap();
    let n = testkit::db::scalar(&store.db(), "SELECT count(*) FROM events").await;
    store.close().await;
    usize::try_from(n).unwrap()
}

/// Runs `sessionctl ARGS` and kills it (SIGKILL) after `after`, unless it ended
/// first; whether it ended by itself, successfully.
fn run_killed(args: &[&str], after: Duration) -> Option<bool> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessionctl"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Fault timing, not synchronisation: the kill lands wherever the command is.
    let deadline = Instant::now() + after;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status.success());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// `sessionctl store copy --from FROM --to TO` in batches of [`BATCH`].
fn copy(from: &str, to: &str) -> (i32, String, String) {
    sessionctl(
        from,
        &[
            "store",
            "copy",
            "--batch-size",
            BATCH,
            "--from",
            from,
            "--to",
            to,
        ],
    )
}

/// Whether the store at `url` is marked as an unfinished copy.
async fn unfinished(url: &str) -> bool {
    let store = EventStore::open(url, &StoreOptions::default())
        .await
        .unwrap();
    let marked = sessiond::store::copy::unfinished(&store.db())
        .await
        .unwrap()
        .is_some();
    store.close().await;
    marked
}

fn audit_clean(url: &str, what: &str) {
    let (code, out, err) = sessionctl(url, &["audit", "verify"]);
    assert_eq!(code, 0, "{what}: audit verify\n{out}\n{err}");
}

async fn an_import_killed_at_any_moment_leaves_none_or_all_of_the_export(backend: Backend) {
    // Given an export of a store with 400 sessions through their lifecycle
    let (source, _store) = store_with_sessions(Backend::Sqlite, 400).await;
    let dir = std::env::temp_dir().join(format!("sessiond-import-kill-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("log.ndjson");
    let file = file.to_str().unwrap();
    let (code, _, err) = sessionctl(&source, &["events", "export", "--output", file]);
    assert_eq!(code, 0, "{err}");
    let total = events(&source).await;
    // How long a whole import takes here
    let url = fresh_url(backend).await;
    let started = Instant::now();
    let (code, _, err) = sessionctl(&url, &["events", "import", "--input", file]);
    assert_eq!(code, 0, "{err}");
    let whole = started.elapsed();
    assert_eq!(events(&url).await, total);

    let mut outcomes = Vec::new();
    for percent in PERCENTS {
        // When an import into a fresh store is killed at <percent> of that
        let url = fresh_url(backend).await;
        let args = ["--database-url", &url, "events", "import", "--input", file];
        let ended = run_killed(&args, whole * percent / 100);
        // Then the store holds none of the log or all of it
        let held = events(&url).await;
        assert!(
            held == 0 || held == total,
            "{backend:?} {percent}%: {held} of {total} events"
        );
        outcomes.push(format!("{percent}%: {held}"));
        if held == 0 {
            assert_ne!(
                ended,
                Some(true),
                "{backend:?} {percent}%: ended well, imported nothing"
            );
            // And an import run again completes
            let (code, _, err) = sessionctl(&url, &["events", "import", "--input", file]);
            assert_eq!(code, 0, "{backend:?} {percent}%: {err}");
            assert_eq!(events(&url).await, total);
        }
        audit_clean(&url, &format!("{backend:?} {percent}%"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    #[allow(clippy::print_stdout)]
    {
        println!(
            "[{backend:?}] a whole import took {whole:?}; kills: {}",
            outcomes.join(", ")
        );
    }
}

/// `sessiond serve` on `url`: its exit status and stderr (it must not start).
fn serve_refused(url: &str) -> String {
    let dir = std::env::temp_dir().join(format!("sessiond-copy-kill-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args(["serve", "--database-url", url, "--listen", "127.0.0.1:0"])
        .env_remove("SESSIOND_DATABASE_URL")
        .env("SESSIOND_VOLUMES", format!("local={}", dir.display()))
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A server that does start would never exit: give up after 60 s and fail.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sessiond serve started on an unfinished copy at {url}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    stderr
}

async fn a_copy_killed_at_any_moment_leaves_a_target_that_is_refused_and_a_fresh_copy_completes(
    from: Backend,
    to: Backend,
) {
    // Given a source store with 400 sessions through their lifecycle
    let (source, _store) = store_with_sessions(from, 400).await;
    let total = events(&source).await;
    // How long a whole copy takes here
    let target = fresh_url(to).await;
    let started = Instant::now();
    let (code, _, err) = copy(&source, &target);
    assert_eq!(code, 0, "{err}");
    let whole = started.elapsed();

    let mut outcomes = Vec::new();
    for percent in PERCENTS {
        // When a copy into a fresh target is killed at <percent> of that
        let target = fresh_url(to).await;
        let args = [
            "store",
            "copy",
            "--batch-size",
            BATCH,
            "--from",
            &source,
            "--to",
            &target,
        ];
        let ended = run_killed(&args, whole * percent / 100);
        let held = events(&target).await;
        let marked = unfinished(&target).await;
        outcomes.push(format!(
            "{percent}%: {held} events{}",
            if marked { ", marked" } else { "" }
        ));
        if marked {
            // Then the target is refused by sessiond serve, with one line naming the
            // unfinished copy
            let stderr = serve_refused(&target);
            let lines: Vec<&str> = stderr
                .lines()
                .filter(|l| l.starts_with("sessiond: ") && l.contains("unfinished copy"))
                .collect();
            assert_eq!(lines.len(), 1, "{from:?}->{to:?} {percent}%: {stderr}");
            assert!(!stderr.contains("listening on"), "{stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            // And a second copy into it is refused, changing nothing
            let (code, _, err) = copy(&source, &target);
            assert_ne!(
                code, 0,
                "{from:?}->{to:?} {percent}%: copied over a partial target"
            );
            assert!(err.contains("an interrupted copy"), "{err}");
            assert_eq!(events(&target).await, held);
        } else if held == 0 {
            // (killed before its first write: the target is empty and a copy completes)
            assert_ne!(ended, Some(true));
            let (code, _, err) = copy(&source, &target);
            assert_eq!(code, 0, "{from:?}->{to:?} {percent}%: {err}");
            assert_eq!(events(&target).await, total);
        } else {
            // (finished and verified, killed on its way out: the copy is whole)
            assert_eq!(
                held, total,
                "{from:?}->{to:?} {percent}%: unmarked partial copy"
            );
            audit_clean(&target, &format!("target after {percent}%"));
        }
        // And the source is untouched
        assert_eq!(events(&source).await, total, "{from:?}->{to:?} {percent}%");
        audit_clean(&source, &format!("source after {percent}%"));
    }
    // And a copy into a fresh target completes and verifies
    let target = fresh_url(to).await;
    let (code, out, err) = copy(&source, &target);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(events(&target).await, total);
    audit_clean(&target, "the fresh copy");
    #[allow(clippy::print_stdout)]
    {
        println!(
            "[{from:?}->{to:?}] a whole copy took {whole:?}; kills: {}",
            outcomes.join(", ")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_into_postgres_killed_at_any_moment_leaves_none_or_all_of_the_export() {
    an_import_killed_at_any_moment_leaves_none_or_all_of_the_export(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_into_sqlite_killed_at_any_moment_leaves_none_or_all_of_the_export() {
    an_import_killed_at_any_moment_leaves_none_or_all_of_the_export(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_from_sqlite_to_postgres_killed_at_any_moment_leaves_a_refused_target() {
    a_copy_killed_at_any_moment_leaves_a_target_that_is_refused_and_a_fresh_copy_completes(
        Backend::Sqlite,
        Backend::Postgres,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_from_postgres_to_sqlite_killed_at_any_moment_leaves_a_refused_target() {
    a_copy_killed_at_any_moment_leaves_a_target_that_is_refused_and_a_fresh_copy_completes(
        Backend::Postgres,
        Backend::Sqlite,
    )
    .await;
}
