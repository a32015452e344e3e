//! The in-process server (`sessiond::server::start`, the real HTTP server on port 0,
//! one volume `local` in the bench's scratch directory) and the API calls the clone
//! scenarios make: keys, a scaling group, vfolders, clones, background tasks, sessions.
//! The webhooks scenario starts it too ([`Server::start_with`]).

use indicatif::ProgressBar;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sessiond::auth::{create_key, Role, Secret};
use sessiond::config::{DatabaseUrl, Settings, VolumeSettings};
use sessiond::server::{start, Running, ServeOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::error::BenchError;

/// The owner of everything the bench creates.
pub const OWNER: &str = "bench";
/// The bench's scaling group (no agents: its sessions stay PENDING).
pub const GROUP: &str = "bench";
/// How long a background task may take before the bench gives up.
const TASK_DEADLINE: Duration = Duration::from_secs(3600);

/// A running server and a client for it.
#[derive(Debug)]
pub struct Server {
    running: Option<Running>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// HTTP/1.1 keep-alive client (shared by every caller).
    pub client: reqwest::Client,
    /// A user key of [`OWNER`].
    pub user_key: String,
    /// The bootstrap admin key.
    pub admin_key: String,
    /// The root of the volume `local`.
    pub volume: PathBuf,
    /// The server's clone parallelism.
    pub clone_parallelism: u32,
}

/// A clone that started.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    /// The background task.
    pub task_id: Uuid,
    /// The target vfolder.
    pub vfolder_id: Uuid,
}

fn field<'a>(body: &'a Value, name: &str, what: &str) -> Result<&'a str, BenchError> {
    body[name]
        .as_str()
        .ok_or_else(|| BenchError::Other(format!("{what}: no `{name}` in {body}")))
}

fn uuid_field(body: &Value, name: &str, what: &str) -> Result<Uuid, BenchError> {
    let text = field(body, name, what)?;
    Uuid::parse_str(text).map_err(|e| BenchError::Other(format!("{what}: `{name}` {text}: {e}")))
}

impl Server {
    /// Starts the server on `database_url` with one volume `local` at `volume`.
    pub async fn start(
        database_url: &str,
        volume: &Path,
        clone_parallelism: Option<u32>,
        max_connections: u32,
    ) -> Result<Self, BenchError> {
        Self::start_with(database_url, volume, max_connections, |settings| {
            if let Some(p) = clone_parallelism {
                settings.clone_parallelism = p;
            }
        })
        .await
    }

    /// Starts the server on `database_url` with one volume `local` at `volume`, a pool
    /// of `max_connections`, and `change` applied to its settings last.
    pub async fn start_with(
        database_url: &str,
        volume: &Path,
        max_connections: u32,
        change: impl FnOnce(&mut Settings),
    ) -> Result<Self, BenchError> {
        let defaults = Settings::default();
        // Through serde, so every optional setting of a volume keeps its default.
        let local: VolumeSettings = serde_json::from_value(json!({ "root": volume }))
            .map_err(|e| BenchError::Other(format!("the bench's volume settings: {e}")))?;
        let mut settings = Settings {
            database_url: DatabaseUrl::new(database_url),
            listen: "127.0.0.1:0".into(),
            volumes: std::collections::BTreeMap::from([("local".to_string(), local)]),
            max_connections,
            ..defaults
        };
        change(&mut settings);
        let clone_parallelism = settings.clone_parallelism;
        let admin_key = format!("sdk_bench_admin_{}", Uuid::new_v4().simple());
        let running = start(
            settings,
            ServeOptions {
                bootstrap_admin_key: Some(Secret::new(admin_key.clone())),
                ..ServeOptions::default()
            },
        )
        .await
        .map_err(|e| {
            BenchError::Other(format!(
                "cannot start the server: {}",
                sessiond::telemetry::error_chain(&e)
            ))
        })?;
        let (_, secret) = create_key(
            running.app.db(),
            Role::User {
                owner: OWNER.into(),
            },
            "sessiond-bench",
        )
        .await
        .map_err(|e| BenchError::Other(format!("cannot create the bench's user key: {e}")))?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| BenchError::Other(format!("cannot build the HTTP client: {e}")))?;
        Ok(Server {
            base: format!("http://{}", running.addr),
            running: Some(running),
            client,
            user_key: secret.expose().to_string(),
            admin_key,
            volume: volume.to_path_buf(),
            clone_parallelism,
        })
    }

    /// Stops the server gracefully.
    pub async fn stop(mut self) -> Result<(), BenchError> {
        match self.running.take() {
            Some(r) => r.stop().await.map_err(|e| {
                BenchError::Other(format!(
                    "the server did not stop cleanly: {}",
                    sessiond::telemetry::error_chain(&e)
                ))
            }),
            None => Ok(()),
        }
    }

    /// The application's database (`None` once stopped).
    pub fn db(&self) -> Option<&store::Db> {
        self.running.as_ref().map(|r| r.app.db())
    }

    /// `<volume>/<vfolder_id>`: where a folder's files live.
    pub fn folder_dir(&self, vfolder_id: Uuid) -> PathBuf {
        self.volume.join(vfolder_id.to_string())
    }

    /// One call: its status and JSON body (`Null` when none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), BenchError> {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| BenchError::Other(format!("{method} {path}: {e}")))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| BenchError::Other(format!("{method} {path}: reading the body: {e}")))?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// A call that must answer `expected`.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<&Value>,
        expected: StatusCode,
    ) -> Result<Value, BenchError> {
        let (status, value) = self.call(method.clone(), path, key, body).await?;
        if status != expected {
            return Err(BenchError::Other(format!(
                "{method} {path}: {status} (expected {expected}): {value}"
            )));
        }
        Ok(value)
    }

    /// Creates a vfolder of the bench's user; its id.
    pub async fn create_vfolder(&self, name: &str) -> Result<Uuid, BenchError> {
        let body = self
            .expect(
                Method::POST,
                "/v1/vfolders",
                &self.user_key,
                Some(&json!({"name": name})),
                StatusCode::CREATED,
            )
            .await?;
        uuid_field(&body, "vfolder_id", "POST /v1/vfolders")
    }

    /// Starts a clone of `source` to `target`.
    pub async fn start_clone(&self, source: &str, target: &str) -> Result<Started, BenchError> {
        let body = self
            .expect(
                Method::POST,
                &format!("/v1/vfolders/{source}/clone"),
                &self.user_key,
                Some(&json!({"target_name": target})),
                StatusCode::ACCEPTED,
            )
            .await?;
        Ok(Started {
            task_id: uuid_field(&body, "bgtask_id", "POST .../clone")?,
            vfolder_id: uuid_field(&body, "vfolder_id", "POST .../clone")?,
        })
    }

    /// Polls `GET /v1/background-tasks/{id}` every `every` until the task is no longer
    /// `running`; `Ok` once it is `done`. Shows its progress on `bar`.
    pub async fn wait_task(
        &self,
        task_id: Uuid,
        every: Duration,
        bar: Option<&ProgressBar>,
    ) -> Result<Value, BenchError> {
        let path = format!("/v1/background-tasks/{task_id}");
        let deadline = Instant::now() + TASK_DEADLINE;
        loop {
            let task = self
                .expect(Method::GET, &path, &self.user_key, None, StatusCode::OK)
                .await?;
            if let Some(bar) = bar {
                if let Some(total) = task["total_progress"].as_u64() {
                    bar.set_length(total);
                }
                if let Some(current) = task["current_progress"].as_u64() {
                    bar.set_position(current);
                }
            }
            match task["status"].as_str() {
                Some("running") => {}
                Some("done") => return Ok(task),
                other => {
                    return Err(BenchError::Other(format!(
                        "background task {task_id} ended {}: {}",
                        other.unwrap_or("?"),
                        task["message"]
                    )))
                }
            }
            if Instant::now() > deadline {
                return Err(BenchError::Other(format!(
                    "background task {task_id} still running after {TASK_DEADLINE:?}"
                )));
            }
            tokio::time::sleep(every).await;
        }
    }

    /// Deletes a vfolder and waits for its delete task.
    pub async fn delete_vfolder(&self, name: &str) -> Result<(), BenchError> {
        let body = self
            .expect(
                Method::DELETE,
                &format!("/v1/vfolders/{name}"),
                &self.user_key,
                None,
                StatusCode::ACCEPTED,
            )
            .await?;
        let task = uuid_field(&body, "bgtask_id", "DELETE /v1/vfolders/{name}")?;
        self.wait_task(task, Duration::from_millis(20), None)
            .await
            .map(|_| ())
    }

    /// Creates the public scaling group [`GROUP`] (admin), with `pending_timeout`
    /// seconds (0: none).
    pub async fn create_group(&self, pending_timeout: u64) -> Result<(), BenchError> {
        self.expect(
            Method::POST,
            "/v1/scaling-groups",
            &self.admin_key,
            Some(&json!({"name": GROUP, "description": "sessiond-bench",
                         "scheduler_opts": {"pending_timeout": pending_timeout}})),
            StatusCode::CREATED,
        )
        .await
        .map(|_| ())
    }

    /// The body of `POST /v1/sessions` for a new session `name` in [`GROUP`].
    pub fn session_body(name: &str) -> Value {
        json!({"name": name, "type": "interactive", "image": "python:3.12",
               "scaling_group": GROUP, "resources": {"cpu": 1, "mem": "1g"}})
    }

    /// Enqueues a session; its id.
    pub async fn enqueue(&self, name: &str) -> Result<String, BenchError> {
        let body = self
            .expect(
                Method::POST,
                "/v1/sessions",
                &self.user_key,
                Some(&Self::session_body(name)),
                StatusCode::CREATED,
            )
            .await?;
        Ok(field(&body, "session_id", "POST /v1/sessions")?.to_string())
    }

    /// Waits until `GET /v1/sessions/{id}` answers 200 (the read model has it).
    pub async fn wait_visible(&self, id: &str) -> Result<(), BenchError> {
        let path = format!("/v1/sessions/{id}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.call(Method::GET, &path, &self.user_key, None).await?;
            if status == StatusCode::OK {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchError::Other(format!(
                    "GET {path}: still {status}: {body}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
