//! Leases: the right to be the one replica doing a job (running a projection, scheduling
//! a scaling group, checking agent liveness).
//!
//! PostgreSQL: a session-level advisory lock held on a dedicated connection. It is
//! released when that connection closes, so the lease of a replica that dies (even by
//! `kill -9`) frees itself as soon as PostgreSQL notices the closed socket. SQLite: one
//! process owns the file's writer, so the lease is trivially in-process.
//!
//! A lease is an efficiency and tidiness device, not the safety net: every decision a
//! lease holder makes is still appended with optimistic concurrency, so two replicas
//! that both believe they hold it cannot corrupt anything.

use crate::db::Db;
use crate::sql;

/// A held lease.
#[derive(Debug)]
pub enum Lease {
    /// An advisory lock on this connection.
    Postgres(sqlx::PgConnection),
    /// In-process (SQLite).
    InProcess,
}

impl Lease {
    /// Tries to take the lease `name` without waiting. A standby keeps its connection in
    /// `spare` between attempts instead of opening one per poll.
    pub async fn acquire(
        db: &Db,
        name: &str,
        spare: &mut Option<sqlx::PgConnection>,
    ) -> Result<Option<Lease>, sqlx::Error> {
        match db {
            Db::Postgres(pool) => {
                let mut conn = match spare.take() {
                    Some(c) => c,
                    None => pool.acquire().await?.detach(),
                };
                let got: bool = sqlx::query_scalar(sql!(postgres "lease/try_lock").postgres())
                    .bind(lease_key(name))
                    .fetch_one(&mut conn)
                    .await?;
                if got {
                    Ok(Some(Lease::Postgres(conn)))
                } else {
                    *spare = Some(conn);
                    Ok(None)
                }
            }
            Db::Sqlite { .. } => Ok(Some(Lease::InProcess)),
        }
    }

    /// Whether the lease is still held (its connection still answers).
    pub async fn alive(&mut self) -> bool {
        match self {
            Lease::Postgres(conn) => sqlx::query(sql!(common "events/ping").postgres())
                .execute(conn)
                .await
                .is_ok(),
            Lease::InProcess => true,
        }
    }

    /// Gives the lease up.
    pub async fn release(self) {
        if let Lease::Postgres(conn) = self {
            use sqlx::Connection;
            let _ = conn.close().await;
        }
    }
}

/// A stable advisory-lock key per lease name (FNV-1a).
pub fn lease_key(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}
