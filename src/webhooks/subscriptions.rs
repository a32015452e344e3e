//! Subscription commands as the API issues them, and the signing secrets they hold.
//!
//! A new secret is sealed with the server's key-encryption key and stored
//! (`webhook_secrets`) *before* the event that names it is appended: a crash between
//! the two leaves an unused row, never an event naming a secret that does not exist.

use chrono::Utc;
use domain::ids::Owner;
use domain::webhook::{
    WebhookCommand, WebhookError, WebhookFilter, WebhookSettings, WebhookSubscription, WebhookUrl,
};
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

use super::sign::WebhookSecret;
use crate::app::App;
use crate::command::{CommandError, Committed};
use crate::compat::kek::{Kek, KekError};
use crate::store::{EventMetadata, StoreError};

/// Why a subscription command did not land. Each variant maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// The subscription refused the command (404 / 409 / 422).
    #[error(transparent)]
    Rejected(#[from] WebhookError),
    /// Still conflicting after every retry (409).
    #[error("the webhook subscription changed concurrently; retry")]
    Conflict,
    /// No key-encryption key: secrets cannot be stored or read (503).
    #[error(transparent)]
    Kek(#[from] KekError),
    /// A stored secret is unusable (500).
    #[error("a stored webhook secret is unusable: {0}")]
    BadSecret(String),
    /// The store failed (503).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The secrets table failed (503).
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<CommandError<WebhookError>> for SubscriptionError {
    fn from(e: CommandError<WebhookError>) -> Self {
        match e {
            CommandError::Rejected(r) => r.into(),
            CommandError::Conflict { .. } => SubscriptionError::Conflict,
            CommandError::Store(s) => s.into(),
        }
    }
}

/// What a PATCH changes (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// New URL (already checked by the guard).
    pub url: Option<WebhookUrl>,
    /// New description.
    pub description: Option<String>,
    /// New filter.
    pub filter: Option<WebhookFilter>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

fn kek(app: &App) -> Result<&Kek, SubscriptionError> {
    app.kek
        .as_deref()
        .ok_or(KekError::Required("store webhook secrets").into())
}

/// Opened secrets, by id (secrets never change once written).
#[derive(Debug, Default)]
pub struct SecretCache(Mutex<HashMap<String, WebhookSecret>>);

impl SecretCache {
    fn get(&self, key: &str) -> Option<WebhookSecret> {
        self.0.lock().ok().and_then(|m| m.get(key).cloned())
    }

    fn put(&self, key: &str, secret: &WebhookSecret) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key.to_string(), secret.clone());
        }
    }
}

async fn store_secret(
    app: &App,
    webhook_id: Uuid,
) -> Result<(Uuid, WebhookSecret), SubscriptionError> {
    let kek = kek(app)?;
    let secret = WebhookSecret::generate();
    let secret_id = Uuid::new_v4();
    store::webhook_secrets::insert(
        app.db(),
        &secret_id.to_string(),
        &webhook_id.to_string(),
        &kek.seal(&secret.encoded()),
        &Utc::now().to_rfc3339(),
    )
    .await?;
    Ok((secret_id, secret))
}

/// Creates a subscription; returns it and its first secret (shown once).
pub async fn create(
    app: &App,
    settings: WebhookSettings,
    meta: &EventMetadata,
) -> Result<(Committed<WebhookSubscription>, WebhookSecret), SubscriptionError> {
    let webhook_id = Uuid::new_v4();
    let (secret_id, secret) = store_secret(app, webhook_id).await?;
    let committed = app
        .commands
        .execute_new::<WebhookSubscription>(
            &webhook_id.to_string(),
            WebhookCommand::Create {
                webhook_id,
                settings,
                secret_id,
                now: app.clock.now(),
            },
            meta,
        )
        .await?;
    Ok((committed, secret))
}

/// Changes some settings.
pub async fn update(
    app: &App,
    webhook_id: Uuid,
    changes: Changes,
    meta: &EventMetadata,
) -> Result<Committed<WebhookSubscription>, SubscriptionError> {
    Ok(app
        .commands
        .execute::<WebhookSubscription>(
            &webhook_id.to_string(),
            WebhookCommand::Update {
                url: changes.url,
                description: changes.description,
                filter: changes.filter,
                enabled: changes.enabled,
                now: app.clock.now(),
            },
            meta,
        )
        .await?)
}

/// Rotates the signing secret; the previous one keeps signing for the configured overlap.
pub async fn rotate(
    app: &App,
    webhook_id: Uuid,
    meta: &EventMetadata,
) -> Result<(Committed<WebhookSubscription>, WebhookSecret), SubscriptionError> {
    let current: WebhookSubscription = app.commands.load(&webhook_id.to_string()).await?;
    if !current.is_live() {
        return Err(WebhookError::NotFound.into());
    }
    let (secret_id, secret) = store_secret(app, webhook_id).await?;
    let overlap = chrono::Duration::seconds(
        i64::try_from(app.settings.webhooks.rotation_overlap_secs).unwrap_or(i64::MAX / 1000),
    );
    let committed = app
        .commands
        .execute::<WebhookSubscription>(
            &webhook_id.to_string(),
            WebhookCommand::RotateSecret {
                secret_id,
                overlap,
                now: app.clock.now(),
            },
            meta,
        )
        .await?;
    Ok((committed, secret))
}

/// Deletes a subscription.
pub async fn delete(
    app: &App,
    webhook_id: Uuid,
    meta: &EventMetadata,
) -> Result<Committed<WebhookSubscription>, SubscriptionError> {
    Ok(app
        .commands
        .execute::<WebhookSubscription>(
            &webhook_id.to_string(),
            WebhookCommand::Delete {
                now: app.clock.now(),
            },
            meta,
        )
        .await?)
}

/// The endpoint of `webhook_id` answered `410 Gone`: disables the subscription.
pub async fn disable_gone(
    app: &App,
    webhook_id: &str,
    meta: &EventMetadata,
) -> Result<Committed<WebhookSubscription>, SubscriptionError> {
    Ok(app
        .commands
        .execute::<WebhookSubscription>(
            webhook_id,
            WebhookCommand::DisableGone {
                now: app.clock.now(),
            },
            meta,
        )
        .await?)
}

/// The subscription as of every acknowledged event (read from its stream).
pub async fn load(app: &App, webhook_id: Uuid) -> Result<WebhookSubscription, SubscriptionError> {
    let w: WebhookSubscription = app.commands.load(&webhook_id.to_string()).await?;
    if w.is_live() {
        Ok(w)
    } else {
        Err(WebhookError::NotFound.into())
    }
}

/// Secret `secret_id`, opened.
pub async fn secret(
    app: &App,
    cache: &SecretCache,
    secret_id: Uuid,
) -> Result<WebhookSecret, SubscriptionError> {
    let key = secret_id.to_string();
    if let Some(s) = cache.get(&key) {
        return Ok(s);
    }
    let sealed = store::webhook_secrets::get(app.db(), &key)
        .await?
        .ok_or_else(|| SubscriptionError::BadSecret(format!("secret {key} is not stored")))?;
    let secret = WebhookSecret::parse(&kek(app)?.open(&sealed)?)
        .map_err(|e| SubscriptionError::BadSecret(e.to_string()))?;
    cache.put(&key, &secret);
    Ok(secret)
}

/// `owner`'s callback secret, created on first use.
pub async fn callback_secret(
    app: &App,
    cache: &SecretCache,
    owner: &Owner,
) -> Result<WebhookSecret, SubscriptionError> {
    let key = format!("callback:{owner}");
    if let Some(s) = cache.get(&key) {
        return Ok(s);
    }
    let kek = kek(app)?;
    let sealed = match store::webhook_secrets::get_callback(app.db(), owner.as_str()).await? {
        Some(sealed) => sealed,
        None => {
            store::webhook_secrets::get_or_insert_callback(
                app.db(),
                owner.as_str(),
                &kek.seal(&WebhookSecret::generate().encoded()),
                &Utc::now().to_rfc3339(),
            )
            .await?
        }
    };
    let secret = WebhookSecret::parse(&kek.open(&sealed)?)
        .map_err(|e| SubscriptionError::BadSecret(e.to_string()))?;
    cache.put(&key, &secret);
    Ok(secret)
}
