//! The agent's side of the agent API (SPEC §4): registration, heartbeats, the
//! assignments long-poll and kernel reports, over HTTP with the agent's key. Transport
//! failures and 5xx answers are [`ClientError::Retryable`]; the caller retries them with
//! [`Backoff`]. Anything else the server refuses is [`ClientError::Refused`], with the
//! server's code.

use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request other than the long-poll may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request to the server did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server cannot be reached, the exchange broke, or it answered 5xx / 429: try
    /// again later.
    #[error("{0}")]
    Retryable(String),
    /// The server refused the request (4xx): trying again does not help.
    #[error("{code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The error code of the body (`not_found`, `illegal_transition`, ...).
        code: String,
        /// Its message.
        message: String,
    },
    /// The configuration cannot work (a bad URL).
    #[error("{0}")]
    Config(String),
}

impl ClientError {
    /// Whether the server answered with this HTTP status.
    pub fn is_status(&self, wanted: u16) -> bool {
        matches!(self, Self::Refused { status, .. } if *status == wanted)
    }
}

/// The server's error body, `{"error": {"code", "message"}}` (also read by
/// `sessionctl`'s remote commands).
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// `code` and `message` of an error body.
#[derive(Debug, Deserialize)]
pub struct ErrorDetail {
    /// Machine-readable code (`not_found`, ...).
    pub code: String,
    /// For people.
    pub message: String,
}

/// One session in the agent's assignments (`GET /v1/agents/{id}/assignments`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AssignmentWire {
    /// The session.
    pub session_id: String,
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// `interactive | batch | inference`.
    #[serde(rename = "type", default)]
    pub session_type: String,
    /// `start` or `stop`.
    pub action: String,
    /// Its status now.
    pub status: String,
    /// Batch command.
    #[serde(default)]
    pub startup_command: Option<String>,
    /// Batch: seconds it may run.
    #[serde(default)]
    pub batch_timeout: Option<u64>,
}

/// An answer of the assignments long-poll.
#[derive(Debug, Clone, Deserialize)]
pub struct AssignmentsWire {
    /// The sessions.
    pub items: Vec<AssignmentWire>,
    /// Pass back as `?version=` to wait for the next change.
    pub version: String,
}

/// The body of a kernel report.
#[derive(Debug, Clone, Serialize)]
pub struct KernelReport {
    /// `preparing | prepared | creating | started | terminated | failed`.
    pub event: &'static str,
    /// Exit code (final reports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Reason (final reports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Output tails (final reports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogTails>,
}

impl KernelReport {
    /// A progress report (`preparing`, `prepared`, `creating`, `started`).
    pub fn progress(event: &'static str) -> Self {
        Self {
            event,
            exit_code: None,
            reason: None,
            logs: None,
        }
    }
}

/// The tails of a kernel's stdout and stderr.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogTails {
    /// The end of stdout.
    pub stdout: String,
    /// The end of stderr.
    pub stderr: String,
}

/// The HTTP client of one agent.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    key: SecretString,
    agent_id: String,
}

impl Client {
    /// A client of the server at `server` acting as `agent_id` with `key`.
    pub fn new(server: &str, key: SecretString, agent_id: &str) -> Result<Self, ClientError> {
        let base = Url::parse(server)
            .map_err(|e| ClientError::Config(format!("--server {server}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::Config(format!(
                "--server {server}: expected an http:// or https:// URL"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("sessiond-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Config(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            key,
            agent_id: agent_id.to_string(),
        })
    }

    fn url(&self, segments: &[&str]) -> Result<Url, ClientError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| ClientError::Config("--server is not a base URL".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&impl Serialize>,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(self.key.expose_secret())
            .timeout(timeout);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Retryable(innermost(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = response.bytes().await.unwrap_or_default();
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => (b.error.code, b.error.message),
            Err(_) => (
                format!("http_{}", status.as_u16()),
                status.canonical_reason().unwrap_or("error").to_string(),
            ),
        };
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Err(ClientError::Retryable(format!("{code}: {message}")))
        } else {
            Err(ClientError::Refused {
                status: status.as_u16(),
                code,
                message,
            })
        }
    }

    /// `POST /v1/agents`: registers (or updates) this agent with its capacity.
    pub async fn register(
        &self,
        scaling_group: &str,
        addr: &str,
        slots: &serde_json::Value,
    ) -> Result<(), ClientError> {
        let body = serde_json::json!({
            "agent_id": self.agent_id,
            "scaling_group": scaling_group,
            "addr": addr,
            "available_slots": slots,
        });
        self.send(
            Method::POST,
            self.url(&["v1", "agents"])?,
            Some(&body),
            REQUEST_TIMEOUT,
        )
        .await?;
        Ok(())
    }

    /// `POST /v1/agents/{id}/heartbeat`.
    pub async fn heartbeat(&self) -> Result<(), ClientError> {
        self.send(
            Method::POST,
            self.url(&["v1", "agents", &self.agent_id, "heartbeat"])?,
            None::<&()>,
            REQUEST_TIMEOUT,
        )
        .await?;
        Ok(())
    }

    /// `GET /v1/agents/{id}/assignments?wait=&version=`: the long-poll.
    pub async fn assignments(
        &self,
        wait: Duration,
        version: Option<&str>,
    ) -> Result<AssignmentsWire, ClientError> {
        let mut url = self.url(&["v1", "agents", &self.agent_id, "assignments"])?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("wait", &wait.as_secs().to_string());
            if let Some(v) = version {
                q.append_pair("version", v);
            }
        }
        let response = self
            .send(
                Method::GET,
                url,
                None::<&()>,
                wait.saturating_add(REQUEST_TIMEOUT),
            )
            .await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Retryable(format!("unreadable assignments: {e}")))
    }

    /// `POST /v1/sessions/{id}/kernel-events`.
    pub async fn report(&self, session_id: &str, report: &KernelReport) -> Result<(), ClientError> {
        self.send(
            Method::POST,
            self.url(&["v1", "sessions", session_id, "kernel-events"])?,
            Some(report),
            REQUEST_TIMEOUT,
        )
        .await?;
        Ok(())
    }
}

/// The text of the innermost cause of an error: `Connection refused (os error 111)`
/// rather than reqwest's `error sending request for url (...)`.
pub fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Exponential backoff between retries: 200 ms doubling up to `max`, with jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff that waits at most `max` between tries.
    pub fn new(max: Duration) -> Self {
        Self {
            next: Duration::from_millis(200),
            max,
        }
    }

    /// The wait before the next try (and doubles the one after).
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        let quarter = u64::try_from(base.as_millis() / 4).unwrap_or(0);
        let jitter = rand::random::<u64>()
            .checked_rem(quarter.saturating_add(1))
            .unwrap_or(0);
        base.saturating_add(Duration::from_millis(jitter))
    }

    /// Back to the shortest wait (after a success).
    pub fn reset(&mut self) {
        self.next = Duration::from_millis(200);
    }
}
