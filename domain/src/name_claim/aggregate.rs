//! The NameClaim aggregate: state, decision, fold.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::commands::ClaimName;
use super::error::NameClaimError;
use super::events::NameClaimEvent;
use crate::ids::{Owner, SessionName};

/// The claim stream id of a session name: `session/<owner>/<name>` (neither an owner
/// nor a session name can contain `/`).
pub fn session_claim_id(owner: &Owner, name: &SessionName) -> String {
    format!("session/{owner}/{name}")
}

/// Folded state of a claim. `Default`: nobody holds the name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameClaim {
    /// The current holder.
    pub holder: Option<Uuid>,
    /// Events folded (the stream's last sequence).
    pub version: u64,
}

impl NameClaim {
    /// Decides a claim; nothing changes on refusal.
    pub fn decide(&self, command: ClaimName) -> Result<Vec<NameClaimEvent>, NameClaimError> {
        match self.holder {
            Some(h) if h == command.holder => Err(NameClaimError::AlreadyHeld),
            Some(h) if !command.current_holder_ended => Err(NameClaimError::Taken { holder: h }),
            _ => Ok(vec![NameClaimEvent::NameClaimed {
                holder: command.holder,
                occurred_at: command.now,
            }]),
        }
    }

    /// Folds one event.
    pub fn apply(&mut self, event: &NameClaimEvent) {
        self.version = self.version.saturating_add(1);
        let NameClaimEvent::NameClaimed { holder, .. } = event;
        self.holder = Some(*holder);
    }

    /// The state from the stream's last event alone (each event names the whole state),
    /// at version `sequence`.
    pub fn from_last(sequence: u64, last: &NameClaimEvent) -> Self {
        let NameClaimEvent::NameClaimed { holder, .. } = last;
        Self {
            holder: Some(*holder),
            version: sequence,
        }
    }
}

crate::aggregate!(
    NameClaim,
    "NameClaim",
    ClaimName,
    NameClaimEvent,
    NameClaimError,
    super::events::NAME_CLAIM_EVENT_VERSION,
    |e| NameClaimEvent::event_type(e)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::epoch;

    fn claim(holder: u128, ended: bool) -> ClaimName {
        ClaimName {
            holder: Uuid::from_u128(holder),
            current_holder_ended: ended,
            now: epoch(),
        }
    }

    fn held_by(holder: u128) -> NameClaim {
        let mut c = NameClaim::default();
        for e in c.decide(claim(holder, true)).unwrap() {
            c.apply(&e);
        }
        c
    }

    #[test]
    fn given_a_free_name_when_claimed_then_the_claimant_holds_it() {
        let c = held_by(1);
        assert_eq!(c.holder, Some(Uuid::from_u128(1)));
        assert_eq!(c.version, 1);
    }

    #[test]
    fn given_a_name_held_by_a_live_session_when_another_claims_it_then_it_is_taken() {
        assert_eq!(
            held_by(1).decide(claim(2, false)),
            Err(NameClaimError::Taken {
                holder: Uuid::from_u128(1)
            })
        );
    }

    #[test]
    fn given_a_name_whose_holder_ended_when_another_claims_it_then_it_moves_over() {
        let events = held_by(1).decide(claim(2, true)).unwrap();
        assert_eq!(
            events,
            vec![NameClaimEvent::NameClaimed {
                holder: Uuid::from_u128(2),
                occurred_at: epoch()
            }]
        );
    }

    #[test]
    fn given_a_name_held_by_the_claimant_when_claimed_again_then_it_is_already_held() {
        assert_eq!(
            held_by(1).decide(claim(1, true)),
            Err(NameClaimError::AlreadyHeld)
        );
    }

    #[test]
    fn the_last_event_alone_gives_the_state() {
        let mut c = held_by(1);
        for e in c.decide(claim(2, true)).unwrap() {
            c.apply(&e);
        }
        let last = NameClaimEvent::NameClaimed {
            holder: Uuid::from_u128(2),
            occurred_at: epoch(),
        };
        assert_eq!(NameClaim::from_last(2, &last), c);
    }
}
