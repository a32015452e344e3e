//! `sessionctl` replay and audit tooling driven as the real binary against real PostgreSQL
//! and SQLite stores (SPEC §6): `audit verify` on a sound store and on stores tampered
//! with by raw SQL, `events export` / `events import` across backends, `history`,
//! `replay` as of a sequence or a time, `events tail`, and one-line errors on bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::arithmetic_side_effects)]

// The projection suite's mixed workload; this suite uses part of it.
#[allow(dead_code)]
use chrono::{DateTime, SecondsFormat, Utc};
use domain::agent::Agent;
use domain::scaling_group::ScalingGroup;
use domain::session::{Session, SessionCommand, SessionEvent};
use domain::Decider;
use projections::engine::read_checkpoint;
use projections::models::documents;
use projections::{Engine, EngineConfig, LogPosition, RecordedEvent};
use serde_json::{json, Value};
use sessiond::command::CommandHandler;
use sessiond::store::{EventStore, StoreOptions};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::db::{fresh_url, read_until, Backend};
use testkit::world::World;
use uuid::Uuid;

const BOTH: [Backend; 2] = [Backend::Postgres, Backend::Sqlite];

/// The read models `audit verify` compares, in the order it reports them.
const READ_MODELS: &str =
    "sessions, scaling_groups, agent_occupancy, pending_queue, audit_log, slot_releases, vfolders, background_tasks, webhooks, webhook_outbox";

/// Runs `sessionctl --database-url <url> <args>`: (exit code, stdout, stderr). Backtraces
/// are switched on, so a panic could not hide behind a one-line message.
fn sessionctl(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sessionctl"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env_remove("SESSIOND_DATABASE_URL")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn options() -> StoreOptions {
    StoreOptions {
        max_connections: 4,
        ..StoreOptions::default()
    }
}

async fn open(url: &str) -> EventStore {
    EventStore::open(url, &options()).await.unwrap()
}

/// A fresh store of `backend` holding the projection suite's mixed workload: three
/// scaling groups (one's `scheduler_opts` changed while sessions wait), four agents with
/// allocations (one lost), twenty sessions PENDING (some with scheduling failures),
/// SCHEDULED, RUNNING, TERMINATED, CANCELLED and ERROR. Returns once every event is
/// readable from the global log.
async fn workload(backend: Backend) -> (String, World) {
    let url = fresh_url(backend).await;
    let w = testkit::world::mixed(open(&url).await).await;
    w.full_log().await;
    (url, w)
}

/// The global log of `store`, waiting (PostgreSQL's readable horizon can lag behind for
/// a moment while other tests hold transactions open) until it holds `want` events.
async fn log_of(store: &EventStore, want: usize) -> Vec<RecordedEvent> {
    let mut cursor = LogPosition::START;
    let log = read_until(store, &mut cursor, want, 1000).await;
    assert_eq!(log.len(), want, "every event is readable");
    log
}

/// Catches every projection up until each has applied `target`.
async fn catch_up(store: &EventStore, target: LogPosition) {
    let db = store.db();
    let engine = Engine::new(
        db.clone(),
        projections::models::all(),
        EngineConfig::default(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        engine.catch_up_all().await.unwrap();
        let mut behind = false;
        for name in engine.names() {
            if read_checkpoint(&db, name).await.unwrap().position < target {
                behind = true;
            }
        }
        if !behind {
            return;
        }
        assert!(Instant::now() < deadline, "the projections never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn stream_count(log: &[RecordedEvent]) -> usize {
    log.iter()
        .map(|e| (&e.aggregate_type, &e.aggregate_id))
        .collect::<BTreeSet<_>>()
        .len()
}

/// The last line `audit verify` prints (for a store without snapshots).
fn summary(events: usize, streams: usize, problems: usize) -> String {
    summary_with(events, streams, 0, problems)
}

/// The last line `audit verify` prints, with `snapshots` snapshots compared.
fn summary_with(events: usize, streams: usize, snapshots: u64, problems: usize) -> String {
    format!(
        "{events} events in {streams} streams; read models compared: {READ_MODELS}; snapshots compared: {snapshots}; {problems} problem(s)"
    )
}

/// A finding: (check, subject, detail).
type Finding = (String, String, String);

/// `audit verify` as a table and as `--json`: (exit code, table stdout, stderr, report).
/// Both runs agree on the exit code, and the table lists exactly the JSON's findings.
fn audit(url: &str) -> (i32, String, String, Value) {
    let (code, out, err) = sessionctl(url, &["audit", "verify"]);
    let (json_code, json_out, json_err) = sessionctl(url, &["audit", "verify", "--json"]);
    assert_eq!(code, json_code, "{err}\n{json_err}");
    let report: Value = serde_json::from_str(&json_out)
        .unwrap_or_else(|e| panic!("--json prints JSON ({e}): {json_out}{json_err}"));
    let table: Vec<&str> = out.lines().collect();
    let findings = findings(&report);
    assert_eq!(
        table.len(),
        findings.len() + 1,
        "one line per finding and a summary: {out}"
    );
    for ((check, subject, detail), line) in findings.iter().zip(&table) {
        assert!(
            line.starts_with(check.as_str())
                && line.contains(subject.as_str())
                && line.ends_with(detail.as_str()),
            "table line {line:?} shows ({check}, {subject}, {detail})"
        );
    }
    (code, out, err, report)
}

fn findings(report: &Value) -> Vec<Finding> {
    report["findings"]
        .as_array()
        .expect("findings is an array")
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["subject"].as_str().unwrap().to_string(),
                f["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn finding(check: &str, subject: impl Into<String>, detail: impl Into<String>) -> Finding {
    (check.to_string(), subject.into(), detail.into())
}

/// Asserts `audit verify` failed with exactly `problems` findings: exit 1, the summary
/// line, and the one-line error on stderr.
fn assert_audit_failed(
    backend: Backend,
    (code, out, err, report): &(i32, String, String, Value),
    events: usize,
    streams: usize,
) {
    let problems = findings(report).len();
    assert!(problems > 0);
    assert_eq!(*code, 1, "{backend:?}: {out}{err}");
    assert_eq!(
        out.lines().last(),
        Some(
            summary_with(
                events,
                streams,
                report["snapshots"].as_u64().unwrap(),
                problems
            )
            .as_str()
        ),
        "{backend:?}"
    );
    assert_eq!(
        err.as_str(),
        format!("sessionctl: audit found {problems} problem(s)\n"),
        "{backend:?}"
    );
    assert_eq!(report["events"], events);
    assert_eq!(report["streams"], streams);
}

/// A bound argument of raw SQL.
enum Arg {
    Text(String),
    Int(i64),
}

/// Runs one raw statement on a pool of our own to the store's database (`pg` on
/// PostgreSQL, `sqlite` on SQLite); returns the rows affected.
async fn raw_sql(url: &str, pg: &str, sqlite: &str, args: &[Arg]) -> u64 {
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let mut q = sqlx::query(pg);
        for a in args {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        let n = q.execute(&pool).await.unwrap().rows_affected();
        pool.close().await;
        n
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let mut q = sqlx::query(sqlite);
        for a in args {
            q = match a {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        let n = q.execute(&pool).await.unwrap().rows_affected();
        pool.close().await;
        n
    }
}

/// A built, caught-up store to tamper with: (url, world, log, streams).
async fn caught_up_workload(backend: Backend) -> (String, World, Vec<RecordedEvent>, usize) {
    let (url, w) = workload(backend).await;
    catch_up(&w.store, w.last).await;
    let log = w.full_log().await;
    let streams = stream_count(&log);
    let sound = audit(&url);
    assert_eq!(
        sound.0, 0,
        "{backend:?}: sound before tampering: {}",
        sound.1
    );
    (url, w, log, streams)
}

// ---- 1. a sound store --------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_finds_no_problem_after_a_mixed_workload_and_a_full_catch_up_on_both_backends()
{
    for backend in BOTH {
        let (url, w) = workload(backend).await;
        catch_up(&w.store, w.last).await;
        let log = w.full_log().await;
        let streams = stream_count(&log);

        // The workload covers what the audit has to re-fold.
        let statuses: BTreeSet<String> = documents::sessions()
            .all_docs(&w.db)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, d)| d["status"].as_str().unwrap().to_string())
            .collect();
        for s in [
            "PENDING",
            "SCHEDULED",
            "RUNNING",
            "TERMINATED",
            "CANCELLED",
            "ERROR",
        ] {
            assert!(statuses.contains(s), "{backend:?}: a {s} session");
        }
        for t in [
            "SessionSchedulingFailed",
            "SchedulerOptsChanged",
            "SlotsAllocated",
        ] {
            assert!(
                log.iter().any(|e| e.event_type == t),
                "{backend:?}: a {t} event in {:?}",
                log.iter().map(|e| &e.event_type).collect::<BTreeSet<_>>()
            );
        }

        let (code, out, err, report) = audit(&url);
        assert_eq!(code, 0, "{backend:?}: {out}{err}");
        assert_eq!(out, format!("{}\n", summary(log.len(), streams, 0)));
        assert!(out.contains("0 problem(s)"));
        assert_eq!(err, "", "{backend:?}");
        assert_eq!(report["findings"], json!([]), "{backend:?}");
        assert_eq!(report["events"], log.len());
        assert_eq!(report["streams"], streams);
        assert_eq!(
            report["read_models"],
            json!([
                "sessions",
                "scaling_groups",
                "agent_occupancy",
                "pending_queue",
                "audit_log",
                "slot_releases",
                "vfolders",
                "background_tasks",
                "webhooks",
                "webhook_outbox"
            ])
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_the_audit_cannot_check_is_a_finding_not_a_pass_on_both_backends() {
    for backend in BOTH {
        let (_, w) = workload(backend).await;
        catch_up(&w.store, w.last).await;
        let mut names: Vec<&'static str> = projections::models::all()
            .iter()
            .map(|p| p.name())
            .collect();
        names.push("a_new_read_model");
        let report = sessiond::audit::verify_models(&w.store, &names, |_| {})
            .await
            .unwrap();
        assert_eq!(
            report.findings.len(),
            1,
            "{backend:?}: {:?}",
            report.findings
        );
        let f = &report.findings[0];
        assert_eq!(f.check, "unchecked_read_model");
        assert_eq!(f.subject, "a_new_read_model");
        assert!(
            !report.read_models.contains(&"a_new_read_model".to_string()),
            "{backend:?}: it is not reported as verified"
        );
        assert_eq!(report.read_models.len(), names.len() - 1);
    }
}

// ---- 2. tampered stores ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_illegal_transition_inserted_with_raw_sql_is_a_transition_finding_naming_both_statuses_on_both_backends(
) {
    for backend in BOTH {
        let (url, w, log, streams) = caught_up_workload(backend).await;
        // s5 is in gamma, which has no agent: enqueued, never scheduled.
        let id = w.sessions[5].to_string();
        let stream = w.store.read_stream("Session", &id).await.unwrap();
        assert_eq!(
            stream
                .iter()
                .map(|e| e.event_type.as_str())
                .collect::<Vec<_>>(),
            ["SessionEnqueued"]
        );
        let enqueued: SessionEvent = stream[0].decode().unwrap();
        let started = SessionEvent::SessionStarted {
            occurred_at: enqueued.occurred_at() + chrono::TimeDelta::seconds(1),
        };
        let payload = serde_json::to_string(&started).unwrap();
        assert!(payload.starts_with(r#"{"SessionStarted":{"occurred_at":""#));
        let metadata = json!({
            "actor": "tamper",
            "correlation_id": Uuid::new_v4().to_string(),
            "causation_id": Uuid::new_v4().to_string(),
        })
        .to_string();
        let inserted = raw_sql(
            &url,
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
               event_version, payload, metadata) \
             VALUES ('Session', $1, $2, 'SessionStarted', '1', $3::jsonb, $4::jsonb)",
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
               event_version, payload, metadata) \
             VALUES ('Session', ?, ?, 'SessionStarted', '1', ?, ?)",
            &[
                Arg::Text(id.clone()),
                Arg::Int(2),
                Arg::Text(payload),
                Arg::Text(metadata),
            ],
        )
        .await;
        assert_eq!(inserted, 1);
        let tampered = log_of(&w.store, log.len() + 1).await;
        let position = tampered
            .iter()
            .find(|e| e.aggregate_id == id && e.sequence == 2)
            .unwrap()
            .global_position;

        let result = audit(&url);
        assert_audit_failed(backend, &result, log.len() + 1, streams);
        assert_eq!(
            findings(&result.3),
            [finding(
                "transition",
                format!("Session {id}"),
                format!(
                    "illegal transition PENDING -> RUNNING (SessionStarted at sequence 2, position {position})"
                )
            )],
            "{backend:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_event_is_a_sequence_finding_naming_the_gap_on_both_backends() {
    for backend in BOTH {
        let (url, w, log, streams) = caught_up_workload(backend).await;
        // s0: enqueued, then two different scheduling failures.
        let id = w.sessions[0].to_string();
        let stream = w.store.read_stream("Session", &id).await.unwrap();
        assert_eq!(
            stream
                .iter()
                .map(|e| e.event_type.as_str())
                .collect::<Vec<_>>(),
            [
                "SessionEnqueued",
                "SessionSchedulingFailed",
                "SessionSchedulingFailed"
            ]
        );
        let deleted = stream[1].global_position;
        let third = stream[2].global_position;
        let n = raw_sql(
            &url,
            "DELETE FROM events WHERE aggregate_type = 'Session' AND aggregate_id = $1 AND sequence = $2",
            "DELETE FROM events WHERE aggregate_type = 'Session' AND aggregate_id = ? AND sequence = ?",
            &[Arg::Text(id.clone()), Arg::Int(2)],
        )
        .await;
        assert_eq!(n, 1);

        let result = audit(&url);
        assert_audit_failed(backend, &result, log.len() - 1, streams);
        let all = findings(&result.3);
        let (sequence, others): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|(check, _, _)| check == "sequence");
        assert_eq!(
            sequence,
            [finding(
                "sequence",
                format!("Session {id}"),
                format!("gap: sequence 3 follows 1 (missing 2..2) at position {third}")
            )],
            "{backend:?}"
        );
        // The read models were built with the deleted event: they now differ from a
        // fresh fold exactly where that event mattered.
        for (check, subject, detail) in &others {
            assert_eq!(check, "drift", "{backend:?}: {others:?}");
            assert!(
                (subject == "read model sessions" && detail.contains(&id))
                    || (subject == "read model audit_log"
                        && detail == &format!("row {deleted:012} has no stream")),
                "{backend:?}: {subject}: {detail}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_row_edited_by_hand_is_a_drift_finding_naming_the_fields_on_both_backends() {
    for backend in BOTH {
        let (url, w, log, streams) = caught_up_workload(backend).await;
        let id = w.sessions[7].to_string(); // left RUNNING
        let mut doc = documents::sessions()
            .all_docs(&w.db)
            .await
            .unwrap()
            .into_iter()
            .find(|(i, _)| *i == id)
            .unwrap()
            .1;
        assert_eq!(doc["status"], "RUNNING");
        assert_eq!(doc["status_info"], Value::Null);
        doc["status"] = json!("TERMINATED");
        doc["status_info"] = json!("edited-by-hand");
        let n = raw_sql(
            &url,
            "UPDATE rm_sessions SET doc = $1 WHERE id = $2",
            "UPDATE rm_sessions SET doc = ? WHERE id = ?",
            &[Arg::Text(doc.to_string()), Arg::Text(id.clone())],
        )
        .await;
        assert_eq!(n, 1);

        let result = audit(&url);
        assert_audit_failed(backend, &result, log.len(), streams);
        assert_eq!(
            findings(&result.3),
            [finding(
                "drift",
                "read model sessions",
                format!("row {id} differs in: status, status_info")
            )],
            "{backend:?}"
        );
    }
}

/// Writes (or replaces) session `id`'s snapshot by hand: `state` at `sequence`.
async fn insert_snapshot(url: &str, id: &str, state: &Value, sequence: i64) -> u64 {
    // (`$n` parameters are SQLite's too)
    const SQL: &str = "INSERT INTO snapshots \
        (aggregate_type, aggregate_id, schema_version, last_sequence, state) \
        VALUES ('Session', $1, 1, $2, $3) ON CONFLICT (aggregate_type, aggregate_id) \
        DO UPDATE SET state = excluded.state, last_sequence = excluded.last_sequence";
    let args = [
        Arg::Text(id.to_string()),
        Arg::Int(sequence),
        Arg::Text(state.to_string()),
    ];
    raw_sql(url, SQL, SQL, &args).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_differs_from_its_stream_or_outruns_it_is_a_snapshot_finding_on_both_backends(
) {
    for backend in BOTH {
        // Given a sound store and a true snapshot of one session's stream
        let (url, w, log, streams) = caught_up_workload(backend).await;
        let id = w.sessions[7].to_string(); // left RUNNING
        let events: Vec<RecordedEvent> = log
            .iter()
            .filter(|e| e.aggregate_type == "Session" && e.aggregate_id == id)
            .cloned()
            .collect();
        let last = events.last().unwrap().sequence;
        let mut state = fold::<Session>(&events);
        assert_eq!(insert_snapshot(&url, &id, &state, last).await, 1);
        let sound = audit(&url);
        assert_eq!(sound.0, 0, "{backend:?}: {}", sound.1);
        assert_eq!(
            sound.1.lines().last(),
            Some(summary_with(log.len(), streams, 1, 0).as_str())
        );

        // When the snapshot's status is edited by hand
        assert_eq!(state["status"], "RUNNING");
        state["status"] = json!("TERMINATED");
        // Then it is a snapshot finding naming the field; and one that claims events
        // the stream does not hold is one too
        for (sequence, detail) in [
            (
                last,
                format!("differs from the fold up to sequence {last}: status"),
            ),
            (
                last + 5,
                format!("holds sequence {} but the stream ends at {last}", last + 5),
            ),
        ] {
            insert_snapshot(&url, &id, &state, sequence).await;
            let result = audit(&url);
            assert_audit_failed(backend, &result, log.len(), streams);
            assert_eq!(
                findings(&result.3),
                [finding(
                    "snapshot",
                    format!("snapshot Session {id}"),
                    detail
                )],
                "{backend:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_with_an_unknown_event_version_is_a_version_finding_on_both_backends() {
    for backend in BOTH {
        let (url, w, log, streams) = caught_up_workload(backend).await;
        let id = w.sessions[0].to_string();
        let n = raw_sql(
            &url,
            "UPDATE events SET event_version = '9' \
             WHERE aggregate_type = 'Session' AND aggregate_id = $1 AND sequence = $2",
            "UPDATE events SET event_version = '9' \
             WHERE aggregate_type = 'Session' AND aggregate_id = ? AND sequence = ?",
            &[Arg::Text(id.clone()), Arg::Int(3)],
        )
        .await;
        assert_eq!(n, 1);

        let result = audit(&url);
        assert_audit_failed(backend, &result, log.len(), streams);
        let (version, others): (Vec<_>, Vec<_>) = findings(&result.3)
            .into_iter()
            .partition(|(check, _, _)| check == "version");
        assert_eq!(
            version,
            [finding(
                "version",
                format!("Session {id}"),
                "SessionSchedulingFailed v9 at sequence 3 has no upcaster to v1"
            )],
            "{backend:?}"
        );
        // The unreadable event is not folded: the sessions row that applied it differs.
        for (check, subject, detail) in &others {
            assert_eq!(
                (check.as_str(), subject.as_str()),
                ("drift", "read model sessions"),
                "{backend:?}: {detail}"
            );
            assert!(detail.contains(&id), "{backend:?}: {detail}");
        }
    }
}

// ---- 3. export and import across backends ------------------------------------------------

fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sessionctl-audit-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

async fn export_then_import_reproduces_the_log(from: Backend, to: Backend) {
    let (source, w) = workload(from).await;
    let log = w.full_log().await;
    let file = temp_file("events.ndjson");
    let file_arg = file.to_str().unwrap();

    let (code, out, err) = sessionctl(&source, &["events", "export", "--output", file_arg]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "", "--output: nothing on stdout");
    let exported = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = exported.lines().collect();
    assert_eq!(lines.len(), log.len(), "one line per event");
    for (line, event) in lines.iter().zip(&log) {
        assert!(
            !line.contains("\"transaction_id\""),
            "the store-local transaction id is not exported: {line}"
        );
        let parsed: RecordedEvent = serde_json::from_str(line).unwrap();
        let recorded = RecordedEvent {
            transaction_id: 0,
            ..event.clone()
        };
        assert_eq!(parsed, recorded, "exported as recorded, in log order");
    }
    let (code, to_stdout, err) = sessionctl(&source, &["events", "export"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        to_stdout, exported,
        "stdout and --output give the same NDJSON"
    );

    let target = fresh_url(to).await;
    let (code, out, err) = sessionctl(&target, &["events", "import", "--input", file_arg]);
    assert_eq!(code, 0, "{from:?} -> {to:?}: {err}");
    assert_eq!(out.trim(), format!("imported {} events", log.len()));
    let target_store = open(&target).await;
    let imported = log_of(&target_store, log.len()).await;

    let (code, out, err, report) = audit(&target);
    assert_eq!(code, 0, "{from:?} -> {to:?}: {out}{err}");
    assert_eq!(
        out.lines().last(),
        Some(summary(log.len(), stream_count(&log), 0).as_str())
    );
    assert_eq!(report["findings"], json!([]));

    for i in [0, 1, 3, 4, 6, 7, 13, 14] {
        let id = w.sessions[i].to_string();
        for args in [vec!["history", &id], vec!["history", &id, "--json"]] {
            let (code, on_source, err) = sessionctl(&source, &args);
            assert_eq!(code, 0, "{err}");
            let (code, on_target, err) = sessionctl(&target, &args);
            assert_eq!(code, 0, "{err}");
            assert_eq!(
                on_target, on_source,
                "{from:?} -> {to:?}: {args:?} is the same on both stores"
            );
        }
    }

    let (code, reexported, err) = sessionctl(&target, &["events", "export"]);
    assert_eq!(code, 0, "{err}");
    let relines: Vec<&str> = reexported.lines().collect();
    assert_eq!(relines.len(), lines.len());
    for (n, (again, original)) in relines.iter().zip(&lines).enumerate() {
        assert_eq!(
            again,
            original,
            "{from:?} -> {to:?}: line {} of the re-export is byte-identical",
            n + 1
        );
    }
    for (e, original) in imported.iter().zip(&log) {
        assert_eq!(
            RecordedEvent {
                transaction_id: original.transaction_id,
                ..e.clone()
            },
            *original,
            "positions, ids, timestamps, payloads and metadata preserved"
        );
    }

    // A second import into the now non-empty store is refused and changes nothing.
    let before = target_store.count_events().await.unwrap();
    let (code, out, err) = sessionctl(&target, &["events", "import", "--input", file_arg]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("sessionctl: ")
            && err.contains(&format!("already has {before} events"))
            && err.contains("--force"),
        "{err}"
    );
    assert_eq!(target_store.count_events().await.unwrap(), before);
    // With --force the same events collide: the whole import is rolled back.
    let (code, out, err) = sessionctl(
        &target,
        &["events", "import", "--input", file_arg, "--force"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("sessionctl: "), "{err}");
    assert_eq!(target_store.count_events().await.unwrap(), before);

    // The imported log is a working store: new events continue after the imported
    // positions, projections catch up, and the audit still passes.
    let max = log.iter().map(|e| e.global_position).max().unwrap();
    let handler = CommandHandler::new(target_store.clone());
    let c = handler
        .execute::<Session>(
            &w.sessions[5].to_string(),
            SessionCommand::Cancel {
                reason: testkit::fixtures::reason("user-requested"),
                now: testkit::world::at(100_000),
            },
            &testkit::world::meta("user:carol"),
        )
        .await
        .unwrap();
    assert_eq!(c.positions.len(), 1);
    assert_eq!(
        c.positions[0].global_position,
        max + 1,
        "{from:?} -> {to:?}"
    );
    log_of(&target_store, log.len() + 1).await;
    catch_up(&target_store, c.positions[0]).await;
    let (code, out, err, _) = audit(&target);
    assert_eq!(code, 0, "{from:?} -> {to:?}: {out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_from_postgres_imported_into_sqlite_reproduces_the_log_history_and_audit() {
    export_then_import_reproduces_the_log(Backend::Postgres, Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_from_sqlite_imported_into_postgres_reproduces_the_log_history_and_audit() {
    export_then_import_reproduces_the_log(Backend::Sqlite, Backend::Postgres).await;
}

// ---- 4. replay ---------------------------------------------------------------------------

fn fold<A: Decider>(events: &[RecordedEvent]) -> Value
where
    A::Event: serde::de::DeserializeOwned,
{
    let mut state = A::default();
    for e in events {
        state.evolve(&e.decode::<A::Event>().unwrap());
    }
    serde_json::to_value(&state).unwrap()
}

fn replay(url: &str, args: &[&str]) -> Value {
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    let (code, out, err) = sessionctl(url, &all);
    assert_eq!(code, 0, "{all:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{all:?} prints JSON ({e}): {out}"))
}

fn occurred_at(e: &RecordedEvent) -> DateTime<Utc> {
    e.decode::<SessionEvent>().unwrap().occurred_at()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_returns_the_folded_state_as_of_a_sequence_or_a_time_on_both_backends() {
    for backend in BOTH {
        let (url, w) = workload(backend).await;
        // s4: the longest life: scheduled, prepared, started, restarted, degraded,
        // errored, terminated.
        let id = w.sessions[4].to_string();
        let stream = w.store.read_stream("Session", &id).await.unwrap();
        assert!(stream.len() >= 10, "{}", stream.len());
        let len = stream.len();

        for n in [1, 2, 6, len - 1, len] {
            let seq = n.to_string();
            assert_eq!(
                replay(&url, &["session", &id, "--to-sequence", &seq]),
                fold::<Session>(&stream[..n]),
                "{backend:?}: --to-sequence {n}"
            );
        }
        assert_eq!(
            replay(&url, &["session", &id, "--to-sequence", "1000"]),
            fold::<Session>(&stream),
            "{backend:?}: beyond the end is the current state"
        );
        assert_eq!(
            replay(&url, &["session", &id]),
            fold::<Session>(&stream),
            "{backend:?}: no point: the current state"
        );
        let enqueued = replay(&url, &["session", &id, "--to-sequence", "1"]);
        assert_eq!(enqueued["status"], "PENDING");

        // --at: the events that occurred at or before the time.
        let t6 = occurred_at(&stream[5]);
        let t7 = occurred_at(&stream[6]);
        assert!(t6 < t7);
        let up_to_6 = fold::<Session>(&stream[..6]);
        for at in [
            t6,
            t6 + chrono::TimeDelta::milliseconds(1),
            t7 - chrono::TimeDelta::milliseconds(1),
        ] {
            let expected: Vec<RecordedEvent> = stream
                .iter()
                .filter(|e| occurred_at(e) <= at)
                .cloned()
                .collect();
            assert_eq!(expected.len(), 6);
            let at = at.to_rfc3339_opts(SecondsFormat::Millis, true);
            assert_eq!(
                replay(&url, &["session", &id, "--at", &at]),
                up_to_6,
                "{backend:?}: --at {at}"
            );
        }
        let with_offset = t6
            .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap())
            .to_rfc3339();
        assert_eq!(
            replay(&url, &["session", &id, "--at", &with_offset]),
            up_to_6,
            "{backend:?}: --at {with_offset} (the same instant, another offset)"
        );
        assert_eq!(
            replay(&url, &["session", &id, "--at", "2999-01-01T00:00:00Z"]),
            fold::<Session>(&stream)
        );

        // Scaling groups: alpha was created with pending_timeout 120, then lowered to 90.
        let alpha = w.store.read_stream("ScalingGroup", "alpha").await.unwrap();
        assert_eq!(alpha.len(), 2);
        let now = replay(&url, &["scaling-group", "alpha"]);
        assert_eq!(now, fold::<ScalingGroup>(&alpha), "{backend:?}");
        assert_eq!(now["scheduler_opts"]["pending_timeout"], 90);
        let created = replay(&url, &["scaling-group", "alpha", "--to-sequence", "1"]);
        assert_eq!(created, fold::<ScalingGroup>(&alpha[..1]), "{backend:?}");
        assert_eq!(created["scheduler_opts"]["pending_timeout"], 120);
        let created_at = projections::models::audit_log::occurred_at(&alpha[0].payload).unwrap();
        assert_eq!(
            replay(&url, &["ScalingGroup", "alpha", "--at", &created_at]),
            created,
            "{backend:?}: the stored type name works too"
        );

        // Agents: a1 was registered, allocated slots for s6, released them.
        let a1 = w.store.read_stream("Agent", "a1").await.unwrap();
        assert_eq!(
            a1.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>(),
            ["AgentRegistered", "SlotsAllocated", "SlotsReleased"]
        );
        assert_eq!(
            replay(&url, &["agent", "a1"]),
            fold::<Agent>(&a1),
            "{backend:?}"
        );
        let holding = replay(&url, &["agent", "a1", "--to-sequence", "2"]);
        assert_eq!(holding, fold::<Agent>(&a1[..2]), "{backend:?}");
        assert_ne!(
            holding,
            fold::<Agent>(&a1),
            "{backend:?}: the allocation is held"
        );
    }
}

// ---- 5. bad input ------------------------------------------------------------------------

fn assert_one_line_error(url: &str, args: &[&str], expected: &str) {
    let (code, out, err) = sessionctl(url, args);
    assert_ne!(code, 0, "{args:?}: {out}");
    assert_eq!(code, 1, "{args:?}: {err}");
    assert_eq!(out, "", "{args:?}: nothing on stdout");
    assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
    assert!(err.starts_with("sessionctl: "), "{args:?}: {err}");
    assert!(
        err.contains(expected),
        "{args:?}: {err:?} mentions {expected:?}"
    );
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(!err.to_lowercase().contains("backtrace"), "{args:?}: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_one_line_on_stderr_and_a_non_zero_exit_never_a_panic() {
    let (url, w) = workload(Backend::Sqlite).await;
    let id = w.sessions[4].to_string();
    let unknown = Uuid::new_v4().to_string();

    assert_one_line_error(
        &url,
        &["replay", "widget", &id],
        "unknown aggregate type 'widget'",
    );
    for args in [
        vec!["history", "not-a-uuid"],
        vec!["history", "not-a-uuid", "--json"],
        vec!["replay", "session", "not-a-uuid"],
    ] {
        assert_one_line_error(&url, &args, "'not-a-uuid' is not a session id");
    }
    assert_one_line_error(
        &url,
        &["history", &unknown],
        &format!("no session {unknown}"),
    );
    assert_one_line_error(
        &url,
        &["replay", "session", &unknown],
        &format!("no session '{unknown}'"),
    );
    assert_one_line_error(
        &url,
        &["replay", "scaling-group", "no-such-group"],
        "no scaling-group 'no-such-group'",
    );
    for at in ["yesterday", "2026-13-01T00:00:00Z", "2026-01-01"] {
        assert_one_line_error(
            &url,
            &["replay", "session", &id, "--at", at],
            &format!("--at '{at}' is not an RFC 3339 time"),
        );
    }

    assert_one_line_error(
        &url,
        &["events", "export", "--format", "csv"],
        "unsupported format 'csv'",
    );
    let empty = fresh_url(Backend::Sqlite).await;
    assert_one_line_error(
        &empty,
        &[
            "events",
            "import",
            "--input",
            "/nonexistent-dir/events.ndjson",
        ],
        "No such file or directory",
    );

    // Numbers at the edge of their type are values, not allocations or panics.
    let (code, out, err) = sessionctl(&url, &["events", "tail", "--limit", "18446744073709551615"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), w.full_log().await.len(), "{err}");
    let (code, _, err) = sessionctl(
        &url,
        &[
            "replay",
            "session",
            &id,
            "--to-sequence",
            "9223372036854775807",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // Unreadable stores; each attempt may wait for the acquire timeout, so in parallel.
    let unreachable = [
        "postgres://127.0.0.1:1/nope",
        "sqlite:///nonexistent-dir/x.db",
    ];
    std::thread::scope(|scope| {
        for bad in unreachable {
            for args in [
                vec!["audit", "verify"],
                vec!["history", id.as_str()],
                vec!["events", "tail"],
            ] {
                scope.spawn(move || assert_one_line_error(bad, &args, "cannot open the store"));
            }
        }
    });
}

// ---- 6. tail -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_with_a_limit_and_a_type_prints_the_last_such_events_in_log_order_on_both_backends(
) {
    for backend in BOTH {
        let (url, mut w) = workload(backend).await;
        // Two more terminations (the workload has s3 and s4), with other events between.
        let s7 = w.sessions[7];
        w.session(s7, "user:bob", |now| SessionCommand::RequestTermination {
            reason: testkit::fixtures::reason("user-requested"),
            requested_by: "user:bob".into(),
            now,
        })
        .await;
        w.enqueue("beta", 10, "bob").await;
        w.session(s7, "agent:a2", |now| SessionCommand::MarkTerminated {
            reason: testkit::fixtures::reason("self-terminated"),
            exit_code: Some(0),
            now,
        })
        .await;
        w.release(s7, "a2").await;
        let s14 = w.sessions[14]; // ERROR
        w.session(s14, "scheduler", |now| SessionCommand::MarkTerminated {
            reason: testkit::fixtures::reason("cleaned-up"),
            exit_code: None,
            now,
        })
        .await;
        w.enqueue("alpha", 10, "alice").await;
        let log = w.full_log().await;

        let terminated: Vec<&RecordedEvent> = log
            .iter()
            .filter(|e| e.event_type == "SessionTerminated")
            .collect();
        assert_eq!(terminated.len(), 4);
        let want = &terminated[1..];
        assert_eq!(
            want.iter()
                .map(|e| e.aggregate_id.clone())
                .collect::<Vec<_>>(),
            [w.sessions[4], s7, s14].map(|s| s.to_string())
        );

        let (code, out, err) = sessionctl(
            &url,
            &[
                "events",
                "tail",
                "--limit",
                "3",
                "--type",
                "SessionTerminated",
            ],
        );
        assert_eq!(code, 0, "{backend:?}: {err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{backend:?}: {out}");
        for (line, e) in lines.iter().zip(want) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(
                fields,
                [
                    e.global_position.to_string().as_str(),
                    e.recorded_at
                        .to_rfc3339_opts(SecondsFormat::Millis, true)
                        .as_str(),
                    "Session",
                    e.aggregate_id.as_str(),
                    format!("#{}", e.sequence).as_str(),
                    "SessionTerminated",
                    e.actor(),
                ],
                "{backend:?}: {line}"
            );
        }

        // A limit larger than the matches prints them all; another type filters too.
        let (code, out, _) = sessionctl(
            &url,
            &[
                "events",
                "tail",
                "--limit",
                "10",
                "--type",
                "SessionTerminated",
            ],
        );
        assert_eq!(code, 0);
        assert_eq!(out.lines().count(), 4);
        let (code, out, _) = sessionctl(
            &url,
            &["events", "tail", "--limit", "2", "--type", "SlotsAllocated"],
        );
        assert_eq!(code, 0);
        assert!(
            out.lines()
                .all(|l| l.contains(" Agent ") && l.contains(" SlotsAllocated ")),
            "{out}"
        );
        assert_eq!(out.lines().count(), 2);
    }
}
