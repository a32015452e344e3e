//! The ScalingGroup aggregate: state, decision and fold.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use super::commands::{GroupSettings, ScalingGroupCommand};
use super::error::ScalingGroupError;
use super::events::ScalingGroupEvent;
use super::opts::{SchedulerKind, SchedulerOpts};
use crate::ids::{GroupName, Owner};
use crate::session::SessionType;

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
    pub owners: BTreeSet<Owner>,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Opts.
    pub scheduler_opts: SchedulerOpts,
}

/// `Some(new)` only when it differs from `old`.
fn changed<T: PartialEq>(new: Option<T>, old: &T) -> Option<T> {
    new.filter(|n| n != old)
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
                settings,
                now,
            } => {
                if self.exists {
                    return Err(ScalingGroupError::AlreadyExists);
                }
                let GroupSettings {
                    description,
                    is_active,
                    public,
                    owners,
                    scheduler,
                    scheduler_opts,
                } = settings;
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
            ScalingGroupCommand::Update { patch, now } => {
                if !self.exists {
                    return Err(ScalingGroupError::NotFound);
                }
                let new_scheduler = patch.scheduler.unwrap_or(self.scheduler);
                // The merged whole is validated exactly as create validates it.
                let new_opts = self.scheduler_opts.merge_patch(
                    self.scheduler,
                    &patch.scheduler_opts.unwrap_or_default(),
                    new_scheduler,
                )?;
                let description = changed(patch.description, &self.description);
                let is_active = changed(patch.is_active, &self.is_active);
                let public = changed(patch.public, &self.public);
                let owners = changed(patch.owners, &self.owners);
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
                    name: name.to_string(),
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
        self.exists && (self.public || self.owners.iter().any(|o| o == owner))
    }

    /// Whether the group takes new sessions of this type.
    pub fn accepts(&self, session_type: SessionType) -> bool {
        self.scheduler_opts.allows(session_type)
    }

    /// The group's configuration as create takes it.
    pub fn settings(&self) -> GroupSettings {
        GroupSettings {
            description: self.description.clone(),
            is_active: self.is_active,
            public: self.public,
            owners: self.owners.clone(),
            scheduler: self.scheduler,
            scheduler_opts: self.scheduler_opts.clone(),
        }
    }

    /// The group's name as a validated name (`None` for a group that does not exist).
    pub fn group_name(&self) -> Option<GroupName> {
        GroupName::parse("name", &self.name).ok()
    }
}

crate::aggregate!(
    ScalingGroup,
    "ScalingGroup",
    ScalingGroupCommand,
    ScalingGroupEvent,
    ScalingGroupError,
    super::events::SCALING_GROUP_EVENT_VERSION,
    |e| ScalingGroupEvent::event_type(e)
);

#[cfg(test)]
mod tests {
    use super::super::commands::GroupPatch;
    use super::*;
    use chrono::{DateTime, Utc};
    use serde_json::{json, Map, Value};

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn create(settings: GroupSettings) -> ScalingGroupCommand {
        ScalingGroupCommand::Create {
            name: GroupName::parse("name", "gpu").unwrap(),
            settings,
            now: now(),
        }
    }

    fn given(commands: Vec<ScalingGroupCommand>) -> ScalingGroup {
        let mut g = ScalingGroup::default();
        for c in commands {
            for e in g.decide(c).unwrap() {
                g.apply(&e);
            }
        }
        g
    }

    fn existing() -> ScalingGroup {
        given(vec![create(GroupSettings::default())])
    }

    fn update_opts(patch: Value) -> ScalingGroupCommand {
        ScalingGroupCommand::Update {
            patch: GroupPatch {
                scheduler_opts: Some(obj(patch)),
                ..GroupPatch::default()
            },
            now: now(),
        }
    }

    #[test]
    fn given_no_group_when_created_with_default_settings_then_defaults_are_recorded() {
        let events = ScalingGroup::default().decide(create(GroupSettings::default()));
        let Ok([ScalingGroupEvent::ScalingGroupCreated { scheduler_opts, .. }]) = events.as_deref()
        else {
            panic!("expected one ScalingGroupCreated, got {events:?}");
        };
        assert_eq!(*scheduler_opts, SchedulerOpts::default());
    }

    #[test]
    fn given_a_group_when_created_again_then_it_is_rejected() {
        assert_eq!(
            existing().decide(create(GroupSettings::default())),
            Err(ScalingGroupError::AlreadyExists)
        );
    }

    #[test]
    fn given_a_group_when_opts_change_then_old_and_new_values_are_recorded() {
        let events = existing().decide(update_opts(json!({"pending_timeout": 30})));
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
    fn given_a_fifo_group_with_a_skip_config_when_switched_to_drf_alone_then_it_is_rejected_as_create_would(
    ) {
        let g = given(vec![
            create(GroupSettings::default()),
            update_opts(json!({"config": {"num_retries_to_skip": 2}})),
        ]);
        let r = g.decide(ScalingGroupCommand::Update {
            patch: GroupPatch {
                scheduler: Some(SchedulerKind::Drf),
                ..GroupPatch::default()
            },
            now: now(),
        });
        assert!(
            matches!(r, Err(ScalingGroupError::Validation(e)) if e.field == "scheduler_opts.config.num_retries_to_skip")
        );
    }

    #[test]
    fn given_a_default_fifo_group_when_switched_to_drf_then_its_shown_opts_are_valid_for_drf() {
        let g = given(vec![
            create(GroupSettings::default()),
            ScalingGroupCommand::Update {
                patch: GroupPatch {
                    scheduler: Some(SchedulerKind::Drf),
                    ..GroupPatch::default()
                },
                now: now(),
            },
        ]);
        assert_eq!(g.scheduler, SchedulerKind::Drf);
        let shown = g.scheduler_opts.to_json(g.scheduler);
        assert_eq!(shown["config"], json!({}));
        assert_eq!(
            SchedulerOpts::parse(&shown, SchedulerKind::Drf),
            Ok(g.scheduler_opts.clone())
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
        let g = given(vec![create(GroupSettings {
            public: false,
            owners: [Owner::parse("owner", "alice").unwrap()].into(),
            ..GroupSettings::default()
        })]);
        assert!(g.exists);
        assert!(g.available_to("alice"));
        assert!(!g.available_to("bob"));
    }
}
