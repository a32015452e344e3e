//! The process agent (SPEC §9) for real: a `sessiond serve` process on SQLite and
//! `sessiond agent` processes running sessions as local processes, driven over HTTP.
//! Every wait is for a condition with a deadline, never a fixed sleep; each session
//! command carries a marker so the test can prove that no process of it outlives it.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::arithmetic_side_effects)]

mod secrets;

use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::serve::{spawn_serve, Bins, Proc, Server};

const BINS: Bins = Bins {
    sessiond: env!("CARGO_BIN_EXE_sessiond"),
    sessionctl: env!("CARGO_BIN_EXE_sessionctl"),
};

fn start_server(envs: &[(&str, &str)]) -> Server {
    Server::start(BINS, envs)
}

/// A `sessiond agent` process in group `g` with 8 CPUs.
fn start_agent(
    server: &Server,
    key: &str,
    agent_id: &str,
    work_dir: &Path,
    extra: &[&str],
) -> Proc {
    server.agent(key, agent_id, "g", "cpu=8,mem=8g", work_dir, extra)
}

/// Processes whose command line contains `marker` (other than this test itself).
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    let me = std::process::id().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == me {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(marker) {
                found.push(format!("{name}: {text}"));
            }
        }
    }
    found
}

/// Waits until no process carries `marker`.
async fn wait_no_processes(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = processes_with(marker);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ended(s: &Value) -> bool {
    matches!(
        s["status"].as_str(),
        Some("TERMINATED" | "ERROR" | "CANCELLED")
    )
}

fn batch(name: &str, command: &str, timeout: Option<u64>) -> Value {
    let mut b = json!({"name": name, "type": "batch", "image": "sh", "resources": {"cpu": 1, "mem": "64m"},
                       "startup_command": command, "scaling_group": "g"});
    if let Some(t) = timeout {
        b["batch_timeout"] = json!(t);
    }
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_real_agents_run_fifty_batch_sessions_to_their_exact_ends_with_their_logs() {
    let server = start_server(&[]);
    server.group("g").await;
    let user = server.key(&["--role", "user", "--owner", "alice"]).await;
    let marker = format!("m{}", uuid::Uuid::new_v4().simple());
    let work = server.dir.join("agents");
    let mut agents = Vec::new();
    for a in ["a1", "a2"] {
        let key = server.key(&["--role", "agent", "--agent-id", a]).await;
        agents.push(start_agent(
            &server,
            &key,
            a,
            &work.join(a),
            &["--stop-grace-secs", "2"],
        ));
    }
    // (name, command, batch_timeout, expected status, expected status_info)
    let mut cases: Vec<(String, String, Option<u64>, &str, String)> = Vec::new();
    for i in 0..50u32 {
        let name = format!("job{i}");
        let case = match i % 5 {
            0 => (
                format!("echo out-{i}; echo err-{i} >&2; : {marker}"),
                None,
                "TERMINATED",
                "self-terminated".to_string(),
            ),
            1 | 2 => {
                let n = i % 7 + 1;
                (
                    format!("echo out-{i}; : {marker}; exit {n}"),
                    None,
                    "ERROR",
                    format!("exit-code-{n}"),
                )
            }
            3 => (
                format!("echo out-{i}; sleep 30; : {marker}"),
                Some(1),
                "ERROR",
                "batch-timeout".to_string(),
            ),
            _ => (
                format!("echo out-{i}; : {marker}; kill -TERM $$"),
                None,
                "ERROR",
                "signal-SIGTERM".to_string(),
            ),
        };
        cases.push((name, case.0, case.1, case.2, case.3));
    }
    let mut ids = Vec::new();
    for (name, command, timeout, _, _) in &cases {
        ids.push(server.enqueue(&user, batch(name, command, *timeout)).await);
    }
    for (id, (name, _, _, status, info)) in ids.iter().zip(&cases) {
        let s = server.wait_session(&user, id, "ended", ended).await;
        assert_eq!(s["status"], *status, "{name}: {s}");
        assert_eq!(s["status_info"], info.as_str(), "{name}: {s}");
        let i: u32 = name.trim_start_matches("job").parse().unwrap();
        let (code, logs) = server
            .call(Method::GET, &format!("/v1/sessions/{id}/logs"), &user, None)
            .await;
        assert_eq!(code, 200, "{logs}");
        assert!(
            logs["stdout"]
                .as_str()
                .is_some_and(|o| o.contains(&format!("out-{i}"))),
            "{name}: {logs}"
        );
        if i % 5 == 0 {
            assert_eq!(logs["stderr"], format!("err-{i}\n"), "{name}");
            assert_eq!(s["exit_code"], 0);
        }
        if i % 5 == 1 || i % 5 == 2 {
            assert_eq!(s["exit_code"], i % 7 + 1, "{name}");
        }
        // The work directory holds the session's logs.
        assert!(
            ["a1", "a2"]
                .iter()
                .any(|a| work.join(a).join(id).join("stdout.log").is_file()),
            "{name}: no stdout.log"
        );
    }
    wait_no_processes(&marker).await;
    // A user key cannot act as an agent, and others' logs are 404.
    let bob = server.key(&["--role", "user", "--owner", "bob"]).await;
    let (code, _) = server
        .call(
            Method::GET,
            &format!("/v1/sessions/{}/logs", ids[0]),
            &bob,
            None,
        )
        .await;
    assert_eq!(code, 404);
    drop(agents);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_session_that_ignores_sigterm_is_killed_after_the_grace_period_and_ends_terminated(
) {
    let server = start_server(&[]);
    server.group("g").await;
    let user = server.key(&["--role", "user", "--owner", "alice"]).await;
    let key = server.key(&["--role", "agent", "--agent-id", "a1"]).await;
    let work = server.dir.join("a1");
    let _agent = start_agent(&server, &key, "a1", &work, &["--stop-grace-secs", "2"]);
    let marker = format!("m{}", uuid::Uuid::new_v4().simple());
    let command = format!("trap '' TERM; echo ready; while :; do sleep 1; : {marker}; done");
    let id = server
        .enqueue(&user, batch("stubborn", &command, None))
        .await;
    server
        .wait_session(&user, &id, "RUNNING", |s| s["status"] == "RUNNING")
        .await;
    // Its process is really there.
    let deadline = Instant::now() + Duration::from_secs(30);
    while processes_with(&marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the session's process never showed up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let asked = Instant::now();
    let (code, b) = server
        .call(Method::DELETE, &format!("/v1/sessions/{id}"), &user, None)
        .await;
    assert_eq!(code, 200, "{b}");
    assert_eq!(b["status"], "TERMINATING");
    let s = server.wait_session(&user, &id, "ended", ended).await;
    assert_eq!(s["status"], "TERMINATED", "{s}");
    assert_eq!(s["status_info"], "user-requested");
    assert!(
        asked.elapsed() >= Duration::from_secs(2),
        "ended before the grace period: SIGTERM was not ignored?"
    );
    wait_no_processes(&marker).await;
    // Acknowledged: nothing is left in the agent's assignments (once the read models
    // include the acknowledgement).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, a) = server
            .call(Method::GET, "/v1/agents/a1/assignments", &key, None)
            .await;
        if a["items"] == json!([]) {
            break;
        }
        assert!(Instant::now() < deadline, "the stop notice stayed: {a}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The agent's ledger, folded from the store by `sessionctl replay`.
fn ledger(server: &Server, agent: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sessionctl"))
        .args(["replay", "agent", agent, "--database-url", &server.db])
        .env_remove("SESSIOND_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cancelled_while_preparing_keeps_its_stop_notice_after_its_slots_are_released_until_the_agent_acknowledges(
) {
    let server = start_server(&[]);
    server.group("g").await;
    let user = server.key(&["--role", "user", "--owner", "alice"]).await;
    let key = server.key(&["--role", "agent", "--agent-id", "a1"]).await;
    // A hand-driven agent: registration and reports over the API, no process.
    let (code, b) = server
        .call(
            Method::POST,
            "/v1/agents",
            &key,
            Some(json!({"agent_id": "a1", "scaling_group": "g", "addr": "10.0.0.1:1", "available_slots": {"cpu": 4, "mem": "1g"}})),
        )
        .await;
    assert_eq!(code, 200, "{b}");
    let id = server.enqueue(&user, batch("prep", "true", None)).await;
    server
        .wait_session(&user, &id, "SCHEDULED", |s| s["status"] == "SCHEDULED")
        .await;
    let (code, b) = server
        .call(
            Method::POST,
            &format!("/v1/sessions/{id}/kernel-events"),
            &key,
            Some(json!({"event": "preparing"})),
        )
        .await;
    assert_eq!(code, 200, "{b}");
    let (code, b) = server
        .call(Method::DELETE, &format!("/v1/sessions/{id}"), &user, None)
        .await;
    assert_eq!(
        (code, b["status"].as_str()),
        (200, Some("CANCELLED")),
        "{b}"
    );
    // The slot-release worker gives the slots back ...
    let deadline = Instant::now() + Duration::from_secs(30);
    while ledger(&server, "a1")["allocations"] != json!({}) {
        assert!(Instant::now() < deadline, "the slots were never released");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ... and the agent is still told to stop it, by a long-poll that wakes for it too.
    // (Polled: the `sessions` read model may lag the cancellation for a moment.)
    let deadline = Instant::now() + Duration::from_secs(30);
    let a = loop {
        let (code, a) = server
            .call(Method::GET, "/v1/agents/a1/assignments", &key, None)
            .await;
        assert_eq!(code, 200, "{a}");
        if a["items"][0]["status"] == "CANCELLED" {
            break a;
        }
        assert!(Instant::now() < deadline, "no stop notice: {a}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let items = a["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{a}");
    assert_eq!(items[0]["session_id"], id.as_str());
    assert_eq!(items[0]["action"], "stop");
    assert_eq!(items[0]["status"], "CANCELLED");
    let version = a["version"].as_str().unwrap().to_string();
    let waiting = {
        let (http, url, key) = (
            server.http.clone(),
            format!(
                "{}/v1/agents/a1/assignments?wait=20&version={version}",
                server.base
            ),
            key.clone(),
        );
        tokio::spawn(async move { testkit::http::call(&http, Method::GET, url, &key, None).await })
    };
    // The acknowledgement: a late report on a CANCELLED session is accepted (no 409).
    let (code, b) = server
        .call(
            Method::POST,
            &format!("/v1/sessions/{id}/kernel-events"),
            &key,
            Some(json!({"event": "terminated", "logs": {"stdout": "bye\n", "stderr": ""}})),
        )
        .await;
    assert_eq!(code, 200, "{b}");
    assert_eq!(b["status"], "CANCELLED");
    let (status, woke) = waiting.await.unwrap();
    assert_eq!(status.as_u16(), 200);
    assert_eq!(woke["items"], json!([]), "{woke}");
    let (_, h) = server
        .call(
            Method::GET,
            &format!("/v1/sessions/{id}/history"),
            &user,
            None,
        )
        .await;
    let types: Vec<&str> = h["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert_eq!(types.last(), Some(&"SessionKernelEnded"), "{types:?}");
    // Repeating it appends nothing; logs are kept.
    let (code, _) = server
        .call(
            Method::POST,
            &format!("/v1/sessions/{id}/kernel-events"),
            &key,
            Some(json!({"event": "terminated"})),
        )
        .await;
    assert_eq!(code, 200);
    let (_, logs) = server
        .call(Method::GET, &format!("/v1/sessions/{id}/logs"), &user, None)
        .await;
    assert_eq!(logs["stdout"], "bye\n");
    assert_eq!(logs["agent_id"], "a1");
    // Logs only come with a final report, and within 16 KiB.
    let (code, b) = server
        .call(
            Method::POST,
            &format!("/v1/sessions/{id}/kernel-events"),
            &key,
            Some(json!({"event": "terminated", "logs": {"stdout": "x".repeat(16 * 1024 + 1)}})),
        )
        .await;
    assert_eq!(code, 422, "{b}");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("logs.stdout"),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_is_lost_its_slots_are_released_and_a_restart_with_the_same_id_reconciles() {
    let server = start_server(&[("SESSIOND_AGENT_LOST_AFTER_SECS", "2")]);
    server.group("g").await;
    let user = server.key(&["--role", "user", "--owner", "alice"]).await;
    let key = server.key(&["--role", "agent", "--agent-id", "a1"]).await;
    let work = server.dir.join("a1");
    let marker = format!("m{}", uuid::Uuid::new_v4().simple());
    let mut agent = start_agent(&server, &key, "a1", &work, &[]);
    let id = server
        .enqueue(
            &user,
            batch("long", &format!("sleep 300; : {marker}"), None),
        )
        .await;
    server
        .wait_session(&user, &id, "RUNNING", |s| s["status"] == "RUNNING")
        .await;
    // kill -9: no chance to clean up; its session's process lives on, orphaned.
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();
    let s = server
        .wait_session(&user, &id, "ERROR", |s| s["status"] == "ERROR")
        .await;
    assert_eq!(s["status_info"], "agent-lost", "{s}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let l = ledger(&server, "a1");
        assert_eq!(l["status"], "LOST", "{l}");
        if l["allocations"] == json!({}) {
            break; // its session's slots are released
        }
        assert!(Instant::now() < deadline, "slots never released: {l}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !processes_with(&marker).is_empty(),
        "the orphan should still run"
    );
    // The same agent id comes back: it re-registers, kills what it left behind and
    // reports it.
    let _again = start_agent(&server, &key, "a1", &work, &[]);
    wait_no_processes(&marker).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, h) = server
            .call(
                Method::GET,
                &format!("/v1/sessions/{id}/history"),
                &user,
                None,
            )
            .await;
        let acked = h["items"].as_array().unwrap().iter().any(|e| {
            e["event_type"] == "SessionKernelEnded"
                && e["payload"]["SessionKernelEnded"]["reason"] == "agent-restarted"
        });
        if acked {
            break;
        }
        assert!(Instant::now() < deadline, "no agent-restarted report: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while ledger(&server, "a1")["status"] != "ALIVE" {
        assert!(Instant::now() < deadline, "the agent never came back ALIVE");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Deleting the failed session now ends it at once: nothing is left to stop.
    let (code, b) = server
        .call(Method::DELETE, &format!("/v1/sessions/{id}"), &user, None)
        .await;
    assert_eq!(
        (code, b["status"].as_str()),
        (200, Some("TERMINATED")),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_survives_a_server_restart_and_stopped_with_sigterm_leaves_no_process() {
    let mut server = start_server(&[]);
    server.group("g").await;
    let user = server.key(&["--role", "user", "--owner", "alice"]).await;
    let key = server.key(&["--role", "agent", "--agent-id", "a1"]).await;
    let marker = format!("m{}", uuid::Uuid::new_v4().simple());
    let agent = start_agent(
        &server,
        &key,
        "a1",
        &server.dir.join("a1"),
        &["--stop-grace-secs", "1"],
    );
    let first = server
        .enqueue(
            &user,
            batch("first", &format!("sleep 300; : {marker}"), None),
        )
        .await;
    server
        .wait_session(&user, &first, "RUNNING", |s| s["status"] == "RUNNING")
        .await;
    // The server goes away and comes back on the same address and store.
    let listen = server.base.trim_start_matches("http://").to_string();
    drop(std::mem::replace(
        &mut server.proc,
        Proc(Command::new("true").spawn().unwrap()),
    ));
    let (proc, base) = spawn_serve(BINS, &server.dir, &server.db, &listen, &[]);
    server.proc = proc;
    assert_eq!(base, server.base);
    // The agent carries on: its running session is untouched, and new work reaches it.
    let second = server
        .enqueue(
            &user,
            batch("second", &format!("echo after; : {marker}"), None),
        )
        .await;
    let s = server.wait_session(&user, &second, "ended", ended).await;
    assert_eq!(s["status"], "TERMINATED", "{s}");
    assert_eq!(server.session(&user, &first).await["status"], "RUNNING");
    // SIGTERM: the agent stops its session's process group, reports it, and exits 0.
    let pid = agent.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut agent = agent;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = agent.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
    wait_no_processes(&marker).await;
    let s = server.wait_session(&user, &first, "ended", ended).await;
    assert_eq!(s["status"], "ERROR", "{s}");
    assert_eq!(s["status_info"], "agent-stopped", "{s}");
}
