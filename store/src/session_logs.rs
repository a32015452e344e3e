//! The last 16 KiB of a session's stdout and stderr, as its agent sent them with the
//! final report (SPEC §9): a plain upsert per session, not events (output is not a
//! lifecycle fact, and 32 KiB per session would weigh on every reader of the log).

use crate::db::Db;
use crate::{args, sql};

/// The most bytes of each stream kept per session.
pub const LOG_TAIL_BYTES: usize = 16 * 1024;

/// What an agent sent about a session's output.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionLogs {
    /// The agent that sent them.
    pub agent_id: String,
    /// The end of stdout.
    pub stdout: String,
    /// The end of stderr.
    pub stderr: String,
    /// When (epoch ms).
    pub reported_ms: i64,
}

/// Records (or replaces) the log tails of `session_id`.
pub async fn record(db: &Db, session_id: &str, logs: &SessionLogs) -> Result<(), sqlx::Error> {
    db.execute(
        &sql!(common "session_logs/record"),
        args![
            session_id,
            &logs.agent_id,
            &logs.stdout,
            &logs.stderr,
            logs.reported_ms
        ],
    )
    .await?;
    Ok(())
}

/// The log tails of `session_id`, if any were sent.
pub async fn get(db: &Db, session_id: &str) -> Result<Option<SessionLogs>, sqlx::Error> {
    db.fetch_optional(&sql!(common "session_logs/get"), args![session_id])
        .await
}
