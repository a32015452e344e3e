//! `sessiond demo`: everything a newcomer needs to see sessiond work, in one process and
//! a temporary directory — the embedded store, a server, two scaling groups, three
//! agents (two running real processes, one simulated) and a workload, with a live view
//! of sessions by status per group and of why pending sessions wait.
//!
//! - `gpu-batch` (batch only, `pending_timeout` 20 s) on agent `gpu-1` (processes),
//!   `cpu-interactive` (interactive and batch) on `cpu-1` (processes) and `sim-1`
//!   (simulated).
//! - The workload, one submission every second or so: batch jobs that succeed, that
//!   fail with an exit code, that run past their `batch_timeout`; interactive sessions
//!   (cancelled after a while by their "user"); a job asking for more than any agent has
//!   (it waits, and the pending timeout cancels it); and once, an interactive session
//!   aimed at `gpu-batch`, to show the enqueue-time rejection.
//! - Ctrl-C (or `--duration`) ends it: the timeline of one session cancelled by the
//!   pending timeout and of one that failed (with its log tail) are printed, the agents
//!   stop their processes, the server stops, the directory is removed.
//!
//! Everything goes through the public HTTP API, like any client.

use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::agent::{AgentConfig, Simulation};
use crate::auth::Role;
use crate::config::{DatabaseUrl, Settings, VolumeSettings};
use crate::server::{Running, ServeOptions};

/// Options of `sessiond demo`.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Print the view as lines instead of redrawing the terminal.
    pub no_tui: bool,
    /// Stop after this long (default: at Ctrl-C).
    pub duration: Option<Duration>,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The temporary directory.
    #[error("cannot prepare the demo directory: {0}")]
    Dir(#[from] std::io::Error),
    /// The server did not start.
    #[error(transparent)]
    Serve(#[from] crate::server::ServeError),
    /// A key could not be created.
    #[error(transparent)]
    Key(#[from] crate::auth::KeyError),
    /// The demo's own requests failed.
    #[error("{0}")]
    Api(String),
}

/// A marker in every demo command line (tests look for leftover processes by it).
pub fn marker() -> String {
    format!("sessiond-demo-{}", std::process::id())
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), DemoError> {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key)
            .timeout(Duration::from_secs(30));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.map_err(|e| DemoError::Api(e.to_string()))?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }
}

#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

/// Runs the demo until `shutdown` (Ctrl-C) or `options.duration`.
pub async fn run(
    options: DemoOptions,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), DemoError> {
    let dir = std::env::temp_dir().join(format!("sessiond-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("volumes"))?;
    let result = run_in(&dir, &options, &mut shutdown).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(
    dir: &std::path::Path,
    options: &DemoOptions,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), DemoError> {
    let mut settings = Settings {
        database_url: DatabaseUrl::new(format!("sqlite://{}", dir.join("demo.db").display())),
        listen: "127.0.0.1:0".into(),
        scheduler_interval_ms: 250,
        agent_lost_after_secs: 10,
        ..Settings::default()
    };
    settings.volumes.insert(
        "local".into(),
        VolumeSettings {
            root: dir.join("volumes"),
            reserve_bytes: 0,
        },
    );
    let running: Running = crate::server::start(settings, ServeOptions::default()).await?;
    let base = format!("http://{}", running.addr);
    let admin = running
        .bootstrap_key
        .as_ref()
        .map(|(_, s)| s.expose().to_string())
        .ok_or_else(|| DemoError::Api("the new store made no admin key".into()))?;
    let api = Api {
        http: reqwest::Client::new(),
        base: base.clone(),
    };
    say(&format!(
        "sessiond demo: API at {base} (admin key {admin}); store in {}",
        dir.display()
    ));
    say("  (the operator dashboard is not built yet; try: curl -H \"Authorization: Bearer $KEY\" $API/v1/sessions)");

    for (name, opts) in [
        (
            "gpu-batch",
            json!({"allowed_session_types": ["batch"], "pending_timeout": 20}),
        ),
        (
            "cpu-interactive",
            json!({"allowed_session_types": ["interactive", "batch"]}),
        ),
    ] {
        let (s, b) = api
            .call(
                Method::POST,
                "/v1/scaling-groups",
                &admin,
                Some(json!({"name": name, "description": "demo", "scheduler_opts": opts})),
            )
            .await?;
        if s != 201 {
            return Err(DemoError::Api(format!("cannot create group {name}: {b}")));
        }
    }
    let db = running.app.db().clone();
    let (_, user) = crate::auth::create_key(
        &db,
        Role::User {
            owner: "alice".into(),
        },
        "demo user",
    )
    .await?;
    let user = user.expose().to_string();

    // Agents, in this process; each runs its sessions' processes in its own directory.
    let (stop_agents, agents_rx) = watch::channel(false);
    let mut agents = tokio::task::JoinSet::new();
    for (id, group, slots, simulate) in [
        ("gpu-1", "gpu-batch", json!({"cpu": 4, "mem": "8g"}), false),
        (
            "cpu-1",
            "cpu-interactive",
            json!({"cpu": 4, "mem": "8g"}),
            false,
        ),
        (
            "sim-1",
            "cpu-interactive",
            json!({"cpu": 8, "mem": "16g"}),
            true,
        ),
    ] {
        let (_, key) = crate::auth::create_key(
            &db,
            Role::Agent {
                agent_id: id.into(),
            },
            "demo agent",
        )
        .await?;
        let config = AgentConfig {
            server: base.clone(),
            key: secrecy::SecretString::from(key.expose().to_string()),
            agent_id: id.into(),
            scaling_group: group.into(),
            slots,
            addr: "127.0.0.1:0".into(),
            work_dir: dir.join("agents").join(id),
            heartbeat: Duration::from_secs(2),
            stop_grace: Duration::from_secs(2),
            simulate: simulate.then_some(Simulation {
                step: Duration::from_millis(300),
                run: Duration::from_secs(3),
            }),
        };
        let rx = agents_rx.clone();
        agents.spawn(async move {
            if let Err(e) = crate::agent::run(config, rx).await {
                tracing::error!(error = %e, "demo agent failed");
            }
        });
    }

    let started = Instant::now();
    let tui = !options.no_tui && std::io::stdout().is_terminal();
    let mut workload = Workload::default();
    let mut tick = tokio::time::interval(Duration::from_millis(1000));
    let mut last_view = String::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        if *shutdown.borrow() || options.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        workload.step(&api, &user, started.elapsed()).await?;
        let view = render(&api, &admin, started.elapsed(), &workload.notes).await?;
        if tui {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\x1b[2J\x1b[H{view}");
            let _ = out.flush();
        } else if view != last_view {
            say(&view);
        }
        last_view = view;
    }

    say("");
    say("sessiond demo: stopping");
    for (label, id) in [
        (
            "cancelled by the pending timeout",
            workload.cancelled_by_timeout(&api, &admin).await?,
        ),
        ("failed", workload.failed(&api, &admin).await?),
    ] {
        let Some(id) = id else { continue };
        say(&format!("\n== sessionctl session history {id} ({label})"));
        let (_, h) = api
            .call(
                Method::GET,
                &format!("/v1/sessions/{id}/history"),
                &admin,
                None,
            )
            .await?;
        for e in h["items"].as_array().cloned().unwrap_or_default() {
            let payload = e["payload"]
                .as_object()
                .and_then(|o| o.values().next())
                .cloned()
                .unwrap_or(Value::Null);
            let info = payload["reason"]
                .as_str()
                .or_else(|| payload["failed_predicates"][0]["msg"].as_str())
                .unwrap_or("");
            say(&format!(
                "{}  {:<26} {:<22} {}",
                e["occurred_at"].as_str().unwrap_or(""),
                e["event_type"].as_str().unwrap_or(""),
                e["actor"].as_str().unwrap_or(""),
                info
            ));
        }
        let (_, logs) = api
            .call(
                Method::GET,
                &format!("/v1/sessions/{id}/logs"),
                &admin,
                None,
            )
            .await?;
        for (stream, text) in [("stdout", &logs["stdout"]), ("stderr", &logs["stderr"])] {
            if let Some(t) = text.as_str().filter(|t| !t.is_empty()) {
                say(&format!("-- {stream} (tail):"));
                for line in t
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                {
                    say(&format!("   {line}"));
                }
            }
        }
    }
    let _ = stop_agents.send(true);
    while agents.join_next().await.is_some() {}
    running.stop().await?;
    say("sessiond demo: done (every process stopped, the demo directory removed)");
    Ok(())
}

/// The demo's workload: one submission per tick from a fixed rotation.
#[derive(Debug, Default)]
struct Workload {
    n: u64,
    /// Interactive sessions and when to end them.
    interactive: Vec<(String, Duration)>,
    rejected_shown: bool,
    /// Lines about what happened (the rejection).
    notes: Vec<String>,
    big: Vec<String>,
    failing: Vec<String>,
}

fn batch(name: &str, group: &str, command: &str, cpu: u32, timeout: Option<u64>) -> Value {
    let mut b = json!({"name": name, "type": "batch", "image": "alpine:3", "scaling_group": group,
                       "resources": {"cpu": cpu, "mem": "256m"}, "startup_command": command});
    if let Some(t) = timeout {
        b["batch_timeout"] = json!(t);
    }
    b
}

impl Workload {
    async fn step(&mut self, api: &Api, user: &str, now: Duration) -> Result<(), DemoError> {
        self.n = self.n.saturating_add(1);
        let n = self.n;
        let m = marker();
        if !self.rejected_shown && n == 2 {
            self.rejected_shown = true;
            let (_, b) = api
                .call(Method::POST, "/v1/sessions", user, Some(json!({"name": "notebook-on-gpu", "type": "interactive", "image": "python:3.12", "scaling_group": "gpu-batch", "resources": {"cpu": 1, "mem": "1g"}})))
                .await?;
            self.notes.push(format!(
                "rejected at enqueue (interactive -> gpu-batch): {}",
                b["error"]["message"].as_str().unwrap_or("?")
            ));
        }
        let body = match n % 7 {
            0 => batch(
                &format!("train-{n}"),
                "gpu-batch",
                &format!("echo epoch 1; sleep 2; echo done; : {m}"),
                1,
                None,
            ),
            1 => batch(
                &format!("broken-{n}"),
                "gpu-batch",
                &format!("echo loading data; echo 'no such file: data.csv' >&2; : {m}; exit 3"),
                1,
                None,
            ),
            2 => batch(
                &format!("too-long-{n}"),
                "gpu-batch",
                &format!("sleep 60; : {m}"),
                1,
                Some(2),
            ),
            3 => {
                json!({"name": format!("notebook-{n}"), "type": "interactive", "image": "python:3.12", "scaling_group": "cpu-interactive", "resources": {"cpu": 1, "mem": "1g"}})
            }
            4 if self.big.len() < 3 => batch(
                &format!("huge-{n}"),
                "gpu-batch",
                &format!("true; : {m}"),
                64,
                None,
            ),
            5 => batch(
                &format!("etl-{n}"),
                "cpu-interactive",
                &format!("echo rows: 1000; sleep 1; : {m}"),
                1,
                None,
            ),
            _ => batch(
                &format!("report-{n}"),
                "cpu-interactive",
                &format!("echo report; : {m}"),
                2,
                None,
            ),
        };
        let (s, b) = api
            .call(Method::POST, "/v1/sessions", user, Some(body.clone()))
            .await?;
        if s == 201 {
            let id = b["session_id"].as_str().unwrap_or_default().to_string();
            match body["name"].as_str().unwrap_or_default() {
                x if x.starts_with("notebook-") => self
                    .interactive
                    .push((id, now.saturating_add(Duration::from_secs(8)))),
                x if x.starts_with("huge-") => self.big.push(id),
                x if x.starts_with("broken-") => self.failing.push(id),
                _ => {}
            }
        }
        // The "user" closes notebooks after a while.
        let (due, keep): (Vec<_>, Vec<_>) =
            self.interactive.drain(..).partition(|(_, at)| *at <= now);
        self.interactive = keep;
        for (id, _) in due {
            api.call(Method::DELETE, &format!("/v1/sessions/{id}"), user, None)
                .await?;
        }
        Ok(())
    }

    async fn status_of(api: &Api, key: &str, id: &str) -> Result<Value, DemoError> {
        Ok(api
            .call(Method::GET, &format!("/v1/sessions/{id}"), key, None)
            .await?
            .1)
    }

    async fn cancelled_by_timeout(
        &self,
        api: &Api,
        key: &str,
    ) -> Result<Option<String>, DemoError> {
        for id in &self.big {
            let s = Self::status_of(api, key, id).await?;
            if s["status_info"] == "pending_timeout" {
                return Ok(Some(id.clone()));
            }
        }
        Ok(self.big.first().cloned())
    }

    async fn failed(&self, api: &Api, key: &str) -> Result<Option<String>, DemoError> {
        for id in &self.failing {
            let s = Self::status_of(api, key, id).await?;
            if s["status"] == "ERROR" {
                return Ok(Some(id.clone()));
            }
        }
        Ok(None)
    }
}

/// The live view: sessions by status per group, and why pending ones wait.
async fn render(
    api: &Api,
    admin: &str,
    elapsed: Duration,
    notes: &[String],
) -> Result<String, DemoError> {
    let mut items: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/sessions?limit=1000&cursor={c}"),
            None => "/v1/sessions?limit=1000".to_string(),
        };
        let (s, page) = api.call(Method::GET, &path, admin, None).await?;
        if s != 200 {
            return Err(DemoError::Api(format!("cannot list sessions: {page}")));
        }
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut waiting: Vec<String> = Vec::new();
    for s in &items {
        let group = s["scaling_group"].as_str().unwrap_or("?").to_string();
        let status = s["status"].as_str().unwrap_or("?");
        let label = match (status, s["status_info"].as_str()) {
            ("CANCELLED" | "ERROR", Some(info)) => format!("{status}({info})"),
            _ => status.to_string(),
        };
        let slot = counts
            .entry(group.clone())
            .or_default()
            .entry(label)
            .or_default();
        *slot = slot.saturating_add(1);
        if status == "PENDING" {
            let why = s["status_data"]["scheduler"]["failed_predicates"][0]["msg"]
                .as_str()
                .unwrap_or("not tried yet");
            waiting.push(format!(
                "  {:<16} {:<14} {why}",
                s["name"].as_str().unwrap_or(""),
                group
            ));
        }
    }
    let mut out = format!("[{:>4}s] sessions by status\n", elapsed.as_secs());
    for (group, by) in &counts {
        let cells: Vec<String> = by.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!("  {group:<16} {}\n", cells.join(" ")));
    }
    if !waiting.is_empty() {
        out.push_str("pending, and why:\n");
        for w in waiting.iter().take(8) {
            out.push_str(w);
            out.push('\n');
        }
    }
    for n in notes {
        out.push_str(&format!("note: {n}\n"));
    }
    Ok(out)
}
