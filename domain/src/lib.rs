//! The pure domain of sessiond: aggregates, commands, events, typed errors and the
//! session transition table. No I/O lives here: decisions are synchronous functions of
//! (state, command with `now` in it) returning events or a typed rejection.
//!
//! # Layout
//! - [`session`]: the Session aggregate; `status.rs` holds the statuses and the transition table
//!   ([`session::TRANSITIONS`]), `commands.rs`, `events.rs`, `error.rs`.
//! - [`scaling_group`]: the ScalingGroup aggregate and its strictly validated
//!   [`scaling_group::SchedulerOpts`].
//! - [`agent`]: the Agent aggregate, the allocation ledger that prevents over-commit.
//! - [`policy`]: owner resource policies.
//! - [`name_claim`]: names unique at the write (a session name per owner).
//! - [`pending_quota`]: `max_pending_sessions` enforced at the write.
//! - [`vfolder`]: the VFolder aggregate (a user's folder on a volume; clone targets).
//! - [`bgtask`]: the BackgroundTask aggregate (clone and removal runs, attempts).
//! - [`scheduler`]: the scheduler's pure decisions (resolution, predicates, ordering, agent selection).
//! - [`resources`]: resource slots (`cpu`, `mem`, accelerators) with exact decimals and
//!   checked arithmetic.
//! - [`ids`]: validated identifiers from outside (session and group names, owners, agent
//!   ids, images, reasons), one newtype each.
//! - [`bounds`]: bounded numbers from outside (priority, cluster size, timeouts, counts).
//! - [`error`]: errors shared by every aggregate.
//!
//! Every aggregate implements [`Decider`] and its events [`DomainEvent`] (through
//! [`aggregate!`]); nothing here depends on a framework. The event store adapts
//! [`Decider`] to cqrs-es where it uses that crate (loading streams).
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

pub mod agent;
pub mod bgtask;
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
pub mod vfolder;
pub mod webhook;

pub use error::ValidationError;
pub use resources::ResourceSlots;

/// An event of an aggregate as it is stored: an explicit, never-renamed type string
/// and the schema version of its body.
pub trait DomainEvent:
    serde::Serialize
    + serde::de::DeserializeOwned
    + Clone
    + PartialEq
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The `event_version` this build writes and reads (every event of one aggregate
    /// shares it). Older stored versions are upcast to it on read (`store::upcast`).
    const EVENT_VERSION: &'static str;
    /// The stored `event_type` (e.g. `SessionEnqueued`).
    fn event_type(&self) -> &'static str;
    /// The stored `event_version` of the body.
    fn event_version(&self) -> &'static str {
        Self::EVENT_VERSION
    }
}

/// The pure decide/evolve pair every aggregate exposes; the application's command
/// handler and the store are generic over it. No framework trait is involved: the
/// event store's adapter to cqrs-es (`store::adapter`) is built on this one.
pub trait Decider:
    Default
    + Clone
    + std::fmt::Debug
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The aggregate type, stored with each of its events (e.g. `Session`).
    const TYPE: &'static str;
    /// What it decides on.
    type Command: Send + Sync;
    /// What it records.
    type Event: DomainEvent;
    /// Why it refuses a command.
    type Error: std::error::Error + Send + Sync + 'static;
    /// State + command -> new events, or a typed rejection. Never mutates.
    fn decide(&self, command: Self::Command) -> Result<Vec<Self::Event>, Self::Error>;
    /// Folds one event into the state.
    fn evolve(&mut self, event: &Self::Event);
    /// When an event happened (domain time).
    fn occurred_at(event: &Self::Event) -> chrono::DateTime<chrono::Utc>;
    /// The version of this state's serialized shape, stored with every snapshot of it.
    /// Raise it whenever a change to the state's fields would make an older snapshot
    /// decode into a different state than folding the events gives: snapshots of any
    /// other version are then ignored (the stream is folded from its events) and
    /// replaced.
    const SNAPSHOT_VERSION: u32 = 1;
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

/// Implements [`Decider`] for an aggregate (over its inherent `decide`, `apply` and
/// its event's `occurred_at`) and [`DomainEvent`] for its event (explicit type and
/// version). One definition for every aggregate.
#[macro_export]
macro_rules! aggregate {
    ($agg:ty, $type_name:expr, $cmd:ty, $event:ty, $error:ty, $version:expr, $event_type:expr) => {
        impl $crate::DomainEvent for $event {
            const EVENT_VERSION: &'static str = $version;
            fn event_type(&self) -> &'static str {
                let f: fn(&$event) -> &'static str = $event_type;
                f(self)
            }
        }

        impl $crate::Decider for $agg {
            const TYPE: &'static str = $type_name;
            type Command = $cmd;
            type Event = $event;
            type Error = $error;
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
