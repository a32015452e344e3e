//! `sessionctl`: operator tooling that talks to the store directly.
//!
//! Output for people goes to stdout; progress bars and errors go to stderr. Every
//! failure is one line on stderr and a non-zero exit, never a panic.
//!
//! # Layout
//! - this module: the command line ([`Ctl`] and its subcommands), the one error type,
//!   [`run`] (open the store, dispatch, one exit code) and the helpers the commands
//!   share (stdout lines, JSON, file errors, session ids).
//! - `history`: `sessionctl history`, the timeline of one session.
//! - `replay`: `sessionctl replay`, one aggregate folded as of a time or a sequence.
//! - `audit`: `sessionctl audit verify`, the integrity and drift report.
//! - `events`: `sessionctl events tail | export | import`, the global log.
//! - `projections`: `sessionctl projections status | rebuild | reset`, the read models.
//! - `keys`: `sessionctl keys create | list | revoke`, API keys of the HTTP API.

use clap::{Args, Parser, Subcommand};

use crate::config::DEFAULT_DATABASE_URL;
use crate::store::{EventStore, StoreOptions};
use crate::telemetry::error_chain;

mod audit;
mod events;
mod history;
mod keys;
mod projections;
mod replay;

/// sessionctl: replay, audit and maintenance tooling for sessiond.
#[derive(Debug, Parser)]
#[command(name = "sessionctl", version, about)]
pub struct Ctl {
    /// `sqlite://PATH` or `postgres://...`
    #[arg(long, global = true, env = "SESSIOND_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Read models: status, rebuild, reset.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// The timeline of one session: time, status change, reason, actor, predicate failures.
    History {
        /// Session id (UUID).
        session_id: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The folded state of one aggregate as of a point in time or a sequence, as JSON.
    Replay {
        /// session | scaling-group | agent | resource-policy
        aggregate_type: String,
        /// Aggregate id.
        id: String,
        /// Fold the events that occurred at or before this time (RFC 3339).
        #[arg(long, conflicts_with = "to_sequence")]
        at: Option<String>,
        /// Fold the events up to and including this sequence.
        #[arg(long)]
        to_sequence: Option<i64>,
    },
    /// Integrity checks of the whole store.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The global event log: tail, export, import.
    #[command(subcommand)]
    Events(EventsCommand),
    /// API keys of the HTTP API: create, list, revoke.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `sessionctl keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (alone on stdout, once: only its hash is stored).
    Create {
        /// admin | user | agent
        #[arg(long)]
        role: KeyRole,
        /// The owner a user key acts as (required for --role user).
        #[arg(long, required_if_eq("role", "user"))]
        owner: Option<String>,
        /// The agent an agent key is bound to (required for --role agent).
        #[arg(long, required_if_eq("role", "agent"))]
        agent_id: Option<String>,
        /// Free text shown by `keys list`.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Every key (id, role, owner / agent, created, revoked); never the keys themselves.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id: requests with it get 401 from now on.
    Revoke {
        /// Key id (`key_...`, see `keys list`).
        id: String,
    },
}

/// Roles of `keys create`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyRole {
    /// Everything.
    Admin,
    /// One owner's sessions.
    User,
    /// One agent.
    Agent,
}

/// `sessionctl audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Re-fold every stream; check transitions, sequences, positions, versions and every
    /// read model against a fresh fold. Exits 1 when anything is wrong.
    Verify {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `sessionctl events ...`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// The newest events, one per line; `--follow` keeps printing new ones.
    Tail {
        /// Keep following the log (Ctrl-C stops).
        #[arg(long)]
        follow: bool,
        /// Only this event type.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Only this aggregate id.
        #[arg(long)]
        aggregate: Option<String>,
        /// How many past events to show first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Every event in log order as NDJSON (positions, ids, timestamps, metadata).
    Export {
        /// Only `ndjson` is supported.
        #[arg(long, default_value = "ndjson")]
        format: String,
        /// Write here instead of stdout.
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// Import an NDJSON export, preserving positions, ids, timestamps and metadata.
    Import {
        /// Read from here instead of stdin.
        #[arg(long)]
        input: Option<std::path::PathBuf>,
        /// Import even though the store already has events.
        #[arg(long)]
        force: bool,
    },
}

/// `sessionctl projections ...`
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Position, lag (events and seconds) and last error of every projection.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild read models from the whole log while the live ones keep serving, then
    /// swap them in.
    Rebuild(RebuildArgs),
    /// Delete a read model's rows and set its checkpoint back to the start; a running
    /// `sessiond serve` rebuilds it in place (reads see it fill up: prefer `rebuild`).
    Reset {
        /// Projection name.
        name: String,
    },
}

/// Arguments of `projections rebuild`.
#[derive(Debug, Args)]
pub struct RebuildArgs {
    /// Projection name (see `projections status`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub name: Option<String>,
    /// Rebuild every projection.
    #[arg(long)]
    pub all: bool,
    /// Events per transaction (1..=100000; 0 would swap in an empty generation).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub batch_size: i64,
}

/// A one-line failure.
#[derive(Debug, thiserror::Error)]
enum CtlError {
    #[error("cannot open the store: {0}")]
    Open(String),
    #[error(transparent)]
    Projection(#[from] ::projections::ProjectionError),
    #[error("{0}")]
    Other(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Decode(#[from] crate::store::DecodeError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Key(#[from] crate::auth::KeyError),
    #[error("cannot use {path}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The audit found problems (already printed).
    #[error("audit found {0} problem(s)")]
    Findings(usize),
}

/// Runs `sessionctl`; returns the exit code.
pub async fn run(ctl: Ctl) -> i32 {
    match execute(ctl).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("sessionctl: {}", error_chain(&e));
            1
        }
    }
}

/// Opens the store, runs one command on it, closes it.
async fn execute(ctl: Ctl) -> Result<(), CtlError> {
    let store = EventStore::open(&ctl.database_url, &StoreOptions::default())
        .await
        .map_err(|e| CtlError::Open(error_chain(&e)))?;
    let result = dispatch(&store, ctl.command).await;
    store.close().await;
    result
}

/// Hands a command to its module.
async fn dispatch(store: &EventStore, command: CtlCommand) -> Result<(), CtlError> {
    match command {
        CtlCommand::Projections(cmd) => projections::run(store, cmd).await,
        CtlCommand::History { session_id, json } => history::run(store, &session_id, json).await,
        CtlCommand::Replay {
            aggregate_type,
            id,
            at,
            to_sequence,
        } => replay::run(store, &aggregate_type, &id, at.as_deref(), to_sequence).await,
        CtlCommand::Audit(AuditCommand::Verify { json }) => audit::verify(store, json).await,
        CtlCommand::Events(cmd) => events::run(store, cmd).await,
        CtlCommand::Keys(cmd) => keys::run(store, cmd).await,
    }
}

/// Parses a session id, or explains what is wrong with it.
fn session_uuid(id: &str) -> Result<uuid::Uuid, CtlError> {
    uuid::Uuid::parse_str(id)
        .map_err(|_| CtlError::Other(format!("'{id}' is not a session id (expected a UUID)")))
}

/// Pretty JSON of a report, a state or a list, for `--json` and `replay`.
fn pretty_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, CtlError> {
    serde_json::to_string_pretty(value).map_err(|e| CtlError::Other(e.to_string()))
}

/// A file that cannot be created or opened, with its path.
fn file_error(path: &std::path::Path, source: std::io::Error) -> CtlError {
    CtlError::File {
        path: path.display().to_string(),
        source,
    }
}

/// Writes a line of command output to stdout.
#[allow(clippy::print_stdout)]
fn out(line: &str) {
    println!("{line}");
}
