//! Commands on a scaling group. Every field is validated at the edge except the keys of
//! a PATCH's `scheduler_opts`, whose validity depends on the merged whole; the aggregate
//! validates that whole exactly as creating a group does.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

use super::opts::{SchedulerKind, SchedulerOpts};
use crate::bounds::{MAX_DESCRIPTION_LEN, MAX_GROUP_OWNERS};
use crate::error::ValidationError;
use crate::ids::{check_text, GroupName, Owner};

/// Everything a group is configured with: the body of create (defaults applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    /// Free text.
    pub description: String,
    /// Inactive groups accept and schedule nothing.
    pub is_active: bool,
    /// Available to every owner.
    pub public: bool,
    /// Owners who may use a non-public group.
    pub owners: BTreeSet<Owner>,
    /// Ordering.
    pub scheduler: SchedulerKind,
    /// Validated options.
    pub scheduler_opts: SchedulerOpts,
}

impl Default for GroupSettings {
    fn default() -> Self {
        Self {
            description: String::new(),
            is_active: true,
            public: true,
            owners: BTreeSet::new(),
            scheduler: SchedulerKind::default(),
            scheduler_opts: SchedulerOpts::default(),
        }
    }
}

/// Validates a group description (single line, at most [`MAX_DESCRIPTION_LEN`]).
pub fn parse_description(field: &str, raw: &str) -> Result<String, ValidationError> {
    check_text(field, raw, MAX_DESCRIPTION_LEN, false)?;
    Ok(raw.to_string())
}

/// Validates a group's owner list: at most [`MAX_GROUP_OWNERS`], each an [`Owner`], none
/// twice. Errors name `field[i]`.
pub fn parse_owners(field: &str, raw: &[String]) -> Result<BTreeSet<Owner>, ValidationError> {
    if raw.len() > MAX_GROUP_OWNERS {
        return Err(ValidationError::new(
            field,
            format!("must name at most {MAX_GROUP_OWNERS} owners"),
        ));
    }
    let mut owners = BTreeSet::new();
    for (i, o) in raw.iter().enumerate() {
        let path = format!("{field}[{i}]");
        if !owners.insert(Owner::parse(&path, o)?) {
            return Err(ValidationError::new(&path, format!("names '{o}' twice")));
        }
    }
    Ok(owners)
}

/// A PATCH: the given fields replace the current ones; the given keys of
/// `scheduler_opts` replace those keys; then the whole is validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupPatch {
    /// New description.
    pub description: Option<String>,
    /// New active flag.
    pub is_active: Option<bool>,
    /// New public flag.
    pub public: Option<bool>,
    /// New owner set.
    pub owners: Option<BTreeSet<Owner>>,
    /// New scheduler.
    pub scheduler: Option<SchedulerKind>,
    /// Keys of `scheduler_opts` to replace (validated with the merged whole).
    pub scheduler_opts: Option<Map<String, Value>>,
}

/// Commands on a scaling group.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalingGroupCommand {
    /// Create the group.
    Create {
        /// Group name (the aggregate id).
        name: GroupName,
        /// Its configuration.
        settings: GroupSettings,
        /// When.
        now: DateTime<Utc>,
    },
    /// Merge a PATCH into the group.
    Update {
        /// What changes.
        patch: GroupPatch,
        /// When.
        now: DateTime<Utc>,
    },
}
