//! The VFolder aggregate: a user's virtual folder on a volume (SPEC §7.1, §7.3).
//!
//! A vfolder's files live at `<volume root>/<vfolder_id>/`; this aggregate holds what
//! the folder *is* (name, owner, volume, mode, permission) and where it is in its life:
//! `ready`, `cloning` (a clone target being filled by a background task), `error`
//! (`status_info` says why), `delete-pending`, `delete-complete` — Backend.AI's strings.
//! A source with clones running keeps the ids of their tasks (`active_clones`) and
//! cannot be deleted while any runs; it stays usable.
//!
//! # Layout
//! - `spec.rs`: [`VFolderSpec`] (validated at the edge), [`UsageMode`], [`Permission`].
//! - `status.rs`: [`VFolderStatus`] and the reasons recorded in `status_info`.
//! - `commands.rs`: [`VFolderCommand`].
//! - `events.rs`: [`VFolderEvent`].
//! - `error.rs`: [`VFolderError`].
//! - `aggregate.rs`: [`VFolder`], its `decide` and `apply`.

mod aggregate;
pub mod commands;
pub mod error;
pub mod events;
pub mod spec;
pub mod status;
#[cfg(test)]
mod tests;

pub use aggregate::{vfolder_claim_id, VFolder};
pub use commands::VFolderCommand;
pub use error::VFolderError;
pub use events::{VFolderEvent, VFOLDER_EVENT_VERSION};
pub use spec::{Permission, UsageMode, VFolderSpec};
pub use status::{reasons, VFolderStatus};
