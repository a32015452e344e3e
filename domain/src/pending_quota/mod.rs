//! The PendingQuota aggregate: enforces an owner's `max_pending_sessions` (SPEC §1.5,
//! §2.1) at the moment of the write, for owners whose policy sets the limit.
//!
//! Every enqueue of a limited owner appends `PendingQuotaTaken` to the owner's quota
//! stream **in the same statement** as `SessionEnqueued`, at the next sequence of the
//! version it decided on; concurrent enqueues of one owner therefore serialise (the
//! losers reload and decide again), and an owner can never pass the limit by racing.
//!
//! The count is the owner's PENDING sessions in the `pending_queue` read model plus the
//! ones the quota stream has recorded that the read model does not reflect yet
//! (`unprojected`). The caller reads the count together with the checkpoint it reflects
//! (one snapshot) and tells which recorded sessions it includes by comparing their
//! `SessionEnqueued` positions with that checkpoint (`projected`). A session
//! that has left PENDING but whose read model still says PENDING is counted a moment too
//! long: the limit errs on the strict side, never the loose one. Each event names the
//! whole state, so a quota stream is loaded by reading its last row.
//!
//! # Layout
//! - `commands.rs`: [`TakePendingSlot`].
//! - `events.rs`: [`PendingQuotaEvent`].
//! - `error.rs`: [`PendingQuotaError`].
//! - `aggregate.rs`: [`PendingQuota`].

mod aggregate;
pub mod commands;
pub mod error;
pub mod events;

pub use aggregate::PendingQuota;
pub use commands::TakePendingSlot;
pub use error::PendingQuotaError;
pub use events::{PendingQuotaEvent, PENDING_QUOTA_EVENT_VERSION};
