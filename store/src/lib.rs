//! The event store of sessiond and everything else it keeps that is not a read model:
//! PostgreSQL (production) and an SQLite file (embedded default) behind one interface.
//!
//! Both backends keep postgres-es / sqlite-es's table layout (their repositories load
//! streams) plus our columns: a global position, `recorded_at` and, on PostgreSQL, the
//! writing transaction's id, so [`EventStore::read_log`] delivers the global log in
//! commit order and never skips a row that committed late (docs/adr/0001-event-store.md).
//!
//! Appends are one statement (an implicit, short transaction); no transaction is ever
//! held open across anything but the database. Optimistic concurrency comes from the
//! primary key `(aggregate_type, aggregate_id, sequence)`: a second writer of the same
//! stream version gets [`StoreError::Conflict`].
//!
//! Every SQL statement lives in a `.sql` file under `store/sql/` (`common/` when both
//! backends run the same text, else `postgres/` and `sqlite/`), loaded at compile time
//! with [`sql!`] and run through the one backend abstraction in [`db`].
//!
//! # Layout
//! - [`db`]: [`Db`] / [`Tx`] over either backend, [`Statement`](db::Statement)s,
//!   [`Arg`]s, rows as [`Record`]s.
//! - [`log`]: [`NewEvent`], [`RecordedEvent`], [`LogPosition`], [`EventMetadata`], and
//!   the readers of the global log.
//! - [`event_store`]: [`EventStore`]: open (with migrations), load, append, import.
//! - [`postgres`], [`sqlite`]: each backend's connection set-up and append path (the
//!   PostgreSQL group commit).
//! - [`upcast`]: the upcaster chain every read of stored events goes through: older
//!   `event_version`s are upgraded to the one this build reads, an unknown one is a
//!   typed error (docs/adr/0010-event-upgrades.md).
//! - [`snapshots`]: a stream's state folded up to a sequence, so loading a long stream
//!   (an agent's) folds only what came after ([`EventStore::load_state`]).
//! - [`adapter`]: the cqrs-es adapter over [`domain::Decider`] (postgres-es / sqlite-es
//!   load streams through it).
//! - [`lease`]: leases, so one replica does each job; [`notify`]: wake-ups across
//!   replicas (PostgreSQL LISTEN/NOTIFY).
//! - [`heartbeats`], [`keys`], [`idempotency`]: agent heartbeats, API keys and
//!   idempotency records: tables that are state, not events.
//! - [`webhook_secrets`]: sealed webhook signing secrets and per-owner callback secrets.
//! - [`copy`]: a whole store into another database, either backend (`sessionctl store
//!   copy`): the log batch by batch through [`EventStore::import`], the state tables.

pub mod adapter;
pub mod copy;
pub mod db;
pub mod event_store;
pub mod heartbeats;
pub mod idempotency;
pub mod keys;
pub mod lease;
pub mod log;
pub mod maintenance;
pub mod notify;
pub mod postgres;
pub mod session_logs;
pub mod snapshots;
pub mod sqlite;
pub mod upcast;
pub mod webhook_secrets;

use std::time::Duration;

pub use db::{Arg, Db, Record, Tx};
pub use event_store::EventStore;
pub use log::{DecodeError, EventMetadata, LogPosition, NewEvent, RecordedEvent};
pub use snapshots::{Loaded, SnapshotCheck, StoredSnapshot};
pub use upcast::{Unreadable, UpcastError, Upcaster, Upcasters};

/// Whether a database error means the store cannot be reached or is going away — the
/// connection failed or was lost, the server is shutting down, restarting or starting
/// up (SQLSTATE classes 08 and 57P), or it has no connection slot left (53300) — rather
/// than that the statement was wrong. The HTTP layer answers these 503
/// `store_unavailable`.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "53300"),
        _ => false,
    }
}

/// What went wrong talking to the store. Domain rejections are not here.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the stream first (optimistic concurrency).
    #[error("conflict: {aggregate_type} {aggregate_id} was changed concurrently")]
    Conflict {
        /// Aggregate type.
        aggregate_type: String,
        /// Stream id.
        aggregate_id: String,
    },
    /// A group-commit statement shared with other appends failed (the first caller in
    /// the batch gets the original error; the others get its message, and whether it
    /// meant the store is unreachable).
    #[error("the shared append failed: {message}")]
    Batch {
        /// The original error's message.
        message: String,
        /// Whether the original error meant the store is unreachable.
        unavailable: bool,
    },
    /// The database URL is not one we can open.
    #[error("unsupported database URL '{0}': expected sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    /// A database error (connection, query).
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Loading through the cqrs-es repository failed.
    #[error("event repository error")]
    Repository(#[from] cqrs_es::persist::PersistenceError),
    /// A stored event cannot be read as its event type: no upcaster leads from its
    /// version to the current one, or its body does not match.
    #[error("cannot decode {event_type} v{event_version} at sequence {sequence}")]
    Decode {
        /// Event type.
        event_type: String,
        /// Version.
        event_version: String,
        /// Sequence.
        sequence: i64,
        /// Cause.
        #[source]
        source: upcast::Unreadable,
    },
    /// Serialising an event failed.
    #[error("cannot encode event")]
    Encode(#[source] serde_json::Error),
}

impl StoreError {
    /// Whether this is an optimistic-concurrency conflict.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    /// Whether this means the store cannot be reached now (see [`is_unavailable`]); a
    /// retry later may succeed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Batch { unavailable, .. } => *unavailable,
            StoreError::Repository(cqrs_es::persist::PersistenceError::ConnectionError(_)) => true,
            other => other.sqlx_cause().is_some_and(is_unavailable),
        }
    }

    /// The database error inside, where there is one: the error itself, or the one
    /// postgres-es / sqlite-es box inside a repository error (the variant's Display
    /// shows it, but it is not its `source`).
    pub fn sqlx_cause(&self) -> Option<&sqlx::Error> {
        use cqrs_es::persist::PersistenceError as P;
        match self {
            StoreError::Database(e) => Some(e),
            StoreError::Repository(
                P::UnknownError(b) | P::ConnectionError(b) | P::DeserializationError(b),
            ) => {
                let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(b.as_ref());
                while let Some(c) = cause {
                    if let Some(found) = c.downcast_ref::<sqlx::Error>() {
                        return Some(found);
                    }
                    cause = c.source();
                }
                None
            }
            _ => None,
        }
    }
}

/// Connection settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Max pooled connections (PostgreSQL; SQLite readers).
    pub max_connections: u32,
    /// How long to wait for a connection / a locked SQLite database.
    pub acquire_timeout: Duration,
    /// Take a snapshot of a stream once a load folds at least this many events after
    /// the last one (0: never; [`snapshots`]).
    pub snapshot_every: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            snapshot_every: snapshots::DEFAULT_EVERY,
        }
    }
}

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite file.
    Sqlite,
}

/// The migrator of a backend's `migrations/` directory. Migrations that a store applied
/// but this build no longer has are ignored: the one such migration, `0003_bench`
/// (the benchmark's table, since moved out of the service and dropped by `0008_tidy`), stays
/// in older stores' history. Every other migration is never removed or edited.
pub(crate) fn migrator(mut m: sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    m.set_ignore_missing(true);
    m
}

/// `outer: inner: root` for an error and its sources (for logs).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Hides the password of a database URL for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let host_start = scheme_end.saturating_add(3);
            let (Some(scheme), Some(userinfo), Some(rest)) = (
                url.get(..host_start),
                url.get(host_start..at),
                url.get(at..),
            ) else {
                return url.to_string();
            };
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}{user}:***{rest}"),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_database_url_is_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("sqlite://sessiond.db"), "sqlite://sessiond.db");
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
    }

    #[test]
    fn log_positions_order_by_transaction_then_position() {
        let a = LogPosition {
            transaction_id: 5,
            global_position: 9,
        };
        let b = LogPosition {
            transaction_id: 6,
            global_position: 2,
        };
        assert!(a < b);
    }
}
