//! The scheduler's decisions (SPEC §2), as pure functions: enqueue-time scaling-group
//! resolution, the named predicates with their human messages, queue ordering (fifo,
//! lifo, drf) and agent selection (dispersed, concentrated, roundrobin).
//!
//! The application gathers what these need (groups, policies, usage, agent ledgers)
//! from the read models and the store, calls them, and turns the outcome into commands
//! on the Session and Agent aggregates. Nothing here performs I/O.
//!
//! # Layout
//! - [`resolve`]: which scaling group a new session goes to, or why none.
//! - [`predicates`]: `reserved_time`, `dependencies`, `concurrency`,
//!   `owner_resource_limit`, `scaling_group`, and [`predicates::evaluate`] running them.
//! - [`outcome`]: what an attempt found ([`FailedPredicate`], [`PassedPredicate`]).
//! - [`ordering`]: the order a group's queue is tried in.
//! - [`selection`]: picking an agent by strategy.
//! - [`pass`]: one whole scheduling pass over a group's queue ([`pass::plan`]).

pub mod ordering;
pub mod outcome;
pub mod pass;
pub mod predicates;
pub mod resolve;
pub mod selection;

pub use ordering::{order_queue, QueueItem};
pub use outcome::{FailedPredicate, PassedPredicate};
pub use pass::{plan, PassInput, PassPlan, PendingItem, Placement, Waiting};
pub use predicates::{evaluate, Evaluation, OwnerUsage, PredicateInput};
pub use resolve::{resolve_scaling_group, ResolveError};
pub use selection::{select_agent, AgentCandidate};
