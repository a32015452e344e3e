//! The shared kit of sessiond's integration tests (dev only, never shipped): fresh
//! databases on both backends, valid fixtures, the test macros that run a test on
//! PostgreSQL and SQLite, and a workload driven through the command handler together
//! with the checks that every read model equals a fresh fold.
//!
//! # Layout
//! - [`db`]: [`db::Backend`], fresh databases (PostgreSQL ones are named after the test
//!   run, so `scripts/test` drops them afterwards), and polling the global log.
//! - [`fixtures`]: valid specs, metadata, group and agent commands.
//! - [`world`]: a recorded workload and the read-model-equals-fold checks.
//! - [`http`]: one call to a running server (the tests that drive a real process).
//! - [`serve`]: real `sessiond serve`, `sessionctl` and `sessiond agent` processes, and
//!   waiting for a condition with a deadline.
//! - [`webhooks`]: checking a webhook signature as a receiver would.
//! - the macros [`conformance!`] (each test on a fresh store of each backend) and
//!   [`both_backends!`] (each test given a backend).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

pub mod db;
pub mod fixtures;
pub mod http;
pub mod serve;
pub mod webhooks;
pub mod world;

pub use db::Backend;

/// Generates one test per backend for each named `async fn(EventStore)`: a `postgres`
/// and a `sqlite` module, each test on a fresh store.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::db::fresh_store($crate::db::Backend::Postgres).await).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::db::fresh_store($crate::db::Backend::Sqlite).await).await
                }
            )*
        }
    };
}

/// One test per backend for each named `async fn(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::db::Backend::Postgres).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::db::Backend::Sqlite).await
                }
            )*
        }
    };
}
