//! API keys never reach a log: a real server (logging at debug, everything) and a real
//! agent go through a session's lifecycle, streams, bad and near-miss credentials, a key
//! pasted where it does not belong and a revocation; then every log line both processes
//! and `sessionctl` wrote is searched for every key the test created.

use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use testkit::serve::{wait_until, ADMIN_KEY};

use crate::{batch, ended, start_agent, start_server};

/// Each key and the parts of it that would still be a leak (its random part alone).
fn needles(key: &str) -> Vec<String> {
    let mut n = vec![key.to_string()];
    if let Some(random) = key.strip_prefix("sdk_") {
        n.push(random.to_string());
        n.push(random[..32].to_string());
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_of_a_full_run_contains_any_key_it_used() {
    let server = start_server(&[("RUST_LOG", "debug")]);
    server.group("g").await;
    let alice = server.key(&["--role", "user", "--owner", "alice"]).await;
    let bob = server.key(&["--role", "user", "--owner", "bob"]).await;
    let agent_key = server.key(&["--role", "agent", "--agent-id", "a1"]).await;
    let _agent = start_agent(&server, &agent_key, "a1", &server.dir.join("a1"), &[]);

    // A session through its lifecycle on the real agent, with its logs read back
    let id = server
        .enqueue(&alice, batch("leak-check", "echo hello", None))
        .await;
    let s = server.wait_session(&alice, &id, "ended", ended).await;
    assert_eq!(s["status"], "TERMINATED", "{s}");
    let (code, _) = server
        .call(
            Method::GET,
            &format!("/v1/sessions/{id}/logs"),
            &alice,
            None,
        )
        .await;
    assert_eq!(code, 200);

    // Credentials that are wrong, nearly right, or in the wrong place
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.base);
    let attempts = [
        ("Authorization", format!("Basic {alice}")),
        ("Authorization", format!("Bearer {alice}x")),
        (
            "Authorization",
            format!("Bearer {}", &alice[..alice.len() - 1]),
        ),
        ("Authorization", format!("Bearer  {alice} extra")),
        ("Authorization", alice.clone()),
        ("X-Api-Key", alice.clone()),
    ];
    for (name, value) in &attempts {
        let r = http
            .get(url("/v1/sessions"))
            .header(*name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{name}: {value}");
    }
    let r = http
        .get(url(&format!("/v1/sessions?api_key={alice}&owner={alice}")))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    // A key pasted into a body field and into the Idempotency-Key
    let r = http
        .post(url("/v1/sessions"))
        .bearer_auth(&bob)
        .header("Idempotency-Key", &alice)
        .json(
            &json!({"name": alice, "type": "batch", "image": "python:3.12",
                      "resources": {"cpu": "0.5", "mem": "256m"}, "startup_command": "true"}),
        )
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_client_error() || r.status().is_success(),
        "{}",
        r.status()
    );
    // A stream opened and dropped
    let stream = http
        .get(url("/v1/events/sessions"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    drop(stream);

    // A revocation, and the revoked key tried again
    let (ok, list, err) = server.sessionctl(&["keys", "list", "--json"]);
    assert!(ok, "{err}");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let bob_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["owner"] == "bob")
        .and_then(|k| k["id"].as_str())
        .unwrap()
        .to_string();
    let (ok, _, revoke_err) = server.sessionctl(&["keys", "revoke", &bob_id]);
    assert!(ok, "{revoke_err}");
    let (code, _) = server.call(Method::GET, "/v1/sessions", &bob, None).await;
    assert_eq!(code, 401);

    // The server has logged the requests (the search below can find something)
    wait_until(
        "the server logged the revoked key's 401",
        Duration::from_secs(10),
        || async {
            let logs = server.logs.lock().unwrap();
            if logs.iter().any(|l| l.contains("status=401")) {
                Ok(())
            } else {
                Err(format!("{} lines, none with status=401", logs.len()))
            }
        },
    )
    .await;

    let logs = server.logs.lock().unwrap().clone();
    let agent_logs = server.agent_logs.lock().unwrap().clone();
    assert!(logs.len() > 50, "only {} server log lines", logs.len());
    assert!(!agent_logs.is_empty(), "no agent log lines");
    assert!(
        logs.iter().any(|l| l.contains(&bob_id)),
        "the key id (safe to log) appears, so keys are logged by id"
    );
    let everything = logs
        .iter()
        .map(|l| ("server", l.as_str()))
        .chain(agent_logs.iter().map(|l| ("agent", l.as_str())))
        .chain(std::iter::once(("sessionctl", revoke_err.as_str())));
    let mut leaks = Vec::new();
    for (who, line) in everything {
        for key in [&alice, &bob, &agent_key, &ADMIN_KEY.to_string()] {
            for needle in needles(key) {
                if line.contains(&needle) {
                    leaks.push(format!("{who}: {line}"));
                }
            }
        }
    }
    assert!(leaks.is_empty(), "keys in logs:\n{}", leaks.join("\n"));
}
