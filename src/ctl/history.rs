//! `sessionctl history SESSION_ID [--json]`: the timeline of one session, folded with
//! the domain's own `evolve`: time, status change, event, reason, actor, and the
//! predicates a scheduling attempt failed on.

use domain::session::{Session, SessionEvent};
use domain::Decider;

use super::{out, pretty_json, session_uuid, CtlError};
use crate::store::{EventStore, RecordedEvent};

/// One line of a session's timeline.
#[derive(Debug, serde::Serialize)]
struct HistoryEntry {
    sequence: i64,
    position: i64,
    event_type: String,
    occurred_at: String,
    recorded_at: String,
    actor: String,
    from: Option<String>,
    to: Option<String>,
    reason: Option<String>,
    failed_predicates: Vec<String>,
}

/// Prints the timeline of session `id` as a table, or as JSON with `json`.
pub(super) async fn run(store: &EventStore, id: &str, json: bool) -> Result<(), CtlError> {
    session_uuid(id)?;
    let stream = store.read_stream(<Session as Decider>::TYPE, id).await?;
    if stream.is_empty() {
        return Err(CtlError::Other(format!("no session {id}")));
    }
    let entries = timeline(&stream)?;
    if json {
        out(&pretty_json(&entries)?);
    } else {
        print_table(&entries);
    }
    Ok(())
}

/// Folds the stream event by event, recording each status change.
fn timeline(stream: &[RecordedEvent]) -> Result<Vec<HistoryEntry>, CtlError> {
    let mut state = Session::default();
    let mut entries = Vec::with_capacity(stream.len());
    for e in stream {
        let ev: SessionEvent = e.decode()?;
        let from = state.status;
        state.evolve(&ev);
        let failed = match &ev {
            SessionEvent::SessionSchedulingFailed {
                failed_predicates, ..
            } => failed_predicates
                .iter()
                .map(|p| format!("{}: {}", p.name, p.msg))
                .collect(),
            _ => vec![],
        };
        entries.push(HistoryEntry {
            sequence: e.sequence,
            position: e.global_position,
            event_type: e.event_type.clone(),
            occurred_at: ev
                .occurred_at()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            recorded_at: e
                .recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            actor: e.actor().to_string(),
            from: ev.target_status().and(from).map(|s| s.as_str().to_string()),
            to: ev.target_status().map(|s| s.as_str().to_string()),
            reason: ev.status_info(),
            failed_predicates: failed,
        });
    }
    Ok(entries)
}

/// The human-readable timeline: one line per event, one more per failed predicate.
fn print_table(entries: &[HistoryEntry]) {
    out(&format!(
        "{:<24}  {:<27}  {:<28}  {:<22}  {}",
        "time", "status", "event", "reason", "actor"
    ));
    for h in entries {
        let change = match (&h.from, &h.to) {
            (Some(f), Some(t)) => format!("{f} -> {t}"),
            (None, Some(t)) => t.clone(),
            _ => "(stays PENDING)".to_string(),
        };
        out(&format!(
            "{:<24}  {:<27}  {:<28}  {:<22}  {}",
            h.occurred_at,
            change,
            h.event_type,
            h.reason.as_deref().unwrap_or("-"),
            h.actor
        ));
        for p in &h.failed_predicates {
            out(&format!("{:<24}    predicate failed: {p}", ""));
        }
    }
}
