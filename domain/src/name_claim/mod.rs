//! The NameClaim aggregate: makes a name unique within a namespace (a session name among
//! its owner's non-terminal sessions, SPEC §1.2 and §2.1) at the moment of the write.
//!
//! A claim stream per `namespace/owner/name` is appended **in the same statement** as
//! the event that creates the holder (e.g. `SessionEnqueued`), each at the next
//! sequence of the version it was decided on. Two concurrent requests for the same name
//! both write the same sequence of the claim stream; exactly one statement lands, the
//! other conflicts, reloads, and is refused — no read model is consulted.
//!
//! A claim is released implicitly: when its holder has ended (the application checks
//! the holder's own stream, exactly), the next claim takes the name over. The state is
//! the last event, so a claim stream is loaded by reading one row.
//!
//! # Layout
//! - `commands.rs`: [`ClaimName`].
//! - `events.rs`: [`NameClaimEvent`].
//! - `error.rs`: [`NameClaimError`].
//! - `aggregate.rs`: [`NameClaim`] and the claim id helpers.

mod aggregate;
pub mod commands;
pub mod error;
pub mod events;

pub use aggregate::{session_claim_id, NameClaim};
pub use commands::ClaimName;
pub use error::NameClaimError;
pub use events::{NameClaimEvent, NAME_CLAIM_EVENT_VERSION};
