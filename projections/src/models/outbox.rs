//! `webhook_outbox`: the durable consumer of the global log that turns session status
//! changes into webhook deliveries (SPEC §8), and the queries of the dispatcher that
//! sends them.
//!
//! For every session event that changes a status, the projection writes one row into
//! the outbox (`webhook_deliveries`) per subscription that is enabled and whose filter
//! matches at that point of the log, and one for the session's own `callback_url`. The
//! rows are written in the transaction that advances the checkpoint. A delivery's id is
//! derived from the event's position and its target (`msg_<position>_<target>`) and
//! rows are inserted with `ON CONFLICT DO NOTHING`: a crash before the commit writes
//! nothing (the batch is applied again), and a rebuild replays the log into a new
//! generation of the projection's own state (`rm_webhook_targets`,
//! `rm_webhook_sessions`) while finding every delivery already there, with its
//! attempts. The body is fixed when the row is written, so every attempt sends, and
//! signs, the same bytes.
//!
//! Per-session order per endpoint: the dispatcher only attempts the earliest open
//! delivery of a chain (target, session). A chain whose head failed holds its later,
//! never attempted deliveries until the head's next attempt ([`ChainAfter::Hold`],
//! recorded by [`record_all`]), so the due query reads only what it may send.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::session::{Session, SessionEvent};
use domain::webhook::{WebhookEvent, WebhookFilter, WebhookSubscription};
use domain::Decider;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use store::db::{Db, Tx};
use store::{args, sql, RecordedEvent};
use uuid::Uuid;

use super::WEBHOOK_OUTBOX;
use crate::{Projection, ProjectionError};

/// The target of a session's own `callback_url` deliveries.
pub const CALLBACK_TARGET: &str = "callback";
/// The `type` of a status change message.
pub const SESSION_STATUS_CHANGED: &str = "session.status_changed";
/// Rows per insert statement.
const CHUNK: usize = 500;

/// The outbox projection.
#[derive(Debug, Clone, Copy)]
pub struct WebhookOutbox;

/// A signing secret of a subscription as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSecret {
    /// The secret's id (`webhook_secrets`).
    pub secret_id: Uuid,
    /// When it stops signing (`None`: current).
    pub expires_at: Option<DateTime<Utc>>,
}

/// Active secrets at `now`, from the outbox's JSON text.
pub fn active_secrets(secrets: &str, now: DateTime<Utc>) -> Vec<Uuid> {
    serde_json::from_str::<Vec<TargetSecret>>(secrets)
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.expires_at.is_none_or(|e| e > now))
        .map(|s| s.secret_id)
        .collect()
}

struct Target {
    webhook_id: String,
    enabled: bool,
    url: String,
    filter: WebhookFilter,
    secrets: Vec<TargetSecret>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
struct SessionRow {
    session_id: String,
    name: String,
    owner: String,
    session_type: String,
    scaling_group: String,
    status: String,
    callback_url: Option<String>,
}

/// The body of a status change message (SPEC §8; `schemas/session-status-changed.v1.json`).
pub fn status_changed_body(
    session: &StatusChange<'_>,
    occurred_at: DateTime<Utc>,
    position: i64,
) -> Value {
    json!({
        "type": SESSION_STATUS_CHANGED,
        "timestamp": occurred_at,
        "data": {
            "session_id": session.session_id,
            "name": session.name,
            "owner": session.owner,
            "type": session.session_type,
            "scaling_group": session.scaling_group,
            "status": session.status,
            "previous_status": session.previous_status,
            "status_info": session.status_info,
            "status_changed": occurred_at,
            "position": position,
        }
    })
}

/// What a status change message says about its session.
#[derive(Debug, Clone)]
pub struct StatusChange<'a> {
    /// Its id.
    pub session_id: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its owner.
    pub owner: &'a str,
    /// interactive | batch | inference.
    pub session_type: &'a str,
    /// Its scaling group.
    pub scaling_group: &'a str,
    /// The status entered.
    pub status: &'a str,
    /// The status left (`None` for PENDING on enqueue).
    pub previous_status: Option<&'a str>,
    /// The transition's reason.
    pub status_info: Option<String>,
}

#[async_trait]
impl Projection for WebhookOutbox {
    fn name(&self) -> &'static str {
        WEBHOOK_OUTBOX
    }

    fn tables(&self) -> &'static [&'static str] {
        &["rm_webhook_targets", "rm_webhook_sessions"]
    }

    async fn apply(
        &self,
        tx: &mut Tx,
        generation: i64,
        events: &[RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let relevant = |e: &&RecordedEvent| {
            e.aggregate_type == Session::TYPE || e.aggregate_type == WebhookSubscription::TYPE
        };
        if !events.iter().any(|e| relevant(&e)) {
            return Ok(());
        }
        let rows: Vec<(String, i64, String, String, String)> = tx
            .fetch_all(&sql!(common "outbox/targets"), args![generation])
            .await?;
        let mut targets: Vec<Target> = rows
            .into_iter()
            .map(|(webhook_id, enabled, url, filter, secrets)| Target {
                webhook_id,
                enabled: enabled != 0,
                url,
                filter: serde_json::from_str(&filter).unwrap_or_default(),
                secrets: serde_json::from_str(&secrets).unwrap_or_default(),
            })
            .collect();

        // The sessions of this batch that were enqueued before it.
        let mut born = HashSet::new();
        let mut lookups = Vec::new();
        for e in events.iter().filter(|e| e.aggregate_type == Session::TYPE) {
            if e.sequence == 1 {
                born.insert(e.aggregate_id.clone());
            } else if !born.contains(&e.aggregate_id) {
                lookups.push(e.aggregate_id.clone());
            }
        }
        lookups.sort_unstable();
        lookups.dedup();
        let mut sessions: HashMap<String, SessionRow> = HashMap::new();
        if !lookups.is_empty() {
            let found: Vec<SessionRow> = tx
                .fetch_all(&sql!("outbox/load_sessions"), args![generation, lookups])
                .await?;
            sessions.extend(found.into_iter().map(|r| (r.session_id.clone(), r)));
        }

        let mut touched = HashSet::new();
        let mut ended = HashSet::new();
        let mut deliveries = Vec::new();
        for e in events {
            if e.aggregate_type == WebhookSubscription::TYPE {
                let event: WebhookEvent = e.decode()?;
                apply_subscription(tx, generation, &mut targets, &e.aggregate_id, event).await?;
                continue;
            }
            if e.aggregate_type != Session::TYPE {
                continue;
            }
            let event: SessionEvent = e.decode()?;
            let Some(status) = event.target_status() else {
                continue;
            };
            let previous = match &event {
                SessionEvent::SessionEnqueued { spec, .. } => {
                    sessions.insert(
                        e.aggregate_id.clone(),
                        SessionRow {
                            session_id: e.aggregate_id.clone(),
                            name: spec.name.to_string(),
                            owner: spec.owner.to_string(),
                            session_type: spec.session_type.as_str().to_string(),
                            scaling_group: spec.scaling_group.to_string(),
                            status: status.as_str().to_string(),
                            callback_url: spec.callback_url.as_ref().map(|u| u.to_string()),
                        },
                    );
                    None
                }
                _ => match sessions.get_mut(&e.aggregate_id) {
                    Some(row) => Some(std::mem::replace(
                        &mut row.status,
                        status.as_str().to_string(),
                    )),
                    // Ended already (nothing follows a terminal status), or enqueued
                    // before this projection existed and already ended: nothing to say.
                    None => continue,
                },
            };
            let Some(row) = sessions.get(&e.aggregate_id) else {
                continue;
            };
            touched.insert(e.aggregate_id.clone());
            if status.is_terminal() {
                ended.insert(e.aggregate_id.clone());
            }
            let change = StatusChange {
                session_id: &row.session_id,
                name: &row.name,
                owner: &row.owner,
                session_type: &row.session_type,
                scaling_group: &row.scaling_group,
                status: status.as_str(),
                previous_status: previous.as_deref(),
                status_info: event.status_info(),
            };
            let body = status_changed_body(&change, event.occurred_at(), e.global_position);
            let body = serde_json::to_string(&body)
                .map_err(|err| ProjectionError::Handler(err.to_string()))?;
            let created_ms = e.recorded_at.timestamp_millis();
            let mut push = |target: &str, id_part: &str, url: Option<&str>| {
                deliveries.push(json!({
                    "delivery_id": format!("msg_{}_{}", e.global_position, id_part),
                    "target": target,
                    "session_id": row.session_id,
                    "owner": row.owner,
                    "url": url,
                    "position": e.global_position,
                    "created_ms": created_ms,
                    "body": body,
                }));
            };
            for t in targets
                .iter()
                .filter(|t| t.enabled && t.filter.matches(status, &row.scaling_group, &row.owner))
            {
                let simple = Uuid::parse_str(&t.webhook_id)
                    .map(|u| u.simple().to_string())
                    .unwrap_or_else(|_| t.webhook_id.clone());
                push(&t.webhook_id, &simple, None);
            }
            if let Some(url) = &row.callback_url {
                push(CALLBACK_TARGET, CALLBACK_TARGET, Some(url));
            }
        }

        let upserts: Vec<Value> = touched
            .iter()
            .filter(|id| !ended.contains(*id))
            .filter_map(|id| sessions.get(id))
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect();
        for chunk in upserts.chunks(CHUNK) {
            tx.execute(
                &sql!("outbox/upsert_sessions"),
                args![generation, Value::Array(chunk.to_vec())],
            )
            .await?;
        }
        let ended: Vec<String> = ended.into_iter().collect();
        for chunk in ended.chunks(CHUNK) {
            tx.execute(
                &sql!("outbox/delete_sessions"),
                args![generation, chunk.to_vec()],
            )
            .await?;
        }
        for chunk in deliveries.chunks(CHUNK) {
            tx.execute(
                &sql!("outbox/insert_deliveries"),
                args![Value::Array(chunk.to_vec())],
            )
            .await?;
        }
        Ok(())
    }
}

async fn write_target(tx: &mut Tx, generation: i64, t: &Target) -> Result<(), ProjectionError> {
    let filter = serde_json::to_string(&t.filter).unwrap_or_else(|_| "{}".into());
    let secrets = serde_json::to_string(&t.secrets).unwrap_or_else(|_| "[]".into());
    tx.execute(
        &sql!(common "outbox/upsert_target"),
        args![
            generation,
            &t.webhook_id,
            i64::from(t.enabled),
            &t.url,
            filter,
            secrets
        ],
    )
    .await?;
    Ok(())
}

async fn apply_subscription(
    tx: &mut Tx,
    generation: i64,
    targets: &mut Vec<Target>,
    webhook_id: &str,
    event: WebhookEvent,
) -> Result<(), ProjectionError> {
    let index = targets.iter().position(|t| t.webhook_id == webhook_id);
    match (event, index) {
        (
            WebhookEvent::WebhookSubscriptionCreated {
                settings,
                secret_id,
                ..
            },
            None,
        ) => {
            let t = Target {
                webhook_id: webhook_id.to_string(),
                enabled: settings.enabled,
                url: settings.url.to_string(),
                filter: settings.filter,
                secrets: vec![TargetSecret {
                    secret_id,
                    expires_at: None,
                }],
            };
            write_target(tx, generation, &t).await?;
            targets.push(t);
        }
        (WebhookEvent::WebhookSubscriptionDeleted { .. }, Some(i)) => {
            targets.remove(i);
            tx.execute(
                &sql!(common "outbox/delete_target"),
                args![generation, webhook_id],
            )
            .await?;
        }
        (event, Some(i)) => {
            let Some(t) = targets.get_mut(i) else {
                return Ok(());
            };
            match event {
                WebhookEvent::WebhookSubscriptionUpdated { settings, .. } => {
                    t.enabled = settings.enabled;
                    t.url = settings.url.to_string();
                    t.filter = settings.filter;
                }
                WebhookEvent::WebhookSecretRotated {
                    secret_id,
                    previous_secret_id,
                    previous_expires_at,
                    ..
                } => {
                    t.secrets = vec![
                        TargetSecret {
                            secret_id,
                            expires_at: None,
                        },
                        TargetSecret {
                            secret_id: previous_secret_id,
                            expires_at: Some(previous_expires_at),
                        },
                    ];
                }
                WebhookEvent::WebhookSubscriptionDisabled { .. } => t.enabled = false,
                WebhookEvent::WebhookSubscriptionCreated { .. }
                | WebhookEvent::WebhookSubscriptionDeleted { .. } => {}
            }
            write_target(tx, generation, t).await?;
        }
        // An event of a subscription this generation does not hold (created twice,
        // deleted): nothing to do.
        _ => {}
    }
    Ok(())
}

/// A delivery the dispatcher may attempt now.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DueDelivery {
    /// Its id (`webhook-id`).
    pub delivery_id: String,
    /// A subscription id, or [`CALLBACK_TARGET`].
    pub target: String,
    /// The session.
    pub session_id: String,
    /// The session's owner (whose callback secret signs a callback delivery).
    pub owner: String,
    /// Where it goes (`None`: a subscription that has no row any more).
    pub url: Option<String>,
    /// The event's position.
    pub position: i64,
    /// Attempts made.
    pub attempts: i64,
    /// Attempts since it was last (re)queued: indexes the retry schedule.
    pub round_attempts: i64,
    /// When it came due (unix ms).
    pub next_attempt_ms: i64,
    /// The exact bytes to send.
    pub body: String,
    /// The subscription's secrets (JSON), `None` for a callback.
    pub secrets: Option<String>,
}

/// A delivery as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRow {
    /// Its id (`webhook-id`).
    pub delivery_id: String,
    /// The event's position.
    pub position: i64,
    /// The session.
    pub session_id: String,
    /// pending | failed | delivered | dead.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// The last response's status code.
    pub last_status_code: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When the next attempt is due (unix ms; meaningful while open).
    pub next_attempt_ms: i64,
    /// When it was written (unix ms).
    pub created_ms: i64,
    /// When it was delivered (unix ms).
    pub delivered_ms: Option<i64>,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempted {
    /// The delivery.
    pub delivery_id: String,
    /// Its chain: the target.
    pub target: String,
    /// Its chain: the session.
    pub session_id: String,
    /// delivered | failed | dead.
    pub status: &'static str,
    /// The response's status code.
    pub status_code: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// When the next attempt is due (unix ms).
    pub next_attempt_ms: i64,
    /// When it was delivered (unix ms).
    pub delivered_ms: Option<i64>,
    /// What its chain's never attempted successors do now.
    pub chain: ChainAfter,
}

/// What an attempt means for the rest of its chain (target, session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainAfter {
    /// The head ended (delivered or dead): the successors are due at this time (ms).
    Release(i64),
    /// The head retries at this time (ms): the successors wait until then.
    Hold(i64),
    /// Nothing changes for them.
    Keep,
}

/// Up to `limit` deliveries to attempt at `now_ms`.
pub async fn due(db: &Db, now_ms: i64, limit: i64) -> Result<Vec<DueDelivery>, ProjectionError> {
    Ok(db
        .fetch_all(
            &sql!(common "outbox/due"),
            args![WEBHOOK_OUTBOX, now_ms, limit],
        )
        .await?)
}

/// Records the outcomes of attempts, with what each means for its chain, in one
/// transaction (one commit for all the attempts that ended together).
pub async fn record_all(db: &Db, attempts: &[Attempted]) -> Result<(), ProjectionError> {
    if attempts.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin().await?;
    for a in attempts {
        tx.execute(
            &sql!(common "outbox/record"),
            args![
                a.delivery_id.clone(),
                a.status,
                a.status_code,
                a.error.clone(),
                a.next_attempt_ms,
                a.delivered_ms
            ],
        )
        .await?;
        match a.chain {
            ChainAfter::Release(now_ms) => {
                tx.execute(
                    &sql!(common "outbox/release_chain"),
                    args![a.target.clone(), a.session_id.clone(), now_ms],
                )
                .await?;
            }
            ChainAfter::Hold(until_ms) => {
                tx.execute(
                    &sql!(common "outbox/hold_chain"),
                    args![a.target.clone(), a.session_id.clone(), until_ms],
                )
                .await?;
            }
            ChainAfter::Keep => {}
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Queues delivery `delivery_id` of `target` again; `false` when there is none.
pub async fn redeliver(
    db: &Db,
    target: &str,
    delivery_id: &str,
    now_ms: i64,
) -> Result<bool, ProjectionError> {
    let rows: Vec<(String,)> = db
        .write_fetch_all(
            &sql!(common "outbox/redeliver"),
            args![target, delivery_id, now_ms],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// The delivery log of `target`: `status` (`None`: any), after `after` (a position),
/// at most `limit` rows, oldest first.
pub async fn log(
    db: &Db,
    target: &str,
    status: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<DeliveryRow>, ProjectionError> {
    Ok(db
        .fetch_all(
            &sql!(common "outbox/log"),
            args![target, status.unwrap_or_default(), after, limit],
        )
        .await?)
}

/// One delivery of `target`.
pub async fn get(
    db: &Db,
    target: &str,
    delivery_id: &str,
) -> Result<Option<DeliveryRow>, ProjectionError> {
    Ok(db
        .fetch_optional(&sql!(common "outbox/get"), args![target, delivery_id])
        .await?)
}

/// The outbox's backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Backlog {
    /// Deliveries pending or failed.
    pub open: i64,
    /// Dead deliveries.
    pub dead: i64,
    /// When the oldest open delivery was written (unix ms).
    pub oldest_open_ms: Option<i64>,
}

/// The outbox's backlog.
pub async fn backlog(db: &Db) -> Result<Backlog, ProjectionError> {
    Ok(db
        .fetch_one(&sql!(common "outbox/backlog"), args![])
        .await?)
}

/// The delivery health of one target.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TargetHealth {
    /// A subscription id, or [`CALLBACK_TARGET`].
    pub target: String,
    /// Deliveries pending or failed.
    pub open: i64,
    /// Deliveries delivered.
    pub delivered: i64,
    /// Dead deliveries (every attempt failed).
    pub dead: i64,
    /// When the last delivery succeeded (unix ms).
    pub last_delivered_ms: Option<i64>,
    /// When the oldest open delivery was written (unix ms).
    pub oldest_open_ms: Option<i64>,
    /// The most recent failure's message.
    pub last_error: Option<String>,
}

/// Delivery health of every target that has deliveries.
pub async fn health(db: &Db) -> Result<Vec<TargetHealth>, ProjectionError> {
    Ok(db.fetch_all(&sql!(common "outbox/health"), args![]).await?)
}

/// A delivery about one session, with its target and body.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionDelivery {
    /// Its id.
    pub delivery_id: String,
    /// A subscription id, or [`CALLBACK_TARGET`].
    pub target: String,
    /// The event's position.
    pub position: i64,
    /// pending | failed | delivered | dead.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// The last response's status code.
    pub last_status_code: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When the next attempt is due (unix ms).
    pub next_attempt_ms: i64,
    /// When it was written (unix ms).
    pub created_ms: i64,
    /// When it was delivered (unix ms).
    pub delivered_ms: Option<i64>,
    /// The bytes sent.
    pub body: String,
}

/// Every delivery about `session_id`, by position.
pub async fn of_session(
    db: &Db,
    session_id: &str,
) -> Result<Vec<SessionDelivery>, ProjectionError> {
    Ok(db
        .fetch_all(&sql!(common "outbox/of_session"), args![session_id])
        .await?)
}

/// Every delivery as `(delivery_id, target, session_id, position)`.
pub async fn all(db: &Db) -> Result<Vec<(String, String, String, i64)>, ProjectionError> {
    Ok(db.fetch_all(&sql!(common "outbox/all"), args![]).await?)
}
