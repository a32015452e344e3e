//! The HTTP API end to end: the real application on port 0 against fresh PostgreSQL and
//! SQLite databases (SPEC §4).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::arithmetic_side_effects)]

mod helpers;

mod abuse;
mod compat;
mod dashboard;
mod full;
mod hardening;
mod idempotency;
mod lifecycle;
mod negative;
mod read_your_writes;
mod reads;
mod sse;
mod streams;
mod timeouts;
mod vfolders;
mod walkthrough;
mod webhooks;
