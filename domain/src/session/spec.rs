//! What a session is enqueued with (SPEC §1.2): [`SessionSpec`], its [`SessionType`] and
//! its labels. Every field is a validated type; cross-field rules (batch-only fields,
//! no self-dependency) are checked by [`validate_spec`] when the session is enqueued.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

use crate::bounds::{
    BatchTimeout, ClusterSize, Priority, MAX_COMMAND_LEN, MAX_DEPENDENCIES, MAX_LABELS,
    MAX_LABEL_VALUE_LEN,
};
use crate::error::ValidationError;
use crate::ids::{check_text, GroupName, ImageRef, LabelKey, Owner, SessionName};
use crate::resources::{ResourceSlots, SlotOverflow};

/// The kind of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionType {
    /// Interactive (notebooks, terminals).
    Interactive,
    /// Batch job running `startup_command`.
    Batch,
    /// Inference service.
    Inference,
}

impl SessionType {
    /// All session types.
    pub const ALL: [SessionType; 3] = [Self::Interactive, Self::Batch, Self::Inference];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Interactive => "interactive",
            Self::Batch => "batch",
            Self::Inference => "inference",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for SessionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Free-form labels of a session: at most [`MAX_LABELS`], keys per [`LabelKey`], values
/// at most [`MAX_LABEL_VALUE_LEN`] characters without control characters.
pub type Labels = BTreeMap<LabelKey, String>;

/// Validates labels given as a plain map; errors name `field.<key>`.
pub fn parse_labels(field: &str, raw: BTreeMap<String, String>) -> Result<Labels, ValidationError> {
    if raw.len() > MAX_LABELS {
        return Err(ValidationError::new(
            field,
            format!("must have at most {MAX_LABELS} labels"),
        ));
    }
    raw.into_iter()
        .map(|(k, v)| {
            let path = format!("{field}.{k}");
            let key = LabelKey::parse(&path, &k)?;
            check_text(&path, &v, MAX_LABEL_VALUE_LEN, false)?;
            Ok((key, v))
        })
        .collect()
}

/// Validates a batch command: at most [`MAX_COMMAND_LEN`] characters, not empty, no
/// control characters but newline and tab.
pub fn parse_startup_command(field: &str, raw: &str) -> Result<String, ValidationError> {
    if raw.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    check_text(field, raw, MAX_COMMAND_LEN, true)?;
    Ok(raw.to_string())
}

/// Validates dependencies: at most [`MAX_DEPENDENCIES`], no duplicates. Whether each is
/// one of the owner's sessions is for the application to check (it needs the store).
pub fn parse_dependencies(field: &str, raw: Vec<Uuid>) -> Result<Vec<Uuid>, ValidationError> {
    if raw.len() > MAX_DEPENDENCIES {
        return Err(ValidationError::new(
            field,
            format!("must name at most {MAX_DEPENDENCIES} sessions"),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for id in &raw {
        if !seen.insert(*id) {
            return Err(ValidationError::new(
                field,
                format!("names {id} more than once"),
            ));
        }
    }
    Ok(raw)
}

/// What a session is enqueued with (SPEC §1.2). The scaling group has been resolved by
/// the application before the command is built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSpec {
    /// Server-assigned id.
    pub session_id: Uuid,
    /// Unique among the owner's non-terminal sessions.
    pub name: SessionName,
    /// The owner (user).
    pub owner: Owner,
    /// interactive | batch | inference.
    pub session_type: SessionType,
    /// Container image.
    pub image: ImageRef,
    /// The resolved scaling group.
    pub scaling_group: GroupName,
    /// Requested slots per kernel.
    pub resources: ResourceSlots,
    /// Number of kernels (default 1).
    pub cluster_size: ClusterSize,
    /// 0..=100, default 10.
    pub priority: Priority,
    /// Batch only: do not schedule before.
    pub starts_at: Option<DateTime<Utc>>,
    /// Batch only: seconds the batch may run.
    pub batch_timeout: Option<BatchTimeout>,
    /// Batch only: the command to run.
    pub startup_command: Option<String>,
    /// Sessions that must have TERMINATED successfully first.
    pub dependencies: Vec<Uuid>,
    /// Free-form labels.
    pub labels: Labels,
    /// Where this session's status changes are also POSTed, signed with the owner's
    /// callback secret (SPEC §8). Absent from events written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<crate::webhook::WebhookUrl>,
}

impl SessionSpec {
    /// Slots the session needs in total: its per-kernel resources times its cluster size.
    pub fn requested_slots(&self) -> Result<ResourceSlots, SlotOverflow> {
        self.resources.checked_scale(self.cluster_size.get())
    }
}

/// Checks the cross-field rules of an enqueue request; the first bad field is named.
/// (Each field's own rule is its type's.)
pub fn validate_spec(spec: &SessionSpec) -> Result<(), ValidationError> {
    if spec.session_type != SessionType::Batch {
        for (field, present) in [
            ("starts_at", spec.starts_at.is_some()),
            ("batch_timeout", spec.batch_timeout.is_some()),
            ("startup_command", spec.startup_command.is_some()),
        ] {
            if present {
                return Err(ValidationError::new(
                    field,
                    format!(
                        "is only allowed for batch sessions, not '{}'",
                        spec.session_type
                    ),
                ));
            }
        }
    }
    if spec.dependencies.contains(&spec.session_id) {
        return Err(ValidationError::new(
            "dependencies",
            "a session cannot depend on itself",
        ));
    }
    if spec.resources.is_empty() {
        return Err(ValidationError::new(
            "resources",
            "must name at least one positive slot",
        ));
    }
    if spec
        .resources
        .0
        .values()
        .any(|v| v.is_sign_negative() && !v.is_zero())
    {
        return Err(ValidationError::new("resources", "must not be negative"));
    }
    spec.requested_slots().map_err(|_| {
        ValidationError::new(
            "resources",
            "times cluster_size exceeds the largest amount the scheduler computes with",
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded_in_count_key_and_value() {
        let ok: BTreeMap<String, String> = [("team".to_string(), "ml".to_string())].into();
        assert!(parse_labels("labels", ok).is_ok());
        let many: BTreeMap<String, String> = (0..=MAX_LABELS)
            .map(|i| (format!("k{i}"), "v".into()))
            .collect();
        assert_eq!(
            parse_labels("labels", many).map_err(|e| e.field),
            Err("labels".to_string())
        );
        let bad_key: BTreeMap<String, String> = [("a b".to_string(), "v".into())].into();
        assert_eq!(
            parse_labels("labels", bad_key).map_err(|e| e.field),
            Err("labels.a b".to_string())
        );
        let long: BTreeMap<String, String> =
            [("k".to_string(), "v".repeat(MAX_LABEL_VALUE_LEN + 1))].into();
        assert!(parse_labels("labels", long).is_err());
        let ctl: BTreeMap<String, String> = [("k".to_string(), "a\nb".into())].into();
        assert!(parse_labels("labels", ctl).is_err());
    }

    #[test]
    fn dependencies_are_bounded_and_unique() {
        let id = Uuid::from_u128(1);
        assert!(parse_dependencies("dependencies", vec![id]).is_ok());
        assert!(parse_dependencies("dependencies", vec![id, id]).is_err());
        let many: Vec<Uuid> = (0..=MAX_DEPENDENCIES as u128)
            .map(Uuid::from_u128)
            .collect();
        assert!(parse_dependencies("dependencies", many).is_err());
    }

    #[test]
    fn a_startup_command_may_span_lines_but_not_hold_nul() {
        assert!(parse_startup_command("startup_command", "set -e\npython train.py").is_ok());
        assert!(parse_startup_command("startup_command", "a\u{0}b").is_err());
        assert!(parse_startup_command("startup_command", "  ").is_err());
    }
}
