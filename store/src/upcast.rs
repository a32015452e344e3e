//! Event upgrades: the one chain every stored event is read through
//! (docs/adr/0010-event-upgrades.md).
//!
//! An event is stored with its `event_version`; this build reads one version per
//! aggregate, [`DomainEvent::EVENT_VERSION`] (set in the domain's `aggregate!`
//! invocation). A stored body of an older version is rewritten step by step by
//! [`Upcaster`]s, each keyed by `(aggregate_type, from)` and leading to `to`, until it
//! reaches the version this build reads; only then is it deserialised. Stored rows are
//! never rewritten: the upgrade happens on every read.
//!
//! A version with no path to the current one (a newer build's event, an unknown or
//! corrupted version) is [`UpcastError::UnknownVersion`], and a step that refuses the
//! body is [`UpcastError::Failed`]: typed errors, never a panic. `sessionctl audit
//! verify` reports the first as a `version` finding.
//!
//! Every read of stored events goes through [`Upcasters::standard`]:
//! [`EventStore::load`](crate::EventStore::load), `load_last`, `load_first`,
//! [`RecordedEvent::decode`](crate::RecordedEvent::decode) (projections, the HTTP
//! handlers, `sessionctl`) and the audit.
//!
//! # Adding a version
//! Bump the aggregate's `*_EVENT_VERSION` (the version its `aggregate!` invocation
//! names), change the event type, and add one [`Upcaster`] from the old version to
//! [`STANDARD`]: a plain `fn` that receives every event type of that aggregate and
//! returns the unchanged body for the ones whose shape did not change. Keep the old
//! version's fixtures (`tests/fixtures/events/*.v1.json`); they must still load.

use std::sync::OnceLock;

use domain::DomainEvent;
use serde_json::Value;

/// One upgrade step: rewrites the body of an event of `event_type` (one of the
/// aggregate's) from the step's `from` version to its `to` version. An `Err` is the
/// reason the body cannot be upgraded.
pub type UpcastFn = fn(event_type: &str, payload: Value) -> Result<Value, String>;

/// One step of the chain: every event of `aggregate_type` stored at `from` becomes
/// `to` through `upcast`.
#[derive(Debug, Clone, Copy)]
pub struct Upcaster {
    /// The aggregate whose events this step upgrades (e.g. `Session`).
    pub aggregate_type: &'static str,
    /// The version it reads.
    pub from: &'static str,
    /// The version it produces.
    pub to: &'static str,
    /// The rewrite.
    pub upcast: UpcastFn,
}

/// This build's upgrade steps. Empty while every aggregate is at its first version.
pub const STANDARD: &[Upcaster] = &[];

/// Why a stored body cannot be brought to the version this build reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpcastError {
    /// No chain of upcasters leads from the stored version to the current one: an event
    /// of a newer build, or an unknown version.
    #[error("{aggregate_type} {event_type} v{event_version} has no upcaster to v{current}")]
    UnknownVersion {
        /// Aggregate type.
        aggregate_type: String,
        /// Event type.
        event_type: String,
        /// The version the chain could not go on from (the stored one, or where a chain
        /// of steps ended).
        event_version: String,
        /// The version this build reads.
        current: String,
    },
    /// An upcaster refused the body.
    #[error("upcasting {aggregate_type} {event_type} from v{from} to v{to} failed: {reason}")]
    Failed {
        /// Aggregate type.
        aggregate_type: String,
        /// Event type.
        event_type: String,
        /// The step's input version.
        from: String,
        /// The step's output version.
        to: String,
        /// What the upcaster said.
        reason: String,
    },
}

/// Why a stored event cannot be read as its aggregate's event type.
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    /// Its version cannot be brought to the current one (boxed: errors stay small).
    #[error(transparent)]
    Version(Box<UpcastError>),
    /// The (upgraded) body does not deserialise as the event type.
    #[error("{0}")]
    Payload(#[from] serde_json::Error),
}

impl Unreadable {
    /// The upgrade failure, if that is what this is.
    pub fn upcast_error(&self) -> Option<&UpcastError> {
        match self {
            Unreadable::Version(e) => Some(e),
            Unreadable::Payload(_) => None,
        }
    }
}

impl From<UpcastError> for Unreadable {
    fn from(e: UpcastError) -> Self {
        Unreadable::Version(Box::new(e))
    }
}

/// A registry of upcasters, keyed by `(aggregate_type, from)`. The service reads
/// through [`Upcasters::standard`]; tests build their own with [`Upcasters::with`].
#[derive(Debug, Clone, Default)]
pub struct Upcasters {
    steps: Vec<Upcaster>,
}

impl Upcasters {
    /// A registry without any step (only current versions are readable).
    pub fn empty() -> Self {
        Self::default()
    }

    /// This build's registry: the steps in [`STANDARD`].
    pub fn standard() -> &'static Upcasters {
        static REGISTRY: OnceLock<Upcasters> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            STANDARD
                .iter()
                .fold(Upcasters::empty(), |registry, step| registry.with(*step))
        })
    }

    /// This registry plus `step` (replacing a step with the same `(aggregate_type, from)`).
    pub fn with(mut self, step: Upcaster) -> Self {
        self.steps
            .retain(|s| (s.aggregate_type, s.from) != (step.aggregate_type, step.from));
        self.steps.push(step);
        self
    }

    fn step(&self, aggregate_type: &str, from: &str) -> Option<&Upcaster> {
        self.steps
            .iter()
            .find(|s| s.aggregate_type == aggregate_type && s.from == from)
    }

    /// Brings `payload`, stored as `event_type` v`event_version` of `aggregate_type`,
    /// to version `current`, one step at a time. A chain that does not reach `current`
    /// (no step from some version on, or a cycle) is [`UpcastError::UnknownVersion`].
    pub fn upcast(
        &self,
        aggregate_type: &str,
        event_type: &str,
        event_version: &str,
        mut payload: Value,
        current: &str,
    ) -> Result<Value, UpcastError> {
        let mut version = event_version;
        // Each step is taken at most once on a chain that ends: more is a cycle.
        for _ in 0..=self.steps.len() {
            if version == current {
                return Ok(payload);
            }
            let Some(step) = self.step(aggregate_type, version) else {
                break;
            };
            payload = (step.upcast)(event_type, payload).map_err(|reason| UpcastError::Failed {
                aggregate_type: aggregate_type.to_string(),
                event_type: event_type.to_string(),
                from: step.from.to_string(),
                to: step.to.to_string(),
                reason,
            })?;
            version = step.to;
        }
        Err(UpcastError::UnknownVersion {
            aggregate_type: aggregate_type.to_string(),
            event_type: event_type.to_string(),
            event_version: version.to_string(),
            current: current.to_string(),
        })
    }

    /// Reads a stored body as `E` (of aggregate `aggregate_type`): upgraded to
    /// `E::EVENT_VERSION`, then deserialised. A body already at the current version is
    /// deserialised in place, without a copy.
    pub fn decode<E: DomainEvent>(
        &self,
        aggregate_type: &str,
        event_type: &str,
        event_version: &str,
        payload: &Value,
    ) -> Result<E, Unreadable> {
        if event_version == E::EVENT_VERSION {
            return Ok(E::deserialize(payload)?);
        }
        let upgraded = self.upcast(
            aggregate_type,
            event_type,
            event_version,
            payload.clone(),
            E::EVENT_VERSION,
        )?;
        Ok(serde_json::from_value(upgraded)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rename_n_to_count(_: &str, mut payload: Value) -> Result<Value, String> {
        if let Some(body) = payload.get_mut("Counted").and_then(Value::as_object_mut) {
            let n = body.remove("n").ok_or("no n")?;
            body.insert("count".into(), n);
        }
        Ok(payload)
    }

    fn add_unit(_: &str, mut payload: Value) -> Result<Value, String> {
        if let Some(body) = payload.get_mut("Counted").and_then(Value::as_object_mut) {
            body.insert("unit".into(), json!("items"));
        }
        Ok(payload)
    }

    fn unchanged(_: &str, payload: Value) -> Result<Value, String> {
        Ok(payload)
    }

    const V1_TO_V2: Upcaster = Upcaster {
        aggregate_type: "Counter",
        from: "1",
        to: "2",
        upcast: rename_n_to_count,
    };

    #[test]
    fn a_body_at_the_current_version_is_returned_unchanged() {
        let body = json!({"Counted": {"n": 1}});
        let out = Upcasters::empty().upcast("Counter", "Counted", "1", body.clone(), "1");
        assert_eq!(out, Ok(body));
    }

    #[test]
    fn steps_are_applied_in_order_until_the_current_version() {
        let registry = Upcasters::empty().with(V1_TO_V2).with(Upcaster {
            aggregate_type: "Counter",
            from: "2",
            to: "3",
            upcast: add_unit,
        });
        let out = registry.upcast("Counter", "Counted", "1", json!({"Counted": {"n": 4}}), "3");
        assert_eq!(out, Ok(json!({"Counted": {"count": 4, "unit": "items"}})));
    }

    #[test]
    fn a_version_without_a_path_is_an_unknown_version() {
        let out =
            Upcasters::empty()
                .with(V1_TO_V2)
                .upcast("Counter", "Counted", "99", json!({}), "2");
        assert_eq!(
            out,
            Err(UpcastError::UnknownVersion {
                aggregate_type: "Counter".into(),
                event_type: "Counted".into(),
                event_version: "99".into(),
                current: "2".into(),
            })
        );
    }

    #[test]
    fn a_step_of_another_aggregate_does_not_apply() {
        let out = Upcasters::empty()
            .with(V1_TO_V2)
            .upcast("Other", "Counted", "1", json!({}), "2");
        assert!(matches!(out, Err(UpcastError::UnknownVersion { .. })));
    }

    #[test]
    fn a_cycle_of_steps_ends_as_an_unknown_version() {
        let registry = Upcasters::empty()
            .with(Upcaster {
                aggregate_type: "Counter",
                from: "1",
                to: "2",
                upcast: unchanged,
            })
            .with(Upcaster {
                aggregate_type: "Counter",
                from: "2",
                to: "1",
                upcast: unchanged,
            });
        let out = registry.upcast("Counter", "Counted", "1", json!({"Counted": {"n": 1}}), "3");
        assert!(matches!(out, Err(UpcastError::UnknownVersion { .. })));
    }

    #[test]
    fn a_refusing_step_is_a_failed_upcast_naming_the_step() {
        let out = Upcasters::empty().with(V1_TO_V2).upcast(
            "Counter",
            "Counted",
            "1",
            json!({"Counted": {}}),
            "2",
        );
        assert_eq!(
            out,
            Err(UpcastError::Failed {
                aggregate_type: "Counter".into(),
                event_type: "Counted".into(),
                from: "1".into(),
                to: "2".into(),
                reason: "no n".into(),
            })
        );
    }

    #[test]
    fn this_build_has_no_step_that_does_not_lead_forward() {
        for step in STANDARD {
            assert_ne!(step.from, step.to, "{step:?}");
        }
    }
}
