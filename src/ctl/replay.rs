//! `sessionctl replay KIND ID [--at TIME | --to-sequence N]`: one aggregate's state as
//! of a point in its stream, printed as JSON. The fold is the domain's own
//! [`domain::fold_until`], the one `GET /v1/sessions/{id}?at=` uses.

use domain::agent::Agent;
use domain::policy::ResourcePolicy;
use domain::scaling_group::ScalingGroup;
use domain::session::Session;
use domain::{Decider, Until};

use super::{out, pretty_json, session_uuid, CtlError};
use crate::store::{EventStore, RecordedEvent};

/// The aggregates `replay` folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplayKind {
    Session,
    ScalingGroup,
    Agent,
    ResourcePolicy,
}

impl ReplayKind {
    /// Every kind, in the order the error message lists them.
    const ALL: [ReplayKind; 4] = [
        ReplayKind::Session,
        ReplayKind::ScalingGroup,
        ReplayKind::Agent,
        ReplayKind::ResourcePolicy,
    ];

    /// The command-line spelling (`scaling-group`).
    fn name(self) -> &'static str {
        match self {
            ReplayKind::Session => "session",
            ReplayKind::ScalingGroup => "scaling-group",
            ReplayKind::Agent => "agent",
            ReplayKind::ResourcePolicy => "resource-policy",
        }
    }

    /// The aggregate type stored with each event (`ScalingGroup`), also accepted on
    /// the command line.
    fn stored_type(self) -> &'static str {
        match self {
            ReplayKind::Session => <Session as Decider>::TYPE,
            ReplayKind::ScalingGroup => <ScalingGroup as Decider>::TYPE,
            ReplayKind::Agent => <Agent as Decider>::TYPE,
            ReplayKind::ResourcePolicy => <ResourcePolicy as Decider>::TYPE,
        }
    }

    /// Folds a stream of this kind up to `until`, as JSON.
    fn fold(self, events: &[RecordedEvent], until: Until) -> Result<serde_json::Value, CtlError> {
        match self {
            ReplayKind::Session => fold::<Session>(events, until),
            ReplayKind::ScalingGroup => fold::<ScalingGroup>(events, until),
            ReplayKind::Agent => fold::<Agent>(events, until),
            ReplayKind::ResourcePolicy => fold::<ResourcePolicy>(events, until),
        }
    }
}

impl std::str::FromStr for ReplayKind {
    type Err = CtlError;

    /// `session`, `scaling-group`, `agent`, `resource-policy`, or the stored type name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| s == k.name() || s == k.stored_type())
            .ok_or_else(|| {
                CtlError::Other(format!(
                    "unknown aggregate type '{s}' (expected session, scaling-group, agent or resource-policy)"
                ))
            })
    }
}

/// Decodes a stream as `A`'s events and folds them with [`domain::fold_until`].
fn fold<A: Decider>(events: &[RecordedEvent], until: Until) -> Result<serde_json::Value, CtlError> {
    let decoded = events
        .iter()
        .map(RecordedEvent::decode::<A::Event>)
        .collect::<Result<Vec<_>, _>>()?;
    let state: A = domain::fold_until(&decoded, until);
    serde_json::to_value(&state).map_err(|e| CtlError::Other(e.to_string()))
}

/// Prints the state of aggregate `id` of `aggregate_type` (as typed: the spelling
/// appears in "no such" errors) as of `at` (RFC 3339) and/or `to_sequence`.
pub(super) async fn run(
    store: &EventStore,
    aggregate_type: &str,
    id: &str,
    at: Option<&str>,
    to_sequence: Option<i64>,
) -> Result<(), CtlError> {
    let at = at
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.with_timezone(&chrono::Utc))
                .map_err(|_| CtlError::Other(format!("--at '{t}' is not an RFC 3339 time")))
        })
        .transpose()?;
    let kind: ReplayKind = aggregate_type.parse()?;
    if kind == ReplayKind::Session {
        session_uuid(id)?;
    }
    let events = store.read_stream(kind.stored_type(), id).await?;
    if events.is_empty() {
        return Err(CtlError::Other(format!("no {aggregate_type} '{id}'")));
    }
    let until = Until {
        at,
        // A negative sequence folds nothing, as sequences start at 1.
        to_sequence: to_sequence.map(|n| u64::try_from(n).unwrap_or(0)),
    };
    out(&pretty_json(&kind.fold(&events, until)?)?);
    Ok(())
}
