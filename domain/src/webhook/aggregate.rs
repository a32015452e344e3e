//! The WebhookSubscription aggregate: state, decisions, fold.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::commands::WebhookCommand;
use super::error::WebhookError;
use super::events::WebhookEvent;
use super::spec::WebhookSettings;

/// Why a subscription disabled by its endpoint is disabled.
pub const GONE_REASON: &str = "endpoint answered 410 Gone";

/// A signing secret of a subscription, by id (the bytes are not in the log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    /// Its id.
    pub secret_id: Uuid,
    /// When it began signing.
    pub created_at: DateTime<Utc>,
    /// When it stops signing (`None`: it is the current secret).
    pub expires_at: Option<DateTime<Utc>>,
}

/// Folded state of a subscription. `Default`: it does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSubscription {
    /// Its id (`None`: it does not exist).
    pub webhook_id: Option<Uuid>,
    /// Its settings.
    pub settings: Option<WebhookSettings>,
    /// Its secrets: the current one first, then the previous one while it overlaps.
    pub secrets: Vec<SecretRef>,
    /// Why it is disabled, when its endpoint disabled it (`410 Gone`).
    pub disabled_reason: Option<String>,
    /// Whether it was deleted.
    pub deleted: bool,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: Option<DateTime<Utc>>,
    /// Events folded (the stream's last sequence).
    pub version: u64,
}

impl WebhookSubscription {
    fn live_settings(&self) -> Result<&WebhookSettings, WebhookError> {
        match &self.settings {
            Some(s) if !self.deleted => Ok(s),
            _ => Err(WebhookError::NotFound),
        }
    }

    /// Whether it exists and is not deleted.
    pub fn is_live(&self) -> bool {
        self.settings.is_some() && !self.deleted
    }

    /// Whether deliveries are made to it.
    pub fn is_enabled(&self) -> bool {
        self.is_live() && self.settings.as_ref().is_some_and(|s| s.enabled)
    }

    /// The secrets that sign at `now`: the current one, and the previous one until its
    /// overlap ends.
    pub fn active_secrets(&self, now: DateTime<Utc>) -> Vec<Uuid> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|e| e > now))
            .map(|s| s.secret_id)
            .collect()
    }

    /// Decides a command; nothing changes on refusal. A command whose effect already
    /// holds (an update that changes nothing, disabling what is disabled, deleting what
    /// is deleted) appends nothing.
    pub fn decide(&self, command: WebhookCommand) -> Result<Vec<WebhookEvent>, WebhookError> {
        match command {
            WebhookCommand::Create {
                webhook_id,
                settings,
                secret_id,
                now,
            } => {
                if self.settings.is_some() {
                    return Err(WebhookError::AlreadyExists);
                }
                Ok(vec![WebhookEvent::WebhookSubscriptionCreated {
                    webhook_id,
                    settings,
                    secret_id,
                    occurred_at: now,
                }])
            }
            WebhookCommand::Update {
                url,
                description,
                filter,
                enabled,
                now,
            } => {
                let current = self.live_settings()?;
                let next = WebhookSettings {
                    url: url.unwrap_or_else(|| current.url.clone()),
                    description: description.unwrap_or_else(|| current.description.clone()),
                    filter: filter.unwrap_or_else(|| current.filter.clone()),
                    enabled: enabled.unwrap_or(current.enabled),
                };
                if &next == current {
                    return Ok(vec![]);
                }
                Ok(vec![WebhookEvent::WebhookSubscriptionUpdated {
                    settings: next,
                    occurred_at: now,
                }])
            }
            WebhookCommand::RotateSecret {
                secret_id,
                overlap,
                now,
            } => {
                self.live_settings()?;
                if overlap < chrono::Duration::zero() {
                    return Err(WebhookError::NegativeOverlap);
                }
                let Some(current) = self.secrets.first() else {
                    return Err(WebhookError::NotFound);
                };
                if current.secret_id == secret_id {
                    return Ok(vec![]);
                }
                Ok(vec![WebhookEvent::WebhookSecretRotated {
                    secret_id,
                    previous_secret_id: current.secret_id,
                    previous_expires_at: now.checked_add_signed(overlap).unwrap_or(now),
                    occurred_at: now,
                }])
            }
            WebhookCommand::DisableGone { now } => {
                if !self.live_settings()?.enabled {
                    return Ok(vec![]);
                }
                Ok(vec![WebhookEvent::WebhookSubscriptionDisabled {
                    reason: GONE_REASON.to_string(),
                    occurred_at: now,
                }])
            }
            WebhookCommand::Delete { now } => {
                if self.settings.is_none() {
                    return Err(WebhookError::NotFound);
                }
                if self.deleted {
                    return Ok(vec![]);
                }
                Ok(vec![WebhookEvent::WebhookSubscriptionDeleted {
                    occurred_at: now,
                }])
            }
        }
    }

    /// Folds one event.
    pub fn apply(&mut self, event: &WebhookEvent) {
        self.version = self.version.saturating_add(1);
        self.updated_at = Some(event.occurred_at());
        match event {
            WebhookEvent::WebhookSubscriptionCreated {
                webhook_id,
                settings,
                secret_id,
                occurred_at,
            } => {
                self.webhook_id = Some(*webhook_id);
                self.settings = Some(settings.clone());
                self.secrets = vec![SecretRef {
                    secret_id: *secret_id,
                    created_at: *occurred_at,
                    expires_at: None,
                }];
                self.created_at = Some(*occurred_at);
            }
            WebhookEvent::WebhookSubscriptionUpdated { settings, .. } => {
                if settings.enabled {
                    self.disabled_reason = None;
                }
                self.settings = Some(settings.clone());
            }
            WebhookEvent::WebhookSecretRotated {
                secret_id,
                previous_secret_id,
                previous_expires_at,
                occurred_at,
            } => {
                let previous = self
                    .secrets
                    .iter()
                    .find(|s| s.secret_id == *previous_secret_id)
                    .map(|s| SecretRef {
                        expires_at: Some(*previous_expires_at),
                        ..s.clone()
                    });
                self.secrets = std::iter::once(SecretRef {
                    secret_id: *secret_id,
                    created_at: *occurred_at,
                    expires_at: None,
                })
                .chain(previous)
                .collect();
            }
            WebhookEvent::WebhookSubscriptionDisabled { reason, .. } => {
                if let Some(s) = self.settings.as_mut() {
                    s.enabled = false;
                }
                self.disabled_reason = Some(reason.clone());
            }
            WebhookEvent::WebhookSubscriptionDeleted { .. } => {
                self.deleted = true;
            }
        }
    }
}

crate::aggregate!(
    WebhookSubscription,
    "WebhookSubscription",
    WebhookCommand,
    WebhookEvent,
    WebhookError,
    super::events::WEBHOOK_EVENT_VERSION,
    |e| WebhookEvent::event_type(e)
);
