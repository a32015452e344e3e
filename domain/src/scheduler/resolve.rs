//! Enqueue-time scaling-group resolution and validation (SPEC §2.1).

use crate::scaling_group::ScalingGroup;
use crate::session::SessionType;

/// Why no scaling group can take a new session. Messages are shown to users as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No group was named and none available to the owner accepts the type.
    #[error("no scaling group available to you accepts '{session_type}' sessions")]
    NoScalingGroup {
        /// The requested type.
        session_type: SessionType,
    },
    /// The named group does not exist or is not available to the owner (the two are
    /// indistinguishable to the caller on purpose).
    #[error("scaling group '{name}' does not exist or is not available to you")]
    ScalingGroupNotFound {
        /// The named group.
        name: String,
    },
    /// The named group does not accept the type.
    #[error(
        "scaling group '{name}' does not accept '{session_type}' sessions (allowed: {allowed})"
    )]
    SessionTypeNotAllowed {
        /// The group.
        name: String,
        /// The requested type.
        session_type: SessionType,
        /// Its allowed types as a list (`none` when empty).
        allowed: String,
    },
}

/// Whether `owner` may use `group` (public, or named among its owners).
pub fn available_to(group: &ScalingGroup, owner: &str) -> bool {
    group.exists && (group.public || group.owners.contains(owner))
}

/// Resolves the scaling group of a new session. With `requested`, that group must exist,
/// be active and available to the owner, and accept the type. Without, the first active
/// group (by name) available to the owner that accepts the type is chosen. A group with
/// an empty `allowed_session_types` accepts nothing and is simply never chosen: it does
/// not affect sessions aimed at other groups.
pub fn resolve_scaling_group(
    groups: &[ScalingGroup],
    owner: &str,
    session_type: SessionType,
    requested: Option<&str>,
) -> Result<String, ResolveError> {
    match requested {
        Some(name) => {
            let group = groups
                .iter()
                .find(|g| g.name == name && g.is_active && available_to(g, owner))
                .ok_or_else(|| ResolveError::ScalingGroupNotFound {
                    name: name.to_string(),
                })?;
            if !group.scheduler_opts.allows(session_type) {
                return Err(ResolveError::SessionTypeNotAllowed {
                    name: group.name.clone(),
                    session_type,
                    allowed: group.scheduler_opts.allowed_list(),
                });
            }
            Ok(group.name.clone())
        }
        None => {
            let mut candidates: Vec<&ScalingGroup> = groups
                .iter()
                .filter(|g| {
                    g.is_active && available_to(g, owner) && g.scheduler_opts.allows(session_type)
                })
                .collect();
            candidates.sort_by(|a, b| a.name.cmp(&b.name));
            candidates
                .first()
                .map(|g| g.name.clone())
                .ok_or(ResolveError::NoScalingGroup { session_type })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaling_group::SchedulerOpts;
    use std::collections::BTreeSet;

    fn group(name: &str, allowed: &[SessionType]) -> ScalingGroup {
        ScalingGroup {
            exists: true,
            name: name.into(),
            is_active: true,
            public: true,
            scheduler_opts: SchedulerOpts {
                allowed_session_types: allowed.to_vec(),
                ..SchedulerOpts::default()
            },
            ..ScalingGroup::default()
        }
    }

    fn owners_groups() -> Vec<ScalingGroup> {
        use SessionType::*;
        vec![
            group("a", &[Batch]),
            group("b", &[]),
            group("c", &[Interactive, Batch]),
        ]
    }

    #[test]
    fn given_groups_a_b_c_when_an_interactive_session_names_c_then_it_goes_to_c() {
        let r = resolve_scaling_group(
            &owners_groups(),
            "alice",
            SessionType::Interactive,
            Some("c"),
        );
        assert_eq!(r, Ok("c".to_string()));
    }

    #[test]
    fn given_a_batch_only_group_when_an_interactive_session_names_it_then_it_is_rejected_naming_the_allowed_types(
    ) {
        let r = resolve_scaling_group(
            &owners_groups(),
            "alice",
            SessionType::Interactive,
            Some("a"),
        );
        assert_eq!(
            r,
            Err(ResolveError::SessionTypeNotAllowed {
                name: "a".into(),
                session_type: SessionType::Interactive,
                allowed: "batch".into()
            })
        );
        assert_eq!(
            r.unwrap_err().to_string(),
            "scaling group 'a' does not accept 'interactive' sessions (allowed: batch)"
        );
    }

    #[test]
    fn given_a_group_that_accepts_nothing_when_no_group_is_named_then_the_next_accepting_group_is_chosen(
    ) {
        let r = resolve_scaling_group(&owners_groups(), "alice", SessionType::Interactive, None);
        assert_eq!(r, Ok("c".to_string()));
        let r = resolve_scaling_group(&owners_groups(), "alice", SessionType::Batch, None);
        assert_eq!(r, Ok("a".to_string()));
    }

    #[test]
    fn given_no_group_accepting_the_type_when_enqueued_then_no_scaling_group() {
        let r = resolve_scaling_group(&owners_groups(), "alice", SessionType::Inference, None);
        assert_eq!(
            r,
            Err(ResolveError::NoScalingGroup {
                session_type: SessionType::Inference
            })
        );
        assert_eq!(
            r.unwrap_err().to_string(),
            "no scaling group available to you accepts 'inference' sessions"
        );
    }

    #[test]
    fn given_a_private_group_of_others_when_named_then_it_is_not_found() {
        let mut private = group("p", &SessionType::ALL);
        private.public = false;
        private.owners = BTreeSet::from([crate::fixtures::owner("bob")]);
        let groups = vec![private];
        assert_eq!(
            resolve_scaling_group(&groups, "alice", SessionType::Batch, Some("p")),
            Err(ResolveError::ScalingGroupNotFound { name: "p".into() })
        );
        assert_eq!(
            resolve_scaling_group(&groups, "bob", SessionType::Batch, Some("p")),
            Ok("p".into())
        );
        assert!(resolve_scaling_group(&groups, "alice", SessionType::Batch, None).is_err());
    }

    #[test]
    fn given_an_inactive_group_when_named_or_not_then_it_is_not_used() {
        let mut g = group("x", &SessionType::ALL);
        g.is_active = false;
        let groups = vec![g];
        assert_eq!(
            resolve_scaling_group(&groups, "alice", SessionType::Batch, Some("x")),
            Err(ResolveError::ScalingGroupNotFound { name: "x".into() })
        );
        assert!(matches!(
            resolve_scaling_group(&groups, "alice", SessionType::Batch, None),
            Err(ResolveError::NoScalingGroup { .. })
        ));
    }
}
