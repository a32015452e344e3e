//! The dashboard (SPEC §12) in a real browser: Debian's Chromium, headless, driven over
//! WebDriver by chromedriver, against a real `sessiond serve` with a simulated
//! `sessiond agent`. Every wait is for a condition on the page or the API, with a
//! deadline. Screenshots are saved in `target/ui-artifacts/` (CI keeps them; examples
//! are committed in `docs/img/`).
//!
//! Needs `chromium` and `chromedriver` (`scripts/test` installs Debian's `chromium` and
//! `chromium-driver` when they are missing); `SESSIOND_CHROMIUM` and
//! `SESSIOND_CHROMEDRIVER` name other binaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::serve::{wait_until, Bins, Proc, Server, ADMIN_KEY};

const BINS: Bins = Bins {
    sessiond: env!("CARGO_BIN_EXE_sessiond"),
    sessionctl: env!("CARGO_BIN_EXE_sessionctl"),
};

const WAIT: Duration = Duration::from_secs(20);

/// A headless Chromium under chromedriver, both killed on drop.
struct Browser {
    client: Client,
    _driver: Proc,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn binary(env: &str, default: &str) -> String {
    let path = std::env::var(env).unwrap_or_else(|_| default.to_string());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: install Debian's chromium and chromium-driver \
         (scripts/test does), or set {env}"
    );
    path
}

/// Starts chromedriver on a free port and a browser window of `width`×`height`.
async fn browser(width: u32, height: u32) -> Browser {
    let chromium = binary("SESSIOND_CHROMIUM", "/usr/bin/chromium");
    let chromedriver = binary("SESSIOND_CHROMEDRIVER", "/usr/bin/chromedriver");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let driver = Proc(child);
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("chromedriver exited before it started")
            .unwrap();
        if line.contains("started successfully") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let profile = std::env::temp_dir().join(format!("sessiond-ui-{}", uuid::Uuid::new_v4()));
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            // Headless as root in a sandbox with no network: the flags Debian's Chromium
            // needs to start quietly (no background connections, no first-run UI).
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                format!("--window-size={width},{height}"),
                format!("--user-data-dir={}", profile.display()),
            ],
        }
    });
    let caps = match caps {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    Browser {
        client,
        _driver: driver,
        profile,
    }
}

/// Saves a screenshot as `target/ui-artifacts/<name>.png`, after checking that no
/// value was shown unrendered (`null`, `undefined`, `NaN`, `[object …]`).
async fn screenshot(c: &Client, name: &str) {
    let text = text_of(c, "body").await.unwrap_or_default();
    for word in text.split(|ch: char| !ch.is_alphanumeric() && ch != '[') {
        assert!(
            !matches!(word, "null" | "undefined" | "NaN" | "[object"),
            "{name}: the page shows '{word}': {text}"
        );
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The text of the first element matching `css` (`None`: there is none).
async fn text_of(c: &Client, css: &str) -> Option<String> {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.ok(),
        Err(_) => None,
    }
}

/// Waits until the element `css` exists and its text contains `needle`.
async fn wait_text(c: &Client, css: &str, needle: &str) -> String {
    wait_until(&format!("'{needle}' in {css}"), WAIT, || async {
        match text_of(c, css).await {
            Some(t) if t.contains(needle) => Ok(t),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// A script's result.
async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Whether the element with id `id` is displayed (not `display: none`, itself or by an
/// ancestor).
async fn displayed(c: &Client, id: &str) -> bool {
    js(
        c,
        &format!("const e = document.getElementById('{id}'); return !!e && e.getClientRects().length > 0"),
    )
    .await
        == true
}

/// Waits until exactly the view `id` of the three (login, overview, session) is shown.
async fn wait_view(c: &Client, id: &str) {
    wait_until(&format!("only the {id} view is shown"), WAIT, || async {
        let mut shown = vec![];
        for v in ["login", "overview", "session"] {
            if displayed(c, v).await {
                shown.push(v);
            }
        }
        if shown == [id] {
            Ok(())
        } else {
            Err(format!("{shown:?}"))
        }
    })
    .await;
}

/// Opens `/ui`, enters `key` with the keyboard (Enter submits) and waits for the
/// overview.
async fn sign_in(c: &Client, server: &Server, key: &str) {
    c.goto(&format!("{}/ui", server.base)).await.unwrap();
    let input = c.wait().for_element(Locator::Css("#key")).await.unwrap();
    // The prompt has the keyboard focus on arrival.
    wait_until("the key prompt has the focus", WAIT, || async {
        let focused = js(
            c,
            "return document.activeElement && document.activeElement.id",
        )
        .await;
        if focused == "key" {
            Ok(())
        } else {
            Err(focused.to_string())
        }
    })
    .await;
    input.send_keys(&format!("{key}\n")).await.unwrap();
    wait_view(c, "overview").await;
}

fn session_body(name: &str, cpu: u32) -> Value {
    json!({"name": name, "image": "python:3.12", "type": "interactive",
           "scaling_group": "g", "resources": {"cpu": cpu, "mem": "1g"}})
}

/// The message of a pending session's first failed predicate, once it has one.
async fn failed_predicate(server: &Server, key: &str, id: &str) -> String {
    let s = server
        .wait_session(key, id, "has a failed predicate", |s| {
            s["status_data"]["scheduler"]["failed_predicates"]
                .as_array()
                .is_some_and(|p| !p.is_empty())
        })
        .await;
    s["status_data"]["scheduler"]["failed_predicates"][0]["msg"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_why_a_session_waits_watches_it_leave_when_cancelled_and_reads_a_timeline()
{
    let server = Server::start(
        BINS,
        &[
            ("SESSIOND_WEBHOOK_ALLOW_NETWORKS", "127.0.0.0/8"),
            ("SESSIOND_CLONE_MAX_BYTES_PER_SEC", "262144"),
            // One file at a time: progress moves a quarter at each file's end.
            ("SESSIOND_CLONE_PARALLELISM", "1"),
        ],
    );
    server
        .group_with("g", json!({"pending_timeout": 3600}))
        .await;
    // A webhook subscription whose endpoint is down: its deliveries stay open.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (s, hook) = server
        .call(
            Method::POST,
            "/v1/webhooks",
            ADMIN_KEY,
            Some(json!({"url": format!("http://127.0.0.1:{down}/hook"),
                        "description": "endpoint that is down"})),
        )
        .await;
    assert_eq!(s, 201, "{hook}");
    let hook = hook["webhook_id"].as_str().unwrap().to_string();
    let agent_key = server.key(&["--role", "agent", "--agent-id", "a1"]).await;
    let alice = server.key(&["--role", "user", "--owner", "alice"]).await;
    let _agent = server.agent(
        &agent_key,
        "a1",
        "g",
        "cpu=4,mem=8g",
        &server.dir.join("a1"),
        &["--simulate", "--step-delay-ms", "20"],
    );
    let web = server.enqueue(&alice, session_body("web", 1)).await;
    let huge = server.enqueue(&alice, session_body("huge", 64)).await;
    server
        .wait_session(&alice, &web, "RUNNING", |s| s["status"] == "RUNNING")
        .await;
    let why = failed_predicate(&server, &alice, &huge).await;
    // A vfolder of four 256 KiB files, cloned (at most 256 KiB/s: about a second per
    // file, progress persisted as each ends) once the page is open.
    let (s, b) = server
        .call(
            Method::POST,
            "/v1/vfolders",
            &alice,
            Some(json!({"name": "data"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    for i in 0..4 {
        let put = server
            .http
            .put(format!(
                "{}/v1/vfolders/data/files/part-{i}.bin",
                server.base
            ))
            .bearer_auth(&alice)
            .body(vec![b'x'; 256 * 1024])
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success(), "{}", put.status());
    }

    let b = browser(1280, 800).await;
    let c = &b.client;
    sign_in(c, &server, ADMIN_KEY).await;
    // What the page itself cost the browser: its document, script and style (the API's
    // JSON answers are data, not page); no font, nothing from another origin.
    let weight = js(
        c,
        "const nav = performance.getEntriesByType('navigation')[0];\
         const res = performance.getEntriesByType('resource');\
         const own = res.filter((e) => e.initiatorType !== 'fetch');\
         return { page: own.reduce((a, e) => a + e.transferSize, nav.transferSize),\
                  files: own.length + 1,\
                  fonts: res.filter((e) => /\\.(woff2?|ttf|otf)([?#]|$)/.test(e.name)).length,\
                  foreign: res.filter((e) => !e.name.startsWith(location.origin)).length };",
    )
    .await;
    eprintln!("dashboard page weight: {weight}");
    assert!(weight["page"].as_u64().unwrap() < 200 * 1024, "{weight}");
    assert_eq!(weight["files"], 3, "{weight}");
    assert_eq!(weight["fonts"], 0, "{weight}");
    assert_eq!(weight["foreign"], 0, "{weight}");
    // Set once: every later check proves the page was never reloaded.
    js(c, "window.__sameDocument = 42; return true").await;
    // The pending session and the text of its failed predicate, at a glance.
    let row = format!("#pending tr[data-session-id='{huge}']");
    wait_text(c, &format!("{row} .why"), &why).await;
    wait_text(c, "#whoami", "admin key").await;
    // Counts per group and status, the agent's occupancy and liveness, the running one.
    wait_text(
        c,
        "#counts tr[data-group='g'] td[data-status='PENDING']",
        "1",
    )
    .await;
    wait_text(
        c,
        "#counts tr[data-group='g'] td[data-status='RUNNING']",
        "1",
    )
    .await;
    let agent = wait_text(c, "#agents tr[data-agent-id='a1']", "ALIVE").await;
    assert!(agent.contains("cpu 1 / 4"), "{agent}");
    wait_text(c, &format!("#running tr[data-session-id='{web}']"), "web").await;
    wait_text(c, "#live", "live").await;
    // A clone started now: its progress bar moves live, then it is done.
    let (s, b) = server
        .call(
            Method::POST,
            "/v1/vfolders/data/clone",
            &alice,
            Some(json!({"target_name": "data-copy"})),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let task = b["bgtask_id"].as_str().unwrap().to_string();
    let progress = format!("#tasks [data-task-progress='{task}']");
    let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    wait_until("the clone's progress moves and it ends done", WAIT, || {
        let (c, progress, task, seen) = (c, &progress, &task, &seen);
        async move {
            if let Some(p) = text_of(c, progress).await {
                seen.lock().unwrap().insert(p.trim().to_string());
            }
            let row = text_of(c, &format!("#tasks tr[data-task-id='{task}']")).await;
            match row {
                Some(r) if r.contains("done") && r.contains("100%") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    let seen = seen.into_inner().unwrap();
    let between: Vec<&String> = seen
        .iter()
        .filter(|p| p.ends_with('%') && !p.starts_with("0%") && !p.starts_with("100%"))
        .collect();
    assert!(
        !between.is_empty(),
        "no progress between 0 and 100% was shown: {seen:?}"
    );
    assert_eq!(
        js(c, "return window.__sameDocument").await,
        42,
        "the page reloaded"
    );
    let hook_row = wait_text(
        c,
        &format!("#webhooks tr[data-webhook-id='{hook}']"),
        "behind",
    )
    .await;
    assert!(hook_row.contains("endpoint that is down"), "{hook_row}");
    screenshot(c, "overview").await;

    // Cancelled through the API: it leaves the pending list within 2 s, no reload.
    let (s, body) = server
        .call(
            Method::DELETE,
            &format!("/v1/sessions/{huge}"),
            &alice,
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let cancelled = Instant::now();
    wait_until(
        "the cancelled session leaves the pending list",
        WAIT,
        || async {
            match c.find(Locator::Css(&row)).await {
                Err(_) => Ok(()),
                Ok(_) => Err("still listed".to_string()),
            }
        },
    )
    .await;
    let took = cancelled.elapsed();
    assert!(took < Duration::from_secs(2), "left after {took:?}");
    assert_eq!(
        js(c, "return window.__sameDocument").await,
        42,
        "the page reloaded"
    );
    wait_text(
        c,
        "#counts tr[data-group='g'] td[data-status='CANCELLED']",
        "1",
    )
    .await;

    // A running session's page: its timeline (who did what when) and its status.
    c.find(Locator::Css(&format!(
        "#running tr[data-session-id='{web}'] a"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let timeline = wait_text(c, "#s-timeline", "SessionStarted").await;
    wait_view(c, "session").await;
    let order = [
        "SessionEnqueued",
        "SessionScheduled",
        "SessionPreparing",
        "SessionCreating",
        "SessionStarted",
    ];
    let at: Vec<usize> = order
        .iter()
        .map(|e| {
            timeline
                .find(e)
                .unwrap_or_else(|| panic!("{e} in {timeline}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{timeline}");
    // Who: the key that enqueued it, the scheduler that placed it, the agent.
    assert!(timeline.contains("key_"), "who enqueued: {timeline}");
    assert!(timeline.contains("scheduler"), "who placed: {timeline}");
    assert!(timeline.contains("agent:a1"), "who reported: {timeline}");
    wait_text(c, "#s-summary", "RUNNING").await;
    screenshot(c, "session").await;

    // Terminated through the API while the page is open: the timeline follows live.
    let (s, body) = server
        .call(Method::DELETE, &format!("/v1/sessions/{web}"), &alice, None)
        .await;
    assert_eq!(s, 200, "{body}");
    wait_text(c, "#s-timeline", "SessionTerminated").await;
    wait_text(c, "#s-summary", "TERMINATED").await;
    assert_eq!(
        js(c, "return window.__sameDocument").await,
        42,
        "the page reloaded"
    );

    // A narrow window: nothing wider than the window but the tables' own scroll boxes.
    c.goto(&format!("{}/ui#/", server.base)).await.unwrap();
    c.set_window_size(420, 900).await.unwrap();
    wait_text(c, "#counts", "g").await;
    let overflow = js(
        c,
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
    )
    .await;
    assert_eq!(overflow, 0, "the page scrolls sideways in a narrow window");
    screenshot(c, "narrow").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_key_sees_only_its_own_sessions_and_a_revoked_key_is_sent_back_to_the_prompt() {
    let server = Server::start(BINS, &[]);
    server.group("g").await;
    let alice = server.key(&["--role", "user", "--owner", "alice"]).await;
    let bob = server.key(&["--role", "user", "--owner", "bob"]).await;
    let theirs = server
        .enqueue(&alice, session_body("alice-secret", 1))
        .await;
    let mine = server.enqueue(&bob, session_body("bob-job", 1)).await;
    failed_predicate(&server, &bob, &mine).await;
    failed_predicate(&server, &alice, &theirs).await;
    // A batch session of bob's run by a real agent (a process): its log tail.
    server.group("r").await;
    let agent_key = server.key(&["--role", "agent", "--agent-id", "r1"]).await;
    let _agent = server.agent(
        &agent_key,
        "r1",
        "r",
        "cpu=2,mem=2g",
        &server.dir.join("r1"),
        &[],
    );
    let batch = server
        .enqueue(
            &bob,
            json!({"name": "bob-batch", "image": "python:3.12", "type": "batch",
                   "scaling_group": "r", "resources": {"cpu": 1, "mem": "1g"},
                   "startup_command": "echo hello-from-bob; echo to-stderr >&2"}),
        )
        .await;
    server
        .wait_session(&bob, &batch, "TERMINATED", |s| s["status"] == "TERMINATED")
        .await;

    let b = browser(1280, 800).await;
    let c = &b.client;
    sign_in(c, &server, &bob).await;
    wait_text(
        c,
        &format!("#pending tr[data-session-id='{mine}']"),
        "bob-job",
    )
    .await;
    wait_text(c, "#whoami", "user key").await;
    wait_text(
        c,
        "#counts tr[data-group='g'] td[data-status='PENDING']",
        "1",
    )
    .await;
    wait_text(
        c,
        "#counts tr[data-group='r'] td[data-status='TERMINATED']",
        "1",
    )
    .await;
    wait_text(c, "#agents", "admin keys").await;
    let page = text_of(c, "body").await.unwrap();
    assert!(!page.contains("alice"), "bob sees alice's sessions: {page}");
    // The batch session's page: its timeline to the end, and what it printed.
    c.goto(&format!("{}/ui#/session/{batch}", server.base))
        .await
        .unwrap();
    wait_text(c, "#s-logs", "hello-from-bob").await;
    wait_text(c, "#s-logs", "to-stderr").await;
    wait_text(c, "#s-timeline", "SessionTerminated").await;
    let summary = text_of(c, "#s-summary").await.unwrap();
    assert!(
        !summary.contains("null") && !summary.contains("undefined"),
        "{summary}"
    );
    screenshot(c, "logs").await;
    // Alice's session by id is not found for bob.
    c.goto(&format!("{}/ui#/session/{theirs}", server.base))
        .await
        .unwrap();
    wait_text(c, "#s-summary", "No such session").await;
    c.goto(&format!("{}/ui#/", server.base)).await.unwrap();
    wait_text(c, "#live", "live").await;

    // Revoked: the open page is sent back to the key prompt, and the key is forgotten.
    let (ok, list, err) = server.sessionctl(&["keys", "list", "--json"]);
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&list).unwrap();
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["owner"] == "bob")
        .and_then(|k| k["id"].as_str())
        .unwrap()
        .to_string();
    let (ok, _, err) = server.sessionctl(&["keys", "revoke", &id]);
    assert!(ok, "{err}");
    wait_view(c, "login").await;
    wait_text(c, "#login-msg", "refused").await;
    assert_eq!(
        js(c, "return sessionStorage.getItem('sessiond.key')").await,
        Value::Null
    );
    screenshot(c, "revoked").await;
    // Signing in again with it is refused at the prompt.
    let input = c.find(Locator::Css("#key")).await.unwrap();
    input.send_keys(&format!("{bob}\n")).await.unwrap();
    wait_text(c, "#login-msg", "That key was refused").await;
}
