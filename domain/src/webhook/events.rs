//! Events of a webhook subscription.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::spec::WebhookSettings;

/// Current version of webhook subscription events.
pub const WEBHOOK_EVENT_VERSION: &str = "1";

/// Events of a webhook subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WebhookEvent {
    /// The subscription was created.
    WebhookSubscriptionCreated {
        /// Its id.
        webhook_id: Uuid,
        /// Its settings.
        settings: WebhookSettings,
        /// Its first signing secret.
        secret_id: Uuid,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// Its settings changed (the whole new settings).
    WebhookSubscriptionUpdated {
        /// The settings from now on.
        settings: WebhookSettings,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// A new secret signs from now on; the previous one until `previous_expires_at`.
    WebhookSecretRotated {
        /// The new secret.
        secret_id: Uuid,
        /// The secret that was current.
        previous_secret_id: Uuid,
        /// When the previous secret stops signing.
        previous_expires_at: DateTime<Utc>,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// The endpoint answered `410 Gone`; the subscription is disabled.
    WebhookSubscriptionDisabled {
        /// Why (`endpoint answered 410 Gone`).
        reason: String,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// The subscription was deleted.
    WebhookSubscriptionDeleted {
        /// When.
        occurred_at: DateTime<Utc>,
    },
}

impl WebhookEvent {
    /// The stored event type.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::WebhookSubscriptionCreated { .. } => "WebhookSubscriptionCreated",
            Self::WebhookSubscriptionUpdated { .. } => "WebhookSubscriptionUpdated",
            Self::WebhookSecretRotated { .. } => "WebhookSecretRotated",
            Self::WebhookSubscriptionDisabled { .. } => "WebhookSubscriptionDisabled",
            Self::WebhookSubscriptionDeleted { .. } => "WebhookSubscriptionDeleted",
        }
    }

    /// When it happened.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            Self::WebhookSubscriptionCreated { occurred_at, .. }
            | Self::WebhookSubscriptionUpdated { occurred_at, .. }
            | Self::WebhookSecretRotated { occurred_at, .. }
            | Self::WebhookSubscriptionDisabled { occurred_at, .. }
            | Self::WebhookSubscriptionDeleted { occurred_at } => *occurred_at,
        }
    }
}
