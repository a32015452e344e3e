//! A clone survives `kill -9` of the server running it (issue #13): the restarted server
//! picks the orphaned task up (attempt 2), keeps the files already complete, and the
//! target ends `ready` and equal to the source. And a volume that cannot be used stops
//! the start-up with one clear line.

use reqwest::StatusCode;
use serde_json::json;
use std::process::Command;
use std::time::Duration;
use testkit::db::{fresh_url, Backend};
use testkit::http::call;

use super::{start_with, temp_dir, Server};

fn serve(url: &str, admin: &str, volume: &std::path::Path, cwd: &std::path::Path) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessiond"));
    command
        .env("SESSIOND_BOOTSTRAP_ADMIN_KEY", admin)
        .env("SESSIOND_VOLUMES", format!("local={}", volume.display()))
        // About 4 s for the tree below: long enough to be killed in the middle.
        .env(
            "SESSIOND_CLONE_MAX_BYTES_PER_SEC",
            (4 * 1024 * 1024).to_string(),
        )
        .env("SESSIOND_CLONE_PARALLELISM", "2");
    start_with(
        command,
        &["serve", "--database-url", url, "--listen", "127.0.0.1:0"],
        cwd,
    )
}

fn tree_bytes(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

async fn a_clone_killed_mid_copy_resumes_after_restart_and_completes(backend: Backend) {
    let url = fresh_url(backend).await;
    let admin = format!("serve-admin-key-{}", uuid::Uuid::new_v4().simple());
    let cwd = temp_dir();
    let volume = cwd.join("vol");
    std::fs::create_dir_all(&volume).unwrap();
    let client = reqwest::Client::new();

    let server = serve(&url, &admin, &volume, &cwd);
    let base = format!("http://{}", server.addr);
    let (s, created) = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/vfolders"),
        &admin,
        Some(json!({"name": "src", "owner": "alice"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let src_dir = volume.join(created["vfolder_id"].as_str().unwrap());
    for i in 0..16u8 {
        std::fs::write(src_dir.join(format!("part-{i:02}")), vec![i; 1024 * 1024]).unwrap();
    }
    let before = tree_bytes(&src_dir);
    let (s, started) = call(
        &client,
        reqwest::Method::POST,
        format!("{base}/v1/vfolders/src/clone?owner=alice"),
        &admin,
        Some(json!({"target_name": "dst"})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{started}");
    let task = started["bgtask_id"].as_str().unwrap().to_string();
    let target_dir = volume.join(started["vfolder_id"].as_str().unwrap());
    // Wait until some files are complete in the target, then kill -9.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let complete = std::fs::read_dir(&target_dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
                    .count()
            })
            .unwrap_or(0);
        if complete >= 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the copy never progressed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    let (s, t) = {
        // Nothing answers now; the task is left `running` without a runner.
        let restarted = serve(&url, &admin, &volume, &cwd);
        let base = format!("http://{}", restarted.addr);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let t = loop {
            let (s, t) = call(
                &client,
                reqwest::Method::GET,
                format!("{base}/v1/background-tasks/{task}"),
                &admin,
                None,
            )
            .await;
            assert_eq!(s, StatusCode::OK, "{t}");
            if t["status"] != "running" {
                break t;
            }
            assert!(tokio::time::Instant::now() < deadline, "not resumed: {t}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let target = call(
            &client,
            reqwest::Method::GET,
            format!("{base}/v1/vfolders/dst?owner=alice"),
            &admin,
            None,
        )
        .await;
        drop(restarted);
        (target, t)
    };
    assert_eq!(t["status"], "done", "{t}");
    assert_eq!(t["attempts"], 2, "{t}");
    assert!(
        !t["message"]
            .as_str()
            .unwrap()
            .contains(" 0 already complete"),
        "complete files were kept: {t}"
    );
    assert_eq!(s.0, StatusCode::OK);
    assert_eq!(s.1["status"], "ready", "{:?}", s.1);
    assert_eq!(
        tree_bytes(&target_dir),
        before,
        "the target equals the source"
    );
    assert_eq!(tree_bytes(&src_dir), before, "the source is untouched");
}

#[tokio::test]
async fn a_clone_killed_mid_copy_on_postgres_resumes_after_restart() {
    a_clone_killed_mid_copy_resumes_after_restart_and_completes(Backend::Postgres).await;
}

#[tokio::test]
async fn a_clone_killed_mid_copy_on_sqlite_resumes_after_restart() {
    a_clone_killed_mid_copy_resumes_after_restart_and_completes(Backend::Sqlite).await;
}

#[test]
fn a_missing_volume_root_is_one_clear_line_and_a_non_zero_exit() {
    let cwd = temp_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .args([
            "serve",
            "--database-url",
            "sqlite://s.db",
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(&cwd)
        .env("SESSIOND_VOLUMES", "fast=/nonexistent/sessiond-volume")
        .env_remove("SESSIOND_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // One line for people (the log has its own ERROR record of the same failure).
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("sessiond: "))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        lines[0].contains("volume 'fast'") && lines[0].contains("/nonexistent/sessiond-volume"),
        "{err}"
    );
}
