//! The pure domain of sessiond: aggregates, commands, events, typed errors and the
//! session transition table. No I/O lives here: decisions are synchronous functions of
//! (state, command with `now` in it) returning events or a typed rejection.
//!
//! # Layout
//! - [`session`]: the Session aggregate; `state.rs` holds the transition table
//!   ([`session::TRANSITIONS`]), `commands.rs`, `events.rs`, `error.rs`.
//! - [`scaling_group`]: the ScalingGroup aggregate and its strictly validated
//!   [`scaling_group::SchedulerOpts`].
//! - [`agent`]: the Agent aggregate, the allocation ledger that prevents over-commit.
//! - [`policy`]: owner resource policies.
//! - [`name_claim`]: names unique at the write (a session name per owner).
//! - [`pending_quota`]: `max_pending_sessions` enforced at the write.
//! - [`scheduler`]: the scheduler's pure decisions (resolution, predicates, ordering, agent selection).
//! - [`resources`]: resource slots (`cpu`, `mem`, accelerators) with exact decimals and
//!   checked arithmetic.
//! - [`ids`]: validated identifiers from outside (session and group names, owners, agent
//!   ids, images, reasons), one newtype each.
//! - [`bounds`]: bounded numbers from outside (priority, cluster size, timeouts, counts).
//! - [`error`]: errors shared by every aggregate.
//!
//! Every aggregate implements [`Decider`] (our pure interface) and
//! [`cqrs_es::Aggregate`] (a thin adapter, so the cqrs-es framework can drive it too).
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

pub mod agent;
pub mod bounds;
pub mod error;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod ids;
pub mod name_claim;
pub mod pending_quota;
pub mod policy;
pub mod resources;
pub mod scaling_group;
pub mod scheduler;
pub mod session;

pub use error::ValidationError;
pub use resources::ResourceSlots;

/// The pure decide/evolve pair every aggregate exposes; the application's command
/// handler is generic over it.
pub trait Decider: cqrs_es::Aggregate + Clone {
    /// State + command -> new events, or a typed rejection. Never mutates.
    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
    /// Folds one event into the state.
    fn evolve(&mut self, event: &Self::Event);
    /// When an event happened (domain time).
    fn occurred_at(event: &Self::Event) -> chrono::DateTime<chrono::Utc>;
}

/// A point in a stream to fold up to (both bounds inclusive; `None`: no bound).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Until {
    /// Only events that happened at or before this time.
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Only events up to this sequence (1-based).
    pub to_sequence: Option<u64>,
}

/// Folds a stream (its events in sequence order) up to a point: the state as it was
/// then. Used by `GET /v1/sessions/{id}?at=` and `sessionctl replay`.
pub fn fold_until<A: Decider>(events: &[A::Event], until: Until) -> A {
    let mut state = A::default();
    for (i, e) in events.iter().enumerate() {
        let sequence = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
        if until.to_sequence.is_some_and(|n| sequence > n) {
            break;
        }
        if until.at.is_some_and(|at| A::occurred_at(e) > at) {
            break;
        }
        state.evolve(e);
    }
    state
}

/// The cqrs-es adapter of an aggregate: `DomainEvent` for its event (explicit type and
/// version) and `Aggregate` whose `handle` runs the pure `decide` and whose `apply` is
/// `evolve`. One definition for every aggregate.
#[macro_export]
macro_rules! cqrs_adapter {
    ($agg:ty, $type_name:expr, $cmd:ty, $event:ty, $error:ty, $version:expr, $event_type:expr) => {
        impl cqrs_es::DomainEvent for $event {
            fn event_type(&self) -> String {
                let f: fn(&$event) -> String = $event_type;
                f(self)
            }
            fn event_version(&self) -> String {
                $version.to_string()
            }
        }

        impl cqrs_es::Aggregate for $agg {
            const TYPE: &'static str = $type_name;
            type Command = $cmd;
            type Event = $event;
            type Error = $error;
            type Services = ();

            async fn handle(
                &mut self,
                command: Self::Command,
                _services: &Self::Services,
                sink: &cqrs_es::event_sink::EventSink<Self>,
            ) -> Result<(), Self::Error> {
                for event in <$agg>::decide(self, command)? {
                    sink.write(event, self).await;
                }
                Ok(())
            }

            fn apply(&mut self, event: Self::Event) {
                <$agg>::apply(self, &event);
            }
        }
    };
}

macro_rules! decider {
    ($agg:ty) => {
        impl Decider for $agg {
            fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
                <$agg>::decide(self, command)
            }
            fn evolve(&mut self, event: &Self::Event) {
                <$agg>::apply(self, event)
            }
            fn occurred_at(event: &Self::Event) -> chrono::DateTime<chrono::Utc> {
                event.occurred_at()
            }
        }
    };
}

decider!(session::Session);
decider!(scaling_group::ScalingGroup);
decider!(agent::Agent);
decider!(policy::ResourcePolicy);
decider!(name_claim::NameClaim);
decider!(pending_quota::PendingQuota);
