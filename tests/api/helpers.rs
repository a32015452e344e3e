//! `spawn_app()`: the real application (`sessiond::server::start`) on port 0 against a
//! fresh PostgreSQL or SQLite database, and a small client for its API.
#![allow(dead_code)] // each test uses part of it

use reqwest::StatusCode;
use serde_json::{json, Value};
use sessiond::auth::{create_key, Role, Secret};
use sessiond::config::{DatabaseUrl, Settings};
use sessiond::server::{start, Running, ServeOptions};
use std::time::{Duration, Instant};

pub use testkit::db::Backend;

/// The bootstrap admin key every test app starts with.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// A running application and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The application (store, read models).
    pub app: sessiond::app::App,
    /// The store URL.
    pub database_url: String,
    /// The root of the app's one volume, `local` (a fresh temporary directory).
    pub volume_root: std::path::PathBuf,
    running: Option<Running>,
}

/// Boots the application on port 0 against a fresh database of `backend`.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Like [`spawn_app`], with changed options.
pub async fn spawn_app_with(backend: Backend, change: impl FnOnce(&mut ServeOptions)) -> TestApp {
    spawn_app_with_settings(backend, |_| {}, change).await
}

/// Like [`spawn_app`], with changed settings and options.
pub async fn spawn_app_with_settings(
    backend: Backend,
    change_settings: impl FnOnce(&mut Settings),
    change: impl FnOnce(&mut ServeOptions),
) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        sessiond::telemetry::init(sessiond::config::LogFormat::Pretty);
    }
    let database_url = testkit::db::fresh_url(backend).await;
    let volume_root = std::env::temp_dir().join(format!("sessiond-vol-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&volume_root).expect("a volume root");
    let mut settings = Settings {
        volumes: std::collections::BTreeMap::from([(
            "local".to_string(),
            sessiond::config::VolumeSettings {
                root: volume_root.clone(),
                reserve_bytes: 0,
            },
        )]),
        database_url: DatabaseUrl::new(database_url.clone()),
        listen: "127.0.0.1:0".into(),
        max_connections: 8,
        scheduler_interval_ms: 200,
        ..Settings::default()
    };
    change_settings(&mut settings);
    let mut options = ServeOptions {
        bootstrap_admin_key: Some(Secret::new(ADMIN_KEY)),
        ..ServeOptions::default()
    };
    change(&mut options);
    let running = start(settings, options).await.expect("start the app");
    TestApp {
        base: format!("http://{}", running.addr),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("client"),
        app: running.app.clone(),
        database_url,
        volume_root,
        running: Some(running),
    }
}

/// A response: status and JSON body (`Null` when not JSON).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Resp {
    /// `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    /// `error.message` of an error body.
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

impl TestApp {
    /// Stops the server gracefully.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("graceful stop");
        }
    }

    /// A new key of `role`.
    pub async fn key(&self, role: Role) -> String {
        let (_, secret) = create_key(self.app.db(), role, "test")
            .await
            .expect("create a key");
        secret.expose().to_string()
    }

    /// A user key for `owner`.
    pub async fn user_key(&self, owner: &str) -> String {
        self.key(Role::User {
            owner: owner.into(),
        })
        .await
    }

    /// An agent key for `agent_id`.
    pub async fn agent_key(&self, agent_id: &str) -> String {
        self.key(Role::Agent {
            agent_id: agent_id.into(),
        })
        .await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        Resp {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        }
    }

    fn auth(req: reqwest::RequestBuilder, key: Option<&str>) -> reqwest::RequestBuilder {
        match key {
            Some(k) => req.bearer_auth(k),
            None => req,
        }
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Resp {
        self.send(Self::auth(self.client.get(self.url(path)), key))
            .await
    }

    pub async fn delete(&self, path: &str, key: Option<&str>) -> Resp {
        self.send(Self::auth(self.client.delete(self.url(path)), key))
            .await
    }

    pub async fn post(&self, path: &str, key: Option<&str>, body: &Value) -> Resp {
        self.send(Self::auth(self.client.post(self.url(path)), key).json(body))
            .await
    }

    pub async fn patch(&self, path: &str, key: Option<&str>, body: &Value) -> Resp {
        self.send(Self::auth(self.client.patch(self.url(path)), key).json(body))
            .await
    }

    pub async fn put(&self, path: &str, key: Option<&str>, body: &Value) -> Resp {
        self.send(Self::auth(self.client.put(self.url(path)), key).json(body))
            .await
    }

    /// POST with a raw body and content type.
    pub async fn post_raw(&self, path: &str, key: Option<&str>, body: Vec<u8>) -> Resp {
        self.send(
            Self::auth(self.client.post(self.url(path)), key)
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    /// Number of events in the store.
    pub async fn event_count(&self) -> i64 {
        self.app.store.count_events().await.expect("count events")
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        let r = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.expect("the metrics text")
    }

    /// Every event of the global log (for "nothing was appended" checks).
    /// How many events of `event_type` the log holds.
    pub async fn count_of(&self, event_type: &str) -> usize {
        self.all_events()
            .await
            .iter()
            .filter(|e| e.event_type == event_type)
            .count()
    }

    pub async fn all_events(&self) -> Vec<sessiond::store::RecordedEvent> {
        let mut cursor = sessiond::store::LogPosition::START;
        let total = usize::try_from(self.event_count().await).unwrap_or(0);
        testkit::db::read_until(&self.app.store, &mut cursor, total, 1000).await
    }

    /// A fingerprint of everything the API may write: the events and its own tables.
    pub async fn store_fingerprint(&self) -> (i64, i64, i64) {
        let db = self.app.db();
        let keys = testkit::db::scalar(db, "SELECT count(*) FROM api_keys").await;
        let idem = testkit::db::scalar(db, "SELECT count(*) FROM idempotency_keys").await;
        (self.event_count().await, keys, idem)
    }

    /// Creates a public scaling group (admin).
    pub async fn create_group(&self, name: &str) -> Resp {
        let r = self
            .post(
                "/v1/scaling-groups",
                Some(ADMIN_KEY),
                &json!({"name": name, "description": "test group"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r
    }

    /// Registers an agent with its own key; returns the key.
    pub async fn register_agent(&self, agent_id: &str, group: &str) -> String {
        let key = self.agent_key(agent_id).await;
        let r = self
            .post(
                "/v1/agents",
                Some(&key),
                &json!({"agent_id": agent_id, "scaling_group": group, "addr": "10.0.0.1:6001",
                        "available_slots": {"cpu": 8, "mem": "16g"}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        key
    }

    /// Reports a kernel event of session `id` as the agent `key`.
    pub async fn kernel_event(&self, key: &str, id: &str, body: Value) -> Resp {
        self.post(
            &format!("/v1/sessions/{id}/kernel-events"),
            Some(key),
            &body,
        )
        .await
    }

    /// Enqueues a session as `key`; returns the response.
    pub async fn enqueue(&self, key: &str, name: &str) -> Resp {
        self.post(
            "/v1/sessions",
            Some(key),
            &json!({"name": name, "type": "interactive", "image": "python:3.12",
                    "resources": {"cpu": 1, "mem": "1g"}}),
        )
        .await
    }

    /// Waits until the scheduler recorded why the PENDING session `id` waits (it does so
    /// once), so the store is quiet before a refusal is checked against it.
    pub async fn wait_until_waiting(&self, key: &str, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let h = self
                .get(&format!("/v1/sessions/{id}/history"), Some(key))
                .await;
            let items = h.body["items"].as_array().cloned().unwrap_or_default();
            if items
                .iter()
                .any(|e| e["event_type"] == "SessionSchedulingFailed")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no scheduling failure recorded for {id}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls `GET /v1/sessions/{id}` until its status is `status` (20 s at most).
    pub async fn wait_for_status(&self, key: &str, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.get(&format!("/v1/sessions/{id}"), Some(key)).await;
            if r.status == StatusCode::OK && r.body["status"] == status {
                return r.body;
            }
            assert!(
                Instant::now() < deadline,
                "session {id} did not reach {status}; last: {:?}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The statuses a session passes through from enqueue to TERMINATED, in order.
pub const LIFECYCLE: [&str; 9] = [
    "PENDING",
    "SCHEDULED",
    "PREPARING",
    "PULLING",
    "PREPARED",
    "CREATING",
    "RUNNING",
    "TERMINATING",
    "TERMINATED",
];

/// One test per backend for each named `async fn(Backend)`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(testkit::Backend::Postgres).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(testkit::Backend::Sqlite).await
                }
            )*
        }
    };
}
pub(crate) use both_backends;

/// Waits until every read model has caught up with the log, then asserts that
/// `audit verify` finds nothing (every stream folds, every read model equals a fresh
/// fold).
///
/// Workers (agents, the scheduler) may still append while it runs, so an event committed
/// after the read models caught up can be in the fresh fold and not yet in them: the
/// check is repeated until it is clean, for at most 20 s (a real drift stays and fails).
pub async fn audit_clean(app: &TestApp) {
    let names = app.app.engine.names();
    testkit::serve::wait_until("audit verify clean", Duration::from_secs(20), || async {
        let caught_up = app
            .app
            .wait_for_head(&names, Duration::from_secs(20))
            .await
            .map_err(|e| e.to_string())?;
        if !caught_up {
            return Err("read models not caught up".to_string());
        }
        let report = sessiond::audit::verify(&app.app.store, |_| {})
            .await
            .map_err(|e| e.to_string())?;
        if report.findings.is_empty() {
            Ok(())
        } else {
            Err(format!("{:#?}", report.findings))
        }
    })
    .await;
}
