//! `sessionctl store copy --from URL --to URL`: moves a deployment to another database
//! (the embedded SQLite store to PostgreSQL, or back).
//!
//! 1. Looks before it opens: the source must be an existing sessiond store, the target
//!    a blank database or a sessiond store; then both are opened (pending migrations
//!    applied) and a target holding any event or any row of the copied tables is
//!    refused, its rows unchanged.
//! 2. Copies the state tables ([`store::copy::TABLES`]: keys, bootstrap record,
//!    revision, sealed secrets, log tails, heartbeats, idempotency records, the webhook
//!    outbox), then the whole log batch by batch through [`EventStore::import`] (the
//!    path `events import` takes), with a progress bar on stderr. No transaction spans
//!    more than one batch: an interrupted copy leaves a partial target, which the next
//!    attempt refuses (drop it and copy again: the copy is restartable, not resumable).
//! 3. Catches the target's projections up once, so its read models are rebuilt from the
//!    copied log (they are never copied).
//! 4. Verifies: per-stream event counts and highest positions, the log's head, the
//!    copied tables' row counts and the key revision equal the source's, and
//!    [`crate::audit::verify`] (what `audit verify` runs) finds nothing on the target.
//!    Any difference is printed and the exit is 1; otherwise one summary line.

use indicatif::{ProgressBar, ProgressStyle};
use projections::{Engine, EngineConfig};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{out, CopyArgs, CtlError, StoreCommand};
use crate::store::copy::{self, StreamSize};
use crate::store::{redact_url, EventStore, StoreOptions};
use crate::telemetry::error_chain;

/// At most this many differences are printed (then how many more there are).
const MAX_LISTED: usize = 50;

/// Runs one `store` subcommand (it opens its own stores, not `--database-url`).
pub(super) async fn run(cmd: StoreCommand) -> Result<(), CtlError> {
    match cmd {
        StoreCommand::Copy(args) => copy_store(&args).await,
    }
}

/// Which end of a copy.
#[derive(Debug, Clone, Copy)]
enum End {
    Source,
    Target,
}

impl End {
    fn name(self) -> &'static str {
        match self {
            End::Source => "source",
            End::Target => "target",
        }
    }
}

/// `store copy`: look, open, refuse a non-empty target, copy, catch up, verify.
async fn copy_store(args: &CopyArgs) -> Result<(), CtlError> {
    let started = Instant::now();
    if args.from == args.to {
        return Err(CtlError::Usage(
            "--from and --to name the same database".into(),
        ));
    }
    look(End::Source, &args.from).await?;
    look(End::Target, &args.to).await?;
    let source = open(End::Source, &args.from).await?;
    let target = match open(End::Target, &args.to).await {
        Ok(t) => t,
        Err(e) => {
            source.close().await;
            return Err(e);
        }
    };
    let result = copy_open(&source, &target, args, started).await;
    source.close().await;
    target.close().await;
    result
}

/// Refuses, before anything is opened (so before any migration or file is created), a
/// source that is not a sessiond store and a target that holds other tables.
async fn look(end: End, url: &str) -> Result<(), CtlError> {
    let tables = copy::tables(url)
        .await
        .map_err(|e| cannot_open(end, url, &e))?;
    let has_events = tables
        .as_ref()
        .is_some_and(|t| t.iter().any(|n| n == "events"));
    match (end, tables) {
        (End::Source, None) => Err(CtlError::Other(format!(
            "cannot open the source store {}: the file does not exist",
            redact_url(url)
        ))),
        (End::Source, Some(_)) if !has_events => Err(CtlError::Other(format!(
            "the source {} is not a sessiond store (it has no events table)",
            redact_url(url)
        ))),
        (End::Target, Some(t)) if !t.is_empty() && !has_events => Err(CtlError::Other(format!(
            "the target {} holds {} table(s) that are not a sessiond store ({}); copy into an empty database; nothing was changed",
            redact_url(url),
            t.len(),
            t.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        ))),
        _ => Ok(()),
    }
}

/// Opens one end as a store (pending migrations applied).
async fn open(end: End, url: &str) -> Result<EventStore, CtlError> {
    EventStore::open(url, &StoreOptions::default())
        .await
        .map_err(|e| cannot_open(end, url, &e))
}

fn cannot_open(end: End, url: &str, e: &crate::store::StoreError) -> CtlError {
    CtlError::Other(format!(
        "cannot open the {} store {}: {}",
        end.name(),
        redact_url(url),
        error_chain(e)
    ))
}

/// The copy between two open stores.
async fn copy_open(
    source: &EventStore,
    target: &EventStore,
    args: &CopyArgs,
    started: Instant,
) -> Result<(), CtlError> {
    let held = copy::non_empty(target).await?;
    if !held.is_empty() {
        let what: Vec<String> = held.iter().map(|(t, n)| format!("{t}: {n}")).collect();
        return Err(CtlError::Other(format!(
            "the target {} is not empty ({}); nothing was changed. Copy into a new, empty database; if an earlier copy was interrupted, drop and re-create the target database (or delete its SQLite file) and copy again",
            redact_url(&args.to),
            what.join(", ")
        )));
    }
    let (sdb, tdb) = (source.db(), target.db());
    if let Some(u) = copy::unfinished(&sdb).await? {
        return Err(CtlError::Other(format!(
            "the source {} is an unfinished copy of {} (started {}): it may hold only part of a log; nothing was changed. Copy from the original store",
            redact_url(&args.from),
            u.source,
            u.started_at
        )));
    }
    // Until the copy is verified the target is marked: `sessiond serve` refuses a store
    // that holds part of a log (an interrupted copy), and a copy into it is refused.
    copy::mark_started(&tdb, &args.from).await?;

    let rows = copy::copy_state(&sdb, &tdb, args.batch_size).await?;
    let total = source.count_events().await?;
    let bar = progress_bar(
        u64::try_from(total).unwrap_or(0),
        "copy   [{bar:40}] {pos}/{len} events  {per_sec}  ETA {eta}",
    );
    let events_started = Instant::now();
    let events = copy::copy_events(source, target, args.batch_size, |n| {
        if n > bar.length().unwrap_or(0) {
            bar.set_length(n);
        }
        bar.set_position(n);
    })
    .await?;
    bar.finish_and_clear();
    let copy_secs = events_started.elapsed().as_secs_f64();

    wait_readable(target).await?;
    catch_up(target).await?;

    let differences = compare(source, target).await?;
    let audit_bar = progress_bar(
        events,
        "verify [{bar:40}] {pos}/{len} events  {per_sec}  ETA {eta}",
    );
    let report = crate::audit::verify(target, |n| audit_bar.set_position(n)).await?;
    audit_bar.finish_and_clear();
    let mut problems = differences;
    problems.extend(
        report
            .findings
            .iter()
            .map(|f| format!("audit {} {}: {}", f.check, f.subject, f.detail)),
    );
    if !problems.is_empty() {
        for p in problems.iter().take(MAX_LISTED) {
            out(p);
        }
        if problems.len() > MAX_LISTED {
            out(&format!(
                "... and {} more",
                problems.len().saturating_sub(MAX_LISTED)
            ));
        }
        return Err(CtlError::Other(format!(
            "the copy in {} does not match its source: {} difference(s) (listed on stdout); drop the target and copy again",
            redact_url(&args.to),
            problems.len()
        )));
    }
    copy::mark_finished(&tdb).await?;
    let sealed = crate::store::keys::has_keypairs(&sdb).await?
        || rows.get("webhook_secrets").is_some_and(|n| *n > 0)
        || rows.get("callback_secrets").is_some_and(|n| *n > 0);
    let secs = started.elapsed().as_secs_f64();
    let keys = rows.get("api_keys").copied().unwrap_or(0);
    let other: u64 = rows
        .iter()
        .filter(|(t, _)| **t != "api_keys")
        .map(|(_, n)| *n)
        .sum();
    out(&format!(
        "copied {events} events in {} streams, {keys} keys and {other} other rows to {} in {secs:.2}s (log: {:.0} events/s); verified: streams, head, tables, audit clean",
        report.streams,
        redact_url(&args.to),
        events as f64 / copy_secs.max(1e-9)
    ));
    secret_key_note(&args.from, &args.to, sealed)?;
    Ok(())
}

/// A progress bar on stderr with `template` (plain when the template does not parse).
fn progress_bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// How long the copy waits for older transactions on the target's server to end.
const READABLE_WITHIN: Duration = Duration::from_secs(600);

/// Waits until the commit-order reader of the target returns the whole copied log: on
/// PostgreSQL it returns a row only once every older transaction of the server (of any
/// database) has ended, and the projections must not stop short of the end.
async fn wait_readable(target: &EventStore) -> Result<(), CtlError> {
    let db = target.db();
    let last = copy::last_written(&db).await?;
    let since = Instant::now();
    let spinner = ProgressBar::new_spinner();
    loop {
        if db.readable_head().await? >= last {
            spinner.finish_and_clear();
            return Ok(());
        }
        if since.elapsed() > READABLE_WITHIN {
            spinner.finish_and_clear();
            return Err(CtlError::Other(format!(
                "the copied log is not readable after {}s: a transaction older than the copy is still open on the target's server (see pg_stat_activity); end it, then drop the target and copy again",
                READABLE_WITHIN.as_secs()
            )));
        }
        spinner.set_message("waiting for older transactions on the target's server to end");
        spinner.tick();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs every projection of the target once up to the end of the copied log.
async fn catch_up(target: &EventStore) -> Result<(), CtlError> {
    let engine = Engine::new(
        target.db(),
        projections::models::all(),
        EngineConfig::default(),
    );
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(200));
    for p in engine.projections() {
        spinner.set_message(format!("rebuilding read model {}", p.name()));
        engine.catch_up(p.as_ref()).await?;
    }
    spinner.finish_and_clear();
    Ok(())
}

/// What differs between source and target: streams (events, highest position), the
/// log's head, row counts of the copied tables, the key revision.
async fn compare(source: &EventStore, target: &EventStore) -> Result<Vec<String>, CtlError> {
    let (sdb, tdb) = (source.db(), target.db());
    let mut diffs = stream_differences(
        &copy::stream_sizes(&sdb).await?,
        &copy::stream_sizes(&tdb).await?,
    );
    let (shead, thead) = (sdb.head().await?, tdb.head().await?);
    if shead != thead {
        diffs.push(format!(
            "head: source max position {shead:?}, target {thead:?}"
        ));
    }
    let (srows, trows) = (copy::row_counts(&sdb).await?, copy::row_counts(&tdb).await?);
    for (table, n) in &srows {
        let m = trows.get(table).copied().unwrap_or(0);
        // The outbox is written by a projection too: the target's may have caught up
        // further than the source's had (a delivery per status change it had not
        // reached), never less.
        let short = if *table == "webhook_deliveries" {
            m < *n
        } else {
            m != *n
        };
        if short {
            diffs.push(format!("table {table}: source {n} rows, target {m}"));
        }
    }
    let (srev, trev) = (
        crate::store::keys::revision(&sdb).await?,
        crate::store::keys::revision(&tdb).await?,
    );
    if srev != trev {
        diffs.push(format!("key revision: source {srev}, target {trev}"));
    }
    Ok(diffs)
}

/// Streams missing from the target, extra in it, or of another size.
fn stream_differences(
    source: &BTreeMap<(String, String), StreamSize>,
    target: &BTreeMap<(String, String), StreamSize>,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for ((t, id), s) in source {
        match target.get(&(t.clone(), id.clone())) {
            None => diffs.push(format!(
                "stream {t} {id}: {} events in the source, missing in the target",
                s.events
            )),
            Some(d) if d != s => diffs.push(format!(
                "stream {t} {id}: source {} events up to position {}, target {} up to {}",
                s.events, s.max_position, d.events, d.max_position
            )),
            Some(_) => {}
        }
    }
    for ((t, id), d) in target {
        if !source.contains_key(&(t.clone(), id.clone())) {
            diffs.push(format!(
                "stream {t} {id}: {} events in the target, not in the source",
                d.events
            ));
        }
    }
    diffs
}

/// Keypair and webhook secrets are copied sealed with the source's key-encryption key.
/// An SQLite source keeps it in a file beside the store: copied beside an SQLite
/// target that has none; for a PostgreSQL target the operator is told to set it. A
/// PostgreSQL source's key is the operator's `SESSIOND_SECRET_KEY`: they are told to
/// keep it when there are `sealed` secrets.
fn secret_key_note(from: &str, to: &str, sealed: bool) -> Result<(), CtlError> {
    let Some(key_file) = crate::compat::kek::key_file_of(from).filter(|p| p.exists()) else {
        if sealed {
            out("note: keypair and webhook secrets were copied sealed: start the target with the source's SESSIOND_SECRET_KEY");
        }
        return Ok(());
    };
    match crate::compat::kek::key_file_of(to) {
        Some(target_file) if target_file.exists() => out(&format!(
            "note: {} already exists; sealed secrets were sealed with {}: keep the same key (SESSIOND_SECRET_KEY) for the target",
            target_file.display(),
            key_file.display()
        )),
        Some(target_file) => {
            copy_key_file(&key_file, &target_file)?;
            out(&format!(
                "copied the key-encryption key {} to {}",
                key_file.display(),
                target_file.display()
            ));
        }
        None => out(&format!(
            "note: keypair and webhook secrets are sealed with the key in {}: start the target with SESSIOND_SECRET_KEY=\"$(cat {})\"",
            key_file.display(),
            key_file.display()
        )),
    }
    Ok(())
}

/// Copies the key file, readable by its owner only (0600).
fn copy_key_file(from: &std::path::Path, to: &std::path::Path) -> Result<(), CtlError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = std::fs::read(from).map_err(|source| super::file_error(from, source))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|source| super::file_error(to, source))?;
    file.write_all(&text)
        .map_err(|source| super::file_error(to, source))?;
    Ok(())
}
