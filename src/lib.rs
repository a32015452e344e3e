//! sessiond: an event-sourced session lifecycle manager for compute clusters.
//!
//! Every state change is an appended event; read models are projections of the global
//! log; no database transaction is held open across slow work.
//!
//! # Layout
//! - [`config`]: typed, layered settings (defaults < TOML file < `SESSIOND_*` env < flags).
//! - [`telemetry`]: tracing set-up.
//! - [`store`]: the event store on PostgreSQL and SQLite behind one interface, and the
//!   commit-order reader of the global log.
//! - [`command`]: load -> decide -> append, with bounded, jittered retry on conflicts.
//! - [`server`]: `sessiond serve` (start-up, bootstrap admin key, graceful shutdown).
//! - [`http`]: the HTTP/JSON command API (axum), one module per resource.
//! - [`auth`]: API keys (stored hashed) and roles.
//! - [`idempotency`]: `Idempotency-Key` records of POST /v1/sessions.
//! - [`audit`]: `sessionctl audit verify` (integrity and drift checks).
//! - [`cli`]: argument parsing for the `sessiond` binary.
//! - [`ctl`]: `sessionctl`, operator tooling on the store, one module per command
//!   (history, replay, audit, events tail/export/import, projections, keys).
//!
//! The pure domain lives in the `domain` crate; read models in `projections`.
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

pub mod agents;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod command;
pub mod config;
pub mod ctl;
pub mod follower;
pub mod http;
pub mod idempotency;
pub mod scheduler;
pub mod server;
pub mod sessions;
pub mod supervisor;
pub mod telemetry;

/// The event store crate (`store/`), re-exported: `sessiond::store::EventStore`.
pub use ::store;
