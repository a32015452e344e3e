//! Scheduling predicates (SPEC §2.2): pure functions, each with a name and a human
//! message. A failed predicate keeps the session PENDING; the set of failures is
//! recorded (`SessionSchedulingFailed`) only when it changes.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use uuid::Uuid;

use super::outcome::{FailedPredicate, PassedPredicate};
use super::resolve::available_to;
use crate::policy::ResourceLimits;
use crate::resources::{ResourceSlots, SlotOverflow};
use crate::scaling_group::ScalingGroup;
use crate::session::{SessionSpec, SessionStatus, SessionType};

/// Name of the batch start-time predicate.
pub const RESERVED_TIME: &str = "reserved_time";
/// Name of the dependency predicate.
pub const DEPENDENCIES: &str = "dependencies";
/// Name of the owner's concurrency-limit predicate.
pub const CONCURRENCY: &str = "concurrency";
/// Name of the owner's resource-limit predicate.
pub const OWNER_RESOURCE_LIMIT: &str = "owner_resource_limit";
/// Name of the session's own scaling-group predicate.
pub const SCALING_GROUP: &str = "scaling_group";
/// Name of the agent-selection step (the last predicate).
pub const AGENT_SELECTION: &str = "agent_selection";
/// Name of the check that the session's request can be computed at all (its resources
/// times its cluster size stay representable). Never fails for a session enqueued
/// through the API; it stands for a stored request the scheduler cannot evaluate, so
/// that session waits with a reason instead of stopping the pass.
pub const RESOURCES: &str = "resources";

/// What an owner already uses: sessions that are neither PENDING nor terminal, and the
/// slots those hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerUsage {
    /// Sessions counted against `max_concurrent_sessions`.
    pub concurrent: u32,
    /// Slots counted against `total_resource_slots`.
    pub allocated: ResourceSlots,
}

/// What a dependency looks like now (`None` in the map: no such session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DependencyState {
    /// Its owner: a dependency of another owner counts as unknown, so nothing about
    /// another owner's session reaches this one's `status_data`.
    pub owner: String,
    /// Its status.
    pub status: SessionStatus,
    /// Its exit code, when terminated.
    pub exit_code: Option<i32>,
}

impl DependencyState {
    /// TERMINATED without a failing exit code.
    pub fn succeeded(&self) -> bool {
        self.status == SessionStatus::Terminated && self.exit_code.unwrap_or(0) == 0
    }

    /// Ended without succeeding: the dependent can never run.
    pub fn failed(&self) -> bool {
        self.status.is_terminal() && !self.succeeded()
    }
}

/// Everything the predicates look at for one session.
#[derive(Debug, Clone)]
pub struct PredicateInput<'a> {
    /// The session.
    pub spec: &'a SessionSpec,
    /// The time of the scheduling attempt.
    pub now: DateTime<Utc>,
    /// Its scaling group as it is now (`None`: gone).
    pub group: Option<&'a ScalingGroup>,
    /// Its owner's limits (default: unlimited).
    pub limits: &'a ResourceLimits,
    /// Its owner's current usage.
    pub usage: &'a OwnerUsage,
    /// Its dependencies' current states.
    pub dependencies: &'a BTreeMap<Uuid, Option<DependencyState>>,
}

/// The outcome of the predicates (agent selection excluded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Failed predicates with messages.
    pub failed: Vec<FailedPredicate>,
    /// Passed predicates.
    pub passed: Vec<PassedPredicate>,
}

impl Evaluation {
    /// Whether every predicate passed.
    pub fn passed_all(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Slots a session needs in total: its per-kernel resources times its cluster size
/// (`Err` when that product overflows: see [`RESOURCES`]).
pub fn requested_slots(spec: &SessionSpec) -> Result<ResourceSlots, SlotOverflow> {
    spec.requested_slots()
}

/// `reserved_time`: a batch session with `starts_at` in the future waits.
pub fn reserved_time(spec: &SessionSpec, now: DateTime<Utc>) -> Result<(), String> {
    match spec.starts_at {
        Some(at) if spec.session_type == SessionType::Batch && at > now => Err(format!(
            "batch session is reserved to start at {}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
        _ => Ok(()),
    }
}

/// A dependency's state as `spec`'s owner may see it: another owner's session is
/// unknown.
fn visible<'a>(
    spec: &SessionSpec,
    states: &'a BTreeMap<Uuid, Option<DependencyState>>,
    id: &Uuid,
) -> Option<&'a DependencyState> {
    states
        .get(id)
        .and_then(Option::as_ref)
        .filter(|s| s.owner == spec.owner.as_str())
}

/// `dependencies`: every dependency has TERMINATED successfully.
pub fn dependencies(
    spec: &SessionSpec,
    states: &BTreeMap<Uuid, Option<DependencyState>>,
) -> Result<(), String> {
    let waiting: Vec<String> = spec
        .dependencies
        .iter()
        .filter_map(|id| match visible(spec, states, id) {
            Some(s) if s.succeeded() => None,
            Some(s) => Some(format!("{id} ({})", s.status)),
            None => Some(format!("{id} (unknown)")),
        })
        .collect();
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "waiting for dependencies to terminate successfully: {}",
            waiting.join(", ")
        ))
    }
}

/// A dependency that can never succeed any more (ended CANCELLED, or TERMINATED with a
/// failing exit code, or does not exist): the dependent session is cancelled with
/// `dependency-failed` instead of waiting forever.
pub fn failed_dependency(
    spec: &SessionSpec,
    states: &BTreeMap<Uuid, Option<DependencyState>>,
) -> Option<Uuid> {
    spec.dependencies
        .iter()
        .copied()
        .find(|id| match visible(spec, states, id) {
            Some(s) => s.failed(),
            None => true,
        })
}

/// `concurrency`: the owner holds fewer than `max_concurrent_sessions` live sessions.
pub fn concurrency(limits: &ResourceLimits, usage: &OwnerUsage) -> Result<(), String> {
    match limits.max_concurrent_sessions {
        Some(max) if usage.concurrent >= max.get() => Err(format!(
            "you have reached your limit of {max} concurrent sessions ({} active)",
            usage.concurrent
        )),
        _ => Ok(()),
    }
}

/// `owner_resource_limit`: the owner's allocated slots plus this request stay within
/// `total_resource_slots`.
pub fn owner_resource_limit(
    limits: &ResourceLimits,
    usage: &OwnerUsage,
    requested: &ResourceSlots,
) -> Result<(), String> {
    match &limits.total_resource_slots {
        Some(total) if !usage.allocated.fits_with(requested, total) => Err(format!(
            "requesting {requested} would exceed your resource limit {total} ({} in use)",
            usage.allocated
        )),
        _ => Ok(()),
    }
}

/// `scaling_group`: the session's own group still exists, is active, is available to
/// the owner and still accepts the session's type. Only the session's own group is
/// checked; opts changed after enqueue make the session wait here, and changing them
/// back lets it run.
pub fn scaling_group(spec: &SessionSpec, group: Option<&ScalingGroup>) -> Result<(), String> {
    let name = &spec.scaling_group;
    let Some(g) = group.filter(|g| g.exists) else {
        return Err(format!("scaling group '{name}' no longer exists"));
    };
    if !g.is_active {
        return Err(format!("scaling group '{name}' is not active"));
    }
    if !available_to(g, &spec.owner) {
        return Err(format!(
            "scaling group '{name}' is no longer available to '{}'",
            spec.owner
        ));
    }
    if !g.scheduler_opts.allows(spec.session_type) {
        return Err(format!(
            "scaling group '{name}' no longer accepts '{}' sessions (allowed: {})",
            spec.session_type,
            g.scheduler_opts.allowed_list()
        ));
    }
    Ok(())
}

/// The `resources` failure message of a request the scheduler cannot compute.
pub fn overflow_message(spec: &SessionSpec) -> String {
    format!(
        "the requested resources {} times cluster_size {} are too large to schedule",
        spec.resources, spec.cluster_size
    )
}

/// Runs every predicate except agent selection, in the SPEC's order, collecting all
/// failures (a user sees every reason at once, not one per attempt).
pub fn evaluate(input: &PredicateInput<'_>) -> Evaluation {
    let Ok(requested) = requested_slots(input.spec) else {
        return Evaluation {
            failed: vec![FailedPredicate {
                name: RESOURCES.to_string(),
                msg: overflow_message(input.spec),
            }],
            passed: vec![],
        };
    };
    let results = [
        (RESERVED_TIME, reserved_time(input.spec, input.now)),
        (DEPENDENCIES, dependencies(input.spec, input.dependencies)),
        (CONCURRENCY, concurrency(input.limits, input.usage)),
        (
            OWNER_RESOURCE_LIMIT,
            owner_resource_limit(input.limits, input.usage, &requested),
        ),
        (SCALING_GROUP, scaling_group(input.spec, input.group)),
    ];
    let mut out = Evaluation::default();
    for (name, result) in results {
        match result {
            Ok(()) => out.passed.push(PassedPredicate {
                name: name.to_string(),
            }),
            Err(msg) => out.failed.push(FailedPredicate {
                name: name.to_string(),
                msg,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaling_group::SchedulerOpts;
    use rust_decimal::Decimal;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn spec(session_type: SessionType) -> SessionSpec {
        SessionSpec {
            session_type,
            resources: ResourceSlots::new().with("cpu", Decimal::from(2)),
            ..crate::fixtures::spec_in(Uuid::from_u128(1), "gpu-batch", "alice")
        }
    }

    fn count(n: u32) -> Option<crate::bounds::PolicyCount> {
        crate::bounds::PolicyCount::parse("limit", i128::from(n)).ok()
    }

    fn group(allowed: &[SessionType]) -> ScalingGroup {
        ScalingGroup {
            exists: true,
            name: "gpu-batch".into(),
            is_active: true,
            public: true,
            scheduler_opts: SchedulerOpts {
                allowed_session_types: allowed.to_vec(),
                ..SchedulerOpts::default()
            },
            ..ScalingGroup::default()
        }
    }

    #[test]
    fn given_a_batch_reserved_for_later_when_evaluated_before_then_reserved_time_fails() {
        let mut s = spec(SessionType::Batch);
        s.starts_at = Some(t(60));
        assert!(reserved_time(&s, t(0)).is_err());
        assert!(reserved_time(&s, t(60)).is_ok());
    }

    #[test]
    fn given_an_interactive_session_with_starts_at_when_evaluated_then_reserved_time_ignores_it() {
        let mut s = spec(SessionType::Interactive);
        s.starts_at = Some(t(60));
        assert!(reserved_time(&s, t(0)).is_ok());
    }

    #[test]
    fn given_a_dependency_still_running_when_evaluated_then_dependencies_fails_without_dooming() {
        let mut s = spec(SessionType::Batch);
        let dep = Uuid::from_u128(7);
        s.dependencies = vec![dep];
        let states = BTreeMap::from([(
            dep,
            Some(DependencyState {
                owner: "alice".into(),
                status: SessionStatus::Running,
                exit_code: None,
            }),
        )]);
        assert!(dependencies(&s, &states).is_err());
        assert_eq!(failed_dependency(&s, &states), None);
    }

    #[test]
    fn given_a_dependency_that_terminated_successfully_when_evaluated_then_dependencies_passes() {
        let mut s = spec(SessionType::Batch);
        let dep = Uuid::from_u128(7);
        s.dependencies = vec![dep];
        let states = BTreeMap::from([(
            dep,
            Some(DependencyState {
                owner: "alice".into(),
                status: SessionStatus::Terminated,
                exit_code: Some(0),
            }),
        )]);
        assert!(dependencies(&s, &states).is_ok());
    }

    #[test]
    fn given_a_dependency_that_failed_or_was_cancelled_when_evaluated_then_the_dependent_is_doomed()
    {
        let mut s = spec(SessionType::Batch);
        let (a, b, c) = (Uuid::from_u128(7), Uuid::from_u128(8), Uuid::from_u128(9));
        for (dep, state) in [
            (
                a,
                Some(DependencyState {
                    owner: "alice".into(),
                    status: SessionStatus::Terminated,
                    exit_code: Some(1),
                }),
            ),
            (
                b,
                Some(DependencyState {
                    owner: "alice".into(),
                    status: SessionStatus::Cancelled,
                    exit_code: None,
                }),
            ),
            (c, None),
        ] {
            s.dependencies = vec![dep];
            let states = BTreeMap::from([(dep, state)]);
            assert_eq!(failed_dependency(&s, &states), Some(dep));
        }
    }

    #[test]
    fn given_a_dependency_of_another_owner_when_evaluated_then_it_is_unknown_and_its_status_never_shown(
    ) {
        let mut s = spec(SessionType::Batch);
        let dep = Uuid::from_u128(7);
        s.dependencies = vec![dep];
        let states = BTreeMap::from([(
            dep,
            Some(DependencyState {
                owner: "bob".into(),
                status: SessionStatus::Pending,
                exit_code: None,
            }),
        )]);
        let msg = dependencies(&s, &states).unwrap_err();
        assert!(msg.contains("unknown") && !msg.contains("PENDING"), "{msg}");
        assert_eq!(failed_dependency(&s, &states), Some(dep));
    }

    #[test]
    fn given_an_owner_at_the_concurrency_limit_when_evaluated_then_concurrency_fails() {
        let limits = ResourceLimits {
            max_concurrent_sessions: count(2),
            ..ResourceLimits::default()
        };
        let mut usage = OwnerUsage {
            concurrent: 2,
            ..OwnerUsage::default()
        };
        assert!(concurrency(&limits, &usage).is_err());
        usage.concurrent = 1;
        assert!(concurrency(&limits, &usage).is_ok());
        assert!(concurrency(
            &ResourceLimits::default(),
            &OwnerUsage {
                concurrent: 99,
                ..OwnerUsage::default()
            }
        )
        .is_ok());
    }

    #[test]
    fn given_an_owner_near_the_resource_limit_when_a_request_would_exceed_it_then_owner_resource_limit_fails(
    ) {
        let cpu = |n: i64| ResourceSlots::new().with("cpu", Decimal::from(n));
        let limits = ResourceLimits {
            total_resource_slots: Some(cpu(8)),
            ..ResourceLimits::default()
        };
        let usage = OwnerUsage {
            concurrent: 1,
            allocated: cpu(6),
        };
        assert!(owner_resource_limit(&limits, &usage, &cpu(2)).is_ok());
        let err = owner_resource_limit(&limits, &usage, &cpu(3));
        assert!(err.is_err());
    }

    #[test]
    fn given_a_group_that_stopped_accepting_the_type_when_evaluated_then_scaling_group_fails_with_the_message(
    ) {
        let s = spec(SessionType::Interactive);
        let g = group(&[SessionType::Batch]);
        assert_eq!(
            scaling_group(&s, Some(&g)),
            Err("scaling group 'gpu-batch' no longer accepts 'interactive' sessions (allowed: batch)".into())
        );
        let g = group(&[SessionType::Batch, SessionType::Interactive]);
        assert_eq!(scaling_group(&s, Some(&g)), Ok(()));
    }

    #[test]
    fn given_a_missing_or_inactive_group_when_evaluated_then_scaling_group_fails() {
        let s = spec(SessionType::Batch);
        assert!(scaling_group(&s, None).is_err());
        let mut g = group(&SessionType::ALL);
        g.is_active = false;
        assert!(scaling_group(&s, Some(&g)).is_err());
    }

    #[test]
    fn given_several_failures_when_evaluated_then_every_failure_is_reported_and_the_rest_pass() {
        let mut s = spec(SessionType::Batch);
        s.starts_at = Some(t(60));
        let limits = ResourceLimits {
            max_concurrent_sessions: count(0),
            ..ResourceLimits::default()
        };
        let g = group(&SessionType::ALL);
        let deps = BTreeMap::new();
        let usage = OwnerUsage::default();
        let e = evaluate(&PredicateInput {
            spec: &s,
            now: t(0),
            group: Some(&g),
            limits: &limits,
            usage: &usage,
            dependencies: &deps,
        });
        let failed: Vec<&str> = e.failed.iter().map(|f| f.name.as_str()).collect();
        let passed: Vec<&str> = e.passed.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(failed, vec![RESERVED_TIME, CONCURRENCY]);
        assert_eq!(
            passed,
            vec![DEPENDENCIES, OWNER_RESOURCE_LIMIT, SCALING_GROUP]
        );
        assert!(!e.passed_all());
    }
}
