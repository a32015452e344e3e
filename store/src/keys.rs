//! The `api_keys`, `api_bootstrap` and `api_key_revision` tables: keys are access
//! control, not domain facts, so they live beside the events rather than in the log.
//! Hashing, roles and the cache are the application's (`sessiond::auth`).

use crate::db::Db;
use crate::{args, sql};

/// A key as stored (its hash, never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey<'a> {
    /// Public id (`key_…`).
    pub id: &'a str,
    /// Hex SHA-256 of the key.
    pub key_hash: &'a str,
    /// `admin`, `user` or `agent`.
    pub role: &'a str,
    /// The owner of a user key.
    pub owner: Option<&'a str>,
    /// The agent of an agent key.
    pub agent_id: Option<&'a str>,
    /// Free text.
    pub description: &'a str,
    /// RFC 3339.
    pub created_at: &'a str,
}

/// A key as listed: `(id, role, owner, agent_id, description, created_at, revoked_at)`.
pub type KeyRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
);

fn insert_args(key: &NewKey<'_>) -> Vec<crate::Arg> {
    args![
        key.id,
        key.key_hash,
        key.role,
        key.owner,
        key.agent_id,
        key.description,
        key.created_at
    ]
}

/// Stores a key.
pub async fn insert(db: &Db, key: &NewKey<'_>) -> Result<(), sqlx::Error> {
    db.execute(&sql!(common "keys/insert"), insert_args(key))
        .await?;
    Ok(())
}

/// Stores a keypair: `key` (its `key_hash` a hash nobody can present), the access key
/// and the sealed secret.
pub async fn insert_keypair(
    db: &Db,
    key: &NewKey<'_>,
    access_key: &str,
    secret_sealed: &str,
) -> Result<(), sqlx::Error> {
    let mut args = insert_args(key);
    args.extend(args![access_key, secret_sealed]);
    db.execute(&sql!(common "keys/insert_keypair"), args)
        .await?;
    Ok(())
}

/// The unrevoked keypair with `access_key`: `(id, role, owner, agent_id, secret_sealed)`.
pub async fn find_keypair(
    db: &Db,
    access_key: &str,
) -> Result<Option<(String, String, Option<String>, Option<String>, String)>, sqlx::Error> {
    db.fetch_optional(&sql!(common "keys/find_keypair"), args![access_key])
        .await
}

/// Whether any keypair exists.
pub async fn has_keypairs(db: &Db) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> = db
        .fetch_optional(&sql!(common "keys/has_keypairs"), args![])
        .await?;
    Ok(row.is_some())
}

/// Whether the store was ever bootstrapped with an admin key.
pub async fn bootstrapped(db: &Db) -> Result<bool, sqlx::Error> {
    let row: Option<(String,)> = db
        .fetch_optional(&sql!(common "keys/bootstrapped"), args![])
        .await?;
    Ok(row.is_some())
}

/// Claims the store's one bootstrap for `key` and stores it, in one transaction;
/// `false` (and nothing stored) when the bootstrap was claimed before.
pub async fn bootstrap(db: &Db, key: &NewKey<'_>) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let claimed = tx
        .execute(
            &sql!(common "keys/claim_bootstrap"),
            args![key.id, key.created_at],
        )
        .await?;
    if claimed == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.execute(&sql!(common "keys/insert"), insert_args(key))
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// The unrevoked key with this hash: `(id, role, owner, agent_id)`.
pub async fn find_active(
    db: &Db,
    key_hash: &str,
) -> Result<Option<(String, String, Option<String>, Option<String>)>, sqlx::Error> {
    db.fetch_optional(&sql!(common "keys/find_active"), args![key_hash])
        .await
}

/// Every key, oldest first.
pub async fn list(db: &Db) -> Result<Vec<KeyRow>, sqlx::Error> {
    db.fetch_all(&sql!(common "keys/list"), args![]).await
}

/// Revokes key `id` at `now` and bumps the revocation revision, in one transaction;
/// `false` when there is no such key.
pub async fn revoke(db: &Db, id: &str, now: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let affected = tx
        .execute(&sql!(common "keys/revoke"), args![id, now])
        .await?;
    if affected == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.execute(&sql!(common "keys/bump_revision"), args![])
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// The revocation revision.
pub async fn revision(db: &Db) -> Result<i64, sqlx::Error> {
    let (revision,): (i64,) = db.fetch_one(&sql!(common "keys/revision"), args![]).await?;
    Ok(revision)
}

/// The ids of every revoked key.
pub async fn revoked_ids(db: &Db) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = db
        .fetch_all(&sql!(common "keys/revoked_ids"), args![])
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Whether the store accepts writes: writes one row back unchanged, in a transaction
/// that is rolled back. The error (e.g. SQLite's "attempt to write a readonly database",
/// PostgreSQL's `read_only_sql_transaction`) when it does not.
pub async fn check_writable(db: &Db) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    tx.execute(&sql!(common "keys/touch_revision"), args![])
        .await?;
    tx.rollback().await?;
    Ok(())
}
