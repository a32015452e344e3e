//! Test fixtures shared by this crate's tests and the workspace's integration tests
//! (feature `fixtures`): valid identifiers and a valid session spec, so each test
//! changes only the field it is about.
#![allow(clippy::expect_used, clippy::arithmetic_side_effects)]

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::bounds::{ClusterSize, Priority};
use crate::ids::{AgentAddr, AgentId, GroupName, ImageRef, Owner, Reason, SessionName};
use crate::resources::ResourceSlots;
use crate::session::{Labels, SessionSpec, SessionType};

/// A fixed instant (2023-11-14T22:13:20Z).
pub fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("a valid timestamp")
}

/// A valid session name.
pub fn session_name(s: &str) -> SessionName {
    SessionName::parse("name", s).expect("a valid session name")
}

/// A valid owner.
pub fn owner(s: &str) -> Owner {
    Owner::parse("owner", s).expect("a valid owner")
}

/// A valid group name.
pub fn group(s: &str) -> GroupName {
    GroupName::parse("scaling_group", s).expect("a valid group name")
}

/// A valid agent id.
pub fn agent_id(s: &str) -> AgentId {
    AgentId::parse("agent_id", s).expect("a valid agent id")
}

/// A valid agent address.
pub fn addr(s: &str) -> AgentAddr {
    AgentAddr::parse("addr", s).expect("a valid address")
}

/// A valid image reference.
pub fn image(s: &str) -> ImageRef {
    ImageRef::parse("image", s).expect("a valid image")
}

/// A valid reason.
pub fn reason(s: &str) -> Reason {
    Reason::parse("reason", s).expect("a valid reason")
}

/// `n` cores.
pub fn cpu(n: i64) -> ResourceSlots {
    ResourceSlots::new().with("cpu", Decimal::from(n))
}

/// A valid priority.
pub fn priority(p: u8) -> Priority {
    Priority::parse("priority", i128::from(p)).expect("a valid priority")
}

/// A valid cluster size.
pub fn cluster_size(n: u32) -> ClusterSize {
    ClusterSize::parse("cluster_size", i128::from(n)).expect("a valid cluster size")
}

/// A valid interactive session of `owner` in group `group` asking for 1 cpu, priority 10.
pub fn spec_in(id: Uuid, group_name: &str, owner_name: &str) -> SessionSpec {
    SessionSpec {
        callback_url: None,
        session_id: id,
        name: session_name(&format!("s-{}", id.simple())),
        owner: owner(owner_name),
        session_type: SessionType::Interactive,
        image: image("python:3.12"),
        scaling_group: group(group_name),
        resources: cpu(1),
        cluster_size: ClusterSize::default(),
        priority: Priority::default(),
        starts_at: None,
        batch_timeout: None,
        startup_command: None,
        dependencies: vec![],
        labels: Labels::new(),
    }
}

/// A valid interactive session of `alice` in group `default` asking for 1 cpu.
pub fn spec(id: Uuid) -> SessionSpec {
    spec_in(id, "default", "alice")
}

/// The spec of a generated batch session (benchmarks and bulk test data): owner one of
/// 97, one cpu, group `default`.
pub fn batch_spec(id: Uuid) -> SessionSpec {
    SessionSpec {
        callback_url: None,
        session_id: id,
        name: SessionName::from_stored(format!("bench-{}", id.simple())),
        owner: Owner::from_stored(format!("user{}", id.as_u128() % 97)),
        session_type: SessionType::Batch,
        image: ImageRef::from_stored("python:3.12"),
        scaling_group: GroupName::from_stored("default"),
        resources: ResourceSlots::new().with("cpu", 1.into()),
        cluster_size: ClusterSize::default(),
        priority: Priority::default(),
        starts_at: None,
        batch_timeout: None,
        startup_command: Some("true".into()),
        dependencies: vec![],
        labels: Labels::default(),
    }
}

/// The seven-event lifecycle of one batch session (enqueued at `t0`, one second per
/// step, ending TERMINATED), decided by the real domain.
pub fn batch_lifecycle(id: Uuid, t0: DateTime<Utc>) -> Vec<crate::session::SessionEvent> {
    use crate::agent::AgentAllocation;
    use crate::session::{reasons, Session, SessionCommand};
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    let commands = vec![
        SessionCommand::Enqueue {
            spec: batch_spec(id),
            now: at(0),
        },
        SessionCommand::Schedule {
            scaling_group: GroupName::from_stored("default"),
            agents: vec![AgentAllocation {
                agent_id: AgentId::from_stored("a1"),
                slots: ResourceSlots::new().with("cpu", 1.into()),
            }],
            now: at(1),
        },
        SessionCommand::MarkPreparing { now: at(2) },
        SessionCommand::MarkPrepared { now: at(3) },
        SessionCommand::MarkCreating { now: at(4) },
        SessionCommand::Start { now: at(5) },
        SessionCommand::MarkTerminated {
            reason: Reason::from_static(reasons::SELF_TERMINATED),
            exit_code: Some(0),
            now: at(6),
        },
    ];
    let mut state = Session::default();
    let mut out = Vec::new();
    for c in commands {
        let events = state.decide(c).expect("the batch lifecycle is legal");
        for e in &events {
            state.apply(e);
        }
        out.extend(events);
    }
    out
}
