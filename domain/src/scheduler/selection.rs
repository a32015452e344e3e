//! Agent selection (SPEC §1.3 `agent_selection_strategy`): `dispersed` (least-loaded
//! agent first), `concentrated` (most-loaded agent that fits first), `roundrobin` (the
//! next agent after the last one chosen). Load is an agent's dominant utilisation; ties
//! go to the smaller agent id, so choices are deterministic.

use rust_decimal::Decimal;

use super::ordering::dominant_share;
use crate::resources::ResourceSlots;
use crate::scaling_group::AgentSelectionStrategy;

/// An ALIVE agent as selection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCandidate {
    /// Id.
    pub agent_id: String,
    /// Capacity.
    pub capacity: ResourceSlots,
    /// Slots held by sessions.
    pub occupied: ResourceSlots,
}

impl AgentCandidate {
    /// Whether `requested` fits in what is free.
    pub fn fits(&self, requested: &ResourceSlots) -> bool {
        // Per requested slot, without building the free-slots map (this runs for every
        // agent and every session of a pass); an overflowing sum does not fit.
        self.occupied.fits_with(requested, &self.capacity)
    }

    fn load(&self) -> Decimal {
        dominant_share(&self.occupied, &self.capacity)
    }
}

/// Picks the agent for `requested`, or `None` when no agent can host it. `last` is the
/// agent chosen last time in this group (round robin continues after it).
pub fn select_agent(
    strategy: AgentSelectionStrategy,
    agents: &[AgentCandidate],
    requested: &ResourceSlots,
    last: Option<&str>,
) -> Option<usize> {
    // Each fitting agent's load is computed once.
    let fitting = agents
        .iter()
        .enumerate()
        .filter(|(_, a)| a.fits(requested))
        .map(|(i, a)| (i, a.load(), a.agent_id.as_str()));
    match strategy {
        AgentSelectionStrategy::Dispersed => fitting
            .min_by(|(_, la, ia), (_, lb, ib)| la.cmp(lb).then(ia.cmp(ib)))
            .map(|(i, _, _)| i),
        AgentSelectionStrategy::Concentrated => fitting
            .min_by(|(_, la, ia), (_, lb, ib)| lb.cmp(la).then(ia.cmp(ib)))
            .map(|(i, _, _)| i),
        AgentSelectionStrategy::Roundrobin => {
            let mut ids: Vec<(usize, &str)> = fitting.map(|(i, _, id)| (i, id)).collect();
            ids.sort_by(|a, b| a.1.cmp(b.1));
            let after = last.and_then(|l| ids.iter().find(|(_, id)| *id > l));
            after.or(ids.first()).map(|(i, _)| *i)
        }
    }
}

/// The agent-selection failure message: `no agent in 'gpu' can host {cpu: 8, mem: 32g}`.
pub fn no_agent_message(group: &str, requested: &ResourceSlots) -> String {
    format!("no agent in '{group}' can host {requested}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(n: i64) -> ResourceSlots {
        ResourceSlots::new().with("cpu", Decimal::from(n))
    }

    fn agent(id: &str, cap: i64, used: i64) -> AgentCandidate {
        AgentCandidate {
            agent_id: id.into(),
            capacity: cpu(cap),
            occupied: cpu(used),
        }
    }

    fn agents() -> Vec<AgentCandidate> {
        vec![agent("a1", 8, 6), agent("a2", 8, 2), agent("a3", 8, 4)]
    }

    #[test]
    fn given_agents_with_different_loads_when_dispersed_then_the_least_loaded_that_fits_is_chosen()
    {
        assert_eq!(
            select_agent(AgentSelectionStrategy::Dispersed, &agents(), &cpu(2), None),
            Some(1)
        );
    }

    #[test]
    fn given_agents_with_different_loads_when_concentrated_then_the_most_loaded_that_fits_is_chosen(
    ) {
        assert_eq!(
            select_agent(
                AgentSelectionStrategy::Concentrated,
                &agents(),
                &cpu(2),
                None
            ),
            Some(0)
        );
        assert_eq!(
            select_agent(
                AgentSelectionStrategy::Concentrated,
                &agents(),
                &cpu(3),
                None
            ),
            Some(2)
        );
    }

    #[test]
    fn given_a_last_choice_when_roundrobin_then_the_next_agent_by_id_that_fits_is_chosen() {
        let a = agents();
        assert_eq!(
            select_agent(AgentSelectionStrategy::Roundrobin, &a, &cpu(1), None),
            Some(0)
        );
        assert_eq!(
            select_agent(AgentSelectionStrategy::Roundrobin, &a, &cpu(1), Some("a1")),
            Some(1)
        );
        assert_eq!(
            select_agent(AgentSelectionStrategy::Roundrobin, &a, &cpu(1), Some("a3")),
            Some(0)
        );
        assert_eq!(
            select_agent(AgentSelectionStrategy::Roundrobin, &a, &cpu(3), Some("a1")),
            Some(1)
        );
    }

    #[test]
    fn given_no_agent_with_room_when_selecting_then_none_and_the_message_names_group_and_request() {
        assert_eq!(
            select_agent(AgentSelectionStrategy::Dispersed, &agents(), &cpu(7), None),
            None
        );
        let mem = ResourceSlots::new()
            .with("cpu", Decimal::from(8))
            .with("mem", Decimal::from(32u64 * 1024 * 1024 * 1024));
        assert_eq!(
            no_agent_message("gpu", &mem),
            "no agent in 'gpu' can host {cpu: 8, mem: 32g}"
        );
    }

    #[test]
    fn given_a_slot_type_no_agent_has_when_selecting_then_nothing_fits() {
        let req = cpu(1).with("cuda.device", Decimal::ONE);
        assert_eq!(
            select_agent(AgentSelectionStrategy::Dispersed, &agents(), &req, None),
            None
        );
    }
}
