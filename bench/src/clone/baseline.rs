//! The baseline of `clone-latency`: the original design, on the bench's own
//! mutable-row tables (`sql/{postgres,sqlite}/clone/schema.sql`) in the same database,
//! through sqlx directly.
//!
//! `writers` writers, each on a connection of its own, run short transactions back to
//! back (SERIALIZABLE on PostgreSQL, IMMEDIATE on SQLite), alternating a new session
//! that mounts a random folder other than the one being cloned (read the folder's row,
//! insert the session) and a status change of a random existing session (read its
//! row, update it; 1% of them mount the folder being cloned). A retryable failure
//! (40001, 40P01, SQLITE_BUSY/LOCKED) is rolled back and retried after 10 ms; the op's
//! latency includes its retries. Idle window first; then the clone: one transaction
//! marks the source folder `cloning`, reads the sessions mounting it and writes them,
//! then stays open while `cp -a` copies the tree, inserts the target folder `ready`,
//! marks the source `ready` and commits. Its window is that transaction, BEGIN to
//! COMMIT.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Postgres, Sqlite};
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};
use store::db::Statement;
use store::sql;
use uuid::Uuid;

use super::stats::{window, Phase, PhaseCell, Sample, WindowFigure};
use super::tree;
use crate::error::BenchError;

const SCHEMA: Statement = sql!("clone/schema");
const FILL_VFOLDERS: Statement = sql!("clone/fill_vfolders");
const FILL_SESSIONS: Statement = sql!("clone/fill_sessions");
const ANALYZE: Statement = sql!("clone/analyze");
const BEGIN: Statement = sql!("clone/begin");
const COMMIT: Statement = sql!(common "clone/commit");
const ROLLBACK: Statement = sql!(common "clone/rollback");
const VFOLDER_STATUS: Statement = sql!(common "clone/vfolder_status");
const SESSION_STATUS: Statement = sql!(common "clone/session_status");
const MOUNTS: Statement = sql!(common "clone/mounts");
const INSERT_SESSION: Statement = sql!("clone/insert_session");
const UPDATE_SESSION: Statement = sql!("clone/update_session");
const SET_VFOLDER_STATUS: Statement = sql!("clone/set_vfolder_status");
const INSERT_VFOLDER: Statement = sql!("clone/insert_vfolder");
const TOUCH_MOUNTS: Statement = sql!("clone/touch_mounts");

/// Folder rows; `v0` is the one being cloned.
const VFOLDERS: i64 = 100;
/// Pre-filled session rows, row n mounting `v<n div (SESSIONS / VFOLDERS)>`: 1% of
/// them (`s0` .. `s99`, contiguous) mount the folder being cloned.
const SESSIONS: i64 = 10_000;
/// The folder being cloned, and its clone.
const SOURCE: &str = "v0";
const TARGET: &str = "v0-clone";
const STATUSES: [&str; 4] = ["PENDING", "SCHEDULED", "RUNNING", "TERMINATED"];
/// Pause before a retry.
const RETRY_PAUSE: Duration = Duration::from_millis(10);
/// An op that has not committed after this long gives up (counted as failed).
const OP_DEADLINE: Duration = Duration::from_secs(600);
/// SQLite: how long a connection waits for the write lock before SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts to open the clone's transaction before the bench gives up on it.
const MAX_OPEN_ATTEMPTS: u32 = 100;
/// Warm-up before the idle window (run, not counted).
const WARMUP: Duration = Duration::from_secs(1);

/// For the report.
pub const DESCRIPTION: &str = "baseline (the original design, the bench's own tables \
    bench_vfolders (100 rows) and bench_sessions (10,000 rows) in the same database, sqlx \
    directly): each writer holds one connection and runs short transactions back to back \
    (PostgreSQL SERIALIZABLE, SQLite BEGIN IMMEDIATE with a 5 s busy timeout), \
    alternating a new session mounting one of the 99 folders not being cloned (SELECT \
    the folder's status, INSERT the session) and a status change of a random session \
    (SELECT, UPDATE; 1% of the sessions mount the folder being cloned); \
    retryable failures (40001, 40P01, SQLITE_BUSY) are rolled back and retried after 10 \
    ms, counted, and inside the op's latency. The clone's transaction: UPDATE the folder \
    to 'cloning', SELECT the 100 sessions mounting it, UPDATE them, `cp -a` of the same \
    tree while it stays open, INSERT the target folder 'ready', UPDATE the source to \
    'ready', COMMIT; its window is BEGIN to COMMIT; an op that overlaps it belongs to it \
    (a writer stalled by it counts there with its whole wait), any other to the window it \
    started in";

/// What the baseline measured.
#[derive(Debug)]
pub struct BaselineRun {
    /// Idle, during the long transaction.
    pub windows: Vec<WindowFigure>,
    /// How long the long transaction was open.
    pub long_seconds: f64,
    /// How it ended.
    pub outcome: String,
}

#[derive(Debug, Clone)]
enum Pools {
    Pg(PgPool),
    Lite(SqlitePool),
}

#[derive(Debug)]
enum Conn {
    Pg(PoolConnection<Postgres>),
    Lite(PoolConnection<Sqlite>),
}

impl Pools {
    async fn connect(url: &str, size: u32) -> Result<Pools, BenchError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // Stalled statements are what the baseline measures: not logged as slow.
            let options = PgConnectOptions::from_str(url)?.disable_statement_logging();
            let pool = PgPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?;
            Ok(Pools::Pg(pool))
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(BUSY_TIMEOUT)
                .disable_statement_logging();
            let pool = SqlitePoolOptions::new()
                .max_connections(size)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?;
            Ok(Pools::Lite(pool))
        } else {
            Err(BenchError::Other(format!(
                "the database URL must start with postgres:// or sqlite: ({url})"
            )))
        }
    }

    async fn acquire(&self) -> Result<Conn, sqlx::Error> {
        Ok(match self {
            Pools::Pg(p) => Conn::Pg(p.acquire().await?),
            Pools::Lite(p) => Conn::Lite(p.acquire().await?),
        })
    }

    /// The schema script (several statements).
    async fn create_schema(&self) -> Result<(), sqlx::Error> {
        match self {
            Pools::Pg(p) => sqlx::raw_sql(SCHEMA.postgres())
                .execute(p)
                .await
                .map(|_| ()),
            Pools::Lite(p) => sqlx::raw_sql(SCHEMA.sqlite()).execute(p).await.map(|_| ()),
        }
    }

    async fn fill(&self) -> Result<(), sqlx::Error> {
        match self {
            Pools::Pg(p) => {
                sqlx::query(FILL_VFOLDERS.postgres())
                    .bind(VFOLDERS)
                    .execute(p)
                    .await?;
                sqlx::query(FILL_SESSIONS.postgres())
                    .bind(SESSIONS)
                    .bind(SESSIONS / VFOLDERS)
                    .execute(p)
                    .await?;
                sqlx::query(ANALYZE.postgres()).execute(p).await?;
            }
            Pools::Lite(p) => {
                sqlx::query(FILL_VFOLDERS.sqlite())
                    .bind(VFOLDERS)
                    .execute(p)
                    .await?;
                sqlx::query(FILL_SESSIONS.sqlite())
                    .bind(SESSIONS)
                    .bind(SESSIONS / VFOLDERS)
                    .execute(p)
                    .await?;
                sqlx::query(ANALYZE.sqlite()).execute(p).await?;
            }
        }
        Ok(())
    }

    async fn close(&self) {
        match self {
            Pools::Pg(p) => p.close().await,
            Pools::Lite(p) => p.close().await,
        }
    }
}

impl Conn {
    /// Runs `st` with text arguments.
    async fn run(&mut self, st: &Statement, args: &[&str]) -> Result<(), sqlx::Error> {
        match self {
            Conn::Pg(c) => {
                let mut q = sqlx::query(st.postgres());
                for a in args {
                    q = q.bind(a.to_string());
                }
                q.execute(&mut **c).await?;
            }
            Conn::Lite(c) => {
                let mut q = sqlx::query(st.sqlite());
                for a in args {
                    q = q.bind(a.to_string());
                }
                q.execute(&mut **c).await?;
            }
        }
        Ok(())
    }

    /// The first column of every row of `st` (text).
    async fn strings(&mut self, st: &Statement, args: &[&str]) -> Result<Vec<String>, sqlx::Error> {
        match self {
            Conn::Pg(c) => {
                let mut q = sqlx::query_scalar::<_, String>(st.postgres());
                for a in args {
                    q = q.bind(a.to_string());
                }
                q.fetch_all(&mut **c).await
            }
            Conn::Lite(c) => {
                let mut q = sqlx::query_scalar::<_, String>(st.sqlite());
                for a in args {
                    q = q.bind(a.to_string());
                }
                q.fetch_all(&mut **c).await
            }
        }
    }

    /// Rolls back after a failed statement; an error here is ignored (the next BEGIN
    /// fails if the connection is unusable).
    async fn rollback(&mut self) {
        let _ = self.run(&ROLLBACK, &[]).await;
    }

    /// Commits. A failed COMMIT has ended the transaction on PostgreSQL; on SQLite it
    /// is still open and is rolled back.
    async fn commit(&mut self) -> Result<(), sqlx::Error> {
        let result = self.run(&COMMIT, &[]).await;
        if result.is_err() && matches!(self, Conn::Lite(_)) {
            self.rollback().await;
        }
        result
    }
}

/// Whether a failure is one the original design retried: a serialization failure or
/// deadlock (PostgreSQL), the database busy or locked (SQLite).
fn retryable(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    let Some(code) = db.code() else {
        return false;
    };
    match code.as_ref() {
        "40001" | "40P01" => true,
        other => other
            .parse::<i32>()
            .is_ok_and(|c| matches!(c & 0xff, 5 | 6)),
    }
}

/// One writer transaction: kind 0 a new session mounting folder `v<folder>`, kind 1
/// a status change of session `s<row>`.
async fn transaction(conn: &mut Conn, kind: u8, folder: i64, row: i64) -> Result<(), sqlx::Error> {
    conn.run(&BEGIN, &[]).await?;
    let body = async {
        if kind == 0 {
            let folder = format!("v{folder}");
            conn.strings(&VFOLDER_STATUS, &[&folder]).await?;
            let id = Uuid::new_v4().to_string();
            conn.run(&INSERT_SESSION, &[&id, &folder]).await
        } else {
            let id = format!("s{row}");
            let status = conn.strings(&SESSION_STATUS, &[&id]).await?;
            let next = status
                .first()
                .and_then(|s| STATUSES.iter().position(|x| x == s))
                .and_then(|i| STATUSES.get((i + 1) % STATUSES.len()))
                .copied()
                .unwrap_or("PENDING");
            conn.run(&UPDATE_SESSION, &[&id, next]).await
        }
    };
    if let Err(e) = body.await {
        conn.rollback().await;
        return Err(e);
    }
    conn.commit().await
}

/// A writer: transactions back to back until the phase is `Stop`.
async fn writer(
    mut conn: Conn,
    worker: usize,
    phase: PhaseCell,
) -> Result<Vec<Sample>, BenchError> {
    let mut rng = StdRng::from_entropy();
    let mut samples = Vec::new();
    let mut n: usize = worker;
    loop {
        let at = phase.get();
        if at == Phase::Stop {
            break;
        }
        let kind = (n % 2) as u8;
        // New sessions mount any folder but the one being cloned, so the clone's range
        // read stays the pre-filled mounts (one index leaf page, two heap pages).
        let folder = rng.gen_range(1..VFOLDERS);
        let row = rng.gen_range(0..SESSIONS);
        let started = Instant::now();
        let mut retries = 0u32;
        let mut failed = false;
        loop {
            match transaction(&mut conn, kind, folder, row).await {
                Ok(()) => break,
                Err(e) if retryable(&e) => {
                    retries = retries.saturating_add(1);
                    if started.elapsed() > OP_DEADLINE {
                        failed = true;
                        break;
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let window = Phase::of_op(at, phase.get());
        if window != Phase::Warmup {
            samples.push(Sample {
                phase: window,
                kind,
                ns: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
                failed,
                retries,
            });
        }
        n = n.wrapping_add(1);
    }
    Ok(samples)
}

/// The statements of the clone's transaction before the copy; how many sessions mount
/// the folder.
async fn open_clone(conn: &mut Conn) -> Result<usize, sqlx::Error> {
    conn.run(&BEGIN, &[]).await?;
    let body = async {
        conn.run(&SET_VFOLDER_STATUS, &[SOURCE, "cloning"]).await?;
        let mounts = conn.strings(&MOUNTS, &[SOURCE]).await?;
        conn.run(&TOUCH_MOUNTS, &[SOURCE]).await?;
        Ok::<_, sqlx::Error>(mounts.len())
    };
    match body.await {
        Ok(n) => Ok(n),
        Err(e) => {
            conn.rollback().await;
            Err(e)
        }
    }
}

/// The clone inside one transaction; how it ended. Only a failure outside the
/// transaction's statements (the copy itself, a non-retryable error) is an error.
async fn long_transaction(
    conn: &mut Conn,
    source: &Path,
    copy: &Path,
) -> Result<String, BenchError> {
    // Opening it may meet a writer's (a busy lock on SQLite, a concurrent update of a
    // mounting session on PostgreSQL): retried, as the original design would.
    let mut opened = None;
    let mut attempts = 0u32;
    let mut last_error = String::new();
    while opened.is_none() && attempts < MAX_OPEN_ATTEMPTS {
        attempts += 1;
        match open_clone(conn).await {
            Ok(n) => opened = Some(n),
            Err(e) if retryable(&e) => {
                last_error = e.to_string();
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let Some(mounts) = opened else {
        tree::cp_a(source, copy).await?;
        return Ok(format!(
            "could not be opened ({MAX_OPEN_ATTEMPTS} retryable failures, the last: \
             {last_error}): the copy ran with nothing held"
        ));
    };
    if let Err(e) = tree::cp_a(source, copy).await {
        conn.rollback().await;
        return Err(e);
    }
    let after = async {
        conn.run(&INSERT_VFOLDER, &[TARGET, "ready"]).await?;
        conn.run(&SET_VFOLDER_STATUS, &[SOURCE, "ready"]).await
    }
    .await;
    let after = match after {
        Ok(()) => conn.commit().await,
        Err(e) => {
            conn.rollback().await;
            Err(e)
        }
    };
    let retried = if attempts > 1 {
        format!(" after {} retried attempts to open it", attempts - 1)
    } else {
        String::new()
    };
    Ok(match after {
        Ok(()) => format!(
            "committed{retried} (it had read and written the {mounts} sessions mounting the \
             folder)"
        ),
        Err(e) => {
            format!(
                "aborted at its end{retried} ({e}): the original design loses the clone's \
                 rows and must copy again"
            )
        }
    })
}

/// Runs the baseline: `writers` writers idle for `idle`, then during the long
/// transaction that copies `source` to `copy` (removed afterwards).
pub async fn run(
    url: &str,
    writers: usize,
    idle: Duration,
    source: &Path,
    copy: &Path,
) -> Result<BaselineRun, BenchError> {
    let size = u32::try_from(writers + 2).unwrap_or(u32::MAX);
    let pools = Pools::connect(url, size).await?;
    let result = measure(&pools, writers, idle, source, copy).await;
    pools.close().await;
    tree::remove(copy).await?;
    result
}

async fn measure(
    pools: &Pools,
    writers: usize,
    idle: Duration,
    source: &Path,
    copy: &Path,
) -> Result<BaselineRun, BenchError> {
    pools.create_schema().await?;
    pools.fill().await?;
    let mut long_conn = pools.acquire().await?;
    let phase = PhaseCell::default();
    phase.set(Phase::Warmup);
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let conn = pools.acquire().await?;
        tasks.push(tokio::spawn(writer(conn, w, phase.clone())));
    }

    let driven = async {
        tokio::time::sleep(WARMUP).await;
        eprintln!(
            "clone-latency baseline: idle window ({:.1} s)",
            idle.as_secs_f64()
        );
        phase.set(Phase::IdleBefore);
        let t = Instant::now();
        tokio::time::sleep(idle).await;
        let idle_seconds = t.elapsed().as_secs_f64();
        eprintln!("clone-latency baseline: cp -a inside one open transaction");
        phase.set(Phase::During);
        let t = Instant::now();
        let outcome = long_transaction(&mut long_conn, source, copy).await;
        let long_seconds = t.elapsed().as_secs_f64();
        phase.set(Phase::Stop);
        eprintln!("clone-latency baseline: the transaction ended after {long_seconds:.2} s");
        outcome.map(|o| (idle_seconds, long_seconds, o))
    }
    .await;
    phase.set(Phase::Stop);
    let mut samples = Vec::new();
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(s)) => samples.extend(s),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(BenchError::Other(format!("a baseline writer: {e}")));
            }
        }
    }
    let (idle_seconds, long_seconds, outcome) = driven?;
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(BaselineRun {
        windows: vec![
            window("idle", idle_seconds, &samples, &[Phase::IdleBefore]),
            window(
                "during the copy inside one transaction",
                long_seconds,
                &samples,
                &[Phase::During],
            ),
        ],
        long_seconds,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_serialization_and_busy_failures_are_retried() {
        assert!(!retryable(&sqlx::Error::RowNotFound));
        assert!(!retryable(&sqlx::Error::PoolTimedOut));
    }
}
