//! The read models.
//!
//! - [`documents`]: `sessions`, `scaling_groups`, `agent_occupancy`, `vfolders`,
//!   `background_tasks`, `webhooks` — each row is an
//!   aggregate folded from its stream (`doc`, JSON) plus the columns queries filter on.
//! - [`pending_queue`]: PENDING sessions per scaling group, scheduler-ordered, with the
//!   pending-timeout deadline.
//! - [`audit_log`]: a flat timeline of every event.
//! - [`slot_releases`]: the durable process manager that releases an ended session's
//!   slots (table `rm_slot_holds`).
//! - [`outbox`]: `webhook_outbox`, the webhook deliveries of every status change
//!   (SPEC §8), and the dispatcher's queries of the outbox.
//! - [`session_list`]: queries of the `sessions` model for the API (filtered pages,
//!   counts by status); not a projection of its own.
//!
//! Every statement is a file under `projections/sql/` (`common/`, `postgres/`,
//! `sqlite/`), run through `store::db`; each projection's tables are listed by its
//! [`Projection::tables`].

pub mod audit_log;
pub mod documents;
pub mod outbox;
pub mod pending_queue;
pub mod session_list;
pub mod slot_releases;

use std::sync::Arc;

use crate::Projection;

/// Name of the `sessions` read model.
pub const SESSIONS: &str = "sessions";
/// Name of the `scaling_groups` read model.
pub const SCALING_GROUPS: &str = "scaling_groups";
/// Name of the `agent_occupancy` read model.
pub const AGENT_OCCUPANCY: &str = "agent_occupancy";
/// Name of the `pending_queue` read model.
pub const PENDING_QUEUE: &str = "pending_queue";
/// Name of the `audit_log` read model.
pub const AUDIT_LOG: &str = "audit_log";
/// Name of the `vfolders` read model.
pub const VFOLDERS: &str = "vfolders";
/// Name of the `background_tasks` read model.
pub const BACKGROUND_TASKS: &str = "background_tasks";
/// Name of the `webhooks` read model.
pub const WEBHOOKS: &str = "webhooks";
/// Name of the webhook outbox projection.
pub const WEBHOOK_OUTBOX: &str = "webhook_outbox";
/// Name of the `slot_releases` process manager's read model.
pub const SLOT_RELEASES: &str = "slot_releases";

/// Every read model, in the order the engine runs them.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(documents::sessions()),
        Arc::new(documents::scaling_groups()),
        Arc::new(documents::agent_occupancy()),
        Arc::new(pending_queue::PendingQueue),
        Arc::new(audit_log::AuditLog),
        Arc::new(slot_releases::SlotReleases),
        Arc::new(documents::vfolders()),
        Arc::new(documents::background_tasks()),
        Arc::new(documents::webhooks()),
        Arc::new(outbox::WebhookOutbox),
    ]
}
