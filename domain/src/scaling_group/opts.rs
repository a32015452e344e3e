//! Strictly validated `scheduler_opts` (SPEC §1.3).
//!
//! Unknown keys, wrong types and out-of-range values are rejected with a
//! [`ValidationError`] naming the field (`scheduler_opts.<key>`); missing keys get
//! their defaults.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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

/// Scheduler-specific settings (`scheduler_opts.config`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerConfig {
    /// fifo/lifo: 0 = strict order; N > 0 lets the scheduler pass over a head-of-line
    /// session that has failed N times.
    pub num_retries_to_skip: u32,
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
                    let mut types = Vec::new();
                    for item in items {
                        let t = item.as_str().and_then(SessionType::parse).ok_or_else(|| {
                            ValidationError::new(
                                &field,
                                format!(
                                    "unknown session type {item}; expected 'interactive', 'batch' or 'inference'"
                                ),
                            )
                        })?;
                        if !types.contains(&t) {
                            types.push(t);
                        }
                    }
                    opts.allowed_session_types = types;
                }
                "pending_timeout" => {
                    opts.pending_timeout = match v {
                        Value::Number(n) if n.as_u64().is_some() => n.as_u64().unwrap_or(0),
                        Value::Number(n) if n.as_f64().is_some_and(|f| f < 0.0) => {
                            return Err(ValidationError::new(&field, "must be >= 0 (seconds)"))
                        }
                        _ => {
                            return Err(ValidationError::new(
                                &field,
                                "must be a whole number of seconds >= 0",
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

    /// The canonical JSON form (every key present).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// PATCH semantics: the given top-level keys of `patch` replace the current ones,
    /// then the whole is validated again for `scheduler`.
    pub fn merge_patch(
        &self,
        patch: &Value,
        scheduler: SchedulerKind,
    ) -> Result<Self, ValidationError> {
        let Value::Object(patch) = patch else {
            return Err(ValidationError::new(FIELD, "must be an object"));
        };
        let mut merged = match self.to_json() {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if scheduler == SchedulerKind::Drf {
            // drf has no config keys; do not carry fifo's over when switching.
            merged.insert("config".into(), Value::Object(Map::new()));
        }
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
                config.num_retries_to_skip = v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| ValidationError::new(&field, "must be a whole number >= 0"))?;
            }
            _ => {
                return Err(ValidationError::new(
                    &field,
                    format!(
                        "unknown key for the '{}' scheduler",
                        serde_json::to_value(scheduler)
                            .ok()
                            .and_then(|s| s.as_str().map(str::to_string))
                            .unwrap_or_default()
                    ),
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
        r.err().map(|e| e.field).unwrap_or_default()
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
            .unwrap_or_default();
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

    #[test]
    fn a_patch_replaces_only_the_given_keys() {
        let current = SchedulerOpts {
            pending_timeout: 60,
            ..SchedulerOpts::default()
        };
        let merged = current
            .merge_patch(
                &json!({"allowed_session_types": ["batch"]}),
                SchedulerKind::Fifo,
            )
            .unwrap_or_default();
        assert_eq!(merged.pending_timeout, 60);
        assert_eq!(merged.allowed_session_types, vec![SessionType::Batch]);
    }

    #[test]
    fn an_invalid_patch_is_rejected_naming_the_field() {
        let r = SchedulerOpts::default()
            .merge_patch(&json!({"pending_timeout": -1}), SchedulerKind::Fifo);
        assert_eq!(field_of(r), "scheduler_opts.pending_timeout");
    }
}
