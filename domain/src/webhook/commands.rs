//! Commands on a webhook subscription.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::spec::{WebhookFilter, WebhookSettings, WebhookUrl};

/// A command on one subscription.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookCommand {
    /// Create the subscription with its first secret.
    Create {
        /// Its id.
        webhook_id: Uuid,
        /// Its settings.
        settings: WebhookSettings,
        /// The id of its first signing secret.
        secret_id: Uuid,
        /// When.
        now: DateTime<Utc>,
    },
    /// Change some settings (`None`: unchanged). Enabling clears a disable by `410`.
    Update {
        /// New URL.
        url: Option<WebhookUrl>,
        /// New description.
        description: Option<String>,
        /// New filter.
        filter: Option<WebhookFilter>,
        /// Enable or disable.
        enabled: Option<bool>,
        /// When.
        now: DateTime<Utc>,
    },
    /// Sign with a new secret from now on; the current one keeps signing for `overlap`.
    RotateSecret {
        /// The new secret's id.
        secret_id: Uuid,
        /// How long the current secret keeps signing.
        overlap: Duration,
        /// When.
        now: DateTime<Utc>,
    },
    /// The endpoint answered `410 Gone`: disable the subscription.
    DisableGone {
        /// When.
        now: DateTime<Utc>,
    },
    /// Delete the subscription: nothing more is delivered.
    Delete {
        /// When.
        now: DateTime<Utc>,
    },
}
