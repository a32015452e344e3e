//! `sessionctl session ...` (SPEC §11) against a real `sessiond serve` and a real
//! `sessiond agent` process: every subcommand, `--json` parsed, and one-line errors
//! with their exit codes (bad key, unknown session, server down).

use serde_json::Value;
use std::time::{Duration, Instant};

use super::remote::{one_line, remote, sessionctl, start_server, user_key, Server};
use testkit::serve::Proc;

/// A group `g` and a real agent `a1` running sessions as processes.
async fn group_and_agent(server: &Server) -> Proc {
    server.group("g").await;
    let key = server.key(&["--role", "agent", "--agent-id", "a1"]).await;
    server.agent(
        &key,
        "a1",
        "g",
        "cpu=4,mem=4g",
        &server.dir.join("agent"),
        &["--stop-grace-secs", "1"],
    )
}

/// `session show ID --json`, polled until `pred` holds.
async fn wait_show(server: &Server, key: &str, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, out, err) = remote(server, key, &["session", "show", id, "--json"]).await;
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "never reached: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_commands_create_list_show_watch_logs_history_and_cancel_over_http() {
    let server = start_server();
    let _agent = group_and_agent(&server).await;
    let key = user_key(&server, "alice").await;

    // create --wait follows a batch session to its end: 0 on TERMINATED ...
    let (code, out, err) = remote(
        &server,
        &key,
        &[
            "session",
            "create",
            "--name",
            "ok",
            "--image",
            "sh",
            "--resources",
            "cpu=1,mem=64m",
            "--group",
            "g",
            "--command",
            "echo hello; echo oops >&2",
            "--wait",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let ok = out.trim().to_string();
    assert!(uuid::Uuid::parse_str(&ok).is_ok(), "{out}");
    assert!(err.contains("SessionTerminated"), "{err}");
    // ... 1 on ERROR, with one line naming status and reason.
    let (code, out, err) = remote(
        &server,
        &key,
        &[
            "session",
            "create",
            "--name",
            "bad",
            "--image",
            "sh",
            "--resources",
            "cpu=1,mem=64m",
            "--group",
            "g",
            "--command",
            "exit 4",
            "--wait",
        ],
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.trim()
            .lines()
            .last()
            .unwrap()
            .contains("ERROR: exit-code-4"),
        "{err}"
    );

    // list --json, filtered (the list is a read model: wait until it has caught up with
    // the stream the waits followed).
    let deadline = Instant::now() + Duration::from_secs(30);
    let errs: Vec<Value> = loop {
        let (code, out, err) = remote(
            &server,
            &key,
            &["session", "list", "--status", "ERROR", "--json"],
        )
        .await;
        assert_eq!(code, 0, "{err}");
        let errs: Vec<Value> = serde_json::from_str(&out).unwrap();
        if !errs.is_empty() {
            break errs;
        }
        assert!(
            Instant::now() < deadline,
            "the list never showed the ERROR session"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0]["name"], "bad");
    let (code, out, err) = remote(&server, &key, &["session", "list", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let all: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(all.len(), 2);
    let (code, out, _) = remote(&server, &key, &["session", "list"]).await;
    assert_eq!(code, 0);
    assert!(out.lines().next().unwrap().starts_with("ID"), "{out}");
    assert!(out.contains("exit-code-4"), "{out}");

    // show by name and by id.
    let (code, out, err) = remote(&server, &key, &["session", "show", "ok", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["session_id"], ok.as_str());
    assert_eq!(shown["status"], "TERMINATED");
    let (_, out, _) = remote(&server, &key, &["session", "show", &ok]).await;
    assert!(out.contains("status       TERMINATED"), "{out}");

    // logs and history.
    let (code, out, err) = remote(&server, &key, &["session", "logs", "ok"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hello\noops\n");
    let (_, out, _) = remote(&server, &key, &["session", "logs", "ok", "--json"]).await;
    let logs: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(logs["stderr"], "oops\n");
    let (code, out, _) = remote(&server, &key, &["session", "history", "bad", "--json"]).await;
    assert_eq!(code, 0);
    let h: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(h.last().unwrap()["event_type"], "SessionErrored");
    let (_, out, _) = remote(&server, &key, &["session", "history", "bad"]).await;
    assert!(
        out.contains("exit-code-4") && out.contains("agent:a1"),
        "{out}"
    );

    // watch a running session while it is cancelled: exit 0 on TERMINATED.
    let (code, out, err) = remote(
        &server,
        &key,
        &[
            "session",
            "create",
            "--name",
            "long",
            "--image",
            "sh",
            "--resources",
            "cpu=1,mem=64m",
            "--group",
            "g",
            "--command",
            "sleep 300",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let long = out.trim().to_string();
    wait_show(&server, &key, &long, |v| v["status"] == "RUNNING").await;
    let watcher = {
        let (base, key, long) = (server.base.clone(), key.clone(), long.clone());
        tokio::spawn(async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_sessionctl"))
                .args([
                    "session", "watch", &long, "--json", "--server", &base, "--key", &key,
                ])
                .env_remove("SESSIOND_SERVER")
                .env_remove("SESSIOND_KEY")
                .output()
                .await
                .unwrap()
        })
    };
    let (code, out, err) = remote(&server, &key, &["session", "cancel", &long]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), format!("{long} TERMINATING"));
    let watched = tokio::time::timeout(Duration::from_secs(60), watcher)
        .await
        .expect("watch ends")
        .unwrap();
    assert_eq!(watched.status.code(), Some(0));
    let frames: Vec<Value> = String::from_utf8_lossy(&watched.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(frames.last().unwrap()["status"], "TERMINATED");
    assert!(frames.iter().any(|f| f["status"] == "TERMINATING"));
    // A session that has ended cannot be cancelled again: 409, one line, exit 1.
    let (code, _, err) = remote(&server, &key, &["session", "cancel", &long]).await;
    assert_eq!(code, 1);
    assert!(one_line(&err).contains("illegal_transition"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_commands_fail_in_one_line_with_their_exit_codes() {
    let server = start_server();
    let key = user_key(&server, "alice").await;
    // Unknown session, by name and by id: exit 1.
    let (code, _, err) = remote(&server, &key, &["session", "show", "nope"]).await;
    assert_eq!(code, 1);
    assert!(one_line(&err).contains("not_found"), "{err}");
    let (code, _, err) = remote(
        &server,
        &key,
        &["session", "logs", &uuid::Uuid::new_v4().to_string()],
    )
    .await;
    assert_eq!(code, 1);
    assert!(one_line(&err).contains("not_found"), "{err}");
    // A bad key: exit 1, the server's code.
    let (code, _, err) = remote(&server, "not-a-key", &["session", "list"]).await;
    assert_eq!(code, 1);
    assert!(one_line(&err).contains("unauthorized"), "{err}");
    // Malformed resources: a usage error, exit 2.
    let (code, _, err) = remote(
        &server,
        &key,
        &[
            "session",
            "create",
            "--name",
            "x",
            "--image",
            "i",
            "--resources",
            "cpu",
        ],
    )
    .await;
    assert_eq!(code, 2);
    assert!(one_line(&err).contains("--resources"), "{err}");
    // The server's own validation: exit 1.
    let (code, _, err) = remote(
        &server,
        &key,
        &[
            "session",
            "create",
            "--name",
            "bad name!",
            "--image",
            "i",
            "--resources",
            "cpu=1",
        ],
    )
    .await;
    assert_eq!(code, 1);
    assert!(one_line(&err).contains("name"), "{err}");
    // The server down: exit 2.
    let (code, _, err) = sessionctl(&[
        "session",
        "list",
        "--server",
        "http://127.0.0.1:9",
        "--key",
        "k",
    ])
    .await;
    assert_eq!(code, 2);
    assert!(one_line(&err).contains("cannot reach the server"), "{err}");
}
