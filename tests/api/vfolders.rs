//! Vfolders, clones and background tasks end to end (SPEC §7, issue #13): the real
//! application on both backends, its volume a temporary directory, the SSE stream read
//! as Backend.AI's client reads it.

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::helpers::{both_backends, spawn_app, spawn_app_with_settings, Backend, TestApp};

/// Everything about a tree that a clone must keep: per path, its type, mode, mtime
/// (ns) and contents or link target. The root's own mode is included.
fn snapshot(root: &Path) -> BTreeMap<String, (String, u32, i64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(root.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let child = rel.join(entry.file_name());
            let m = std::fs::symlink_metadata(root.join(&child)).unwrap();
            let mtime = m.mtime() * 1_000_000_000 + m.mtime_nsec();
            let (kind, body) = if m.file_type().is_symlink() {
                (
                    "link",
                    std::fs::read_link(root.join(&child))
                        .unwrap()
                        .display()
                        .to_string()
                        .into_bytes(),
                )
            } else if m.is_dir() {
                stack.push(child.clone());
                ("dir", vec![])
            } else if m.is_file() {
                ("file", std::fs::read(root.join(&child)).unwrap())
            } else {
                ("other", vec![])
            };
            let mode = if kind == "link" { 0 } else { m.mode() & 0o7777 };
            out.insert(
                child.display().to_string(),
                (kind.to_string(), mode, mtime, body),
            );
        }
    }
    out
}

async fn create(app: &TestApp, key: &str, body: Value) -> Value {
    let r = app.post("/v1/vfolders", Some(key), &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body
}

fn folder_dir(app: &TestApp, created: &Value) -> PathBuf {
    app.volume_root
        .join(created["vfolder_id"].as_str().unwrap())
}

/// Fills a folder's directory with the acceptance tree (written directly, as a
/// session would).
fn plant_tree(dir: &Path, big: usize) {
    std::fs::create_dir_all(dir.join("a/b/c")).unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::write(dir.join("a/b/c/deep.txt"), b"deep").unwrap();
    std::fs::write(dir.join("zero"), b"").unwrap();
    std::fs::write(dir.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(dir.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("big.bin"), vec![0x5au8; big]).unwrap();
    for i in 0..50 {
        std::fs::write(dir.join(format!("a/small-{i}")), format!("{i}")).unwrap();
    }
    std::os::unix::fs::symlink("zero", dir.join("sibling")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("outside")).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(dir.join("fifo"))
        .status()
        .unwrap();
    assert!(status.success());
}

async fn task(app: &TestApp, key: &str, id: &str) -> Value {
    let r = app
        .get(&format!("/v1/background-tasks/{id}"), Some(key))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

/// Waits for a task to finish (the condition, never a fixed sleep); bounded.
async fn finished(app: &TestApp, key: &str, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let t = task(app, key, id).await;
        if t["status"] != "running" {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {id} still running: {t}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads an SSE response to its end: `(event, data)` per frame, comments skipped.
async fn read_stream(app: &TestApp, key: &str, query: &str) -> Vec<(String, Value)> {
    let resp = app
        .client
        .get(app.url(&format!("/v1/events/background-task{query}")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = Box::pin(resp.bytes_stream());
    let mut buf = String::new();
    let read = async {
        while let Some(chunk) = stream.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("the stream ends by itself");
    let mut frames = Vec::new();
    for block in buf.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let (mut event, mut data) = (String::new(), String::new());
        for line in block.lines() {
            assert!(
                line.contains(':'),
                "a field line without ':' breaks Backend.AI's client: {line:?}"
            );
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
            assert!(
                !line.starts_with("retry:"),
                "no retry field (seconds vs ms)"
            );
        }
        if !event.is_empty() {
            frames.push((event, serde_json::from_str(&data).unwrap()));
        }
    }
    frames
}

async fn a_clone_copies_the_tree_exactly_and_the_stream_ends_with_done_then_server_close(
    backend: Backend,
) {
    // Throttled so the copy takes about a second and progress is seen on the way.
    let app = spawn_app_with_settings(
        backend,
        |s| s.clone_max_bytes_per_sec = 6 * 1024 * 1024,
        |_| {},
    )
    .await;
    let alice = app.user_key("alice").await;
    let src = create(&app, &alice, json!({"name": "data"})).await;
    let src_dir = folder_dir(&app, &src);
    plant_tree(&src_dir, 6 * 1024 * 1024);
    let before = snapshot(&src_dir);

    let r = app
        .post(
            "/v1/vfolders/data/clone",
            Some(&alice),
            &json!({"target_name": "copy"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["status"], "cloning");
    let task_id = r.body["bgtask_id"].as_str().unwrap().to_string();
    assert!(r.body["position"].as_i64().unwrap() > 0);
    let got = app.get("/v1/vfolders/copy", Some(&alice)).await;
    assert_eq!(
        got.body["status"], "cloning",
        "never ready while the copy runs: {:?}",
        got.body
    );

    let frames = read_stream(&app, &alice, &format!("?task_id={task_id}")).await;
    let updates: Vec<f64> = frames
        .iter()
        .filter(|(e, _)| e == "bgtask_updated")
        .map(|(_, d)| d["current_progress"].as_f64().expect("a float"))
        .collect();
    assert!(updates.len() >= 2, "{frames:?}");
    assert!(
        updates.windows(2).all(|w| w[0] < w[1]),
        "progress only moves forward: {updates:?}"
    );
    let names: Vec<&str> = frames
        .iter()
        .map(|(e, _)| e.as_str())
        .skip_while(|e| *e == "bgtask_updated")
        .collect();
    assert_eq!(names, vec!["bgtask_done", "server_close"], "{frames:?}");
    assert_eq!(frames.last().unwrap().1, json!({}));
    let done = &frames[frames.len() - 2].1;
    assert_eq!(done["task_id"], task_id.as_str());
    assert!(
        done["message"]
            .as_str()
            .unwrap()
            .contains("skipped 1 special files"),
        "{done}"
    );

    let t = finished(&app, &alice, &task_id).await;
    assert_eq!(t["status"], "done");
    assert_eq!(t["attempts"], 1);
    let target = app.get("/v1/vfolders/copy", Some(&alice)).await;
    assert_eq!(target.body["status"], "ready");
    let target_dir = app
        .volume_root
        .join(target.body["vfolder_id"].as_str().unwrap());
    let mut expected = before.clone();
    expected.remove("fifo");
    assert_eq!(
        snapshot(&target_dir),
        expected,
        "contents, modes, mtimes and links equal"
    );
    assert_eq!(snapshot(&src_dir), before, "the source is untouched");
    assert_eq!(
        std::fs::read_link(target_dir.join("outside")).unwrap(),
        PathBuf::from("/etc/passwd")
    );

    // A second stream after the end: the terminal frame and server_close at once.
    let again = read_stream(&app, &alice, &format!("?taskId={task_id}")).await;
    let names: Vec<&str> = again.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names, vec!["bgtask_done", "server_close"]);

    // Unknown and another owner's task: 404.
    let bob = app.user_key("bob").await;
    for (key, id) in [
        (&alice, uuid::Uuid::new_v4().to_string()),
        (&bob, task_id.clone()),
        (&alice, "not-a-uuid".to_string()),
    ] {
        let r = app
            .get(
                &format!("/v1/events/background-task?task_id={id}"),
                Some(key),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}: {:?}", r.body);
        let r = app
            .get(&format!("/v1/background-tasks/{id}"), Some(key))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
    crate::helpers::audit_clean(&app).await;
    app.stop().await;
}

async fn a_cancelled_clone_leaves_its_target_in_error_with_no_files_and_the_source_intact(
    backend: Backend,
) {
    let app = spawn_app_with_settings(
        backend,
        |s| s.clone_max_bytes_per_sec = 2 * 1024 * 1024,
        |_| {},
    )
    .await;
    let alice = app.user_key("alice").await;
    let src = create(&app, &alice, json!({"name": "big"})).await;
    let src_dir = folder_dir(&app, &src);
    plant_tree(&src_dir, 32 * 1024 * 1024);
    let before = snapshot(&src_dir);
    let r = app
        .post(
            "/v1/vfolders/big/clone",
            Some(&alice),
            &json!({"target_name": "big2"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let task_id = r.body["bgtask_id"].as_str().unwrap().to_string();
    let target_dir = app.volume_root.join(r.body["vfolder_id"].as_str().unwrap());
    // Wait until the copy has begun (bytes on the target's disk).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !target_dir.exists() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The source cannot be deleted while its clone runs.
    let r = app.delete("/v1/vfolders/big", Some(&alice)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);

    let r = app
        .delete(&format!("/v1/background-tasks/{task_id}"), Some(&alice))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "cancelled");
    let frames = read_stream(&app, &alice, &format!("?task_id={task_id}")).await;
    let names: Vec<&str> = frames.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names, vec!["bgtask_cancelled", "server_close"]);
    let target = app.get("/v1/vfolders/big2", Some(&alice)).await;
    assert_eq!(target.body["status"], "error");
    assert_eq!(target.body["status_info"], "clone-cancelled");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while target_dir.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "partial files left behind"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(snapshot(&src_dir), before);
    // Cancelling again: the task has finished.
    let r = app
        .delete(&format!("/v1/background-tasks/{task_id}"), Some(&alice))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // Now the source can be deleted, as a background task.
    let r = app.delete("/v1/vfolders/big", Some(&alice)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["status"], "delete-pending");
    let t = finished(&app, &alice, r.body["bgtask_id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "done");
    assert!(!src_dir.exists());
    let r = app.get("/v1/vfolders/big", Some(&alice)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The name is free again.
    create(&app, &alice, json!({"name": "big"})).await;
    crate::helpers::audit_clean(&app).await;
    app.stop().await;
}

async fn a_clone_that_fails_on_every_attempt_ends_failed_after_three_with_its_target_in_error(
    backend: Backend,
) {
    let gone = std::env::temp_dir().join(format!("sessiond-gone-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&gone).unwrap();
    let root = gone.clone();
    let app = spawn_app_with_settings(
        backend,
        move |s| {
            s.volumes.insert(
                "gone".into(),
                sessiond::config::VolumeSettings {
                    root,
                    reserve_bytes: 0,
                },
            );
        },
        |_| {},
    )
    .await;
    let alice = app.user_key("alice").await;
    let src = create(&app, &alice, json!({"name": "src"})).await;
    std::fs::write(folder_dir(&app, &src).join("f"), b"x").unwrap();
    // The volume disappears (unmounted) after start-up: every attempt fails.
    std::fs::remove_dir_all(&gone).unwrap();
    let r = app
        .post(
            "/v1/vfolders/src/clone",
            Some(&alice),
            &json!({"target_name": "dst", "target_host": "gone"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let t = finished(&app, &alice, r.body["bgtask_id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "failed", "{t}");
    assert_eq!(t["attempts"], 3, "{t}");
    let target = app.get("/v1/vfolders/dst", Some(&alice)).await;
    assert_eq!(target.body["status"], "error");
    assert!(
        target.body["status_info"]
            .as_str()
            .unwrap()
            .starts_with("clone-failed: "),
        "{:?}",
        target.body
    );
    // The source's clone ended: it can be deleted.
    let r = app.delete("/v1/vfolders/src", Some(&alice)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    app.stop().await;
}

async fn bad_clone_and_file_requests_are_refused_with_the_right_status_and_change_nothing(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let alice = app.user_key("alice").await;
    let bob = app.user_key("bob").await;
    let src = create(&app, &alice, json!({"name": "src"})).await;
    std::fs::write(folder_dir(&app, &src).join("f"), b"x").unwrap();
    create(&app, &alice, json!({"name": "taken"})).await;
    create(&app, &alice, json!({"name": "ro", "permission": "ro"})).await;
    create(&app, &bob, json!({"name": "private"})).await;
    // A symlink planted inside the folder (as a session could), pointing outside.
    let outside = std::env::temp_dir().join(format!("sessiond-outside-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, folder_dir(&app, &src).join("escape")).unwrap();
    let events = app.event_count().await;
    let disk = snapshot(&app.volume_root);
    let long = "a".repeat(65);
    let cases: Vec<(&str, String, Value, StatusCode)> = vec![
        (
            "../x",
            "/v1/vfolders/src/clone".into(),
            json!({"target_name": "../x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/abs",
            "/v1/vfolders/src/clone".into(),
            json!({"target_name": "/abs"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "NUL",
            "/v1/vfolders/src/clone".into(),
            json!({"target_name": "a\u{0}b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "reserved",
            "/v1/vfolders/src/clone".into(),
            json!({"target_name": "tmp"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "65 characters",
            "/v1/vfolders/src/clone".into(),
            json!({"target_name": long}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "existing target",
            "/v1/vfolders/src/clone".into(),
            json!({"target_name": "taken"}),
            StatusCode::CONFLICT,
        ),
        (
            "missing source",
            "/v1/vfolders/nope/clone".into(),
            json!({"target_name": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "not cloneable, not owned",
            "/v1/vfolders/private/clone?owner=bob".into(),
            json!({"target_name": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "unknown volume",
            "/v1/vfolders/src/clone".into(),
            json!({"target_name": "x", "target_host": "nowhere"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "unknown field",
            "/v1/vfolders/src/clone".into(),
            json!({"target_name": "x", "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "bad create name",
            "/v1/vfolders".into(),
            json!({"name": ".ssh"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "taken create name",
            "/v1/vfolders".into(),
            json!({"name": "taken"}),
            StatusCode::CONFLICT,
        ),
        (
            "bad permission",
            "/v1/vfolders".into(),
            json!({"name": "p", "permission": "rwx"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (what, path, body, status) in cases {
        let r = app.post(&path, Some(&alice), &body).await;
        assert_eq!(r.status, status, "{what}: {:?}", r.body);
        assert!(
            !r.code().is_empty() && !r.message().is_empty(),
            "{what}: a JSON error"
        );
    }
    // Uploads: traversal, absolute, through the planted symlink, into a ro folder.
    for (path, status) in [
        (
            "/v1/vfolders/src/files/..%2Fx",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/v1/vfolders/src/files/a%2F..%2F..%2Fx",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/v1/vfolders/src/files/%2Fetc%2Fpasswd",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/v1/vfolders/src/files/escape/planted",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/v1/vfolders/src/files/a%00b",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("/v1/vfolders/ro/files/x", StatusCode::FORBIDDEN),
        (
            "/v1/vfolders/private/files/x?owner=bob",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let r = app
            .client
            .put(app.url(path))
            .bearer_auth(&alice)
            .body("data")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing written outside"
    );
    let r = app
        .get("/v1/vfolders/src/files/escape/x", Some(&alice))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.event_count().await, events, "nothing appended");
    assert_eq!(snapshot(&app.volume_root), disk, "nothing changed on disk");
    app.stop().await;
}

async fn files_go_up_and_down_and_a_cloneable_folder_of_another_owner_can_be_cloned(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let alice = app.user_key("alice").await;
    let bob = app.user_key("bob").await;
    create(&app, &alice, json!({"name": "shared", "cloneable": true})).await;
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let r = app
        .client
        .put(app.url("/v1/vfolders/shared/files/dir/sub/data.bin"))
        .bearer_auth(&alice)
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .client
        .get(app.url("/v1/vfolders/shared/files/dir/sub/data.bin"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{:?}", r.text().await);
    assert_eq!(r.bytes().await.unwrap().to_vec(), payload);
    let r = app
        .get("/v1/vfolders/shared/files?path=dir/sub", Some(&alice))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["items"][0]["name"], "data.bin");
    assert_eq!(r.body["items"][0]["size"], 200_000);
    assert_eq!(r.body["items"][0]["type"], "file");
    // Bob sees it only by naming its owner, and may clone it (not write into it).
    assert_eq!(
        app.get("/v1/vfolders/shared", Some(&bob)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/vfolders/shared?owner=alice", Some(&bob))
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .client
        .put(app.url("/v1/vfolders/shared/files/x?owner=alice"))
        .bearer_auth(&bob)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app
        .post(
            "/v1/vfolders/shared/clone?owner=alice",
            Some(&bob),
            &json!({"target_name": "mine"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let t = finished(&app, &bob, r.body["bgtask_id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "done");
    let r = app
        .client
        .get(app.url("/v1/vfolders/mine/files/dir/sub/data.bin"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), payload);
    let list = app.get("/v1/vfolders", Some(&bob)).await;
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["mine"]);
    // Another owner's listing shows their cloneable folders only.
    create(&app, &alice, json!({"name": "secret"})).await;
    let theirs = app.get("/v1/vfolders?owner=alice", Some(&bob)).await;
    let names: Vec<&str> = theirs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["shared"]);
    // A file where a directory is needed, and a listing of a file: 4xx, not 5xx.
    let r = app
        .client
        .put(app.url("/v1/vfolders/mine/files/dir/sub/data.bin/below"))
        .bearer_auth(&bob)
        .body("x")
        .send()
        .await
        .unwrap();
    let st = r.status();
    assert!(st.is_client_error(), "{st} {:?}", r.text().await);
    let r = app
        .get("/v1/vfolders/mine/files?path=dir/sub/data.bin", Some(&bob))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    // Delete a file, then the folder.
    let r = app
        .client
        .delete(app.url("/v1/vfolders/mine/files/dir/sub/data.bin"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .client
        .get(app.url("/v1/vfolders/mine/files/dir/sub/data.bin"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    crate::helpers::audit_clean(&app).await;
    app.stop().await;
}

async fn a_clone_onto_a_volume_without_the_space_fails_insufficient_space_and_leaves_nothing(
    backend: Backend,
) {
    let tight = std::env::temp_dir().join(format!("sessiond-tight-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&tight).unwrap();
    let root = tight.clone();
    let app = spawn_app_with_settings(
        backend,
        move |s| {
            // Everything the file system has free is reserved for others.
            s.volumes.insert(
                "tight".into(),
                sessiond::config::VolumeSettings {
                    root,
                    reserve_bytes: u64::MAX,
                },
            );
        },
        |_| {},
    )
    .await;
    let alice = app.user_key("alice").await;
    let src = create(&app, &alice, json!({"name": "src"})).await;
    std::fs::write(folder_dir(&app, &src).join("f"), vec![1u8; 4096]).unwrap();
    let r = app
        .post(
            "/v1/vfolders/src/clone",
            Some(&alice),
            &json!({"target_name": "dst", "target_host": "tight"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let t = finished(&app, &alice, r.body["bgtask_id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "failed");
    assert_eq!(t["attempts"], 1, "a permanent failure is not retried");
    assert!(
        t["message"]
            .as_str()
            .unwrap()
            .starts_with("insufficient-space"),
        "{t}"
    );
    let target = app.get("/v1/vfolders/dst", Some(&alice)).await;
    assert_eq!(target.body["status"], "error");
    assert_eq!(
        std::fs::read_dir(&tight).unwrap().count(),
        0,
        "nothing left behind"
    );
    // An upload that announces more than the volume has: 507, nothing written.
    create(&app, &alice, json!({"name": "up", "host": "tight"})).await;
    let r = app
        .client
        .put(app.url("/v1/vfolders/up/files/x"))
        .bearer_auth(&alice)
        .body(vec![0u8; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    app.stop().await;
}

both_backends!(
    a_clone_onto_a_volume_without_the_space_fails_insufficient_space_and_leaves_nothing,
    a_clone_copies_the_tree_exactly_and_the_stream_ends_with_done_then_server_close,
    a_cancelled_clone_leaves_its_target_in_error_with_no_files_and_the_source_intact,
    a_clone_that_fails_on_every_attempt_ends_failed_after_three_with_its_target_in_error,
    bad_clone_and_file_requests_are_refused_with_the_right_status_and_change_nothing,
    files_go_up_and_down_and_a_cloneable_folder_of_another_owner_can_be_cloned,
);
