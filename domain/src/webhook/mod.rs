//! The WebhookSubscription aggregate: an admin's subscription of a URL to session status
//! changes (SPEC §8).
//!
//! A subscription holds where deliveries go (`url`), which changes it wants
//! ([`WebhookFilter`]: statuses, scaling groups, owners; an empty list means any),
//! whether it is enabled, and which signing secrets are active. The secrets themselves
//! never enter the log: events name them by id (the application keeps the sealed bytes
//! in a table), so an exported event log carries no secret.
//!
//! Rotation keeps the previous secret signing alongside the new one for an overlap
//! (24 h in the API), then only the new one is active ([`WebhookSubscription::active_secrets`]).
//! An endpoint that answers `410 Gone` disables its subscription
//! ([`WebhookCommand::DisableGone`]); an admin enables it again with an update.
//!
//! # Layout
//! - `spec.rs`: [`WebhookUrl`], [`WebhookFilter`], [`WebhookSettings`].
//! - `commands.rs`: [`WebhookCommand`].
//! - `events.rs`: [`WebhookEvent`].
//! - `error.rs`: [`WebhookError`].
//! - `aggregate.rs`: [`WebhookSubscription`], its `decide` and `apply`.

mod aggregate;
pub mod commands;
pub mod error;
pub mod events;
pub mod spec;
#[cfg(test)]
mod tests;

pub use aggregate::{SecretRef, WebhookSubscription};
pub use commands::WebhookCommand;
pub use error::WebhookError;
pub use events::{WebhookEvent, WEBHOOK_EVENT_VERSION};
pub use spec::{
    WebhookFilter, WebhookSettings, WebhookUrl, MAX_DESCRIPTION_LEN, MAX_FILTER_ENTRIES,
};
