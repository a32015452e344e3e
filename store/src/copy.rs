//! Copying a whole store to another database, on either backend (`sessionctl store
//! copy`): the event log through [`EventStore::import`] (positions, streams, sequences,
//! types, versions, payloads, metadata and `recorded_at` kept), batch by batch, each
//! batch its own transaction; and the tables that are state, not events and not read
//! models ([`TABLES`]), row by row exactly as stored, a page per transaction.
//!
//! Read models are not copied: the target's projections rebuild them from the log.
//! Nothing here holds a transaction open across more than one batch or page, so a
//! copy that is interrupted leaves a partly written target (which [`non_empty`] then
//! reports): the copy is restartable into a fresh target, not resumable.

use std::collections::BTreeMap;

use crate::db::{Arg, Db, Record, Statement};
use crate::event_store::EventStore;
use crate::log::LogPosition;
use crate::{args, sql, StoreError};

/// The tables a copy carries besides the events (the one-row `api_key_revision` is
/// carried too, as a value): API keys with keypairs and their sealed secrets, the
/// bootstrap record, sealed webhook and callback secrets, the agents' log tails, the
/// agents' heartbeats, idempotency records, and the webhook outbox (its rows hold the
/// dispatcher's progress, which a rebuild would not restore: without them every past
/// delivery would be sent again).
pub const TABLES: &[&str] = &[
    "api_keys",
    "api_bootstrap",
    "webhook_secrets",
    "callback_secrets",
    "session_logs",
    "agent_heartbeats",
    "idempotency_keys",
    "webhook_deliveries",
];

/// A row of one copied table: read by its `*_page` statement, written back by its
/// `*_insert` statement with these arguments.
trait CopyRow: Record {
    fn into_args(self) -> Vec<Arg>;
}

#[derive(sqlx::FromRow)]
struct ApiKey {
    id: String,
    key_hash: String,
    role: String,
    owner: Option<String>,
    agent_id: Option<String>,
    description: String,
    created_at: String,
    revoked_at: Option<String>,
    access_key: Option<String>,
    secret_sealed: Option<String>,
}

impl CopyRow for ApiKey {
    fn into_args(self) -> Vec<Arg> {
        args![
            self.id,
            self.key_hash,
            self.role,
            self.owner,
            self.agent_id,
            self.description,
            self.created_at,
            self.revoked_at,
            self.access_key,
            self.secret_sealed
        ]
    }
}

#[derive(sqlx::FromRow)]
struct Bootstrap {
    key_id: String,
    created_at: String,
}

impl CopyRow for Bootstrap {
    fn into_args(self) -> Vec<Arg> {
        args![self.key_id, self.created_at]
    }
}

#[derive(sqlx::FromRow)]
struct WebhookSecret {
    secret_id: String,
    webhook_id: String,
    secret_sealed: String,
    created_at: String,
}

impl CopyRow for WebhookSecret {
    fn into_args(self) -> Vec<Arg> {
        args![
            self.secret_id,
            self.webhook_id,
            self.secret_sealed,
            self.created_at
        ]
    }
}

#[derive(sqlx::FromRow)]
struct CallbackSecret {
    owner: String,
    secret_sealed: String,
    created_at: String,
}

impl CopyRow for CallbackSecret {
    fn into_args(self) -> Vec<Arg> {
        args![self.owner, self.secret_sealed, self.created_at]
    }
}

#[derive(sqlx::FromRow)]
struct SessionLog {
    session_id: String,
    agent_id: String,
    stdout: String,
    stderr: String,
    reported_ms: i64,
}

impl CopyRow for SessionLog {
    fn into_args(self) -> Vec<Arg> {
        args![
            self.session_id,
            self.agent_id,
            self.stdout,
            self.stderr,
            self.reported_ms
        ]
    }
}

#[derive(sqlx::FromRow)]
struct Heartbeat {
    agent_id: String,
    last_seen_ms: i64,
}

impl CopyRow for Heartbeat {
    fn into_args(self) -> Vec<Arg> {
        args![self.agent_id, self.last_seen_ms]
    }
}

#[derive(sqlx::FromRow)]
struct Idempotency {
    scope: String,
    key: String,
    request_hash: String,
    request_id: String,
    status_code: Option<i64>,
    response: Option<String>,
    created_at: String,
    completed_at: Option<String>,
}

impl CopyRow for Idempotency {
    fn into_args(self) -> Vec<Arg> {
        args![
            self.scope,
            self.key,
            self.request_hash,
            self.request_id,
            self.status_code,
            self.response,
            self.created_at,
            self.completed_at
        ]
    }
}

#[derive(sqlx::FromRow)]
struct Delivery {
    delivery_id: String,
    target: String,
    session_id: String,
    owner: String,
    url: Option<String>,
    position: i64,
    status: String,
    attempts: i64,
    round_attempts: i64,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    next_attempt_ms: i64,
    created_ms: i64,
    delivered_ms: Option<i64>,
    body: String,
}

impl CopyRow for Delivery {
    fn into_args(self) -> Vec<Arg> {
        args![
            self.delivery_id,
            self.target,
            self.session_id,
            self.owner,
            self.url,
            self.position,
            self.status,
            self.attempts,
            self.round_attempts,
            self.last_status_code,
            self.last_error,
            self.next_attempt_ms,
            self.created_ms,
            self.delivered_ms,
            self.body
        ]
    }
}

/// Copies one table a page at a time (one transaction per page on the target); the
/// rows copied.
async fn copy_rows<R: CopyRow>(
    from: &Db,
    to: &Db,
    page: Statement,
    insert: Statement,
    page_size: i64,
) -> Result<u64, sqlx::Error> {
    let mut offset: i64 = 0;
    let mut copied: u64 = 0;
    loop {
        let rows: Vec<R> = from.fetch_all(&page, args![page_size, offset]).await?;
        if rows.is_empty() {
            return Ok(copied);
        }
        let n = rows.len();
        let mut tx = to.begin().await?;
        for row in rows {
            tx.execute(&insert, row.into_args()).await?;
        }
        tx.commit().await?;
        offset = offset.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
        copied = copied.saturating_add(n as u64);
    }
}

/// Copies every table of [`TABLES`] and the key revocation revision from `from` to
/// `to` (which must hold none of their rows), `page_size` rows per transaction; the
/// rows copied per table.
pub async fn copy_state(
    from: &Db,
    to: &Db,
    page_size: i64,
) -> Result<BTreeMap<&'static str, u64>, sqlx::Error> {
    let page_size = page_size.max(1);
    let mut copied = BTreeMap::new();
    copied.insert(
        "api_keys",
        copy_rows::<ApiKey>(
            from,
            to,
            sql!(common "copy/api_keys_page"),
            sql!(common "copy/api_keys_insert"),
            page_size,
        )
        .await?,
    );
    copied.insert(
        "api_bootstrap",
        copy_rows::<Bootstrap>(
            from,
            to,
            sql!(common "copy/bootstrap_page"),
            sql!(common "copy/bootstrap_insert"),
            page_size,
        )
        .await?,
    );
    let revision = crate::keys::revision(from).await?;
    to.execute(&sql!(common "copy/set_revision"), args![revision])
        .await?;
    copied.insert(
        "webhook_secrets",
        copy_rows::<WebhookSecret>(
            from,
            to,
            sql!(common "copy/webhook_secrets_page"),
            sql!(common "copy/webhook_secrets_insert"),
            page_size,
        )
        .await?,
    );
    copied.insert(
        "callback_secrets",
        copy_rows::<CallbackSecret>(
            from,
            to,
            sql!(common "copy/callback_secrets_page"),
            sql!(common "copy/callback_secrets_insert"),
            page_size,
        )
        .await?,
    );
    copied.insert(
        "session_logs",
        copy_rows::<SessionLog>(
            from,
            to,
            sql!(common "copy/session_logs_page"),
            sql!(common "copy/session_logs_insert"),
            page_size,
        )
        .await?,
    );
    copied.insert(
        "agent_heartbeats",
        copy_rows::<Heartbeat>(
            from,
            to,
            sql!(common "copy/heartbeats_page"),
            sql!(common "copy/heartbeats_insert"),
            page_size,
        )
        .await?,
    );
    copied.insert(
        "idempotency_keys",
        copy_rows::<Idempotency>(
            from,
            to,
            sql!(common "copy/idempotency_page"),
            sql!(common "copy/idempotency_insert"),
            page_size,
        )
        .await?,
    );
    copied.insert(
        "webhook_deliveries",
        copy_rows::<Delivery>(
            from,
            to,
            sql!(common "copy/deliveries_page"),
            sql!(common "copy/deliveries_insert"),
            page_size,
        )
        .await?,
    );
    Ok(copied)
}

/// The number of rows of every table of [`TABLES`].
pub async fn row_counts(db: &Db) -> Result<BTreeMap<&'static str, i64>, sqlx::Error> {
    let count = sql!(common "copy/count");
    let mut counts = BTreeMap::new();
    for table in TABLES {
        let (n,): (i64,) = db
            .fetch_one(&count.for_table(table, TABLES)?, args![])
            .await?;
        counts.insert(*table, n);
    }
    Ok(counts)
}

/// An interrupted (or running) copy into a store: where from and when it started.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Unfinished {
    /// The source's URL, redacted.
    pub source: String,
    /// When the copy started (RFC 3339).
    pub started_at: String,
}

/// Marks `target` as a copy in progress from `source` (before the copy's first write).
pub async fn mark_started(target: &Db, source: &str) -> Result<(), sqlx::Error> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    target
        .execute(
            &sql!(common "copy/mark_started"),
            args![crate::redact_url(source), now],
        )
        .await?;
    Ok(())
}

/// Clears the mark: the copy into `target` finished and was verified.
pub async fn mark_finished(target: &Db) -> Result<(), sqlx::Error> {
    target
        .execute(&sql!(common "copy/mark_finished"), args![])
        .await?;
    Ok(())
}

/// The unfinished copy `db` is, if any: such a store may hold only part of a log, so
/// `sessiond serve` refuses it.
pub async fn unfinished(db: &Db) -> Result<Option<Unfinished>, sqlx::Error> {
    db.fetch_optional(&sql!(common "copy/in_progress"), args![])
        .await
}

/// What a target already holds that a copy would write: the events and every table
/// of [`TABLES`] with rows, as `(what, rows)`, and the mark of an interrupted copy
/// (empty: the target is empty).
pub async fn non_empty(store: &EventStore) -> Result<Vec<(&'static str, i64)>, StoreError> {
    let mut found = Vec::new();
    if unfinished(&store.db()).await?.is_some() {
        found.push(("an interrupted copy", 1));
    }
    let events = store.count_events().await?;
    if events > 0 {
        found.push(("events", events));
    }
    for (table, n) in row_counts(&store.db()).await? {
        if n > 0 {
            found.push((table, n));
        }
    }
    Ok(found)
}

/// One stream's size in a store: its number of events and its highest global position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSize {
    /// Events.
    pub events: i64,
    /// Highest global position.
    pub max_position: i64,
}

/// Every stream of the log, `(aggregate_type, aggregate_id)`, with its size.
pub async fn stream_sizes(db: &Db) -> Result<BTreeMap<(String, String), StreamSize>, sqlx::Error> {
    let rows: Vec<(String, String, i64, i64)> =
        db.fetch_all(&sql!(common "copy/streams"), args![]).await?;
    Ok(rows
        .into_iter()
        .map(|(t, id, events, max_position)| {
            (
                (t, id),
                StreamSize {
                    events,
                    max_position,
                },
            )
        })
        .collect())
}

/// Copies the whole event log of `from` to `to` in commit order, `batch` events per
/// read and per transaction on the target, each batch written by [`EventStore::import`]
/// (so on PostgreSQL new appends continue after the highest copied position). Calls
/// `progress` with the events copied so far; returns their number.
pub async fn copy_events(
    from: &EventStore,
    to: &EventStore,
    batch: i64,
    mut progress: impl FnMut(u64),
) -> Result<u64, StoreError> {
    let db = from.db();
    let mut cursor = LogPosition::START;
    let mut copied: u64 = 0;
    loop {
        let events = db.read_log(cursor, batch.max(1)).await?;
        let Some(last) = events.last() else {
            return Ok(copied);
        };
        cursor = last.log_position();
        to.import(&events).await?;
        copied = copied.saturating_add(events.len() as u64);
        progress(copied);
    }
}

/// The tables of the database at `url` as it is, without opening it as a store (so
/// without applying migrations, and without creating an SQLite file): `None` when the
/// SQLite file does not exist. A copy looks before it migrates: its source must be a
/// sessiond store (it has `events`), its target blank or a sessiond store.
pub async fn tables(url: &str) -> Result<Option<Vec<String>>, StoreError> {
    let statement = sql!("copy/tables");
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(crate::StoreOptions::default().acquire_timeout)
            .connect(url)
            .await?;
        let rows: Result<Vec<(String,)>, sqlx::Error> =
            sqlx::query_as(statement.postgres()).fetch_all(&pool).await;
        pool.close().await;
        Ok(Some(rows?.into_iter().map(|(t,)| t).collect()))
    } else if url.starts_with("sqlite:") {
        let Some(path) = sqlite_path(url) else {
            return Ok(Some(vec![]));
        };
        if !std::path::Path::new(&path).exists() {
            return Ok(None);
        }
        let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)?
            .create_if_missing(false)
            .read_only(true);
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(crate::StoreOptions::default().acquire_timeout)
            .connect_with(options)
            .await?;
        let rows: Result<Vec<(String,)>, sqlx::Error> =
            sqlx::query_as(statement.sqlite()).fetch_all(&pool).await;
        pool.close().await;
        Ok(Some(rows?.into_iter().map(|(t,)| t).collect()))
    } else {
        Err(StoreError::UnsupportedUrl(crate::redact_url(url)))
    }
}

/// The file of an SQLite URL (`sqlite://PATH?..` or `sqlite:PATH`); `None` for an
/// in-memory database.
pub fn sqlite_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") {
        None
    } else {
        Some(path.to_string())
    }
}

/// The last event of the log in commit order, readable yet or not (`START`: an empty
/// log). On PostgreSQL the commit-order reader returns an event only once every
/// transaction older than it has ended, in any database of the server, so a copy waits
/// until [`Db::readable_head`] reaches this before it runs the projections.
pub async fn last_written(db: &Db) -> Result<LogPosition, sqlx::Error> {
    let row: Option<(i64, i64)> = db
        .fetch_optional(&sql!("copy/last_written"), args![])
        .await?;
    Ok(LogPosition::from_row(row))
}
