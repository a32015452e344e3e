//! Events of a scaling group (explicit `event_type`, `event_version` "1"). Opts changes
//! carry old and new values, so the audit trail shows who changed what when.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use super::opts::{SchedulerKind, SchedulerOpts};
use crate::ids::{GroupName, Owner};

/// The current version of every scaling-group event.
pub const SCALING_GROUP_EVENT_VERSION: &str = "1";

/// Events of a scaling group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ScalingGroupEvent {
    /// Created.
    ScalingGroupCreated {
        /// Name.
        name: GroupName,
        /// Description.
        description: String,
        /// Active flag.
        is_active: bool,
        /// Public flag.
        public: bool,
        /// Allowed owners.
        owners: BTreeSet<Owner>,
        /// Scheduler.
        scheduler: SchedulerKind,
        /// Validated opts, defaults applied.
        scheduler_opts: SchedulerOpts,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// Plain fields changed (only the changed ones are present).
    ScalingGroupUpdated {
        /// New description.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// New active flag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        is_active: Option<bool>,
        /// New public flag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        public: Option<bool>,
        /// New owners.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owners: Option<BTreeSet<Owner>>,
        /// New scheduler.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheduler: Option<SchedulerKind>,
        /// When.
        occurred_at: DateTime<Utc>,
    },
    /// Scheduler opts changed.
    SchedulerOptsChanged {
        /// Before.
        old: SchedulerOpts,
        /// After.
        new: SchedulerOpts,
        /// When.
        occurred_at: DateTime<Utc>,
    },
}

impl ScalingGroupEvent {
    /// When it happened.
    pub fn occurred_at(&self) -> chrono::DateTime<chrono::Utc> {
        match self {
            Self::ScalingGroupCreated { occurred_at, .. }
            | Self::ScalingGroupUpdated { occurred_at, .. }
            | Self::SchedulerOptsChanged { occurred_at, .. } => *occurred_at,
        }
    }

    /// The explicit event type string.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::ScalingGroupCreated { .. } => "ScalingGroupCreated",
            Self::ScalingGroupUpdated { .. } => "ScalingGroupUpdated",
            Self::SchedulerOptsChanged { .. } => "SchedulerOptsChanged",
        }
    }
}
