//! The one backend abstraction: a [`Db`] (pool) or a [`Tx`] (transaction) on either
//! backend runs a [`Statement`] — SQL text kept in `.sql` files per backend and loaded
//! with `include_str!` by [`sql!`](crate::sql) — with its arguments as [`Arg`]s, and
//! decodes rows into any type that is a [`Record`] on both backends.
//!
//! Every crate above this one runs SQL only through here: no SQL text is built at run
//! time outside this module (the one place that does, [`Statement::for_table`], fills
//! a table name from a fixed list into a statement that names it as `{table}`).
//!
//! On SQLite, reads go to the readers' pool and writes to the single writer connection;
//! [`Db::execute`] and [`Db::write_fetch_all`] are the writes.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::sqlite::{SqliteArguments, SqlitePool, SqliteRow};
use sqlx::{Arguments, Postgres, Sqlite, Transaction};

/// Which database the store, and the read models with it, live in.
#[derive(Debug, Clone)]
pub enum Db {
    /// PostgreSQL pool.
    Postgres(PgPool),
    /// SQLite: the single writer connection and the readers' pool.
    Sqlite {
        /// Exactly one connection: every write goes through it.
        writer: SqlitePool,
        /// Read-only connections.
        readers: SqlitePool,
    },
}

/// An open transaction (on SQLite, on the single writer connection).
#[derive(Debug)]
pub enum Tx {
    /// PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
    /// SQLite.
    Sqlite(Transaction<'static, Sqlite>),
}

/// One SQL statement in the text of each backend (an empty text: the statement does
/// not apply to that backend and running it does nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement {
    /// Its file name, for logs and errors (e.g. `log/read_log`).
    pub name: &'static str,
    postgres: &'static str,
    sqlite: &'static str,
}

impl Statement {
    /// A statement from its texts (use [`sql!`](crate::sql)).
    pub const fn new(name: &'static str, postgres: &'static str, sqlite: &'static str) -> Self {
        Self {
            name,
            postgres,
            sqlite,
        }
    }

    /// The PostgreSQL text.
    pub fn postgres(&self) -> &'static str {
        self.postgres
    }

    /// The SQLite text.
    pub fn sqlite(&self) -> &'static str {
        self.sqlite
    }

    /// This statement over one of several tables of the same shape: `{table}` in its
    /// text is replaced by `table`, which must be one of `allowed` (a fixed list of the
    /// caller's tables, never input).
    pub fn for_table(
        &self,
        table: &'static str,
        allowed: &[&'static str],
    ) -> Result<Rendered, sqlx::Error> {
        if !allowed.contains(&table) {
            return Err(sqlx::Error::Protocol(format!(
                "statement {}: table {table} is not one of {allowed:?}",
                self.name
            )));
        }
        Ok(Rendered {
            name: self.name,
            postgres: self.postgres.replace("{table}", table),
            sqlite: self.sqlite.replace("{table}", table),
        })
    }
}

/// A [`Statement`] with its table filled in ([`Statement::for_table`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    name: &'static str,
    postgres: String,
    sqlite: String,
}

/// What can be run: a [`Statement`] or a [`Rendered`] one.
pub trait Sql: Send + Sync {
    /// The text for PostgreSQL.
    fn postgres_text(&self) -> &str;
    /// The text for SQLite.
    fn sqlite_text(&self) -> &str;
}

impl Sql for Statement {
    fn postgres_text(&self) -> &str {
        self.postgres
    }
    fn sqlite_text(&self) -> &str {
        self.sqlite
    }
}

impl Sql for Rendered {
    fn postgres_text(&self) -> &str {
        &self.postgres
    }
    fn sqlite_text(&self) -> &str {
        &self.sqlite
    }
}

/// A statement from `sql/<backend>/<name>.sql` of the calling crate:
/// `sql!("log/read_log")` reads `sql/postgres/log/read_log.sql` and
/// `sql/sqlite/log/read_log.sql`; `sql!(common "x")` reads `sql/common/x.sql` for both
/// (the statement is portable); `sql!(postgres "x")` reads `sql/postgres/x.sql` and does
/// nothing on SQLite.
#[macro_export]
macro_rules! sql {
    (common $name:literal) => {
        $crate::db::Statement::new(
            $name,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/sql/common/",
                $name,
                ".sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/sql/common/",
                $name,
                ".sql"
            )),
        )
    };
    (postgres $name:literal) => {
        $crate::db::Statement::new(
            $name,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/sql/postgres/",
                $name,
                ".sql"
            )),
            "",
        )
    };
    ($name:literal) => {
        $crate::db::Statement::new(
            $name,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/sql/postgres/",
                $name,
                ".sql"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/sql/sqlite/",
                $name,
                ".sql"
            )),
        )
    };
}

/// A statement argument. Lists bind as arrays on PostgreSQL (read with `UNNEST` or
/// `= ANY`) and as one JSON array text on SQLite (read with `json_each`); JSON binds as
/// `jsonb` on PostgreSQL and as its text on SQLite; times as `timestamptz` on
/// PostgreSQL and as RFC 3339 text (microseconds, `Z`) on SQLite.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// An integer.
    Int(i64),
    /// An integer or NULL.
    OptInt(Option<i64>),
    /// Text.
    Text(String),
    /// Text or NULL.
    OptText(Option<String>),
    /// A JSON value.
    Json(Value),
    /// A time.
    Time(DateTime<Utc>),
    /// A list of integers.
    Ints(Vec<i64>),
    /// A list of texts.
    Texts(Vec<String>),
    /// A list of texts or NULLs.
    OptTexts(Vec<Option<String>>),
    /// A list of JSON values.
    Jsons(Vec<Value>),
    /// A list of times.
    Times(Vec<DateTime<Utc>>),
}

impl Arg {
    /// Text.
    pub fn text(s: impl Into<String>) -> Self {
        Arg::Text(s.into())
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::OptInt(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_string())
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::OptText(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::OptText(v.map(str::to_string))
    }
}
impl From<Value> for Arg {
    fn from(v: Value) -> Self {
        Arg::Json(v)
    }
}
impl From<DateTime<Utc>> for Arg {
    fn from(v: DateTime<Utc>) -> Self {
        Arg::Time(v)
    }
}
impl From<Vec<i64>> for Arg {
    fn from(v: Vec<i64>) -> Self {
        Arg::Ints(v)
    }
}
impl From<Vec<String>> for Arg {
    fn from(v: Vec<String>) -> Self {
        Arg::Texts(v)
    }
}
impl From<Vec<Option<String>>> for Arg {
    fn from(v: Vec<Option<String>>) -> Self {
        Arg::OptTexts(v)
    }
}
impl From<Vec<Value>> for Arg {
    fn from(v: Vec<Value>) -> Self {
        Arg::Jsons(v)
    }
}
impl From<Vec<DateTime<Utc>>> for Arg {
    fn from(v: Vec<DateTime<Utc>>) -> Self {
        Arg::Times(v)
    }
}

/// The arguments of one statement: `args![a, b, c]` converts each with `Arg::from`.
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        vec![$($crate::db::Arg::from($a)),*]
    };
}

/// A row type both backends can decode (tuples of such columns, `#[derive(FromRow)]`
/// structs of them, [`RecordedEvent`](crate::RecordedEvent)).
pub trait Record:
    for<'r> sqlx::FromRow<'r, PgRow> + for<'r> sqlx::FromRow<'r, SqliteRow> + Send + Unpin
{
}
impl<T> Record for T where
    T: for<'r> sqlx::FromRow<'r, PgRow> + for<'r> sqlx::FromRow<'r, SqliteRow> + Send + Unpin
{
}

fn sqlite_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn json_list<T: serde::Serialize>(v: &[T]) -> Result<String, sqlx::Error> {
    serde_json::to_string(v).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

fn pg_arguments(args: Vec<Arg>) -> Result<PgArguments, sqlx::Error> {
    let mut out = PgArguments::default();
    for arg in args {
        match arg {
            Arg::Int(v) => out.add(v),
            Arg::OptInt(v) => out.add(v),
            Arg::Text(v) => out.add(v),
            Arg::OptText(v) => out.add(v),
            Arg::Json(v) => out.add(v),
            Arg::Time(v) => out.add(v),
            Arg::Ints(v) => out.add(v),
            Arg::Texts(v) => out.add(v),
            Arg::OptTexts(v) => out.add(v),
            Arg::Jsons(v) => out.add(v),
            Arg::Times(v) => out.add(v),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(out)
}

fn sqlite_arguments(args: Vec<Arg>) -> Result<SqliteArguments<'static>, sqlx::Error> {
    let mut out = SqliteArguments::default();
    for arg in args {
        match arg {
            Arg::Int(v) => out.add(v),
            Arg::OptInt(v) => out.add(v),
            Arg::Text(v) => out.add(v),
            Arg::OptText(v) => out.add(v),
            Arg::Json(v) => out.add(v.to_string()),
            Arg::Time(v) => out.add(sqlite_time(&v)),
            Arg::Ints(v) => out.add(json_list(&v)?),
            Arg::Texts(v) => out.add(json_list(&v)?),
            Arg::OptTexts(v) => out.add(json_list(&v)?),
            Arg::Jsons(v) => out.add(json_list(&v)?),
            Arg::Times(v) => out.add(json_list(&v.iter().map(sqlite_time).collect::<Vec<_>>())?),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(out)
}

/// Every row of `text` (none when the statement does not apply to this backend).
async fn rows<'e, DB, T, E>(
    executor: E,
    text: &'e str,
    args: <DB as sqlx::Database>::Arguments<'e>,
) -> Result<Vec<T>, sqlx::Error>
where
    DB: sqlx::Database,
    T: for<'r> sqlx::FromRow<'r, DB::Row> + Send + Unpin,
    E: sqlx::Executor<'e, Database = DB>,
    <DB as sqlx::Database>::Arguments<'e>: sqlx::IntoArguments<'e, DB>,
{
    if text.is_empty() {
        return Ok(vec![]);
    }
    sqlx::query_as_with(text, args).fetch_all(executor).await
}

/// The first row of `text`, if any.
async fn first_row<'e, DB, T, E>(
    executor: E,
    text: &'e str,
    args: <DB as sqlx::Database>::Arguments<'e>,
) -> Result<Option<T>, sqlx::Error>
where
    DB: sqlx::Database,
    T: for<'r> sqlx::FromRow<'r, DB::Row> + Send + Unpin,
    E: sqlx::Executor<'e, Database = DB>,
    <DB as sqlx::Database>::Arguments<'e>: sqlx::IntoArguments<'e, DB>,
{
    if text.is_empty() {
        return Ok(None);
    }
    sqlx::query_as_with(text, args)
        .fetch_optional(executor)
        .await
}

/// Runs `text` for its effect; the rows affected.
async fn effect<'e, DB, E>(
    executor: E,
    text: &'e str,
    args: <DB as sqlx::Database>::Arguments<'e>,
) -> Result<u64, sqlx::Error>
where
    DB: sqlx::Database,
    E: sqlx::Executor<'e, Database = DB>,
    <DB as sqlx::Database>::Arguments<'e>: sqlx::IntoArguments<'e, DB>,
    <DB as sqlx::Database>::QueryResult: RowsAffected,
{
    if text.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query_with(text, args)
        .execute(executor)
        .await?
        .rows_affected())
}

/// The rows a statement affected, on either backend.
trait RowsAffected {
    fn rows_affected(&self) -> u64;
}
impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}
impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

fn one<T>(row: Option<T>) -> Result<T, sqlx::Error> {
    row.ok_or(sqlx::Error::RowNotFound)
}

impl Db {
    /// Which backend.
    pub fn backend(&self) -> crate::Backend {
        match self {
            Db::Postgres(_) => crate::Backend::Postgres,
            Db::Sqlite { .. } => crate::Backend::Sqlite,
        }
    }

    /// Begins a transaction with `begin`'s PostgreSQL text as its first round trip (e.g.
    /// `BEGIN; SET LOCAL ...`: one round trip instead of two); on SQLite exactly as
    /// [`Db::begin`] (`BEGIN IMMEDIATE` on the writer), whatever `begin` says.
    pub async fn begin_as(&self, begin: &Statement) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Postgres(p) if !begin.postgres().trim().is_empty() => {
                Tx::Postgres(p.begin_with(begin.postgres()).await?)
            }
            _ => self.begin().await?,
        })
    }

    /// Begins a transaction (on SQLite, on the single writer connection).
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        Ok(match self {
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
            // IMMEDIATE: take the write lock up front. A deferred transaction that reads
            // first and writes later fails at once with SQLITE_BUSY (the busy timeout
            // does not apply to a read-to-write upgrade) when another process wrote.
            Db::Sqlite { writer, .. } => Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    /// Every row of a read.
    pub async fn fetch_all<T: Record>(
        &self,
        sql: &impl Sql,
        args: Vec<Arg>,
    ) -> Result<Vec<T>, sqlx::Error> {
        match self {
            Db::Postgres(p) => rows(p, sql.postgres_text(), pg_arguments(args)?).await,
            Db::Sqlite { readers, .. } => {
                rows(readers, sql.sqlite_text(), sqlite_arguments(args)?).await
            }
        }
    }

    /// The first row of a read, if any.
    pub async fn fetch_optional<T: Record>(
        &self,
        sql: &impl Sql,
        args: Vec<Arg>,
    ) -> Result<Option<T>, sqlx::Error> {
        match self {
            Db::Postgres(p) => first_row(p, sql.postgres_text(), pg_arguments(args)?).await,
            Db::Sqlite { readers, .. } => {
                first_row(readers, sql.sqlite_text(), sqlite_arguments(args)?).await
            }
        }
    }

    /// Exactly one row of a read.
    pub async fn fetch_one<T: Record>(
        &self,
        sql: &impl Sql,
        args: Vec<Arg>,
    ) -> Result<T, sqlx::Error> {
        one(self.fetch_optional(sql, args).await?)
    }

    /// A write (on SQLite, on the writer); the rows affected.
    pub async fn execute(&self, sql: &impl Sql, args: Vec<Arg>) -> Result<u64, sqlx::Error> {
        match self {
            Db::Postgres(p) => effect(p, sql.postgres_text(), pg_arguments(args)?).await,
            Db::Sqlite { writer, .. } => {
                effect(writer, sql.sqlite_text(), sqlite_arguments(args)?).await
            }
        }
    }

    /// A write that returns rows (`RETURNING`; on SQLite, on the writer).
    pub async fn write_fetch_all<T: Record>(
        &self,
        sql: &impl Sql,
        args: Vec<Arg>,
    ) -> Result<Vec<T>, sqlx::Error> {
        match self {
            Db::Postgres(p) => rows(p, sql.postgres_text(), pg_arguments(args)?).await,
            Db::Sqlite { writer, .. } => {
                rows(writer, sql.sqlite_text(), sqlite_arguments(args)?).await
            }
        }
    }
}

impl Tx {
    /// Which backend.
    pub fn backend(&self) -> crate::Backend {
        match self {
            Tx::Postgres(_) => crate::Backend::Postgres,
            Tx::Sqlite(_) => crate::Backend::Sqlite,
        }
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Tx::Postgres(_))
    }

    /// Every row.
    pub async fn fetch_all<T: Record>(
        &mut self,
        sql: &impl Sql,
        args: Vec<Arg>,
    ) -> Result<Vec<T>, sqlx::Error> {
        match self {
            Tx::Postgres(t) => rows(&mut **t, sql.postgres_text(), pg_arguments(args)?).await,
            Tx::Sqlite(t) => rows(&mut **t, sql.sqlite_text(), sqlite_arguments(args)?).await,
        }
    }

    /// The first row, if any.
    pub async fn fetch_optional<T: Record>(
        &mut self,
        sql: &impl Sql,
        args: Vec<Arg>,
    ) -> Result<Option<T>, sqlx::Error> {
        match self {
            Tx::Postgres(t) => first_row(&mut **t, sql.postgres_text(), pg_arguments(args)?).await,
            Tx::Sqlite(t) => first_row(&mut **t, sql.sqlite_text(), sqlite_arguments(args)?).await,
        }
    }

    /// Exactly one row.
    pub async fn fetch_one<T: Record>(
        &mut self,
        sql: &impl Sql,
        args: Vec<Arg>,
    ) -> Result<T, sqlx::Error> {
        one(self.fetch_optional(sql, args).await?)
    }

    /// A statement without rows; the rows affected.
    pub async fn execute(&mut self, sql: &impl Sql, args: Vec<Arg>) -> Result<u64, sqlx::Error> {
        match self {
            Tx::Postgres(t) => effect(&mut **t, sql.postgres_text(), pg_arguments(args)?).await,
            Tx::Sqlite(t) => effect(&mut **t, sql.sqlite_text(), sqlite_arguments(args)?).await,
        }
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(t) => t.commit().await,
            Tx::Sqlite(t) => t.commit().await,
        }
    }

    /// Rolls back (dropping a transaction does too).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Postgres(t) => t.rollback().await,
            Tx::Sqlite(t) => t.rollback().await,
        }
    }
}
