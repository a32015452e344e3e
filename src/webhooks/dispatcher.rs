//! The webhook dispatcher: sends what the outbox holds (SPEC §8).
//!
//! One per deployment at a time: the process holding the lease `sessiond.webhooks`
//! dispatches; the others wait and take over when the holder dies (PostgreSQL advisory
//! lock; in-process on SQLite). A loop reads the due deliveries (the earliest open one of
//! each chain: per-session order per endpoint), sends up to `webhooks.concurrency` at
//! once, and records the outcomes of the attempts that ended together in one
//! transaction (before their chains are handed out again):
//!
//! - **2xx**: `delivered`; the chain's next delivery is due at once.
//! - **410** from a subscription's endpoint: the subscription is disabled (an event, so
//!   every replica and the log agree); the delivery stays open, so re-enabling resumes
//!   from it. A callback URL answering 410 is `dead` (there is nothing to disable).
//! - **anything else** (3xx — redirects are not followed —, 4xx, 5xx, a timeout, a
//!   refused connection, an address the SSRF guard refuses): `failed`, retried after
//!   the schedule's next wait (with up to 10% jitter; at least `Retry-After` on 429 and
//!   503); after the last entry's attempt, `dead`.
//!
//! It wakes when this process's outbox projection applied events, when an attempt ends, and
//! every [`POLL`] otherwise (deliveries written by another replica's projection, and
//! retries coming due). Delivery is at least once: a crash after a receiver answered
//! and before the outcome was recorded sends that delivery again, with the same
//! `webhook-id`.

use chrono::{DateTime, Utc};
use metrics::{counter, gauge, histogram};
use projections::models::outbox::{self, Attempted, ChainAfter, DueDelivery, CALLBACK_TARGET};
use projections::models::WEBHOOK_OUTBOX;
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use store::lease::Lease;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::guard::Guard;
use super::sign;
use super::subscriptions::{self, SecretCache};
use crate::app::App;
use crate::config::WebhookConfig;
use crate::store::EventMetadata;

/// The lease of the one dispatcher per deployment.
pub const LEASE: &str = "sessiond.webhooks";
/// The supervised worker's name.
pub const WORKER: &str = "webhooks";
/// How often an idle dispatcher looks for due deliveries nothing woke it for.
pub const POLL: Duration = Duration::from_millis(200);
/// How often a standby tries to take the lease.
const STANDBY_POLL: Duration = Duration::from_secs(1);
/// How often the backlog gauges are refreshed.
const STATS_EVERY: Duration = Duration::from_secs(2);
/// The most of a response body read (then the connection is reused or dropped).
const MAX_RESPONSE_BODY: usize = 64 * 1024;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER_SECS: u64 = 7 * 86_400;

/// Describes the dispatcher's metrics (and zeroes the counters so they always exist).
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "sessiond_webhook_deliveries_total",
        "Webhook deliveries that ended, by outcome (delivered, dead)."
    );
    describe_counter!(
        "sessiond_webhook_attempts_total",
        "Webhook delivery attempts, by result (2xx, 3xx, 4xx, 5xx, timeout, connect, refused, error)."
    );
    describe_gauge!(
        "sessiond_webhook_open_deliveries",
        "Webhook deliveries pending or failed (to be attempted), as of the last refresh."
    );
    describe_gauge!(
        "sessiond_webhook_dead_deliveries",
        "Webhook deliveries that are dead (every attempt failed), as of the last refresh."
    );
    describe_gauge!(
        "sessiond_webhook_oldest_pending_seconds",
        Unit::Seconds,
        "Age of the oldest open webhook delivery (0 when none)."
    );
    describe_histogram!(
        "sessiond_webhook_dispatch_lag_seconds",
        Unit::Seconds,
        "From when a delivery was due to when its attempt started."
    );
    describe_histogram!(
        "sessiond_webhook_attempt_duration_seconds",
        Unit::Seconds,
        "Duration of each webhook delivery attempt."
    );
    for outcome in ["delivered", "dead"] {
        counter!("sessiond_webhook_deliveries_total", "outcome" => outcome).increment(0);
    }
    gauge!("sessiond_webhook_open_deliveries").set(0.0);
    gauge!("sessiond_webhook_dead_deliveries").set(0.0);
    gauge!("sessiond_webhook_oldest_pending_seconds").set(0.0);
}

/// A message ready to send: body, headers, where to.
#[derive(Debug, Clone)]
pub struct Message {
    /// `webhook-id`.
    pub id: String,
    /// The URL.
    pub url: String,
    /// The exact bytes.
    pub body: String,
    /// The secrets that sign it.
    pub secrets: Vec<sign::WebhookSecret>,
}

/// What one HTTP attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The receiver answered.
    Status {
        /// Its status code.
        code: u16,
        /// `Retry-After`, in seconds.
        retry_after: Option<u64>,
    },
    /// No answer: why (timeout, connection refused, guard refusal).
    Failed {
        /// The metric label (`timeout`, `connect`, `refused`, `error`).
        kind: &'static str,
        /// For the delivery log.
        error: String,
    },
}

impl Response {
    fn label(&self) -> &'static str {
        match self {
            Response::Status { code, .. } => match code {
                200..=299 => "2xx",
                300..=399 => "3xx",
                400..=499 => "4xx",
                _ => "5xx",
            },
            Response::Failed { kind, .. } => kind,
        }
    }
}

/// Parses `Retry-After`: seconds, or an HTTP date.
fn retry_after(value: &str, now: DateTime<Utc>) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.min(MAX_RETRY_AFTER_SECS));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let secs = at
        .with_timezone(&Utc)
        .signed_duration_since(now)
        .num_seconds();
    Some(
        u64::try_from(secs.max(0))
            .unwrap_or(0)
            .min(MAX_RETRY_AFTER_SECS),
    )
}

/// Sends one signed message (the HTTP client does not follow redirects and checks every
/// address it connects to; an IP-literal URL is checked here, since no resolution
/// happens for it).
pub async fn send(
    client: &reqwest::Client,
    guard: &Guard,
    message: &Message,
    now: DateTime<Utc>,
) -> Response {
    let url = match guard.validate_url(&message.url) {
        Ok(url) => url,
        Err(e) => {
            return Response::Failed {
                kind: "refused",
                error: format!("url: {e}"),
            }
        }
    };
    let timestamp = now.timestamp();
    let signature = sign::signature_header(
        &message.secrets,
        &message.id,
        timestamp,
        message.body.as_bytes(),
    );
    let request = client
        .post(url)
        .header("webhook-id", &message.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .header("content-type", "application/json")
        .body(message.body.clone());
    match request.send().await {
        Ok(mut response) => {
            let code = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, now));
            // Read a little of the body so the connection can be reused; a receiver
            // that keeps talking is cut off.
            let mut read = 0usize;
            while read < MAX_RESPONSE_BODY {
                match response.chunk().await {
                    Ok(Some(chunk)) => read = read.saturating_add(chunk.len()),
                    _ => break,
                }
            }
            Response::Status { code, retry_after }
        }
        Err(e) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "error"
            };
            Response::Failed {
                kind,
                error: crate::telemetry::error_chain(&e),
            }
        }
    }
}

/// The wait before the attempt after `made` attempts of this round (schedule entry
/// `made`), with up to 10% jitter, at least `retry_after`; `None` when the schedule is
/// used up.
pub fn next_wait(schedule: &[f64], made: usize, retry_after: Option<u64>) -> Option<Duration> {
    let base = *schedule.get(made)?;
    let jitter = 1.0 + rand::thread_rng().gen_range(0.0..0.1);
    let wait = Duration::try_from_secs_f64(base * jitter).unwrap_or(Duration::ZERO);
    let floor = Duration::from_secs(retry_after.unwrap_or(0));
    Some(wait.max(floor))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The dispatcher of one process.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    app: App,
    client: reqwest::Client,
    guard: Guard,
    secrets: Arc<SecretCache>,
    config: WebhookConfig,
}

/// What one attempt task reports back.
struct Done {
    chain: (String, String),
    gone: Option<(String, i64)>,
    /// The outcome to record (`None`: deciding it failed; the delivery stays due).
    attempted: Option<Attempted>,
}

impl Dispatcher {
    /// The dispatcher of `app` (its HTTP client with the SSRF guard).
    pub fn new(app: &App) -> Result<Self, super::guard::GuardError> {
        let config = app.settings.webhooks.clone();
        let guard = super::guard_of(&config);
        let timeout = Duration::from_millis(config.timeout_ms);
        let client = super::guard::client(
            &guard,
            timeout,
            usize::try_from(config.concurrency).unwrap_or(64),
        )?;
        Ok(Self {
            app: app.clone(),
            client,
            guard,
            secrets: app.webhook_secrets.clone(),
            config,
        })
    }

    /// Runs until `shutdown`: standby until the lease is free, then dispatches.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut spare = None;
        while !*shutdown.borrow() {
            match Lease::acquire(self.app.db(), LEASE, &mut spare).await {
                Ok(Some(lease)) => {
                    tracing::info!(lease = LEASE, "webhook dispatcher active");
                    let lease = self.dispatch(lease, shutdown.clone()).await;
                    if let Some(lease) = lease {
                        lease.release().await;
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cannot take the webhook lease"),
            }
            tokio::select! {
                _ = tokio::time::sleep(STANDBY_POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Dispatches while the lease holds; returns it when shutting down.
    async fn dispatch(
        &self,
        mut lease: Lease,
        mut shutdown: watch::Receiver<bool>,
    ) -> Option<Lease> {
        // Woken by the outbox's batches only (not every read model's).
        let mut applied = self
            .app
            .engine
            .applied_by(WEBHOOK_OUTBOX)
            .unwrap_or_else(|| self.app.engine.applied());
        let mut running: JoinSet<Done> = JoinSet::new();
        let mut in_flight: HashSet<(String, String)> = HashSet::new();
        // Subscriptions that answered 410, until the outbox has seen them disabled.
        let mut gone: HashMap<String, i64> = HashMap::new();
        let concurrency = usize::try_from(self.config.concurrency).unwrap_or(64);
        let mut last_stats = tokio::time::Instant::now()
            .checked_sub(STATS_EVERY)
            .unwrap_or_else(tokio::time::Instant::now);
        let mut last_lease_check = tokio::time::Instant::now();
        loop {
            if *shutdown.borrow() {
                self.finish(&mut running).await;
                return Some(lease);
            }
            if last_lease_check.elapsed() >= STANDBY_POLL {
                last_lease_check = tokio::time::Instant::now();
                if !lease.alive().await {
                    tracing::warn!(lease = LEASE, "webhook lease lost");
                    self.finish(&mut running).await;
                    return None;
                }
            }
            if last_stats.elapsed() >= STATS_EVERY {
                last_stats = tokio::time::Instant::now();
                self.refresh_stats().await;
            }
            if !gone.is_empty() {
                if let Ok(cp) =
                    projections::engine::read_checkpoint(self.app.db(), WEBHOOK_OUTBOX).await
                {
                    gone.retain(|_, position| cp.position.global_position < *position);
                }
            }
            let free = concurrency.saturating_sub(running.len());
            if free > 0 {
                let now = self.app.clock.now();
                let limit = i64::try_from(free.saturating_add(in_flight.len())).unwrap_or(i64::MAX);
                match outbox::due(self.app.db(), now.timestamp_millis(), limit).await {
                    Ok(due) => {
                        for d in due {
                            let chain = (d.target.clone(), d.session_id.clone());
                            if running.len() >= concurrency
                                || in_flight.contains(&chain)
                                || gone.contains_key(&d.target)
                            {
                                continue;
                            }
                            in_flight.insert(chain.clone());
                            let this = self.clone();
                            running.spawn(async move {
                                // The attempt runs in its own task so that a panic in it
                                // still hands its chain back (and the delivery, still
                                // open in the outbox, is attempted again).
                                let inner = tokio::spawn(this.attempt(d, chain.clone()));
                                match inner.await {
                                    Ok(done) => done,
                                    Err(e) => {
                                        counter!("sessiond_worker_panics_total", "worker" => "webhook_attempt").increment(1);
                                        tracing::error!(error = %e, "a webhook attempt panicked; the delivery stays open");
                                        Done { chain, gone: None, attempted: None }
                                    }
                                }
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %crate::telemetry::error_chain(&e), "cannot read due webhook deliveries");
                    }
                }
            }
            tokio::select! {
                Some(done) = running.join_next(), if !running.is_empty() => {
                    // Settle every attempt that has ended, not only the first: one due
                    // query then serves them all (a query per attempt would bound the
                    // rate at one delivery per query).
                    let mut next = Some(done);
                    let mut ended = Vec::new();
                    let mut attempted = Vec::new();
                    while let Some(done) = next {
                        match done {
                            Ok(done) => {
                                ended.push(done.chain);
                                attempted.extend(done.attempted);
                                if let Some((target, position)) = done.gone {
                                    gone.insert(target, position);
                                }
                            }
                            Err(e) => {
                                // Only the wrapper above could fail here (it is not
                                // aborted, and it does not panic).
                                tracing::error!(error = %e, "a webhook attempt task failed");
                            }
                        }
                        next = running.try_join_next();
                    }
                    // Recorded before their chains are free again, so the next due
                    // query cannot hand out a head whose outcome is not written yet.
                    self.record(&attempted).await;
                    for chain in &ended {
                        in_flight.remove(chain);
                    }
                }
                r = applied.changed() => {
                    if r.is_err() {
                        tokio::time::sleep(POLL).await;
                    }
                }
                _ = tokio::time::sleep(POLL) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn refresh_stats(&self) {
        match outbox::backlog(self.app.db()).await {
            Ok(b) => {
                gauge!("sessiond_webhook_open_deliveries").set(b.open as f64);
                gauge!("sessiond_webhook_dead_deliveries").set(b.dead as f64);
                let age = b
                    .oldest_open_ms
                    .map(|ms| {
                        let now = self.app.clock.now().timestamp_millis();
                        (now.saturating_sub(ms).max(0) as f64) / 1000.0
                    })
                    .unwrap_or(0.0);
                gauge!("sessiond_webhook_oldest_pending_seconds").set(age);
            }
            Err(e) => tracing::debug!(error = %e, "cannot read the webhook backlog"),
        }
    }

    /// The message of a due delivery (its URL and signing secrets), or why it cannot
    /// be sent.
    async fn message(&self, d: &DueDelivery, now: DateTime<Utc>) -> Result<Message, String> {
        let url = d
            .url
            .clone()
            .ok_or_else(|| "the subscription has no URL".to_string())?;
        let secrets = if d.target == CALLBACK_TARGET {
            let owner = domain::ids::Owner::from_stored(d.owner.clone());
            vec![
                subscriptions::callback_secret(&self.app, &self.secrets, &owner)
                    .await
                    .map_err(|e| e.to_string())?,
            ]
        } else {
            let ids = outbox::active_secrets(d.secrets.as_deref().unwrap_or("[]"), now);
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(
                    subscriptions::secret(&self.app, &self.secrets, id)
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            out
        };
        if secrets.is_empty() {
            return Err("no active signing secret".into());
        }
        Ok(Message {
            id: d.delivery_id.clone(),
            url,
            body: d.body.clone(),
            secrets,
        })
    }

    async fn attempt(self, d: DueDelivery, chain: (String, String)) -> Done {
        let started = self.app.clock.now();
        let due_ms = d.next_attempt_ms;
        histogram!("sessiond_webhook_dispatch_lag_seconds")
            .record((started.timestamp_millis().saturating_sub(due_ms).max(0) as f64) / 1000.0);
        let clock = std::time::Instant::now();
        let response = match self.message(&d, started).await {
            Ok(message) => send(&self.client, &self.guard, &message, started).await,
            Err(error) => Response::Failed {
                kind: "error",
                error,
            },
        };
        histogram!("sessiond_webhook_attempt_duration_seconds")
            .record(clock.elapsed().as_secs_f64());
        counter!("sessiond_webhook_attempts_total", "result" => response.label()).increment(1);
        let mut gone = None;
        let attempted = match self.outcome(&d, &response, &mut gone).await {
            Ok(a) => Some(a),
            Err(e) => {
                // Not decided: the delivery stays due and is sent again (at least once).
                tracing::warn!(delivery = %d.delivery_id, error = %e, "cannot record a webhook attempt");
                None
            }
        };
        Done {
            chain,
            gone,
            attempted,
        }
    }

    /// Waits for the attempts still running and records what they came to.
    async fn finish(&self, running: &mut JoinSet<Done>) {
        let mut attempted = Vec::new();
        while let Some(done) = running.join_next().await {
            if let Ok(done) = done {
                attempted.extend(done.attempted);
            }
        }
        self.record(&attempted).await;
    }

    /// Records the outcomes of the attempts that ended together (one transaction), then
    /// counts the deliveries that ended.
    async fn record(&self, attempted: &[Attempted]) {
        if let Err(e) = outbox::record_all(self.app.db(), attempted).await {
            // Not recorded: the deliveries stay due and are sent again (at least once).
            tracing::warn!(attempts = attempted.len(), error = %crate::telemetry::error_chain(&e), "cannot record webhook attempts");
            return;
        }
        for a in attempted {
            if matches!(a.status, "delivered" | "dead") {
                counter!("sessiond_webhook_deliveries_total", "outcome" => a.status).increment(1);
            }
            if a.status == "dead" {
                tracing::warn!(delivery = %a.delivery_id, target = %a.target, "webhook delivery is dead after its last attempt");
            }
        }
    }

    /// What an attempt came to (a 410 from a subscription's endpoint disables it here).
    async fn outcome(
        &self,
        d: &DueDelivery,
        response: &Response,
        gone: &mut Option<(String, i64)>,
    ) -> Result<Attempted, Box<dyn std::error::Error + Send + Sync>> {
        let now = self.app.clock.now();
        let now_ms = now.timestamp_millis();
        let made = usize::try_from(d.round_attempts.saturating_add(1)).unwrap_or(usize::MAX);
        let (code, error, retry_after) = match response {
            Response::Status { code, retry_after } => (
                Some(i64::from(*code)),
                (!(200..300).contains(code)).then(|| format!("HTTP {code}")),
                retry_after.filter(|_| matches!(code, 429 | 503)),
            ),
            Response::Failed { error, .. } => (None, Some(error.clone()), None),
        };
        let delivered =
            matches!(response, Response::Status { code, .. } if (200..300).contains(code));
        let gone_endpoint = matches!(response, Response::Status { code: 410, .. });
        let (status, next_ms, ended) = if delivered {
            ("delivered", now_ms, true)
        } else if gone_endpoint && d.target != CALLBACK_TARGET {
            let meta = EventMetadata {
                actor: "system:webhooks".into(),
                correlation_id: d.delivery_id.clone(),
                causation_id: d.delivery_id.clone(),
            };
            let committed = subscriptions::disable_gone(&self.app, &d.target, &meta).await?;
            if let Some(p) = committed.last_position() {
                *gone = Some((d.target.clone(), p.global_position));
            }
            tracing::warn!(webhook = %d.target, "endpoint answered 410 Gone: subscription disabled");
            // Open, due at once: re-enabling the subscription resumes from here.
            ("failed", now_ms, false)
        } else {
            match next_wait(&self.config.retry_schedule, made, retry_after) {
                Some(wait) if !gone_endpoint => {
                    ("failed", now_ms.saturating_add(millis(wait)), false)
                }
                _ => ("dead", now_ms, true),
            }
        };
        let chain = if ended {
            ChainAfter::Release(now_ms)
        } else if status == "failed" && next_ms > now_ms {
            ChainAfter::Hold(next_ms)
        } else {
            ChainAfter::Keep
        };
        Ok(Attempted {
            delivery_id: d.delivery_id.clone(),
            target: d.target.clone(),
            session_id: d.session_id.clone(),
            status,
            status_code: code,
            error,
            next_attempt_ms: next_ms,
            delivered_ms: delivered.then_some(now_ms),
            chain,
        })
    }
}

/// Starts the dispatcher under the supervisor.
pub fn spawn(app: &App, shutdown: watch::Receiver<bool>) -> Option<tokio::task::JoinHandle<()>> {
    let dispatcher = match Dispatcher::new(app) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; webhooks are not dispatched");
            return None;
        }
    };
    let stop = shutdown.clone();
    Some(app.supervisor.spawn(WORKER, shutdown, move || {
        dispatcher.clone().run(stop.clone())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_gives_each_wait_with_at_most_ten_percent_jitter_then_ends() {
        let schedule = [0.0, 5.0, 300.0];
        for _ in 0..100 {
            let w = next_wait(&schedule, 1, None).unwrap();
            assert!(
                w >= Duration::from_secs(5) && w <= Duration::from_millis(5500),
                "{w:?}"
            );
        }
        assert!(next_wait(&schedule, 3, None).is_none());
    }

    #[test]
    fn retry_after_is_a_floor_under_the_scheduled_wait() {
        let schedule = [0.0, 0.1, 0.1];
        let w = next_wait(&schedule, 1, Some(2)).unwrap();
        assert!(w >= Duration::from_secs(2), "{w:?}");
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_an_http_date() {
        let now = DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(retry_after("2", now), Some(2));
        assert_eq!(retry_after("Wed, 02 Dec 2026 10:00:30 GMT", now), Some(30));
        assert_eq!(retry_after("Wed, 02 Dec 2026 09:00:00 GMT", now), Some(0));
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("99999999999", now), Some(MAX_RETRY_AFTER_SECS));
    }
}
