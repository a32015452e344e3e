//! The ScalingGroup aggregate (SPEC §1.3): a resource group with its scheduler and
//! strictly validated `scheduler_opts`. Opts changes are `SchedulerOptsChanged` events
//! carrying old and new values, so the audit trail shows who changed what when.

pub mod opts;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

use crate::error::ValidationError;
use crate::session::SessionType;
pub use opts::{AgentSelectionStrategy, SchedulerConfig, SchedulerKind, SchedulerOpts};

/// The current version of every scaling-group event.
pub const SCALING_GROUP_EVENT_VERSION: &str = "1";

/// Commands on a scaling group.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalingGroupCommand {
    /// Create the group. `scheduler_opts` is raw JSON, validated here.
    Create {
        /// Group name (the aggregate id).
        name: String,
        /// Free text.
        description: String,
        /// Inactive groups schedule nothing.
        is_active: bool,
        /// Available to every owner.
        public: bool,
        /// Owners who may use a non-public group.
        owners: BTreeSet<String>,
        /// Ordering.
        scheduler: Value,
        /// Raw opts (or null for defaults).
        scheduler_opts: Value,
        /// When.
        now: DateTime<Utc>,
    },
    /// Merge the given fields (PATCH).
    Update {
        /// New description.
        description: Option<String>,
        /// New active flag.
        is_active: Option<bool>,
        /// New public flag.
        public: Option<bool>,
        /// New owner set.
        owners: Option<BTreeSet<String>>,
        /// New scheduler.
        scheduler: Option<Value>,
        /// Keys of `scheduler_opts` to replace.
        scheduler_opts: Option<Value>,
        /// When.
        now: DateTime<Utc>,
    },
}

/// Events of a scaling group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ScalingGroupEvent {
    /// Created.
    ScalingGroupCreated {
        /// Name.
        name: String,
        /// Description.
        description: String,
        /// Active flag.
        is_active: bool,
        /// Public flag.
        public: bool,
        /// Allowed owners.
        owners: BTreeSet<String>,
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
        owners: Option<BTreeSet<String>>,
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
    /// The explicit event type string.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::ScalingGroupCreated { .. } => "ScalingGroupCreated",
            Self::ScalingGroupUpdated { .. } => "ScalingGroupUpdated",
            Self::SchedulerOptsChanged { .. } => "SchedulerOptsChanged",
        }
    }
}

/// Why a scaling-group command was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScalingGroupError {
    /// The group does not exist.
    #[error("scaling group does not exist")]
    NotFound,
    /// Create on an existing name.
    #[error("scaling group already exists")]
    AlreadyExists,
    /// Invalid input; names the field.
    #[error(transparent)]
    Validation(#[from] ValidationError),
}

/// Folded state of a scaling group. `Default` is "does not exist".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScalingGroup {
    /// Whether it was created.
    pub exists: bool,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Active flag.
    pub is_active: bool,
    /// Public flag.
    pub public: bool,
    /// Allowed owners when not public.
    pub owners: BTreeSet<String>,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Opts.
    pub scheduler_opts: SchedulerOpts,
}

/// `Some(new)` only when it differs from `old`.
fn changed<T: PartialEq>(new: Option<T>, old: &T) -> Option<T> {
    new.filter(|n| n != old)
}

/// Checks a group name: 1-64 of lower-case letters, digits, '-', '_' and '.'.
pub fn validate_group_name(name: &str) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "name",
            "must be 1-64 characters of lower-case letters, digits, '-', '_' or '.'",
        ))
    }
}

impl ScalingGroup {
    /// Decides a command; nothing changes on rejection.
    pub fn decide(
        &self,
        command: ScalingGroupCommand,
    ) -> Result<Vec<ScalingGroupEvent>, ScalingGroupError> {
        match command {
            ScalingGroupCommand::Create {
                name,
                description,
                is_active,
                public,
                owners,
                scheduler,
                scheduler_opts,
                now,
            } => {
                if self.exists {
                    return Err(ScalingGroupError::AlreadyExists);
                }
                validate_group_name(&name)?;
                let scheduler = if scheduler.is_null() {
                    SchedulerKind::default()
                } else {
                    SchedulerKind::parse(&scheduler, "scheduler")?
                };
                let scheduler_opts = SchedulerOpts::parse(&scheduler_opts, scheduler)?;
                Ok(vec![ScalingGroupEvent::ScalingGroupCreated {
                    name,
                    description,
                    is_active,
                    public,
                    owners,
                    scheduler,
                    scheduler_opts,
                    occurred_at: now,
                }])
            }
            ScalingGroupCommand::Update {
                description,
                is_active,
                public,
                owners,
                scheduler,
                scheduler_opts,
                now,
            } => {
                if !self.exists {
                    return Err(ScalingGroupError::NotFound);
                }
                let new_scheduler = match &scheduler {
                    Some(v) => SchedulerKind::parse(v, "scheduler")?,
                    None => self.scheduler,
                };
                // Validate the whole of the opts against the (possibly new) scheduler.
                let new_opts = match &scheduler_opts {
                    Some(patch) => self.scheduler_opts.merge_patch(patch, new_scheduler)?,
                    None => self
                        .scheduler_opts
                        .merge_patch(&Value::Object(Default::default()), new_scheduler)?,
                };
                let description = changed(description, &self.description);
                let is_active = changed(is_active, &self.is_active);
                let public = changed(public, &self.public);
                let owners = changed(owners, &self.owners);
                let scheduler = changed(Some(new_scheduler), &self.scheduler);
                let mut events = Vec::new();
                if description.is_some()
                    || is_active.is_some()
                    || public.is_some()
                    || owners.is_some()
                    || scheduler.is_some()
                {
                    events.push(ScalingGroupEvent::ScalingGroupUpdated {
                        description,
                        is_active,
                        public,
                        owners,
                        scheduler,
                        occurred_at: now,
                    });
                }
                if new_opts != self.scheduler_opts {
                    events.push(ScalingGroupEvent::SchedulerOptsChanged {
                        old: self.scheduler_opts.clone(),
                        new: new_opts,
                        occurred_at: now,
                    });
                }
                Ok(events)
            }
        }
    }

    /// Folds one event.
    pub fn apply(&mut self, event: &ScalingGroupEvent) {
        match event {
            ScalingGroupEvent::ScalingGroupCreated {
                name,
                description,
                is_active,
                public,
                owners,
                scheduler,
                scheduler_opts,
                ..
            } => {
                *self = ScalingGroup {
                    exists: true,
                    name: name.clone(),
                    description: description.clone(),
                    is_active: *is_active,
                    public: *public,
                    owners: owners.clone(),
                    scheduler: *scheduler,
                    scheduler_opts: scheduler_opts.clone(),
                }
            }
            ScalingGroupEvent::ScalingGroupUpdated {
                description,
                is_active,
                public,
                owners,
                scheduler,
                ..
            } => {
                if let Some(d) = description {
                    self.description = d.clone();
                }
                if let Some(a) = is_active {
                    self.is_active = *a;
                }
                if let Some(p) = public {
                    self.public = *p;
                }
                if let Some(o) = owners {
                    self.owners = o.clone();
                }
                if let Some(s) = scheduler {
                    self.scheduler = *s;
                }
            }
            ScalingGroupEvent::SchedulerOptsChanged { new, .. } => {
                self.scheduler_opts = new.clone();
            }
        }
    }

    /// Whether `owner` may use this group.
    pub fn available_to(&self, owner: &str) -> bool {
        self.exists && (self.public || self.owners.contains(owner))
    }

    /// Whether the group takes new sessions of this type.
    pub fn accepts(&self, session_type: SessionType) -> bool {
        self.scheduler_opts.allows(session_type)
    }
}

crate::cqrs_adapter!(
    ScalingGroup,
    "ScalingGroup",
    ScalingGroupCommand,
    ScalingGroupEvent,
    ScalingGroupError,
    SCALING_GROUP_EVENT_VERSION,
    |e| ScalingGroupEvent::event_type(e).to_string()
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    fn create(opts: Value) -> ScalingGroupCommand {
        ScalingGroupCommand::Create {
            name: "gpu".into(),
            description: String::new(),
            is_active: true,
            public: true,
            owners: BTreeSet::new(),
            scheduler: json!("fifo"),
            scheduler_opts: opts,
            now: now(),
        }
    }

    fn existing() -> ScalingGroup {
        let mut g = ScalingGroup::default();
        for e in g.decide(create(json!({}))).unwrap_or_default() {
            g.apply(&e);
        }
        g
    }

    fn update_opts(patch: Value) -> ScalingGroupCommand {
        ScalingGroupCommand::Update {
            description: None,
            is_active: None,
            public: None,
            owners: None,
            scheduler: None,
            scheduler_opts: Some(patch),
            now: now(),
        }
    }

    #[test]
    fn given_no_group_when_created_with_empty_opts_then_defaults_are_recorded() {
        let events = ScalingGroup::default().decide(create(json!({})));
        let Ok([ScalingGroupEvent::ScalingGroupCreated { scheduler_opts, .. }]) = events.as_deref()
        else {
            panic!("expected one ScalingGroupCreated, got {events:?}");
        };
        assert_eq!(*scheduler_opts, SchedulerOpts::default());
    }

    #[test]
    fn given_no_group_when_created_with_an_unknown_opts_key_then_it_is_rejected() {
        let r = ScalingGroup::default().decide(create(json!({"colour": "red"})));
        assert!(
            matches!(r, Err(ScalingGroupError::Validation(e)) if e.field == "scheduler_opts.colour")
        );
    }

    #[test]
    fn given_a_group_when_created_again_then_it_is_rejected() {
        assert_eq!(
            existing().decide(create(json!({}))),
            Err(ScalingGroupError::AlreadyExists)
        );
    }

    #[test]
    fn given_a_group_when_opts_change_then_old_and_new_values_are_recorded() {
        let g = existing();
        let events = g.decide(update_opts(json!({"pending_timeout": 30})));
        let Ok([ScalingGroupEvent::SchedulerOptsChanged { old, new, .. }]) = events.as_deref()
        else {
            panic!("expected one SchedulerOptsChanged, got {events:?}");
        };
        assert_eq!(old.pending_timeout, 0);
        assert_eq!(new.pending_timeout, 30);
    }

    #[test]
    fn given_a_group_when_opts_are_set_to_their_current_values_then_nothing_is_recorded() {
        assert_eq!(
            existing().decide(update_opts(json!({"pending_timeout": 0}))),
            Ok(vec![])
        );
    }

    #[test]
    fn given_a_group_when_a_patch_is_invalid_then_it_is_rejected_naming_the_field() {
        let r = existing().decide(update_opts(json!({"pending_timeout": -1})));
        assert!(
            matches!(r, Err(ScalingGroupError::Validation(e)) if e.field == "scheduler_opts.pending_timeout")
        );
    }

    #[test]
    fn given_no_group_when_updated_then_it_is_not_found() {
        assert_eq!(
            ScalingGroup::default().decide(update_opts(json!({}))),
            Err(ScalingGroupError::NotFound)
        );
    }

    #[test]
    fn a_private_group_is_available_only_to_its_owners() {
        let mut g = existing();
        g.public = false;
        g.owners.insert("alice".into());
        assert!(g.available_to("alice"));
        assert!(!g.available_to("bob"));
    }
}
