//! The PendingQuota aggregate: state, decision, fold.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::commands::TakePendingSlot;
use super::error::PendingQuotaError;
use super::events::PendingQuotaEvent;

/// Folded state of an owner's quota. `Default`: nothing counted yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingQuota {
    /// Sessions counted that the read model may not show yet.
    pub unprojected: Vec<Uuid>,
    /// Events folded (the stream's last sequence).
    pub version: u64,
}

impl PendingQuota {
    /// Decides a new PENDING session; nothing changes on refusal.
    pub fn decide(
        &self,
        command: TakePendingSlot,
    ) -> Result<Vec<PendingQuotaEvent>, PendingQuotaError> {
        let unseen: Vec<Uuid> = self
            .unprojected
            .iter()
            .copied()
            .filter(|id| !command.projected.contains(id) && *id != command.session_id)
            .collect();
        let seen_in_model = command.pending_in_read_model.min(command.limit);
        let pending = seen_in_model.saturating_add(u32::try_from(unseen.len()).unwrap_or(u32::MAX));
        if pending >= command.limit {
            return Err(PendingQuotaError::LimitReached {
                limit: command.limit,
                pending,
            });
        }
        let mut unprojected = unseen;
        unprojected.push(command.session_id);
        Ok(vec![PendingQuotaEvent::PendingQuotaTaken {
            session_id: command.session_id,
            unprojected,
            pending: pending.saturating_add(1),
            limit: command.limit,
            occurred_at: command.now,
        }])
    }

    /// Folds one event.
    pub fn apply(&mut self, event: &PendingQuotaEvent) {
        self.version = self.version.saturating_add(1);
        let PendingQuotaEvent::PendingQuotaTaken { unprojected, .. } = event;
        self.unprojected = unprojected.clone();
    }

    /// The state from the stream's last event alone, at version `sequence`.
    pub fn from_last(sequence: u64, last: &PendingQuotaEvent) -> Self {
        let PendingQuotaEvent::PendingQuotaTaken { unprojected, .. } = last;
        Self {
            unprojected: unprojected.clone(),
            version: sequence,
        }
    }
}

crate::aggregate!(
    PendingQuota,
    "PendingQuota",
    TakePendingSlot,
    PendingQuotaEvent,
    PendingQuotaError,
    super::events::PENDING_QUOTA_EVENT_VERSION,
    |e| PendingQuotaEvent::event_type(e)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::epoch;

    fn take(id: u128, limit: u32, in_model: u32, projected: &[u128]) -> TakePendingSlot {
        TakePendingSlot {
            session_id: Uuid::from_u128(id),
            limit,
            pending_in_read_model: in_model,
            projected: projected.iter().copied().map(Uuid::from_u128).collect(),
            now: epoch(),
        }
    }

    fn execute(q: &mut PendingQuota, command: TakePendingSlot) {
        for e in q.decide(command).unwrap() {
            q.apply(&e);
        }
    }

    #[test]
    fn given_room_under_the_limit_when_a_session_is_enqueued_then_it_is_counted() {
        let q = PendingQuota::default();
        let events = q.decide(take(1, 2, 0, &[])).unwrap();
        let [PendingQuotaEvent::PendingQuotaTaken {
            unprojected,
            pending,
            ..
        }] = events.as_slice()
        else {
            panic!("{events:?}");
        };
        assert_eq!(unprojected, &vec![Uuid::from_u128(1)]);
        assert_eq!(*pending, 1);
    }

    #[test]
    fn given_sessions_the_read_model_does_not_show_yet_when_at_the_limit_then_the_next_is_refused()
    {
        let mut q = PendingQuota::default();
        execute(&mut q, take(1, 2, 0, &[]));
        execute(&mut q, take(2, 2, 0, &[]));
        assert_eq!(
            q.decide(take(3, 2, 0, &[])),
            Err(PendingQuotaError::LimitReached {
                limit: 2,
                pending: 2
            })
        );
    }

    #[test]
    fn given_the_read_model_shows_the_counted_sessions_when_they_left_pending_then_there_is_room_again(
    ) {
        let mut q = PendingQuota::default();
        execute(&mut q, take(1, 2, 0, &[]));
        execute(&mut q, take(2, 2, 0, &[]));
        // The read model now shows both, and neither is PENDING any more.
        execute(&mut q, take(3, 2, 0, &[1, 2]));
        assert_eq!(q.unprojected, vec![Uuid::from_u128(3)]);
    }

    #[test]
    fn given_pending_sessions_in_the_read_model_when_at_the_limit_then_the_next_is_refused() {
        assert_eq!(
            PendingQuota::default().decide(take(9, 3, 3, &[])),
            Err(PendingQuotaError::LimitReached {
                limit: 3,
                pending: 3
            })
        );
    }

    #[test]
    fn given_a_limit_of_zero_when_a_session_is_enqueued_then_it_is_refused() {
        assert!(PendingQuota::default().decide(take(1, 0, 0, &[])).is_err());
    }
}
