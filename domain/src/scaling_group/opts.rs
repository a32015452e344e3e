//! Strictly validated `scheduler_opts` (SPEC §1.3).
//!
//! Unknown keys, wrong types and out-of-range values are rejected with a
//! [`ValidationError`] naming the field (`scheduler_opts.<key>`); missing keys get
//! their defaults.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::bounds::{MAX_POLICY_COUNT, MAX_TIMEOUT_SECS};
use crate::error::ValidationError;
use crate::session::SessionType;

/// The ordering a group's scheduler applies to its pending sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchedulerKind {
    /// Priority desc, then enqueue order.
    #[default]
    Fifo,
    /// Priority desc, then newest first.
    Lifo,
    /// Dominant resource fairness across owners.
    Drf,
}

impl SchedulerKind {
    /// Every scheduler.
    pub const ALL: [SchedulerKind; 3] = [Self::Fifo, Self::Lifo, Self::Drf];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fifo => "fifo",
            Self::Lifo => "lifo",
            Self::Drf => "drf",
        }
    }

    /// Parses `fifo | lifo | drf`; `field` names the field in errors.
    pub fn parse(value: &Value, field: &str) -> Result<Self, ValidationError> {
        match value.as_str() {
            Some("fifo") => Ok(Self::Fifo),
            Some("lifo") => Ok(Self::Lifo),
            Some("drf") => Ok(Self::Drf),
            _ => Err(ValidationError::new(
                field,
                "must be one of 'fifo', 'lifo', 'drf'",
            )),
        }
    }
}

/// How the scheduler picks among agents that fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentSelectionStrategy {
    /// Least-loaded agent first.
    #[default]
    Dispersed,
    /// Most-loaded agent that fits first.
    Concentrated,
    /// Rotate through agents.
    Roundrobin,
}

impl AgentSelectionStrategy {
    /// Every strategy.
    pub const ALL: [AgentSelectionStrategy; 3] =
        [Self::Dispersed, Self::Concentrated, Self::Roundrobin];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dispersed => "dispersed",
            Self::Concentrated => "concentrated",
            Self::Roundrobin => "roundrobin",
        }
    }
}

/// Scheduler-specific settings (`scheduler_opts.config`). Which keys exist depends on
/// the group's scheduler: fifo and lifo have `num_retries_to_skip`, drf has none (its
/// value is ignored, and never shown, for a drf group).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerConfig {
    /// fifo/lifo: 0 = strict order; N > 0 lets the scheduler pass over a head-of-line
    /// session that has failed N times.
    pub num_retries_to_skip: u32,
}

impl SchedulerConfig {
    /// The keys this config has for `scheduler`, with their values; `explicit_only`
    /// leaves out keys at their default (a PATCH's merge base: a default is implied, so
    /// switching the scheduler does not carry it over as an explicit, foreign key).
    fn to_json(self, scheduler: SchedulerKind, explicit_only: bool) -> Value {
        let mut m = Map::new();
        if scheduler != SchedulerKind::Drf && !(explicit_only && self.num_retries_to_skip == 0) {
            m.insert(
                "num_retries_to_skip".into(),
                self.num_retries_to_skip.into(),
            );
        }
        Value::Object(m)
    }
}

/// Validated scheduler options of a scaling group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerOpts {
    /// Session types the group accepts; empty = accepts no new sessions.
    pub allowed_session_types: Vec<SessionType>,
    /// Seconds a session may stay PENDING; 0 disables the timeout.
    pub pending_timeout: u64,
    /// Agent selection strategy.
    pub agent_selection_strategy: AgentSelectionStrategy,
    /// Scheduler settings.
    pub config: SchedulerConfig,
}

impl Default for SchedulerOpts {
    fn default() -> Self {
        Self {
            allowed_session_types: SessionType::ALL.to_vec(),
            pending_timeout: 0,
            agent_selection_strategy: AgentSelectionStrategy::default(),
            config: SchedulerConfig::default(),
        }
    }
}

const FIELD: &str = "scheduler_opts";

/// A whole, non-negative number: an integer, or a float without a fraction (`30.0`;
/// JSON Schema's `integer` includes it).
fn whole(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f <= 9.0e15)
                .map(|f| f as u64)
        }),
        _ => None,
    }
}

impl SchedulerOpts {
    /// Validates a JSON object (or `null` = all defaults) for a group using `scheduler`.
    pub fn parse(value: &Value, scheduler: SchedulerKind) -> Result<Self, ValidationError> {
        let empty = Map::new();
        let obj = match value {
            Value::Null => &empty,
            Value::Object(obj) => obj,
            _ => return Err(ValidationError::new(FIELD, "must be an object")),
        };
        let mut opts = SchedulerOpts::default();
        for (key, v) in obj {
            let field = format!("{FIELD}.{key}");
            match key.as_str() {
                "allowed_session_types" => {
                    let items = v
                        .as_array()
                        .ok_or_else(|| ValidationError::new(&field, "must be a list"))?;
                    let mut types: Vec<SessionType> = Vec::new();
                    for item in items {
                        let t = item.as_str().and_then(SessionType::parse).ok_or_else(|| {
                            ValidationError::new(
                                &field,
                                format!(
                                    "unknown session type {item}; expected 'interactive', 'batch' or 'inference'"
                                ),
                            )
                        })?;
                        if types.contains(&t) {
                            return Err(ValidationError::new(
                                &field,
                                format!("names '{t}' more than once"),
                            ));
                        }
                        types.push(t);
                    }
                    opts.allowed_session_types = types;
                }
                "pending_timeout" => {
                    opts.pending_timeout = match v {
                        v if whole(v).is_some_and(|t| t <= MAX_TIMEOUT_SECS) => whole(v).unwrap_or(0),
                        Value::Number(n) if n.as_f64().is_some_and(|f| f < 0.0) => {
                            return Err(ValidationError::new(&field, "must be >= 0 (seconds)"))
                        }
                        _ => {
                            return Err(ValidationError::new(
                                &field,
                                format!(
                                    "must be a whole number of seconds between 0 and {MAX_TIMEOUT_SECS}"
                                ),
                            ))
                        }
                    }
                }
                "agent_selection_strategy" => {
                    opts.agent_selection_strategy = match v.as_str() {
                        Some("dispersed") => AgentSelectionStrategy::Dispersed,
                        Some("concentrated") => AgentSelectionStrategy::Concentrated,
                        Some("roundrobin") => AgentSelectionStrategy::Roundrobin,
                        _ => {
                            return Err(ValidationError::new(
                                &field,
                                "must be one of 'dispersed', 'concentrated', 'roundrobin'",
                            ))
                        }
                    }
                }
                "config" => opts.config = parse_config(v, scheduler)?,
                _ => {
                    return Err(ValidationError::new(
                        &field,
                        "unknown key (allowed: allowed_session_types, pending_timeout, agent_selection_strategy, config)",
                    ))
                }
            }
        }
        Ok(opts)
    }

    /// The JSON a group using `scheduler` shows: every key, `config` with the keys of
    /// that scheduler. [`SchedulerOpts::parse`] accepts it back unchanged.
    pub fn to_json(&self, scheduler: SchedulerKind) -> Value {
        self.json(scheduler, false)
    }

    fn json(&self, scheduler: SchedulerKind, explicit_only: bool) -> Value {
        let mut m = Map::new();
        m.insert(
            "allowed_session_types".into(),
            Value::Array(
                self.allowed_session_types
                    .iter()
                    .map(|t| Value::from(t.as_str()))
                    .collect(),
            ),
        );
        m.insert("pending_timeout".into(), self.pending_timeout.into());
        m.insert(
            "agent_selection_strategy".into(),
            Value::from(self.agent_selection_strategy.as_str()),
        );
        m.insert(
            "config".into(),
            self.config.to_json(scheduler, explicit_only),
        );
        Value::Object(m)
    }

    /// PATCH semantics (SPEC §4): the given top-level keys of `patch` replace those of
    /// the current opts (of a group using `current`), then the merged whole is validated
    /// by [`SchedulerOpts::parse`] for `scheduler` — exactly what creating a group with
    /// it would do. Config keys at their default are implied, not carried, so switching
    /// to a scheduler that lacks them works; an explicit foreign key is rejected.
    pub fn merge_patch(
        &self,
        current: SchedulerKind,
        patch: &Map<String, Value>,
        scheduler: SchedulerKind,
    ) -> Result<Self, ValidationError> {
        let mut merged = match self.json(current, true) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        for (k, v) in patch {
            merged.insert(k.clone(), v.clone());
        }
        Self::parse(&Value::Object(merged), scheduler)
    }

    /// Whether the group accepts new sessions of this type.
    pub fn allows(&self, session_type: SessionType) -> bool {
        self.allowed_session_types.contains(&session_type)
    }

    /// The allowed types as a human list: `batch, inference` (or `none`).
    pub fn allowed_list(&self) -> String {
        if self.allowed_session_types.is_empty() {
            return "none".to_string();
        }
        self.allowed_session_types
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn parse_config(v: &Value, scheduler: SchedulerKind) -> Result<SchedulerConfig, ValidationError> {
    let field = format!("{FIELD}.config");
    let obj = v
        .as_object()
        .ok_or_else(|| ValidationError::new(&field, "must be an object"))?;
    let mut config = SchedulerConfig::default();
    for (key, v) in obj {
        let field = format!("{field}.{key}");
        match (scheduler, key.as_str()) {
            (SchedulerKind::Fifo | SchedulerKind::Lifo, "num_retries_to_skip") => {
                config.num_retries_to_skip = whole(v)
                    .filter(|n| *n <= u64::from(MAX_POLICY_COUNT))
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        ValidationError::new(
                            &field,
                            format!("must be a whole number between 0 and {MAX_POLICY_COUNT}"),
                        )
                    })?;
            }
            _ => {
                return Err(ValidationError::new(
                    &field,
                    format!("unknown key for the '{}' scheduler", scheduler.as_str()),
                ))
            }
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(r: Result<SchedulerOpts, ValidationError>) -> String {
        r.expect_err("rejected").field
    }

    #[test]
    fn missing_opts_get_every_default() {
        let opts = SchedulerOpts::parse(&json!({}), SchedulerKind::Fifo);
        assert_eq!(opts, Ok(SchedulerOpts::default()));
        let opts = SchedulerOpts::parse(&Value::Null, SchedulerKind::Fifo);
        assert_eq!(opts, Ok(SchedulerOpts::default()));
    }

    #[test]
    fn given_valid_opts_when_parsed_then_every_value_is_kept() {
        let opts = SchedulerOpts::parse(
            &json!({"allowed_session_types": ["batch"], "pending_timeout": 30,
                    "agent_selection_strategy": "concentrated", "config": {"num_retries_to_skip": 3}}),
            SchedulerKind::Fifo,
        );
        assert_eq!(
            opts,
            Ok(SchedulerOpts {
                allowed_session_types: vec![SessionType::Batch],
                pending_timeout: 30,
                agent_selection_strategy: AgentSelectionStrategy::Concentrated,
                config: SchedulerConfig {
                    num_retries_to_skip: 3
                },
            })
        );
    }

    #[test]
    fn an_unknown_key_is_rejected_naming_it() {
        let r = SchedulerOpts::parse(&json!({"pending_timeuot": 3}), SchedulerKind::Fifo);
        assert_eq!(field_of(r), "scheduler_opts.pending_timeuot");
    }

    #[test]
    fn a_negative_pending_timeout_is_rejected() {
        let r = SchedulerOpts::parse(&json!({"pending_timeout": -5}), SchedulerKind::Fifo);
        assert_eq!(field_of(r), "scheduler_opts.pending_timeout");
    }

    #[test]
    fn a_pending_timeout_of_the_wrong_type_is_rejected() {
        let r = SchedulerOpts::parse(&json!({"pending_timeout": "10"}), SchedulerKind::Fifo);
        assert_eq!(field_of(r), "scheduler_opts.pending_timeout");
    }

    #[test]
    fn an_unknown_session_type_is_rejected() {
        let r = SchedulerOpts::parse(
            &json!({"allowed_session_types": ["batch", "gaming"]}),
            SchedulerKind::Fifo,
        );
        assert_eq!(field_of(r), "scheduler_opts.allowed_session_types");
    }

    #[test]
    fn an_empty_allowed_list_is_valid_and_accepts_nothing() {
        let opts = SchedulerOpts::parse(&json!({"allowed_session_types": []}), SchedulerKind::Fifo)
            .expect("an empty list is valid");
        assert!(SessionType::ALL.iter().all(|t| !opts.allows(*t)));
    }

    #[test]
    fn an_unknown_strategy_is_rejected() {
        let r = SchedulerOpts::parse(
            &json!({"agent_selection_strategy": "random"}),
            SchedulerKind::Fifo,
        );
        assert_eq!(field_of(r), "scheduler_opts.agent_selection_strategy");
    }

    #[test]
    fn a_fifo_config_key_is_rejected_for_drf() {
        let r = SchedulerOpts::parse(
            &json!({"config": {"num_retries_to_skip": 1}}),
            SchedulerKind::Drf,
        );
        assert_eq!(field_of(r), "scheduler_opts.config.num_retries_to_skip");
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_patch_replaces_only_the_given_keys() {
        let current = SchedulerOpts {
            pending_timeout: 60,
            ..SchedulerOpts::default()
        };
        let merged = current
            .merge_patch(
                SchedulerKind::Fifo,
                &obj(json!({"allowed_session_types": ["batch"]})),
                SchedulerKind::Fifo,
            )
            .unwrap();
        assert_eq!(merged.pending_timeout, 60);
        assert_eq!(merged.allowed_session_types, vec![SessionType::Batch]);
    }

    #[test]
    fn an_invalid_patch_is_rejected_naming_the_field() {
        let r = SchedulerOpts::default().merge_patch(
            SchedulerKind::Fifo,
            &obj(json!({"pending_timeout": -1})),
            SchedulerKind::Fifo,
        );
        assert_eq!(field_of(r), "scheduler_opts.pending_timeout");
    }

    #[test]
    fn a_pending_timeout_beyond_ten_years_is_rejected() {
        for t in [
            json!(MAX_TIMEOUT_SECS + 1),
            json!(9_223_372_036_854_776u64),
            json!(u64::MAX),
        ] {
            let r = SchedulerOpts::parse(&json!({ "pending_timeout": t }), SchedulerKind::Fifo);
            assert_eq!(field_of(r), "scheduler_opts.pending_timeout");
        }
    }

    #[test]
    fn a_session_type_named_twice_is_rejected() {
        let r = SchedulerOpts::parse(
            &json!({"allowed_session_types": ["batch", "batch"]}),
            SchedulerKind::Fifo,
        );
        assert_eq!(field_of(r), "scheduler_opts.allowed_session_types");
    }

    #[test]
    fn switching_to_drf_does_not_carry_a_default_fifo_config_over() {
        let merged = SchedulerOpts::default()
            .merge_patch(SchedulerKind::Fifo, &Map::new(), SchedulerKind::Drf)
            .unwrap();
        assert_eq!(merged.to_json(SchedulerKind::Drf)["config"], json!({}));
    }

    #[test]
    fn switching_to_drf_with_an_explicit_fifo_config_is_rejected_as_create_would() {
        let current = SchedulerOpts {
            config: SchedulerConfig {
                num_retries_to_skip: 3,
            },
            ..SchedulerOpts::default()
        };
        let r = current.merge_patch(SchedulerKind::Fifo, &Map::new(), SchedulerKind::Drf);
        assert_eq!(field_of(r), "scheduler_opts.config.num_retries_to_skip");
    }

    proptest::proptest! {
        /// Whatever a group shows is accepted back by create: PATCH can never store a
        /// configuration that create would reject.
        #[test]
        fn the_shown_opts_of_any_group_are_accepted_by_create(
            timeout in 0..=MAX_TIMEOUT_SECS,
            skip in 0..=MAX_POLICY_COUNT,
            types in proptest::sample::subsequence(SessionType::ALL.to_vec(), 0..=3),
            strategy in proptest::sample::select(AgentSelectionStrategy::ALL.to_vec()),
            from in proptest::sample::select(SchedulerKind::ALL.to_vec()),
            to in proptest::sample::select(SchedulerKind::ALL.to_vec()),
        ) {
            let base = SchedulerOpts::parse(&json!({}), from).unwrap();
            let patch = if from == SchedulerKind::Drf {
                obj(json!({"pending_timeout": timeout, "allowed_session_types": types,
                           "agent_selection_strategy": strategy.as_str()}))
            } else {
                obj(json!({"pending_timeout": timeout, "allowed_session_types": types,
                           "agent_selection_strategy": strategy.as_str(),
                           "config": {"num_retries_to_skip": skip}}))
            };
            let patched = base.merge_patch(from, &patch, from).unwrap();
            let shown = patched.to_json(from);
            proptest::prop_assert_eq!(SchedulerOpts::parse(&shown, from), Ok(patched.clone()));
            if let Ok(switched) = patched.merge_patch(from, &Map::new(), to) {
                let shown = switched.to_json(to);
                proptest::prop_assert_eq!(SchedulerOpts::parse(&shown, to), Ok(switched));
            }
        }
    }
}
