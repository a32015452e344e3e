//! `sessiond-bench agents`: N simulated agents (`sessiond::agent` with `--simulate` and
//! zero delays, each a real client of the agent API over HTTP) and M batch sessions
//! through their whole lifecycle over HTTP: enqueue, schedule, the agent's four progress
//! reports, its final report. Reports sessions completed per second end to end and the
//! time from enqueue to RUNNING (as the session event stream delivers it). No target
//! yet (issue #16): the baseline of later work.

use reqwest::Method;
use serde_json::{json, Value};
use sessiond::agent::{AgentConfig, Simulation};
use sessiond::auth::{create_key, Role};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::clone::api::Server;
use crate::clone::{check_empty, load_average};
use crate::error::BenchError;

/// Arguments of `sessiond-bench agents`.
#[derive(Debug, clap::Args)]
pub struct AgentsArgs {
    /// An empty database.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,
    /// Simulated agents.
    #[arg(long, default_value_t = 8)]
    pub agents: usize,
    /// Batch sessions.
    #[arg(long, default_value_t = 2000)]
    pub sessions: usize,
    /// Concurrent enqueueing clients.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// A short run (4 agents, 300 sessions).
    #[arg(long)]
    pub quick: bool,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct AgentsReport {
    /// `PostgreSQL` or `SQLite`.
    pub backend: &'static str,
    /// Agents.
    pub agents: usize,
    /// Sessions.
    pub sessions: usize,
    /// First enqueue to last TERMINATED.
    pub elapsed: Duration,
    /// Enqueue -> RUNNING, milliseconds, sorted.
    pub to_running_ms: Vec<f64>,
    /// Enqueue -> TERMINATED, milliseconds, sorted.
    pub to_end_ms: Vec<f64>,
    /// Load average at the end.
    pub load: Option<f64>,
}

/// Runs the scenario.
pub async fn agents(args: &AgentsArgs) -> Result<AgentsReport, BenchError> {
    let backend = check_empty(&args.database_url).await?;
    let (n_agents, n_sessions) = if args.quick {
        (4, 300)
    } else {
        (args.agents.max(1), args.sessions.max(1))
    };
    let scratch =
        std::env::temp_dir().join(format!("bench-agents-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&scratch).map_err(|e| BenchError::Other(e.to_string()))?;
    let server = Server::start_with(&args.database_url, &scratch, 32, |s| {
        s.scheduler_interval_ms = 100;
    })
    .await?;
    let result = run(&server, &scratch, n_agents, n_sessions, args.clients.max(1)).await;
    server.stop().await?;
    let _ = std::fs::remove_dir_all(&scratch);
    let (elapsed, to_running_ms, to_end_ms) = result?;
    Ok(AgentsReport {
        backend,
        agents: n_agents,
        sessions: n_sessions,
        elapsed,
        to_running_ms,
        to_end_ms,
        load: load_average(),
    })
}

type Times = Arc<Mutex<HashMap<String, Instant>>>;

async fn run(
    server: &Server,
    scratch: &std::path::Path,
    n_agents: usize,
    n_sessions: usize,
    clients: usize,
) -> Result<(Duration, Vec<f64>, Vec<f64>), BenchError> {
    let admin = server.admin_key.clone();
    let (s, b) = server
        .call(
            Method::POST,
            "/v1/scaling-groups",
            &admin,
            Some(&json!({"name": "agents", "description": "sessiond-bench agents"})),
        )
        .await?;
    if s.as_u16() != 201 {
        return Err(BenchError::Other(format!("cannot create the group: {b}")));
    }
    let db = server
        .db()
        .ok_or_else(|| BenchError::Other("the server stopped".into()))?
        .clone();
    let (stop, stop_rx) = watch::channel(false);
    let mut agents = tokio::task::JoinSet::new();
    for i in 0..n_agents {
        let id = format!("sim-{i}");
        let (_, key) = create_key(
            &db,
            Role::Agent {
                agent_id: id.clone(),
            },
            "bench",
        )
        .await
        .map_err(|e| BenchError::Other(e.to_string()))?;
        let config = AgentConfig {
            server: server.base.clone(),
            key: secrecy::SecretString::from(key.expose().to_string()),
            agent_id: id,
            scaling_group: "agents".into(),
            slots: json!({"cpu": 1000, "mem": "1000g"}),
            addr: "127.0.0.1:0".into(),
            work_dir: scratch.join("agents"),
            heartbeat: Duration::from_secs(5),
            stop_grace: Duration::from_secs(1),
            simulate: Some(Simulation {
                step: Duration::ZERO,
                run: Duration::ZERO,
            }),
        };
        let rx = stop_rx.clone();
        agents.spawn(async move {
            let _ = sessiond::agent::run(config, rx).await;
        });
    }
    // Follow the group's events from now on.
    let mut stream = server
        .client
        .get(format!(
            "{}/v1/events/sessions?scaling_group=agents",
            server.base
        ))
        .bearer_auth(&admin)
        .timeout(Duration::from_secs(3600))
        .send()
        .await
        .map_err(|e| BenchError::Other(format!("cannot open the event stream: {e}")))?;
    let enqueued: Times = Arc::new(Mutex::new(HashMap::new()));
    let bar = crate::progress::bar(n_sessions as u64, "sessions");
    let started = Instant::now();
    let mut producers = tokio::task::JoinSet::new();
    let per = n_sessions.div_ceil(clients);
    for c in 0..clients {
        let (http, base, key, times) = (
            server.client.clone(),
            server.base.clone(),
            server.user_key.clone(),
            enqueued.clone(),
        );
        let count = per.min(n_sessions.saturating_sub(c * per));
        producers.spawn(async move {
            for i in 0..count {
                let body = json!({"name": format!("job-{c}-{i}"), "type": "batch", "image": "sim",
                                  "scaling_group": "agents", "resources": {"cpu": 1, "mem": "1g"},
                                  "startup_command": "true"});
                let t = Instant::now();
                let r = http
                    .post(format!("{base}/v1/sessions"))
                    .bearer_auth(&key)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let v: Value = r.json().await.map_err(|e| e.to_string())?;
                let id = v["session_id"]
                    .as_str()
                    .ok_or_else(|| format!("enqueue refused: {v}"))?;
                if let Ok(mut m) = times.lock() {
                    m.insert(id.to_string(), t);
                }
            }
            Ok::<(), String>(())
        });
    }
    let mut running: HashMap<String, Instant> = HashMap::new();
    let mut ended: HashMap<String, Instant> = HashMap::new();
    let mut buf = String::new();
    let deadline = started + Duration::from_secs(600);
    while ended.len() < n_sessions {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, stream.chunk())
            .await
            .map_err(|_| {
                BenchError::Other(format!(
                    "only {} of {n_sessions} sessions ended in 600 s",
                    ended.len()
                ))
            })?
            .map_err(|e| BenchError::Other(format!("the event stream broke: {e}")))?
            .ok_or_else(|| BenchError::Other("the event stream ended".into()))?;
        let now = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(data) else {
                continue;
            };
            let id = v["session_id"].as_str().unwrap_or_default().to_string();
            match v["status"].as_str() {
                Some("RUNNING") => {
                    running.entry(id).or_insert(now);
                }
                Some("TERMINATED" | "ERROR" | "CANCELLED") if !ended.contains_key(&id) => {
                    ended.insert(id, now);
                    bar.inc(1);
                }
                _ => {}
            }
        }
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    while let Some(p) = producers.join_next().await {
        match p {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(BenchError::Other(e)),
            Err(e) => return Err(BenchError::Other(e.to_string())),
        }
    }
    let _ = stop.send(true);
    while agents.join_next().await.is_some() {}
    let times = enqueued
        .lock()
        .map_err(|_| BenchError::Other("poisoned".into()))?
        .clone();
    let ms = |m: &HashMap<String, Instant>| {
        let mut v: Vec<f64> = m
            .iter()
            .filter_map(|(id, at)| {
                times
                    .get(id)
                    .map(|t| at.saturating_duration_since(*t).as_secs_f64() * 1000.0)
            })
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v
    };
    Ok((elapsed, ms(&running), ms(&ended)))
}

/// Nearest-rank percentile (0 when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
