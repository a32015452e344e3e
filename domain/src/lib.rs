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
//! - [`resources`]: resource slots (`cpu`, `mem`, accelerators) with exact decimals.
//! - [`error`]: errors shared by every aggregate.
//!
//! Every aggregate implements [`Decider`] (our pure interface) and
//! [`cqrs_es::Aggregate`] (a thin adapter, so the cqrs-es framework can drive it too).

pub mod agent;
pub mod error;
pub mod policy;
pub mod resources;
pub mod scaling_group;
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
        }
    };
}

decider!(session::Session);
decider!(scaling_group::ScalingGroup);
decider!(agent::Agent);
decider!(policy::ResourcePolicy);
