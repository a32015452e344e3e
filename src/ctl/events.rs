//! `sessionctl events tail | export | import`: the global log in commit order.
//!
//! `tail` prints the last matching events and optionally follows new ones; `export`
//! writes every event as NDJSON (positions, ids, timestamps, metadata) and `import`
//! reads such an export back, both with a progress bar on stderr.

use indicatif::ProgressBar;
use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use super::{file_error, out, CtlError, EventsCommand};
use crate::store::{Db, EventStore, LogPosition, RecordedEvent};

/// Events read per query while scanning the whole log.
const SCAN_BATCH: i64 = 5000;
/// Events read per query while following the log.
const FOLLOW_BATCH: i64 = 1000;
/// How long `tail --follow` waits when it has caught up.
const FOLLOW_POLL: Duration = Duration::from_millis(500);

/// Runs one `events` subcommand.
pub(super) async fn run(store: &EventStore, cmd: EventsCommand) -> Result<(), CtlError> {
    match cmd {
        EventsCommand::Tail {
            follow,
            event_type,
            aggregate,
            limit,
        } => {
            let filter = Filter {
                event_type,
                aggregate,
            };
            tail(&store.db(), &filter, limit, follow).await
        }
        EventsCommand::Export { format, output } => export(store, &format, output.as_deref()).await,
        EventsCommand::Import { input, force } => import(store, input.as_deref(), force).await,
    }
}

/// Which events `tail` prints.
#[derive(Debug)]
struct Filter {
    /// Only this event type.
    event_type: Option<String>,
    /// Only this aggregate id.
    aggregate: Option<String>,
}

impl Filter {
    fn wants(&self, e: &RecordedEvent) -> bool {
        self.event_type.as_ref().is_none_or(|t| &e.event_type == t)
            && self.aggregate.as_ref().is_none_or(|a| &e.aggregate_id == a)
    }
}

/// `events tail`: the last `limit` matching events, then with `follow` every new
/// matching one until Ctrl-C.
async fn tail(db: &Db, filter: &Filter, limit: usize, follow: bool) -> Result<(), CtlError> {
    let (cursor, last) = last_matching(db, filter, limit).await?;
    for e in &last {
        out(&event_line(e));
    }
    if follow {
        follow_from(db, filter, cursor).await?;
    }
    Ok(())
}

/// Scans the whole log: the last `limit` events `filter` wants, in log order, and the
/// position after the end.
async fn last_matching(
    db: &Db,
    filter: &Filter,
    limit: usize,
) -> Result<(LogPosition, VecDeque<RecordedEvent>), CtlError> {
    let mut cursor = LogPosition::START;
    // Capacity from what is read, never from the argument alone (`--limit` may be
    // any number up to u64::MAX).
    let mut last = VecDeque::with_capacity(limit.min(usize::try_from(SCAN_BATCH).unwrap_or(0)));
    loop {
        let batch = db.read_log(cursor, SCAN_BATCH).await?;
        let Some(l) = batch.last() else { break };
        cursor = l.log_position();
        for e in batch.into_iter().filter(|e| filter.wants(e)) {
            if last.len() == limit {
                last.pop_front();
            }
            if limit > 0 {
                last.push_back(e);
            }
        }
    }
    Ok((cursor, last))
}

/// Prints every new event `filter` wants after `cursor`, polling, until Ctrl-C.
async fn follow_from(db: &Db, filter: &Filter, mut cursor: LogPosition) -> Result<(), CtlError> {
    loop {
        let batch = db.read_log(cursor, FOLLOW_BATCH).await?;
        match batch.last() {
            Some(l) => cursor = l.log_position(),
            None => {
                tokio::select! {
                    _ = tokio::time::sleep(FOLLOW_POLL) => {}
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
        }
        for e in batch.iter().filter(|e| filter.wants(e)) {
            out(&event_line(e));
        }
    }
    Ok(())
}

/// One event as a `tail` line: position, time, stream and sequence, type, actor.
fn event_line(e: &RecordedEvent) -> String {
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

/// `events export`: every event in log order, one JSON object a line, to `output` or
/// stdout.
async fn export(store: &EventStore, format: &str, output: Option<&Path>) -> Result<(), CtlError> {
    if format != "ndjson" {
        return Err(CtlError::Other(format!(
            "unsupported format '{format}' (only ndjson)"
        )));
    }
    let mut sink: Box<dyn Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|source| file_error(path, source))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let db = store.db();
    let total = store.count_events().await?;
    let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0));
    let mut cursor = LogPosition::START;
    loop {
        let batch = db.read_log(cursor, SCAN_BATCH).await?;
        let Some(l) = batch.last() else { break };
        cursor = l.log_position();
        for e in &batch {
            serde_json::to_writer(&mut sink, e).map_err(|e| CtlError::Other(e.to_string()))?;
            sink.write_all(b"\n")?;
        }
        bar.inc(batch.len() as u64);
    }
    sink.flush()?;
    bar.finish_and_clear();
    Ok(())
}

/// `events import`: an export from `input` or stdin, into an empty store unless
/// `force`.
async fn import(store: &EventStore, input: Option<&Path>, force: bool) -> Result<(), CtlError> {
    let existing = store.count_events().await?;
    if existing > 0 && !force {
        return Err(CtlError::Other(format!(
            "the store already has {existing} events; import into an empty store, or pass --force"
        )));
    }
    let reader: Box<dyn BufRead> = match input {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).map_err(|source| file_error(path, source))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin().lock())),
    };
    let bar = ProgressBar::new_spinner();
    let events = read_export(reader, &bar)?;
    store.import(&events).await?;
    bar.finish_and_clear();
    out(&format!("imported {} events", events.len()));
    Ok(())
}

/// Parses an NDJSON export (blank lines skipped), ticking `bar` once per event.
fn read_export(reader: impl BufRead, bar: &ProgressBar) -> Result<Vec<RecordedEvent>, CtlError> {
    let mut events = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let e: RecordedEvent = serde_json::from_str(&line).map_err(|e| {
            CtlError::Other(format!(
                "line {}: not an exported event: {e}",
                n.saturating_add(1)
            ))
        })?;
        events.push(e);
        bar.inc(1);
    }
    Ok(events)
}
