//! sessiond: an event-sourced session lifecycle manager for compute clusters.
//!
//! Every state change is an appended event; read models are projections of the global
//! log; no database transaction is held open across slow work.
//!
//! # Layout
//! - [`config`]: typed, layered settings (defaults < TOML file < `SESSIOND_*` env < flags).
//! - [`telemetry`]: tracing and metrics set-up, log-field escaping, error chains.
//! - [`store`]: the `store` crate, re-exported: the event store on PostgreSQL and SQLite,
//!   the commit-order log reader, leases, the tables that are not events.
//! - [`command`]: load -> decide -> append, with bounded, jittered retry on conflicts.
//! - [`agent`]: `sessiond agent`, the process agent (SPEC §9), a client of the agent API.
//! - [`sessions`], [`agents`]: the session and agent commands as the API and the
//!   workers issue them (enqueue with its invariants, delete, kernel events,
//!   registration, assignments).
//! - [`app`]: the shared application state (store, command handler, projection engine,
//!   clock, supervisor); [`clock`]: time as an input.
//! - [`scheduler`]: the scheduling passes, the pending-timeout sweeper, agent liveness,
//!   slot releases (decisions in `domain::scheduler`).
//! - [`volumes`]: the volumes vfolders live on, and the only way from a request's path
//!   into a vfolder's files (never outside it, never through a symlink).
//! - [`vfolders`]: vfolder and background-task commands (create, clone, delete, cancel,
//!   task ends), each one append of several streams.
//! - [`tasks`]: the background-task runner (leases, resumption, throttled progress) and
//!   the tree copy (`tasks::copy`).
//! - [`supervisor`]: supervised background workers (panic → log, count, restart with
//!   backoff; readiness).
//! - [`follower`]: the one log follower per process that streams and long-polls share.
//! - [`server`]: `sessiond serve` (start-up, bootstrap admin key, graceful shutdown).
//! - [`http`]: the HTTP/JSON command API (axum), one module per resource.
//! - [`ui`]: the operator dashboard at `/ui` (embedded static files over the API).
//! - [`compat`]: Backend.AI client compatibility (its request signature, its routes).
//! - [`auth`]: API keys (stored hashed), roles, the key cache and revocations.
//! - [`idempotency`]: the `Idempotency-Key` protocol of POST /v1/sessions.
//! - [`audit`]: `sessionctl audit verify` (integrity and drift checks).
//! - [`cli`]: argument parsing for the `sessiond` binary.
//! - [`ctl`]: `sessionctl`: operator tooling on the store and the user commands over HTTP
//!   (`vfolder`, `bgtask`), one module per command
//!   (history, replay, audit, events tail/export/import, projections, keys).
//!
//! The pure domain lives in the `domain` crate, read models in `projections`, the
//! benchmark in `bench` (`sessiond-bench`), shared test support in `testkit`.
#![cfg_attr(test, allow(clippy::arithmetic_side_effects))]

pub mod agent;
pub mod agents;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod command;
pub mod compat;
pub mod config;
pub mod ctl;
pub mod demo;
pub mod follower;
pub mod http;
pub mod idempotency;
pub mod maintenance;
pub mod scheduler;
pub mod server;
pub mod sessions;
pub mod supervisor;
pub mod tasks;
pub mod telemetry;
pub mod ui;
pub mod vfolders;
pub mod volumes;
pub mod webhooks;

/// The event store crate (`store/`), re-exported: `sessiond::store::EventStore`.
pub use ::store;
