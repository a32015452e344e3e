//! `sessionctl audit verify`: re-folds every stream from the global log and checks the
//! store's integrity and every read model's agreement with a fresh fold.
//!
//! Checks, each reported as a [`Finding`] with a stable `check` name:
//! - `decode`: the payload decodes as its aggregate's event type;
//! - `version`: the `event_version` is one this build can read: current, or with a chain
//!   of upcasters to the current one (`store::upcast`);
//! - `transition`: every session status change is in the transition table (SPEC §1.1),
//!   a session is enqueued once, and scheduling failures only happen while PENDING;
//! - `sequence`: per-stream sequences are gapless, start at 1 and never repeat;
//! - `position`: within a stream, global positions increase with the sequence (the
//!   global log's commit order agrees with every stream's order);
//! - `drift`: each read model equals a fresh fold of the log up to its checkpoint (the
//!   report lists the differing fields);
//! - `unchecked_read_model`: a read model the engine runs that this audit has no check
//!   for (so adding a projection without its check cannot pass unnoticed);
//! - `duplicate_name`: two live sessions of one owner share a name (SPEC §1.2).
//!
//! The oracle of the document models (`sessions`, `scaling_groups`,
//! `agent_occupancy`) is the domain's own fold, the same code the projection runs: for
//! them the audit checks the engine (exactly once, batching, generations) and the
//! stored rows, not the mapping. `pending_queue`, `audit_log` and `slot_releases` are
//! recomputed independently here.

use chrono::{DateTime, Utc};
use domain::agent::{Agent, AgentEvent};
use domain::name_claim::NameClaim;
use domain::pending_quota::PendingQuota;
use domain::policy::{ResourcePolicy, ResourcePolicyEvent};
use domain::scaling_group::{ScalingGroup, ScalingGroupEvent};
use domain::session::reasons::AGENT_LOST;
use domain::session::{Session, SessionEvent, SessionStatus};
use domain::Decider;
use projections::engine::read_checkpoint;
use projections::models::audit_log::{occurred_at, AuditLog};
use projections::models::documents;
use projections::models::pending_queue::PendingQueue;
use projections::models::slot_releases::SlotReleases;
use projections::models::{
    AGENT_OCCUPANCY, AUDIT_LOG, BACKGROUND_TASKS, PENDING_QUEUE, SCALING_GROUPS, SESSIONS,
    SLOT_RELEASES, VFOLDERS, WEBHOOKS, WEBHOOK_OUTBOX,
};
use projections::{LogPosition, RecordedEvent};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

use crate::store::EventStore;

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Which check: `decode`, `version`, `transition`, `sequence`, `position`, `drift`.
    pub check: String,
    /// What it concerns, e.g. `Session 5f0c…` or `read model sessions`.
    pub subject: String,
    /// What is wrong, precisely.
    pub detail: String,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditReport {
    /// Events read.
    pub events: u64,
    /// Streams seen.
    pub streams: u64,
    /// Read models compared.
    pub read_models: Vec<String>,
    /// Stream snapshots compared with a fresh fold of their stream.
    pub snapshots: u64,
    /// Everything wrong (empty = the store is sound).
    pub findings: Vec<Finding>,
}

/// Why the audit could not run (not a finding: an infrastructure failure).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading failed.
    #[error(transparent)]
    Projection(#[from] projections::ProjectionError),
    /// Reading failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Reading failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// A stored event does not decode.
    #[error(transparent)]
    Decode(#[from] crate::store::DecodeError),
}

/// Every aggregate's state, folded from the log.
#[derive(Debug, Clone, Default)]
struct World {
    sessions: BTreeMap<String, Session>,
    enqueue_positions: HashMap<String, i64>,
    groups: BTreeMap<String, ScalingGroup>,
    agents: BTreeMap<String, Agent>,
    policies: BTreeMap<String, ResourcePolicy>,
    vfolders: BTreeMap<String, domain::vfolder::VFolder>,
    tasks: BTreeMap<String, domain::bgtask::BackgroundTask>,
    webhooks: BTreeMap<String, domain::webhook::WebhookSubscription>,
    /// The deliveries the outbox must hold: id -> {target, session_id, position}.
    deliveries: BTreeMap<String, Value>,
    audit: Vec<(i64, String, String, String)>,
}

#[derive(Debug, Default)]
struct StreamCursor {
    sequence: i64,
    position: i64,
}

/// Runs every check over the read models the engine runs (`projections::models::all`).
/// `progress` is called with the number of events read so far.
pub async fn verify(
    store: &EventStore,
    progress: impl FnMut(u64),
) -> Result<AuditReport, AuditError> {
    let names: Vec<&'static str> = projections::models::all()
        .iter()
        .map(|p| p.name())
        .collect();
    verify_models(store, &names, progress).await
}

/// [`verify`] over the read models named: each one is compared with a fresh fold of the
/// log up to its checkpoint; a read model the audit has no independent check for is a
/// finding (`unchecked_read_model`), never silently "verified".
pub async fn verify_models(
    store: &EventStore,
    names: &[&'static str],
    mut progress: impl FnMut(u64),
) -> Result<AuditReport, AuditError> {
    let db = store.db();
    let mut report = AuditReport::default();
    let names: Vec<&'static str> = names
        .iter()
        .copied()
        .filter(|n| {
            let checked = CHECKED.contains(n);
            if !checked {
                report.findings.push(finding(
                    "unchecked_read_model",
                    (*n).to_string(),
                    "the audit has no independent check for this read model".into(),
                ));
            }
            checked
        })
        .collect();
    // Read each model together with its checkpoint: a batch moves both in one
    // transaction, so an unchanged checkpoint before and after the read means the rows
    // are exactly "the log up to the checkpoint" even while a server is running.
    let mut checkpoints = Vec::new();
    let mut actual = HashMap::new();
    for n in names {
        let mut attempts: u32 = 0;
        loop {
            attempts = attempts.saturating_add(1);
            let before = read_checkpoint(&db, n).await?.position;
            let rows = load_actual(store, n).await?;
            let after = read_checkpoint(&db, n).await?.position;
            if before == after || attempts >= 20 {
                checkpoints.push((n, after));
                actual.insert(n, rows);
                break;
            }
        }
    }
    let mut snapshots: HashMap<&str, World> = HashMap::new();
    let mut world = World::default();
    let mut streams: HashMap<(String, String), StreamCursor> = HashMap::new();
    let mut cursor = LogPosition::START;
    loop {
        let batch = db.read_log(cursor, 5000).await?;
        let Some(last) = batch.last() else { break };
        cursor = last.log_position();
        for e in &batch {
            for (name, cp) in &checkpoints {
                if e.log_position() > *cp && !snapshots.contains_key(name) {
                    snapshots.insert(name, world.clone());
                }
            }
            check_stream(e, &mut streams, &mut report.findings);
            fold(e, &mut world, &mut report.findings);
            report.events = report.events.saturating_add(1);
        }
        progress(report.events);
    }
    report.streams = streams.len() as u64;
    report.findings.extend(duplicate_names(&world));
    let (checked, findings) = verify_snapshots(store).await?;
    report.snapshots = checked;
    report.findings.extend(findings);
    for (name, _) in &checkpoints {
        let expected = snapshots.remove(name).unwrap_or_else(|| world.clone());
        let rows = actual.remove(name).unwrap_or_default();
        report
            .findings
            .extend(compare_docs(name, expected_rows(name, &expected), rows));
        report.read_models.push(name.to_string());
    }
    Ok(report)
}

/// Every stream snapshot (`store::snapshots`) against a fresh fold of its stream up to
/// its sequence: a snapshot that differs, claims events the stream does not hold, does
/// not decode, or is of an aggregate type the domain does not have is a finding (one of
/// another shape version is ignored by every load, so it is only counted as checked).
async fn verify_snapshots(store: &EventStore) -> Result<(u64, Vec<Finding>), AuditError> {
    use domain::bgtask::BackgroundTask;
    use domain::vfolder::VFolder;
    use domain::webhook::WebhookSubscription;
    use store::SnapshotCheck;
    let mut findings = Vec::new();
    let all = store.snapshots().await?;
    for s in &all {
        let check = match s.aggregate_type.as_str() {
            Session::TYPE => store.refold_snapshot::<Session>(s).await?,
            Agent::TYPE => store.refold_snapshot::<Agent>(s).await?,
            ScalingGroup::TYPE => store.refold_snapshot::<ScalingGroup>(s).await?,
            ResourcePolicy::TYPE => store.refold_snapshot::<ResourcePolicy>(s).await?,
            NameClaim::TYPE => store.refold_snapshot::<NameClaim>(s).await?,
            PendingQuota::TYPE => store.refold_snapshot::<PendingQuota>(s).await?,
            VFolder::TYPE => store.refold_snapshot::<VFolder>(s).await?,
            BackgroundTask::TYPE => store.refold_snapshot::<BackgroundTask>(s).await?,
            WebhookSubscription::TYPE => store.refold_snapshot::<WebhookSubscription>(s).await?,
            other => SnapshotCheck::Undecodable(format!("no aggregate type {other}")),
        };
        let subject = format!("snapshot {} {}", s.aggregate_type, s.aggregate_id);
        let detail = match check {
            SnapshotCheck::OtherVersion => continue,
            SnapshotCheck::Undecodable(why) => format!("does not decode: {why}"),
            SnapshotCheck::BeyondStream { stream_len } => format!(
                "holds sequence {} but the stream ends at {stream_len}",
                s.last_sequence
            ),
            SnapshotCheck::Compared { snapshot, fold } if snapshot == fold => continue,
            SnapshotCheck::Compared { snapshot, fold } => {
                let mut fields = Vec::new();
                differing_fields(&fold, &snapshot, "", &mut fields);
                format!(
                    "differs from the fold up to sequence {}: {}",
                    s.last_sequence,
                    fields.join(", ")
                )
            }
        };
        findings.push(finding("snapshot", subject, detail));
    }
    Ok((all.len() as u64, findings))
}

/// The invariant of SPEC §1.2, checked independently of how it is enforced: no two
/// sessions of one owner that have not ended share a name.
fn duplicate_names(world: &World) -> Vec<Finding> {
    let mut live: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (id, s) in &world.sessions {
        let (Some(spec), Some(status)) = (&s.spec, s.status) else {
            continue;
        };
        if !status.is_terminal() {
            live.entry((spec.owner.to_string(), spec.name.to_string()))
                .or_default()
                .push(id.clone());
        }
    }
    live.into_iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|((owner, name), ids)| {
            finding(
                "name_unique",
                format!("owner {owner}"),
                format!(
                    "{} sessions named '{name}' have not ended: {}",
                    ids.len(),
                    ids.join(", ")
                ),
            )
        })
        .collect()
}

fn subject(e: &RecordedEvent) -> String {
    format!("{} {}", e.aggregate_type, e.aggregate_id)
}

fn finding(check: &str, subject: String, detail: String) -> Finding {
    Finding {
        check: check.to_string(),
        subject,
        detail,
    }
}

fn check_stream(
    e: &RecordedEvent,
    streams: &mut HashMap<(String, String), StreamCursor>,
    findings: &mut Vec<Finding>,
) {
    let c = streams
        .entry((e.aggregate_type.clone(), e.aggregate_id.clone()))
        .or_default();
    if e.sequence != c.sequence.saturating_add(1) {
        let detail = if e.sequence <= c.sequence {
            format!(
                "sequence {} at position {} comes after sequence {} (repeated or out of order)",
                e.sequence, e.global_position, c.sequence
            )
        } else {
            format!(
                "gap: sequence {} follows {} (missing {}..{}) at position {}",
                e.sequence,
                c.sequence,
                c.sequence.saturating_add(1),
                e.sequence.saturating_sub(1),
                e.global_position
            )
        };
        findings.push(finding("sequence", subject(e), detail));
    }
    if e.global_position <= c.position {
        findings.push(finding(
            "position",
            subject(e),
            format!(
                "sequence {} has global position {} but an earlier sequence has {}",
                e.sequence, e.global_position, c.position
            ),
        ));
    }
    c.sequence = c.sequence.max(e.sequence);
    c.position = c.position.max(e.global_position);
}

/// Reads `e` as `E` through the upcaster chain (`store::upcast`). A version the chain
/// cannot bring to the current one is a `version` finding, any other failure (including
/// an upcaster refusing the body) a `decode` finding.
fn decode<E: domain::DomainEvent>(e: &RecordedEvent, findings: &mut Vec<Finding>) -> Option<E> {
    use crate::store::{Unreadable, UpcastError};
    let err = match e.decode::<E>() {
        Ok(ev) => return Some(ev),
        Err(err) => err,
    };
    let (check, detail) = match &err.source {
        Unreadable::Version(v) => match v.as_ref() {
            UpcastError::UnknownVersion { current, .. } => (
                "version",
                format!(
                    "{} v{} at sequence {} has no upcaster to v{current}",
                    e.event_type, e.event_version, e.sequence
                ),
            ),
            UpcastError::Failed { .. } => ("decode", format!("sequence {}: {err}", e.sequence)),
        },
        Unreadable::Payload(_) => ("decode", format!("sequence {}: {err}", e.sequence)),
    };
    findings.push(finding(check, subject(e), detail));
    None
}

fn fold(e: &RecordedEvent, world: &mut World, findings: &mut Vec<Finding>) {
    world.audit.push((
        e.global_position,
        e.event_type.clone(),
        e.actor().to_string(),
        occurred_at(&e.payload).unwrap_or_default(),
    ));
    match e.aggregate_type.as_str() {
        Session::TYPE => {
            let Some(ev) = decode::<SessionEvent>(e, findings) else {
                return;
            };
            let state = world.sessions.entry(e.aggregate_id.clone()).or_default();
            let from = state.status;
            match (&ev, ev.target_status()) {
                (SessionEvent::SessionSchedulingFailed { .. }, _)
                    if from != Some(SessionStatus::Pending) =>
                {
                    findings.push(finding(
                        "transition",
                        subject(e),
                        format!(
                            "SessionSchedulingFailed at sequence {} while {}",
                            e.sequence,
                            from.map(|s| s.as_str()).unwrap_or("not enqueued")
                        ),
                    ));
                }
                (SessionEvent::SessionKernelEnded { .. }, _)
                    if !from.is_some_and(|s| s.is_terminal() || s == SessionStatus::Error) =>
                {
                    findings.push(finding(
                        "transition",
                        subject(e),
                        format!(
                            "SessionKernelEnded at sequence {} while {} (only an ended or failed session acknowledges a stop)",
                            e.sequence,
                            from.map(|s| s.as_str()).unwrap_or("not enqueued")
                        ),
                    ));
                }
                (_, Some(to)) => {
                    let legal = match from {
                        None => to == SessionStatus::Pending,
                        Some(from) => from.can_transition_to(to),
                    };
                    if !legal {
                        findings.push(finding(
                            "transition",
                            subject(e),
                            format!(
                                "illegal transition {} -> {to} ({} at sequence {}, position {})",
                                from.map(|s| s.as_str()).unwrap_or("(none)"),
                                e.event_type,
                                e.sequence,
                                e.global_position
                            ),
                        ));
                    }
                }
                _ => {}
            }
            if matches!(ev, SessionEvent::SessionEnqueued { .. }) {
                world
                    .enqueue_positions
                    .entry(e.aggregate_id.clone())
                    .or_insert(e.global_position);
            }
            state.evolve(&ev);
            let spec = state.spec.clone();
            if let (Some(to), Some(spec)) = (ev.target_status(), spec) {
                expect_deliveries(world, e, to, &spec);
            }
        }
        ScalingGroup::TYPE => {
            if let Some(ev) = decode::<ScalingGroupEvent>(e, findings) {
                world
                    .groups
                    .entry(e.aggregate_id.clone())
                    .or_default()
                    .evolve(&ev);
            }
        }
        Agent::TYPE => {
            if let Some(ev) = decode::<AgentEvent>(e, findings) {
                world
                    .agents
                    .entry(e.aggregate_id.clone())
                    .or_default()
                    .evolve(&ev);
            }
        }
        ResourcePolicy::TYPE => {
            if let Some(ev) = decode::<ResourcePolicyEvent>(e, findings) {
                world
                    .policies
                    .entry(e.aggregate_id.clone())
                    .or_default()
                    .evolve(&ev);
            }
        }
        NameClaim::TYPE => {
            // Decoded for readability; uniqueness is checked over the sessions (below).
            let _ = decode::<domain::name_claim::NameClaimEvent>(e, findings);
        }
        domain::vfolder::VFolder::TYPE => {
            if let Some(ev) = decode::<domain::vfolder::VFolderEvent>(e, findings) {
                world
                    .vfolders
                    .entry(e.aggregate_id.clone())
                    .or_default()
                    .evolve(&ev);
            }
        }
        domain::webhook::WebhookSubscription::TYPE => {
            if let Some(ev) = decode::<domain::webhook::WebhookEvent>(e, findings) {
                world
                    .webhooks
                    .entry(e.aggregate_id.clone())
                    .or_default()
                    .evolve(&ev);
            }
        }
        domain::bgtask::BackgroundTask::TYPE => {
            if let Some(ev) = decode::<domain::bgtask::BackgroundTaskEvent>(e, findings) {
                world
                    .tasks
                    .entry(e.aggregate_id.clone())
                    .or_default()
                    .evolve(&ev);
            }
        }
        PendingQuota::TYPE => {
            let _ = decode::<domain::pending_quota::PendingQuotaEvent>(e, findings);
        }
        other => findings.push(finding(
            "decode",
            subject(e),
            format!("unknown aggregate type '{other}'"),
        )),
    }
}

/// Paths of the fields where two JSON values differ (objects are compared key by key).
pub fn differing_fields(expected: &Value, actual: &Value, prefix: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => differing_fields(x, y, &path, out),
                    _ => out.push(path),
                }
            }
        }
        (a, b) if a != b => out.push(if prefix.is_empty() {
            "(whole)".into()
        } else {
            prefix.to_string()
        }),
        _ => {}
    }
}

fn compare_docs(
    model: &str,
    expected: BTreeMap<String, Value>,
    actual: Vec<(String, Value)>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut actual: BTreeMap<String, Value> = actual.into_iter().collect();
    for (id, want) in expected {
        match actual.remove(&id) {
            None => findings.push(finding(
                "drift",
                format!("read model {model}"),
                format!("row {id} is missing"),
            )),
            Some(got) => {
                let mut fields = Vec::new();
                differing_fields(&want, &got, "", &mut fields);
                if !fields.is_empty() {
                    findings.push(finding(
                        "drift",
                        format!("read model {model}"),
                        format!("row {id} differs in: {}", fields.join(", ")),
                    ));
                }
            }
        }
    }
    for id in actual.keys() {
        findings.push(finding(
            "drift",
            format!("read model {model}"),
            format!("row {id} has no stream"),
        ));
    }
    findings
}

/// The deliveries a status change of a session must have in the outbox: one per
/// subscription enabled at that point whose filter matches, one for its callback URL.
fn expect_deliveries(
    world: &mut World,
    e: &RecordedEvent,
    to: SessionStatus,
    spec: &domain::session::SessionSpec,
) {
    let mut targets: Vec<(String, String)> = world
        .webhooks
        .iter()
        .filter(|(_, w)| w.is_enabled())
        .filter(|(_, w)| {
            w.settings.as_ref().is_some_and(|s| {
                s.filter
                    .matches(to, spec.scaling_group.as_str(), spec.owner.as_str())
            })
        })
        .map(|(id, _)| {
            let simple = uuid::Uuid::parse_str(id)
                .map(|u| u.simple().to_string())
                .unwrap_or_else(|_| id.clone());
            (id.clone(), simple)
        })
        .collect();
    if spec.callback_url.is_some() {
        targets.push(("callback".into(), "callback".into()));
    }
    for (target, part) in targets {
        world.deliveries.insert(
            format!("msg_{}_{part}", e.global_position),
            serde_json::json!({"target": target, "session_id": e.aggregate_id, "position": e.global_position}),
        );
    }
}

fn to_values<T: Serialize>(m: &BTreeMap<String, T>) -> BTreeMap<String, Value> {
    m.iter()
        .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
        .collect()
}

/// The read models the audit checks; [`expected_rows`] and [`load_actual`] know each.
const CHECKED: [&str; 10] = [
    SESSIONS,
    WEBHOOKS,
    WEBHOOK_OUTBOX,
    VFOLDERS,
    BACKGROUND_TASKS,
    SCALING_GROUPS,
    AGENT_OCCUPANCY,
    PENDING_QUEUE,
    AUDIT_LOG,
    SLOT_RELEASES,
];

fn expected_rows(model: &str, w: &World) -> BTreeMap<String, Value> {
    match model {
        SESSIONS => to_values(&w.sessions),
        SCALING_GROUPS => to_values(&w.groups),
        AGENT_OCCUPANCY => to_values(&w.agents),
        VFOLDERS => to_values(&w.vfolders),
        BACKGROUND_TASKS => to_values(&w.tasks),
        WEBHOOKS => to_values(&w.webhooks),
        WEBHOOK_OUTBOX => w.deliveries.clone(),
        PENDING_QUEUE => {
            let mut expected = BTreeMap::new();
            for (id, s) in &w.sessions {
                let (Some(SessionStatus::Pending), Some(spec), Some(at)) =
                    (s.status, &s.spec, s.enqueued_at)
                else {
                    continue;
                };
                let timeout = w
                    .groups
                    .get(spec.scaling_group.as_str())
                    .map(|g| g.scheduler_opts.pending_timeout)
                    .unwrap_or(0);
                expected.insert(
                    id.clone(),
                    serde_json::json!({
                        "scaling_group": spec.scaling_group,
                        "owner": spec.owner,
                        "session_type": spec.session_type.as_str(),
                        "priority": i64::from(spec.priority.get()),
                        "enqueue_position": w.enqueue_positions.get(id).copied().unwrap_or(0),
                        "enqueued_ms": at.timestamp_millis(),
                        // A deadline while the timeout is positive and within a
                        // thousand years (longer ones never expire).
                        "deadline_ms": i64::try_from(timeout)
                            .ok()
                            .filter(|t| *t > 0 && *t <= 31_536_000_000)
                            .map(|t| at.timestamp_millis().saturating_add(t.saturating_mul(1000))),
                    }),
                );
            }
            expected
        }
        AUDIT_LOG => w
            .audit
            .iter()
            .map(|(pos, ty, actor, at)| {
                (
                    format!("{pos:012}"),
                    serde_json::json!({"event_type": ty, "actor": actor, "occurred_at": at}),
                )
            })
            .collect(),
        SLOT_RELEASES => {
            let mut expected = BTreeMap::new();
            for (agent_id, agent) in &w.agents {
                for session_id in agent.allocations.keys() {
                    // Due once the session ended, or once this agent reported its
                    // kernel gone.
                    let ended = w.sessions.get(&session_id.to_string()).is_some_and(|s| {
                        s.status.is_some_and(|st| st.is_terminal())
                            || s.kernels_ended.iter().any(|a| a == agent_id)
                            || (s.status == Some(SessionStatus::Error)
                                && s.status_info.as_deref() == Some(AGENT_LOST))
                    });
                    expected.insert(
                        format!("{agent_id}/{session_id}"),
                        serde_json::json!({"due": i64::from(ended)}),
                    );
                }
            }
            expected
        }
        _ => BTreeMap::new(),
    }
}

async fn load_actual(store: &EventStore, model: &str) -> Result<Vec<(String, Value)>, AuditError> {
    let db = store.db();
    Ok(match model {
        SESSIONS => documents::sessions().all_docs(&db).await?,
        SCALING_GROUPS => documents::scaling_groups().all_docs(&db).await?,
        AGENT_OCCUPANCY => documents::agent_occupancy().all_docs(&db).await?,
        VFOLDERS => documents::vfolders().all_docs(&db).await?,
        BACKGROUND_TASKS => documents::background_tasks().all_docs(&db).await?,
        WEBHOOKS => documents::webhooks().all_docs(&db).await?,
        WEBHOOK_OUTBOX => projections::models::outbox::all(&db)
            .await?
            .into_iter()
            .map(|(id, target, session_id, position)| {
                (
                    id,
                    serde_json::json!({"target": target, "session_id": session_id, "position": position}),
                )
            })
            .collect(),
        PENDING_QUEUE => PendingQueue
            .all(&db)
            .await?
            .into_iter()
            .map(|q| {
                let enqueued_ms = DateTime::parse_from_rfc3339(&q.enqueued_at)
                    .map(|d| d.with_timezone(&Utc).timestamp_millis())
                    .unwrap_or(-1);
                (
                    q.session_id.clone(),
                    serde_json::json!({
                        "scaling_group": q.scaling_group,
                        "owner": q.owner,
                        "session_type": q.session_type,
                        "priority": q.priority,
                        "enqueue_position": q.enqueue_position,
                        "enqueued_ms": enqueued_ms,
                        "deadline_ms": q.deadline_ms,
                    }),
                )
            })
            .collect(),
        AUDIT_LOG => AuditLog
            .entries(&db)
            .await?
            .into_iter()
            .map(|a| {
                (
                    format!("{:012}", a.global_position),
                    serde_json::json!({"event_type": a.event_type, "actor": a.actor, "occurred_at": a.occurred_at.unwrap_or_default()}),
                )
            })
            .collect(),
        SLOT_RELEASES => SlotReleases
            .holds(&db)
            .await?
            .into_iter()
            .map(|(agent, session, due)| (format!("{agent}/{session}"), serde_json::json!({"due": due})))
            .collect(),
        _ => vec![],
    })
}
