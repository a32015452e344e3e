//! The `webhook_secrets` and `callback_secrets` tables: signing secrets, sealed by the
//! application with its key-encryption key. Secrets are not domain facts (the log names
//! a subscription's secrets by id only), so they live beside the events.

use crate::db::Db;
use crate::{args, sql};

/// Stores secret `secret_id` of subscription `webhook_id`, sealed.
pub async fn insert(
    db: &Db,
    secret_id: &str,
    webhook_id: &str,
    sealed: &str,
    created_at: &str,
) -> Result<(), sqlx::Error> {
    db.execute(
        &sql!(common "webhook_secrets/insert"),
        args![secret_id, webhook_id, sealed, created_at],
    )
    .await?;
    Ok(())
}

/// The sealed secret `secret_id`.
pub async fn get(db: &Db, secret_id: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = db
        .fetch_optional(&sql!(common "webhook_secrets/get"), args![secret_id])
        .await?;
    Ok(row.map(|(s,)| s))
}

/// Stores `owner`'s callback secret unless they have one; returns the one that holds.
pub async fn get_or_insert_callback(
    db: &Db,
    owner: &str,
    sealed: &str,
    created_at: &str,
) -> Result<String, sqlx::Error> {
    db.execute(
        &sql!(common "webhook_secrets/insert_callback"),
        args![owner, sealed, created_at],
    )
    .await?;
    let row: (String,) = db
        .fetch_one(&sql!(common "webhook_secrets/get_callback"), args![owner])
        .await?;
    Ok(row.0)
}

/// `owner`'s sealed callback secret, if they have one.
pub async fn get_callback(db: &Db, owner: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = db
        .fetch_optional(&sql!(common "webhook_secrets/get_callback"), args![owner])
        .await?;
    Ok(row.map(|(s,)| s))
}
