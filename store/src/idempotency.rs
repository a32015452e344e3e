//! The `idempotency_keys` table: one record per (scope, key) — who holds it, the hash
//! of the request body, and the stored response once there is one. The protocol
//! (claim, run, complete or release, replay, wait) is the application's
//! (`sessiond::idempotency`).

use crate::db::Db;
use crate::{args, sql};

/// A record: `(request_hash, request_id, status_code, response, created_at)`.
pub type RecordRow = (String, String, Option<i64>, Option<String>, String);

/// Claims `key` of `scope` for `request_id`; `false` when it is taken.
pub async fn claim(
    db: &Db,
    scope: &str,
    key: &str,
    hash: &str,
    request_id: &str,
    now: &str,
) -> Result<bool, sqlx::Error> {
    let n = db
        .execute(
            &sql!(common "idempotency/claim"),
            args![scope, key, hash, request_id, now],
        )
        .await?;
    Ok(n == 1)
}

/// The record of `key` in `scope`.
pub async fn get(db: &Db, scope: &str, key: &str) -> Result<Option<RecordRow>, sqlx::Error> {
    db.fetch_optional(&sql!(common "idempotency/get"), args![scope, key])
        .await
}

/// Hands a record in flight from `holder` to `request_id`; `false` when it was
/// completed or taken over meanwhile.
pub async fn take_over(
    db: &Db,
    scope: &str,
    key: &str,
    holder: &str,
    request_id: &str,
    now: &str,
) -> Result<bool, sqlx::Error> {
    let n = db
        .execute(
            &sql!(common "idempotency/take_over"),
            args![scope, key, holder, request_id, now],
        )
        .await?;
    Ok(n == 1)
}

/// Stores the response of the request holding the key.
pub async fn complete(
    db: &Db,
    scope: &str,
    key: &str,
    request_id: &str,
    status: i64,
    body: &str,
    now: &str,
) -> Result<(), sqlx::Error> {
    db.execute(
        &sql!(common "idempotency/complete"),
        args![scope, key, request_id, status, body, now],
    )
    .await?;
    Ok(())
}

/// Gives the key up (its holder ended without a response).
pub async fn release(db: &Db, scope: &str, key: &str, request_id: &str) -> Result<(), sqlx::Error> {
    db.execute(
        &sql!(common "idempotency/release"),
        args![scope, key, request_id],
    )
    .await?;
    Ok(())
}

/// Purges the records created before `before` (RFC 3339 with milliseconds, UTC, like
/// `created_at`); returns how many went.
pub async fn purge(db: &Db, before: &str) -> Result<u64, sqlx::Error> {
    db.execute(&sql!(common "idempotency/purge"), args![before])
        .await
}
