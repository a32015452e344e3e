//! Read models and the projection engine of sessiond.
//!
//! Projections follow the global log (commit order) and keep read models in the same
//! database as the events. Each projection has a durable checkpoint advanced **in the
//! same transaction** as its read-model writes, so an event's effect is applied exactly
//! once even though delivery is at-least-once.
//!
//! # Layout
//! - [`engine`]: checkpoints, catch-up and follow loops, failure isolation with backoff,
//!   leases, consistency waits, status, reset and zero-downtime rebuilds.
//! - [`models`]: the read models (`sessions`, `pending_queue`, `agent_occupancy`,
//!   `scaling_groups`, `audit_log`).
//!
//! Rebuilds use **generations**: every read-model row carries the generation it belongs
//! to and readers read the live generation named in the projection's checkpoint row. A
//! rebuild fills generation g+1 from position zero while g keeps serving, catches up to
//! the head, then swaps by updating the checkpoint row in one short transaction.
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

pub mod engine;
pub mod models;

pub use engine::{Engine, EngineConfig, Projection, ProjectionStatus};
pub use store::{LogPosition, RecordedEvent};

/// Why a projection step failed.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// Database failure.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A payload does not decode as its event type.
    #[error("cannot decode {event_type} at position {global_position}: {source}")]
    Decode {
        /// Event type.
        event_type: String,
        /// Position.
        global_position: i64,
        /// Cause.
        #[source]
        source: serde_json::Error,
    },
    /// A stored event's version cannot be upgraded to the one this build reads.
    #[error("cannot read {event_type} at position {global_position}: {source}")]
    Version {
        /// Event type.
        event_type: String,
        /// Position.
        global_position: i64,
        /// Cause.
        #[source]
        source: Box<store::UpcastError>,
    },
    /// A handler refused an event (e.g. an injected failure, an inconsistent stream).
    #[error("{0}")]
    Handler(String),
    /// No projection of that name.
    #[error("unknown projection '{0}'")]
    Unknown(String),
}

impl From<store::DecodeError> for ProjectionError {
    fn from(e: store::DecodeError) -> Self {
        match e.source {
            store::Unreadable::Payload(source) => ProjectionError::Decode {
                event_type: e.event_type,
                global_position: e.global_position,
                source,
            },
            store::Unreadable::Version(source) => ProjectionError::Version {
                event_type: e.event_type,
                global_position: e.global_position,
                source,
            },
        }
    }
}
