//! Valid fixtures for the integration tests: the domain's own (`domain::fixtures`:
//! identifiers, specs) plus metadata and the commands tests issue most.

pub use domain::fixtures::*;

use chrono::{DateTime, Utc};
use domain::agent::AgentCommand;
use domain::resources::ResourceSlots;
use domain::scaling_group::{
    GroupPatch, GroupSettings, ScalingGroupCommand, SchedulerKind, SchedulerOpts,
};
use serde_json::Value;
use sessiond::store::EventMetadata;
use uuid::Uuid;

/// Domain time of the workloads starts here (commands take `now`).
pub const T0: i64 = 1_790_000_000;

/// `T0 + secs`.
pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(T0.saturating_add(secs), 0).expect("a valid time")
}

/// Metadata of a command by `actor`, with fresh correlation and causation ids.
pub fn meta(actor: &str) -> EventMetadata {
    EventMetadata {
        actor: actor.to_string(),
        correlation_id: Uuid::new_v4().to_string(),
        causation_id: Uuid::new_v4().to_string(),
    }
}

/// A session of `owner` in `group` with `priority`, asking for 2 cpu.
pub fn spec_with(
    id: Uuid,
    group_name: &str,
    prio: u8,
    owner_name: &str,
) -> domain::session::SessionSpec {
    domain::session::SessionSpec {
        resources: cpu(2),
        priority: priority(prio),
        ..spec_in(id, group_name, owner_name)
    }
}

/// Scheduler opts from JSON (for a fifo group), as create would validate them.
pub fn opts(json: &Value) -> SchedulerOpts {
    SchedulerOpts::parse(json, SchedulerKind::Fifo).expect("valid scheduler_opts")
}

/// `Create` of a public fifo group `name` with `opts` (JSON).
pub fn create_group(name: &str, scheduler_opts: &Value, now: DateTime<Utc>) -> ScalingGroupCommand {
    ScalingGroupCommand::Create {
        name: group(name),
        settings: GroupSettings {
            description: format!("group {name}"),
            scheduler_opts: opts(scheduler_opts),
            ..GroupSettings::default()
        },
        now,
    }
}

/// `Update` changing the given keys of `scheduler_opts` (and the description).
pub fn update_group(
    description: Option<&str>,
    scheduler_opts: Option<&Value>,
    now: DateTime<Utc>,
) -> ScalingGroupCommand {
    ScalingGroupCommand::Update {
        patch: GroupPatch {
            description: description.map(str::to_string),
            scheduler_opts: scheduler_opts.and_then(|v| v.as_object().cloned()),
            ..GroupPatch::default()
        },
        now,
    }
}

/// `Register` of agent `id` in `group_name` with `slots`.
pub fn register_agent(
    id: &str,
    group_name: &str,
    slots: ResourceSlots,
    now: DateTime<Utc>,
) -> AgentCommand {
    AgentCommand::Register {
        agent_id: agent_id(id),
        scaling_group: group(group_name),
        addr: addr(&format!("{id}.example:6001")),
        available_slots: slots,
        now,
    }
}
