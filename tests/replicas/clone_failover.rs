//! Two replicas on one PostgreSQL store and one volume (issue #13): the replica running
//! a clone is killed with SIGKILL; its task lease frees itself and the other replica's
//! runner picks the task up (attempt 2) and completes it.

use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use testkit::db::{fresh_url, Backend};
use testkit::http::call;

use crate::servers::{test_volume, Replica};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_replica_that_runs_a_clone_moves_the_task_to_the_other() {
    let url = fresh_url(Backend::Postgres).await;
    let client = reqwest::Client::new();
    let admin = format!("failover-admin-{}", uuid::Uuid::new_v4().simple());
    let env = [
        ("SESSIOND_BOOTSTRAP_ADMIN_KEY", admin.clone()),
        (
            "SESSIOND_CLONE_MAX_BYTES_PER_SEC",
            (4 * 1024 * 1024).to_string(),
        ),
    ];
    let mut a = Replica::start_with_env("a", &url, &env);
    let b = Replica::start_with_env("b", &url, &env);
    let (base_a, base_b) = (
        format!("http://{}", a.addr()),
        format!("http://{}", b.addr()),
    );
    let owner = format!("alice{}", uuid::Uuid::new_v4().simple());
    let (s, created) = call(
        &client,
        reqwest::Method::POST,
        format!("{base_a}/v1/vfolders"),
        &admin,
        Some(json!({"name": "src", "owner": owner})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let src_dir = test_volume().join(created["vfolder_id"].as_str().unwrap());
    for i in 0..12u8 {
        std::fs::write(src_dir.join(format!("part-{i:02}")), vec![i; 1024 * 1024]).unwrap();
    }
    // Cloned through A: A's runner holds the task.
    let (s, started) = call(
        &client,
        reqwest::Method::POST,
        format!("{base_a}/v1/vfolders/src/clone?owner={owner}"),
        &admin,
        Some(json!({"target_name": "dst"})),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{started}");
    let task = started["bgtask_id"].as_str().unwrap().to_string();
    let target_dir = test_volume().join(started["vfolder_id"].as_str().unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&target_dir)
        .map(|d| d.count())
        .unwrap_or(0)
        < 3
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the copy never progressed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let t = loop {
        let (s, t) = call(
            &client,
            reqwest::Method::GET,
            format!("{base_b}/v1/background-tasks/{task}"),
            &admin,
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{t}");
        if t["status"] != "running" {
            break t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never took the task over: {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(t["status"], "done", "{t}");
    assert_eq!(t["attempts"], 2, "{t}");
    let (_, target) = call(
        &client,
        reqwest::Method::GET,
        format!("{base_b}/v1/vfolders/dst?owner={owner}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(target["status"], "ready");
    for i in 0..12u8 {
        assert_eq!(
            std::fs::read(target_dir.join(format!("part-{i:02}"))).unwrap(),
            vec![i; 1024 * 1024]
        );
    }
    drop(b);
}
