//! `sessionctl`: operator tooling that talks to the store directly, and the user CLI
//! that talks to a running `sessiond serve` over HTTP (SPEC §11: `session`, `vfolder`, `bgtask`, `webhooks`;
//! these never open the store).
//!
//! Output for people goes to stdout; progress bars and errors go to stderr. Every
//! failure is one line on stderr and a non-zero exit, never a panic. Exit codes: 0 ok;
//! 1 the command failed (the store could not be opened or refused it, the server
//! refused it, a watched task failed or was cancelled, an audit found problems); 2 a
//! usage error or a server that cannot be reached (see [`EXIT_CODES`]).
//!
//! # Layout
//! - this module: the command line ([`Ctl`] and its subcommands), the one error type,
//!   [`run`] (open the store unless the command is a remote one, dispatch, one exit
//!   code) and the helpers the commands share (stdout lines, JSON, file errors, session
//!   ids).
//! - `history`: `sessionctl history`, the timeline of one session.
//! - `replay`: `sessionctl replay`, one aggregate folded as of a time or a sequence.
//! - `audit`: `sessionctl audit verify`, the integrity and drift report.
//! - `events`: `sessionctl events tail | export | import`, the global log.
//! - `projections`: `sessionctl projections status | rebuild | reset`, the read models.
//! - `keys`: `sessionctl keys create | list | revoke`, API keys of the HTTP API.
//! - `store`: `sessionctl store copy --from URL --to URL`, a whole deployment moved to
//!   another database (SQLite to PostgreSQL or back), verified.
//! - `remote`: the HTTP client of the remote commands (`--server`, `--key`, the server's
//!   error body as one line, transport failures naming the server, Server-Sent Events).
//! - `session`: `sessionctl session create | list | show | cancel | watch | logs |
//!   history`, a researcher's sessions.
//! - `vfolder`: `sessionctl vfolder create | list | clone | upload | download | rm`.
//! - `webhooks`: `sessionctl webhooks list | deliveries | redeliver | test` (admin).
//! - `bgtask`: `sessionctl bgtask watch`, a background task's progress bar fed by its
//!   event stream.

use clap::{Args, Parser, Subcommand};

use crate::config::DEFAULT_DATABASE_URL;
use crate::store::{EventStore, StoreOptions};
use crate::telemetry::error_chain;

mod audit;
mod bgtask;
mod events;
mod history;
mod keys;
mod projections;
mod remote;
mod replay;
mod session;
mod store;
mod vfolder;
mod webhooks;

/// The exit codes of `sessionctl`, as `--help` shows them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the command failed: the store could not be opened or refused it, the server
     refused it (its error code is printed: `sessionctl: not_found: ...`), a watched
     background task failed or was cancelled, or an audit found problems
  2  a usage error, or the server cannot be reached (or its task stream kept breaking)";

/// sessionctl: replay, audit and maintenance tooling for sessiond (on the store), and
/// the user CLI of a running server (`vfolder`, `bgtask`: over HTTP).
#[derive(Debug, Parser)]
#[command(name = "sessionctl", version, about, after_help = EXIT_CODES)]
pub struct Ctl {
    /// `sqlite://PATH` or `postgres://...` (store commands; `vfolder` and `bgtask` use
    /// `--server` instead)
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
    /// The whole store: copy it to another database (SQLite to PostgreSQL or back).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Your sessions on a running server: create, list, show, cancel, watch, logs,
    /// history.
    #[command(after_help = EXIT_CODES)]
    Session(SessionArgs),
    /// Virtual folders on a running server: create, list, clone, upload, download, rm.
    #[command(after_help = EXIT_CODES)]
    Vfolder(VfolderArgs),
    /// Background tasks on a running server: watch one's progress.
    #[command(after_help = EXIT_CODES)]
    Bgtask(BgtaskArgs),
    /// Webhook subscriptions on a running server (admin key): list, delivery log,
    /// redeliver, test.
    #[command(after_help = EXIT_CODES)]
    Webhooks(WebhooksArgs),
}

/// Where the server is and which key to use: the options of the commands that talk to
/// a running `sessiond serve` over HTTP (they never open the store).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server options")]
pub struct RemoteArgs {
    /// The server's base URL.
    #[arg(
        long,
        global = true,
        env = "SESSIOND_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// The API key (sent as `Authorization: Bearer KEY`).
    #[arg(long, global = true, env = "SESSIOND_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Print the server's JSON instead of tables and sentences (a watched task's stream:
    /// one JSON object per frame and line).
    #[arg(long, global = true)]
    pub json: bool,
}

/// `sessionctl session ...`: the server options and the subcommand.
#[derive(Debug, Args)]
pub struct SessionArgs {
    /// Server and key.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: SessionCommand,
}

/// `sessionctl session ...` (`<SESSION>`: an id, or a name among your sessions: the
/// live one, else the newest).
#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// Enqueue a session; prints its id.
    Create {
        /// Its name.
        #[arg(long)]
        name: String,
        /// interactive | batch | inference
        #[arg(long = "type", default_value = "batch", value_parser = ["interactive", "batch", "inference"])]
        session_type: String,
        /// Container image.
        #[arg(long)]
        image: String,
        /// Slots per kernel, e.g. `cpu=1,mem=2g`.
        #[arg(long)]
        resources: String,
        /// Scaling group (default: resolved by the server).
        #[arg(long)]
        group: Option<String>,
        /// The command a batch session runs.
        #[arg(long)]
        command: Option<String>,
        /// Seconds a batch session may run.
        #[arg(long)]
        batch_timeout: Option<u64>,
        /// 0..100 (default 10).
        #[arg(long)]
        priority: Option<u8>,
        /// Follow it: a batch session until it ends (exit 0 TERMINATED, 1 ERROR or
        /// CANCELLED), another until RUNNING.
        #[arg(long)]
        wait: bool,
    },
    /// Your sessions: ID NAME TYPE STATUS GROUP AGE INFO (INFO: why a PENDING one waits).
    List {
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// Only this scaling group.
        #[arg(long)]
        group: Option<String>,
        /// Only this type.
        #[arg(long = "type")]
        session_type: Option<String>,
        /// At most this many (oldest first).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One session, and why it waits while PENDING.
    Show {
        /// Id or name.
        session: String,
    },
    /// Cancel (before RUNNING) or terminate it.
    Cancel {
        /// Id or name.
        session: String,
        /// End it at once (admin keys).
        #[arg(long)]
        force: bool,
    },
    /// Follow its status changes live until it ends (exit 0 TERMINATED, 1 ERROR or
    /// CANCELLED).
    Watch {
        /// Id or name.
        session: String,
    },
    /// The last 16 KiB of its stdout, then of its stderr, as its agent reported them.
    Logs {
        /// Id or name.
        session: String,
        /// Only stdout.
        #[arg(long, conflicts_with = "stderr_only")]
        stdout_only: bool,
        /// Only stderr.
        #[arg(long)]
        stderr_only: bool,
    },
    /// Its timeline: TIME STATUS EVENT REASON ACTOR.
    History {
        /// Id or name.
        session: String,
    },
}

/// `sessionctl vfolder ...`: the server options and the subcommand.
#[derive(Debug, Args)]
pub struct VfolderArgs {
    /// Server and key.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: VfolderCommand,
}

/// `sessionctl vfolder ...`
#[derive(Debug, Subcommand)]
pub enum VfolderCommand {
    /// Create an empty folder.
    Create {
        /// 1-64 letters, digits, `.`, `_`, `-`, starting with a letter or digit.
        name: String,
        /// The volume (default: the server's default volume).
        #[arg(long)]
        host: Option<String>,
        /// What the folder is for (default: general).
        #[arg(long, value_parser = ["general", "model", "data"])]
        usage_mode: Option<String>,
        /// Read-only, read-write or read-write-delete (default: rw).
        #[arg(long, value_parser = ["ro", "rw", "wd"])]
        permission: Option<String>,
        /// Let other users clone it.
        #[arg(long)]
        cloneable: bool,
    },
    /// Your folders: NAME STATUS HOST PERMISSION.
    List,
    /// Clone a folder: the target is created at once (`cloning`) and filled by a
    /// background task; prints the task's id.
    Clone {
        /// The source folder.
        source: String,
        /// The new folder's name.
        target: String,
        /// The new folder's volume (default: the source's).
        #[arg(long)]
        host: Option<String>,
        /// The new folder's usage mode (default: general).
        #[arg(long, value_parser = ["general", "model", "data"])]
        usage_mode: Option<String>,
        /// The new folder's permission (default: rw).
        #[arg(long, value_parser = ["ro", "rw", "wd"])]
        permission: Option<String>,
        /// Let other users clone the new folder.
        #[arg(long)]
        cloneable: bool,
        /// Follow the copy with a progress bar until it ends, like `bgtask watch`
        /// (exit 1 if it fails or is cancelled).
        #[arg(long)]
        watch: bool,
    },
    /// Upload a local file (streamed) into a folder.
    Upload {
        /// The folder.
        name: String,
        /// The file to send.
        local: std::path::PathBuf,
        /// Its path in the folder, `/`-separated; parent directories are created
        /// (default: the local file's name).
        remote_path: Option<String>,
    },
    /// Download a file of a folder (streamed to a temporary name, renamed when complete).
    Download {
        /// The folder.
        name: String,
        /// The file's path in the folder.
        remote_path: String,
        /// Where to write it; an existing directory receives the file under its name
        /// (default: the file's name in the current directory).
        local: Option<std::path::PathBuf>,
    },
    /// Delete a folder: `delete-pending` at once, its files removed by a background
    /// task; prints the task's id.
    Rm {
        /// The folder.
        name: String,
        /// Follow the removal until it ends, like `bgtask watch`.
        #[arg(long)]
        watch: bool,
    },
}

/// `sessionctl bgtask ...`: the server options and the subcommand.
#[derive(Debug, Args)]
pub struct BgtaskArgs {
    /// Server and key.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: BgtaskCommand,
}

/// `sessionctl bgtask ...`
#[derive(Debug, Subcommand)]
pub enum BgtaskCommand {
    /// Follow a background task's progress stream (a progress bar in bytes on stderr)
    /// until it ends: exit 0 when done, 1 when failed or cancelled. A stream that breaks
    /// is reopened where it stopped (up to 5 times in a row, then exit 2).
    Watch {
        /// The task's id (`bgtask_id` of a clone or a deletion).
        id: String,
    },
}

/// `sessionctl webhooks ...`: the server options and the subcommand.
#[derive(Debug, Args)]
pub struct WebhooksArgs {
    /// Server and key.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: WebhooksCommand,
}

/// `sessionctl webhooks ...`
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Every subscription: ID ENABLED URL FILTER.
    List,
    /// A subscription's delivery log, oldest first: DELIVERY POSITION SESSION STATUS
    /// ATTEMPTS LAST.
    Deliveries {
        /// The subscription's id.
        id: String,
        /// Only deliveries in this status.
        #[arg(long, value_parser = ["pending", "failed", "delivered", "dead"])]
        status: Option<String>,
        /// Only deliveries of events after this position (a page's `--after`).
        #[arg(long)]
        after: Option<i64>,
        /// At most this many (1..=500, default 100).
        #[arg(long)]
        limit: Option<i64>,
    },
    /// Send a delivery again, with the same `webhook-id`.
    Redeliver {
        /// The subscription's id.
        id: String,
        /// The delivery's id.
        delivery: String,
    },
    /// Send a signed `webhook.test` message now: exit 0 when the endpoint answers 2xx.
    Test {
        /// The subscription's id.
        id: String,
    },
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
        /// A Backend.AI keypair instead of a bearer key: prints `access_key` and
        /// `secret_key` (the secret is stored sealed with the server's secret_key:
        /// `SESSIOND_SECRET_KEY`, or on SQLite the key file beside the store).
        #[arg(long)]
        keypair: bool,
        /// With --keypair: print both as JSON.
        #[arg(long, requires = "keypair")]
        json: bool,
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

/// `sessionctl store ...`
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy a whole store into an empty database (either backend): the event log with
    /// its positions, ids, sequences, payloads, metadata and times, the API keys
    /// (keypairs' secrets sealed as they are), webhook and callback secrets, session log
    /// tails, agent heartbeats, idempotency records and the webhook outbox; then rebuild
    /// the target's read models from the log and verify it (per-stream counts, head,
    /// tables, `audit verify`). Stop `sessiond serve` on the source first. Ignores
    /// `--database-url`.
    Copy(CopyArgs),
}

/// Arguments of `store copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The store to copy (`sqlite://PATH` or `postgres://...`); must exist.
    #[arg(long)]
    pub from: String,
    /// The database to copy into: blank, or a sessiond store without events or keys
    /// (it is migrated first).
    #[arg(long)]
    pub to: String,
    /// Events (and table rows) per transaction on the target.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub batch_size: i64,
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
    /// The server answered with an error (`{"error": {"code", "message"}}`).
    #[error("{code}: {message}")]
    Http { code: String, message: String },
    /// The server cannot be reached.
    #[error("cannot reach the server at {server} ({reason})")]
    Unreachable { server: String, reason: String },
    /// The connection to the server broke, or its answer made no sense.
    #[error("the connection to {server} failed: {reason}")]
    Broken { server: String, reason: String },
    /// Input that the argument parser cannot check (exit 2, like its own errors).
    #[error("{0}")]
    Usage(String),
    /// A watched background task ended without success.
    #[error("task {task_id} {status}: {message}")]
    TaskEnded {
        task_id: String,
        status: &'static str,
        message: String,
    },
    /// A webhook test message was not accepted by its endpoint.
    #[error("the test message was not delivered: {0}")]
    WebhookTest(String),
    /// A task stream kept ending without its final frame.
    #[error("lost the progress stream of task {task_id} from {server}: {reconnects} reconnections in a row brought no final frame (last: {last}); the task may still be running: `sessionctl bgtask watch {task_id}` follows it again")]
    StreamLost {
        task_id: String,
        server: String,
        reconnects: u32,
        last: String,
    },
}

impl CtlError {
    /// The process exit code of this failure (see [`EXIT_CODES`]).
    fn exit_code(&self) -> i32 {
        match self {
            CtlError::Usage(_)
            | CtlError::Unreachable { .. }
            | CtlError::Broken { .. }
            | CtlError::StreamLost { .. } => 2,
            _ => 1,
        }
    }
}

/// Runs `sessionctl`; returns the exit code (see [`EXIT_CODES`]).
pub async fn run(ctl: Ctl) -> i32 {
    match execute(ctl).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("sessionctl: {}", error_chain(&e));
            e.exit_code()
        }
    }
}

/// Runs a remote command against its server, or opens the store, runs one command on
/// it and closes it.
async fn execute(ctl: Ctl) -> Result<(), CtlError> {
    let command = match ctl.command {
        CtlCommand::Session(args) => return session::run(args).await,
        CtlCommand::Vfolder(args) => return vfolder::run(args).await,
        CtlCommand::Bgtask(args) => return bgtask::run(args).await,
        CtlCommand::Webhooks(args) => return webhooks::run(args).await,
        // Opens its own two stores (`--from`, `--to`), never `--database-url`.
        CtlCommand::Store(cmd) => return store::run(cmd).await,
        command => command,
    };
    let store = EventStore::open(&ctl.database_url, &StoreOptions::default())
        .await
        .map_err(|e| CtlError::Open(error_chain(&e)))?;
    let result = dispatch(&store, command, &ctl.database_url).await;
    store.close().await;
    result
}

/// Hands a command to its module.
async fn dispatch(
    store: &EventStore,
    command: CtlCommand,
    database_url: &str,
) -> Result<(), CtlError> {
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
        CtlCommand::Keys(cmd) => keys::run(store, cmd, database_url).await,
        CtlCommand::Store(cmd) => self::store::run(cmd).await,
        // Remote commands never use the store (`execute` runs them without opening it).
        CtlCommand::Session(args) => session::run(args).await,
        CtlCommand::Vfolder(args) => vfolder::run(args).await,
        CtlCommand::Bgtask(args) => bgtask::run(args).await,
        CtlCommand::Webhooks(args) => webhooks::run(args).await,
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

/// Writes a table: the header, then each row, columns padded to their widest cell (the
/// last column is not padded).
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let columns = header.len();
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([header.get(i).map_or(0, |h| h.len())])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&head).chain(rows.iter()) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i.saturating_add(1) == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths.get(i).copied().unwrap_or(0);
                line.push_str(&format!("{cell:<pad$}  "));
            }
        }
        out(line.trim_end());
    }
}
