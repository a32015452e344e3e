//! `sessionctl`: operator tooling that talks to the store directly.
//!
//! Output for people goes to stdout; progress bars and errors go to stderr. Every
//! failure is one line on stderr and a non-zero exit, never a panic.

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use projections::engine::{rebuild, reset, status_of};
use projections::{Engine, EngineConfig, Projection};
use std::sync::Arc;
use std::time::Duration;

use crate::config::DEFAULT_DATABASE_URL;
use crate::store::{EventStore, StoreOptions};
use crate::telemetry::error_chain;

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
    /// Events per transaction.
    #[arg(long, default_value_t = 2000)]
    pub batch_size: i64,
}

/// A one-line failure.
#[derive(Debug, thiserror::Error)]
enum CtlError {
    #[error("cannot open the store: {0}")]
    Open(String),
    #[error(transparent)]
    Projection(#[from] projections::ProjectionError),
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

async fn execute(ctl: Ctl) -> Result<(), CtlError> {
    let store = EventStore::open(&ctl.database_url, &StoreOptions::default())
        .await
        .map_err(|e| CtlError::Open(error_chain(&e)))?;
    let engine = Engine::new(
        store.db(),
        projections::models::all(),
        EngineConfig::default(),
    );
    let result = match ctl.command {
        CtlCommand::Projections(cmd) => projections_command(&store, &engine, cmd).await,
        CtlCommand::History { session_id, json } => history(&store, &session_id, json).await,
        CtlCommand::Replay {
            aggregate_type,
            id,
            at,
            to_sequence,
        } => replay(&store, &aggregate_type, &id, at.as_deref(), to_sequence).await,
        CtlCommand::Audit(AuditCommand::Verify { json }) => audit_verify(&store, json).await,
        CtlCommand::Events(cmd) => events_command(&store, cmd).await,
        CtlCommand::Keys(cmd) => keys_command(&store, cmd).await,
    };
    store.close().await;
    result
}

async fn projections_command(
    store: &EventStore,
    engine: &Engine,
    cmd: ProjectionsCommand,
) -> Result<(), CtlError> {
    let db = store.db();
    match cmd {
        ProjectionsCommand::Status { json } => {
            let statuses = engine.status().await?;
            if json {
                let text = serde_json::to_string_pretty(&statuses)
                    .map_err(|e| CtlError::Other(e.to_string()))?;
                out(&text);
            } else {
                out(&format!(
                    "{:<16} {:>10} {:>4} {:>10} {:>9}  {:<32} last error",
                    "projection", "position", "gen", "lag", "lag (s)", "updated"
                ));
                for s in statuses {
                    out(&format!(
                        "{:<16} {:>10} {:>4} {:>10} {:>9.1}  {:<32} {}",
                        s.name,
                        s.position,
                        s.generation,
                        s.lag_events,
                        s.lag_seconds,
                        s.updated_at,
                        s.last_error.as_deref().unwrap_or("-")
                    ));
                }
            }
        }
        ProjectionsCommand::Rebuild(args) => {
            let targets: Vec<Arc<dyn Projection>> = match (&args.name, args.all) {
                (_, true) => projections::models::all(),
                (Some(name), false) => vec![engine.projection(name)?],
                (None, false) => {
                    return Err(CtlError::Other("name a projection or pass --all".into()))
                }
            };
            let (total, _) = db.lag_after(projections::LogPosition::START).await?;
            for p in targets {
                let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>16} [{bar:40}] {pos}/{len} events  {per_sec}  ETA {eta}",
                    )
                    .map_err(|e| CtlError::Other(e.to_string()))?
                    .progress_chars("=> "),
                );
                bar.set_prefix(p.name());
                bar.enable_steady_tick(Duration::from_millis(200));
                let replayed = rebuild(&db, p.as_ref(), args.batch_size, |pr| {
                    if pr.replayed > bar.length().unwrap_or(0) {
                        bar.set_length(pr.replayed);
                    }
                    bar.set_position(pr.replayed);
                })
                .await?;
                bar.finish();
                let elapsed = bar.elapsed().as_secs_f64().max(1e-9);
                out(&format!(
                    "{}: rebuilt from {replayed} events in {elapsed:.2}s ({:.0} events/s); swapped in",
                    p.name(),
                    replayed as f64 / elapsed
                ));
            }
        }
        ProjectionsCommand::Reset { name } => {
            let p = engine.projection(&name)?;
            reset(&db, p.as_ref()).await?;
            let s = status_of(&db, &name).await?;
            out(&format!(
                "{name}: reset; {} events to replay (a running sessiond catches it up)",
                s.lag_events
            ));
        }
    }
    Ok(())
}

/// Parses a session id, or explains what is wrong with it.
fn session_uuid(id: &str) -> Result<uuid::Uuid, CtlError> {
    uuid::Uuid::parse_str(id)
        .map_err(|_| CtlError::Other(format!("'{id}' is not a session id (expected a UUID)")))
}

/// One line of a session's timeline.
#[derive(Debug, serde::Serialize)]
struct HistoryEntry {
    sequence: i64,
    position: i64,
    event_type: String,
    occurred_at: String,
    recorded_at: String,
    actor: String,
    from: Option<String>,
    to: Option<String>,
    reason: Option<String>,
    failed_predicates: Vec<String>,
}

async fn history(store: &EventStore, id: &str, json: bool) -> Result<(), CtlError> {
    use domain::session::{Session, SessionEvent};
    use domain::Decider;
    session_uuid(id)?;
    let stream = store.read_stream("Session", id).await?;
    if stream.is_empty() {
        return Err(CtlError::Other(format!("no session {id}")));
    }
    let mut state = Session::default();
    let mut entries = Vec::new();
    for e in &stream {
        let ev: SessionEvent = e.decode()?;
        let from = state.status;
        state.evolve(&ev);
        let failed = match &ev {
            SessionEvent::SessionSchedulingFailed {
                failed_predicates, ..
            } => failed_predicates
                .iter()
                .map(|p| format!("{}: {}", p.name, p.msg))
                .collect(),
            _ => vec![],
        };
        entries.push(HistoryEntry {
            sequence: e.sequence,
            position: e.global_position,
            event_type: e.event_type.clone(),
            occurred_at: ev
                .occurred_at()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            recorded_at: e
                .recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            actor: e.actor().to_string(),
            from: ev.target_status().and(from).map(|s| s.as_str().to_string()),
            to: ev.target_status().map(|s| s.as_str().to_string()),
            reason: ev.status_info(),
            failed_predicates: failed,
        });
    }
    if json {
        out(&serde_json::to_string_pretty(&entries).map_err(|e| CtlError::Other(e.to_string()))?);
        return Ok(());
    }
    out(&format!(
        "{:<24}  {:<27}  {:<28}  {:<22}  {}",
        "time", "status", "event", "reason", "actor"
    ));
    for h in entries {
        let change = match (&h.from, &h.to) {
            (Some(f), Some(t)) => format!("{f} -> {t}"),
            (None, Some(t)) => t.clone(),
            _ => "(stays PENDING)".to_string(),
        };
        out(&format!(
            "{:<24}  {:<27}  {:<28}  {:<22}  {}",
            h.occurred_at,
            change,
            h.event_type,
            h.reason.as_deref().unwrap_or("-"),
            h.actor
        ));
        for p in &h.failed_predicates {
            out(&format!("{:<24}    predicate failed: {p}", ""));
        }
    }
    Ok(())
}

async fn replay(
    store: &EventStore,
    aggregate_type: &str,
    id: &str,
    at: Option<&str>,
    to_sequence: Option<i64>,
) -> Result<(), CtlError> {
    use domain::Decider;
    let at = at
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.with_timezone(&chrono::Utc))
                .map_err(|_| CtlError::Other(format!("--at '{t}' is not an RFC 3339 time")))
        })
        .transpose()?;
    fn fold<A: Decider>(
        events: &[projections::RecordedEvent],
        at: Option<chrono::DateTime<chrono::Utc>>,
        to_sequence: Option<i64>,
    ) -> Result<serde_json::Value, CtlError> {
        let state: A = fold_stream(events, at, to_sequence)?;
        serde_json::to_value(&state).map_err(|e| CtlError::Other(e.to_string()))
    }
    let (stored_type, kind) = match aggregate_type {
        "session" | "Session" => ("Session", 0),
        "scaling-group" | "ScalingGroup" => ("ScalingGroup", 1),
        "agent" | "Agent" => ("Agent", 2),
        "resource-policy" | "ResourcePolicy" => ("ResourcePolicy", 3),
        other => {
            return Err(CtlError::Other(format!(
                "unknown aggregate type '{other}' (expected session, scaling-group, agent or resource-policy)"
            )))
        }
    };
    if kind == 0 {
        session_uuid(id)?;
    }
    let events = store.read_stream(stored_type, id).await?;
    if events.is_empty() {
        return Err(CtlError::Other(format!("no {aggregate_type} '{id}'")));
    }
    let state = match kind {
        0 => fold::<domain::session::Session>(&events, at, to_sequence)?,
        1 => fold::<domain::scaling_group::ScalingGroup>(&events, at, to_sequence)?,
        2 => fold::<domain::agent::Agent>(&events, at, to_sequence)?,
        _ => fold::<domain::policy::ResourcePolicy>(&events, at, to_sequence)?,
    };
    out(&serde_json::to_string_pretty(&state).map_err(|e| CtlError::Other(e.to_string()))?);
    Ok(())
}

/// Folds a stream with the domain's own `evolve` up to a point: the events up to and
/// including sequence `to_sequence`, and only those whose domain time (`occurred_at`,
/// else the store's `recorded_at`) is at or before `at`. Used by `sessionctl replay`
/// and by `GET /v1/sessions/{id}?at=`.
pub fn fold_stream<A: domain::Decider>(
    events: &[projections::RecordedEvent],
    at: Option<chrono::DateTime<chrono::Utc>>,
    to_sequence: Option<i64>,
) -> Result<A, projections::ProjectionError> {
    let mut state = A::default();
    for e in events {
        if to_sequence.is_some_and(|n| e.sequence > n) {
            break;
        }
        if let Some(at) = at {
            let occurred = projections::models::audit_log::occurred_at(&e.payload)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map(|d| d.with_timezone(&chrono::Utc))
                .unwrap_or(e.recorded_at);
            if occurred > at {
                break;
            }
        }
        let ev: A::Event = e.decode()?;
        state.evolve(&ev);
    }
    Ok(state)
}

async fn audit_verify(store: &EventStore, json: bool) -> Result<(), CtlError> {
    let total = store.count_events().await?;
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0));
    if let Ok(style) =
        ProgressStyle::with_template("verify [{bar:40}] {pos}/{len} events  {per_sec}  ETA {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let report = crate::audit::verify(store, |n| bar.set_position(n)).await?;
    bar.finish_and_clear();
    if json {
        out(&serde_json::to_string_pretty(&report).map_err(|e| CtlError::Other(e.to_string()))?);
    } else {
        for f in &report.findings {
            out(&format!("{:<10} {:<48} {}", f.check, f.subject, f.detail));
        }
        out(&format!(
            "{} events in {} streams; read models compared: {}; {} problem(s)",
            report.events,
            report.streams,
            report.read_models.join(", "),
            report.findings.len()
        ));
    }
    if report.findings.is_empty() {
        Ok(())
    } else {
        Err(CtlError::Findings(report.findings.len()))
    }
}

fn event_line(e: &projections::RecordedEvent) -> String {
    format!(
        "{:>10}  {}  {} {} #{}  {}  {}",
        e.global_position,
        e.recorded_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        e.aggregate_type,
        e.aggregate_id,
        e.sequence,
        e.event_type,
        e.actor()
    )
}

async fn events_command(store: &EventStore, cmd: EventsCommand) -> Result<(), CtlError> {
    use std::io::{BufRead, Write};
    let db = store.db();
    match cmd {
        EventsCommand::Tail {
            follow,
            event_type,
            aggregate,
            limit,
        } => {
            let wanted = |e: &projections::RecordedEvent| {
                event_type.as_ref().is_none_or(|t| &e.event_type == t)
                    && aggregate.as_ref().is_none_or(|a| &e.aggregate_id == a)
            };
            let mut cursor = projections::LogPosition::START;
            let mut last = std::collections::VecDeque::with_capacity(limit);
            loop {
                let batch = db.read_log(cursor, 5000).await?;
                let Some(l) = batch.last() else { break };
                cursor = l.log_position();
                for e in batch.into_iter().filter(|e| wanted(e)) {
                    if last.len() == limit {
                        last.pop_front();
                    }
                    if limit > 0 {
                        last.push_back(e);
                    }
                }
            }
            for e in &last {
                out(&event_line(e));
            }
            if follow {
                loop {
                    let batch = db.read_log(cursor, 1000).await?;
                    match batch.last() {
                        Some(l) => cursor = l.log_position(),
                        None => {
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                                _ = tokio::signal::ctrl_c() => break,
                            }
                        }
                    }
                    for e in batch.iter().filter(|e| wanted(e)) {
                        out(&event_line(e));
                    }
                }
            }
        }
        EventsCommand::Export { format, output } => {
            if format != "ndjson" {
                return Err(CtlError::Other(format!(
                    "unsupported format '{format}' (only ndjson)"
                )));
            }
            let mut sink: Box<dyn Write> = match output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(&path).map_err(|source| file_error(&path, source))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let total = store.count_events().await?;
            let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0));
            let mut cursor = projections::LogPosition::START;
            loop {
                let batch = db.read_log(cursor, 5000).await?;
                let Some(l) = batch.last() else { break };
                cursor = l.log_position();
                for e in &batch {
                    serde_json::to_writer(&mut sink, e)
                        .map_err(|e| CtlError::Other(e.to_string()))?;
                    sink.write_all(b"\n")?;
                }
                bar.inc(batch.len() as u64);
            }
            sink.flush()?;
            bar.finish_and_clear();
        }
        EventsCommand::Import { input, force } => {
            let existing = store.count_events().await?;
            if existing > 0 && !force {
                return Err(CtlError::Other(format!(
                    "the store already has {existing} events; import into an empty store, or pass --force"
                )));
            }
            let reader: Box<dyn BufRead> = match input {
                Some(path) => Box::new(std::io::BufReader::new(
                    std::fs::File::open(&path).map_err(|source| file_error(&path, source))?,
                )),
                None => Box::new(std::io::BufReader::new(std::io::stdin().lock())),
            };
            let bar = ProgressBar::new_spinner();
            let mut events = Vec::new();
            for (n, line) in reader.lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let e: projections::RecordedEvent = serde_json::from_str(&line).map_err(|e| {
                    CtlError::Other(format!(
                        "line {}: not an exported event: {e}",
                        n.saturating_add(1)
                    ))
                })?;
                events.push(e);
                bar.inc(1);
            }
            store.import(&events).await?;
            bar.finish_and_clear();
            out(&format!("imported {} events", events.len()));
        }
    }
    Ok(())
}

async fn keys_command(store: &EventStore, cmd: KeysCommand) -> Result<(), CtlError> {
    use crate::auth::{create_key, list_keys, revoke_key, Role};
    let db = store.db();
    match cmd {
        KeysCommand::Create {
            role,
            owner,
            agent_id,
            description,
        } => {
            let role = match (role, owner, agent_id) {
                (KeyRole::Admin, None, None) => Role::Admin,
                (KeyRole::User, Some(owner), None) => Role::User { owner },
                (KeyRole::Agent, None, Some(agent_id)) => Role::Agent { agent_id },
                (KeyRole::Admin, _, _) => {
                    return Err(CtlError::Other(
                        "an admin key takes neither --owner nor --agent-id".into(),
                    ))
                }
                (KeyRole::User, _, _) => {
                    return Err(CtlError::Other(
                        "a user key takes --owner (and no --agent-id)".into(),
                    ))
                }
                (KeyRole::Agent, _, _) => {
                    return Err(CtlError::Other(
                        "an agent key takes --agent-id (and no --owner)".into(),
                    ))
                }
            };
            let (info, secret) = create_key(&db, role, &description).await?;
            eprintln!(
                "created {} ({}); the key is printed once and only its hash is stored",
                info.id,
                describe_role(&info.role)
            );
            out(secret.expose());
        }
        KeysCommand::List { json } => {
            let keys = list_keys(&db).await?;
            if json {
                out(&serde_json::to_string_pretty(&keys)
                    .map_err(|e| CtlError::Other(e.to_string()))?);
            } else {
                out(&format!(
                    "{:<21} {:<22} {:<25} {:<25} description",
                    "id", "role", "created", "revoked"
                ));
                for k in keys {
                    out(&format!(
                        "{:<21} {:<22} {:<25} {:<25} {}",
                        k.id,
                        describe_role(&k.role),
                        k.created_at,
                        k.revoked_at.as_deref().unwrap_or("-"),
                        k.description
                    ));
                }
            }
        }
        KeysCommand::Revoke { id } => {
            revoke_key(&db, &id).await?;
            out(&format!("revoked {id}"));
        }
    }
    Ok(())
}

fn describe_role(role: &crate::auth::Role) -> String {
    use crate::auth::Role;
    match role {
        Role::Admin => "admin".into(),
        Role::User { owner } => format!("user ({owner})"),
        Role::Agent { agent_id } => format!("agent ({agent_id})"),
    }
}

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
