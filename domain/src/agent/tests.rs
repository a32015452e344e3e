//! Given/when/then tests of the Agent aggregate.
use super::*;
use crate::ids::{AgentAddr, AgentId, GroupName};
use crate::resources::ResourceSlots;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn cpu(n: i64) -> ResourceSlots {
    ResourceSlots::new().with("cpu", Decimal::from(n))
}

fn given(events: &[AgentEvent]) -> Agent {
    let mut a = Agent::default();
    events.iter().for_each(|e| a.apply(e));
    a
}

fn registered(capacity: i64) -> AgentEvent {
    AgentEvent::AgentRegistered {
        agent_id: AgentId::parse("agent_id", "a1").unwrap(),
        scaling_group: GroupName::parse("scaling_group", "default").unwrap(),
        addr: AgentAddr::parse("addr", "10.0.0.1:6001").unwrap(),
        available_slots: cpu(capacity),
        occurred_at: now(),
    }
}

fn allocated(id: Uuid, n: i64) -> AgentEvent {
    AgentEvent::SlotsAllocated {
        session_id: id,
        slots: cpu(n),
        occurred_at: now(),
    }
}

#[test]
fn given_an_agent_with_room_when_slots_are_allocated_then_they_are_recorded() {
    let agent = given(&[registered(8)]);
    let id = Uuid::new_v4();
    let events = agent.decide(AgentCommand::AllocateSlots {
        session_id: id,
        slots: cpu(8),
        now: now(),
    });
    assert_eq!(events, Ok(vec![allocated(id, 8)]));
}

#[test]
fn given_a_full_agent_when_more_slots_are_requested_then_it_refuses_to_overcommit() {
    let agent = given(&[registered(8), allocated(Uuid::new_v4(), 6)]);
    let r = agent.decide(AgentCommand::AllocateSlots {
        session_id: Uuid::new_v4(),
        slots: cpu(3),
        now: now(),
    });
    assert!(matches!(r, Err(AgentError::InsufficientCapacity { .. })));
}

#[test]
fn given_an_allocation_when_it_is_released_twice_then_the_second_release_is_a_no_op() {
    let id = Uuid::new_v4();
    let mut agent = given(&[registered(8), allocated(id, 4)]);
    let first = agent
        .decide(AgentCommand::ReleaseSlots {
            session_id: id,
            now: now(),
        })
        .unwrap();
    assert_eq!(first.len(), 1);
    first.iter().for_each(|e| agent.apply(e));
    assert_eq!(agent.free_slots(), Ok(cpu(8)));
    let second = agent.decide(AgentCommand::ReleaseSlots {
        session_id: id,
        now: now(),
    });
    assert_eq!(second, Ok(vec![]));
}

#[test]
fn given_an_alive_agent_when_marked_lost_then_it_allocates_nothing_more() {
    let mut agent = given(&[registered(8)]);
    for e in agent.decide(AgentCommand::MarkLost { now: now() }).unwrap() {
        agent.apply(&e);
    }
    let r = agent.decide(AgentCommand::AllocateSlots {
        session_id: Uuid::new_v4(),
        slots: cpu(1),
        now: now(),
    });
    assert_eq!(r, Err(AgentError::NotAlive(AgentStatus::Lost)));
    assert_eq!(
        agent.decide(AgentCommand::MarkLost { now: now() }),
        Err(AgentError::NotAlive(AgentStatus::Lost))
    );
}

#[test]
fn given_an_unregistered_agent_when_slots_are_allocated_then_it_is_not_found() {
    let r = Agent::default().decide(AgentCommand::AllocateSlots {
        session_id: Uuid::new_v4(),
        slots: cpu(1),
        now: now(),
    });
    assert_eq!(r, Err(AgentError::NotFound));
}

#[test]
fn given_an_agent_holding_slots_when_it_reregisters_with_less_capacity_then_it_is_over_capacity_and_takes_nothing_new(
) {
    let mut agent = given(&[registered(8), allocated(Uuid::new_v4(), 6)]);
    assert!(!agent.over_capacity());
    agent.apply(&registered(4));
    assert!(agent.over_capacity());
    let r = agent.decide(AgentCommand::AllocateSlots {
        session_id: Uuid::new_v4(),
        slots: cpu(1),
        now: now(),
    });
    assert!(matches!(r, Err(AgentError::InsufficientCapacity { .. })));
}

#[test]
fn given_a_ledger_whose_sum_overflows_when_slots_are_allocated_then_it_is_a_typed_error_not_a_panic(
) {
    let huge = ResourceSlots::new().with("cpu", Decimal::MAX);
    let agent = given(&[
        registered(8),
        AgentEvent::SlotsAllocated {
            session_id: Uuid::new_v4(),
            slots: huge.clone(),
            occurred_at: now(),
        },
        AgentEvent::SlotsAllocated {
            session_id: Uuid::new_v4(),
            slots: huge,
            occurred_at: now(),
        },
    ]);
    let r = agent.decide(AgentCommand::AllocateSlots {
        session_id: Uuid::new_v4(),
        slots: cpu(1),
        now: now(),
    });
    assert_eq!(r, Err(AgentError::SlotOverflow));
    assert!(agent.over_capacity());
}
