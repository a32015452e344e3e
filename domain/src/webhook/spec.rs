//! What a subscription is: its URL, its filter, its settings.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use crate::error::ValidationError;
use crate::ids::{GroupName, Owner};
use crate::session::SessionStatus;

/// Longest description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 1000;
/// Most entries in each list of a filter.
pub const MAX_FILTER_ENTRIES: usize = 256;

/// The URL deliveries are POSTed to: `http://` or `https://`, at most
/// [`WebhookUrl::MAX_LEN`] characters, no whitespace or control characters. This is the
/// shape only; the application also parses it fully and applies the SSRF guard
/// (credentials, fragments, internal addresses) before it builds one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// Longest accepted URL.
    pub const MAX_LEN: usize = 2048;

    /// Validates the shape of `value`; the error names `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, ValidationError> {
        if value.len() > Self::MAX_LEN {
            return Err(ValidationError::new(
                field,
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ValidationError::new(
                field,
                "must not contain whitespace or control characters",
            ));
        }
        let lower = value.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(ValidationError::new(field, "must be an http or https URL"));
        }
        Ok(Self(value.to_string()))
    }

    /// A value read back from the store (accepted once by the edge).
    pub fn from_stored(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which status changes a subscription receives. Each list, when not empty, must
/// contain the change's value; an empty list matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookFilter {
    /// The statuses entered.
    #[serde(default)]
    pub statuses: BTreeSet<SessionStatus>,
    /// The sessions' scaling groups.
    #[serde(default)]
    pub scaling_groups: BTreeSet<GroupName>,
    /// The sessions' owners.
    #[serde(default)]
    pub owners: BTreeSet<Owner>,
}

impl WebhookFilter {
    /// Whether a change to `status` of a session in `group` owned by `owner` matches.
    pub fn matches(&self, status: SessionStatus, group: &str, owner: &str) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&status))
            && (self.scaling_groups.is_empty()
                || self.scaling_groups.iter().any(|g| g.as_str() == group))
            && (self.owners.is_empty() || self.owners.iter().any(|o| o.as_str() == owner))
    }
}

/// A subscription's settings: what an admin sets on create and changes with PATCH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSettings {
    /// Where deliveries go.
    pub url: WebhookUrl,
    /// Free text (at most [`MAX_DESCRIPTION_LEN`] characters).
    pub description: String,
    /// Which changes it receives.
    pub filter: WebhookFilter,
    /// Whether deliveries are made.
    pub enabled: bool,
}

/// Validates a description; the error names `field`.
pub fn parse_description(field: &str, value: &str) -> Result<String, ValidationError> {
    crate::ids::check_text(field, value, MAX_DESCRIPTION_LEN, false)?;
    Ok(value.to_string())
}
