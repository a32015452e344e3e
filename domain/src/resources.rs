//! Resource slots: `cpu` (cores, decimal), `mem` (bytes) and any accelerator slot such as
//! `cuda.device`. Amounts are exact decimals, serialised as strings (as Backend.AI does).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::ValidationError;

/// A map of slot name to amount. Missing slots count as zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResourceSlots(pub BTreeMap<String, Decimal>);

impl ResourceSlots {
    /// An empty set of slots.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder helper: set one slot.
    pub fn with(mut self, name: &str, amount: Decimal) -> Self {
        self.0.insert(name.to_string(), amount);
        self
    }

    /// The amount of one slot (zero when absent).
    pub fn get(&self, name: &str) -> Decimal {
        self.0.get(name).copied().unwrap_or(Decimal::ZERO)
    }

    /// Slot-wise sum.
    pub fn add(&self, other: &ResourceSlots) -> ResourceSlots {
        let mut out = self.clone();
        for (k, v) in &other.0 {
            *out.0.entry(k.clone()).or_insert(Decimal::ZERO) += *v;
        }
        out
    }

    /// Slot-wise difference; zero entries are dropped.
    pub fn sub(&self, other: &ResourceSlots) -> ResourceSlots {
        let mut out = self.clone();
        for (k, v) in &other.0 {
            *out.0.entry(k.clone()).or_insert(Decimal::ZERO) -= *v;
        }
        out.0.retain(|_, v| !v.is_zero());
        out
    }

    /// Multiply every amount (e.g. by a cluster size).
    pub fn scale(&self, factor: u32) -> ResourceSlots {
        ResourceSlots(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), *v * Decimal::from(factor)))
                .collect(),
        )
    }

    /// Whether every requested amount is available in `capacity`.
    pub fn fits_within(&self, capacity: &ResourceSlots) -> bool {
        self.0.iter().all(|(k, v)| *v <= capacity.get(k))
    }

    /// True when no slot has a positive amount.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(|v| v.is_zero())
    }

    /// Parses a JSON object of slots, accepting numbers or strings; `mem` also accepts
    /// binary sizes such as `"4g"` or `"512MiB"`. `field` names the field in errors.
    pub fn from_json(value: &serde_json::Value, field: &str) -> Result<Self, ValidationError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ValidationError::new(field, "must be an object of slot amounts"))?;
        let mut slots = BTreeMap::new();
        for (name, amount) in obj {
            let path = format!("{field}.{name}");
            if !valid_slot_name(name) {
                return Err(ValidationError::new(
                    &path,
                    "slot names use lower-case letters, digits, '.', '_' and '-'",
                ));
            }
            let parsed = match amount {
                serde_json::Value::Number(n) => Decimal::from_str(&n.to_string())
                    .or_else(|_| Decimal::from_scientific(&n.to_string()))
                    .map_err(|_| ValidationError::new(&path, "is not a valid number"))?,
                serde_json::Value::String(s) if name == "mem" => {
                    parse_binary_size(s).ok_or_else(|| {
                        ValidationError::new(&path, "must be a byte count or a size like '4g'")
                    })?
                }
                serde_json::Value::String(s) => Decimal::from_str(s.trim())
                    .map_err(|_| ValidationError::new(&path, "is not a valid decimal amount"))?,
                _ => return Err(ValidationError::new(&path, "must be a number or a string")),
            };
            if parsed.is_sign_negative() && !parsed.is_zero() {
                return Err(ValidationError::new(&path, "must not be negative"));
            }
            slots.insert(name.clone(), parsed.normalize());
        }
        Ok(ResourceSlots(slots))
    }
}

impl fmt::Display for ResourceSlots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if k == "mem" {
                write!(f, "{k}: {}", format_binary_size(*v))?;
            } else {
                write!(f, "{k}: {v}")?;
            }
        }
        f.write_str("}")
    }
}

fn valid_slot_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// Parses `"4g"`, `"4G"`, `"4GiB"`, `"1.5g"`, `"512m"`, `"1024"` into bytes.
pub fn parse_binary_size(s: &str) -> Option<Decimal> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    let lower = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (num, exp) = match lower.chars().last()? {
        'k' => (&lower[..lower.len() - 1], 1),
        'm' => (&lower[..lower.len() - 1], 2),
        'g' => (&lower[..lower.len() - 1], 3),
        't' => (&lower[..lower.len() - 1], 4),
        'p' => (&lower[..lower.len() - 1], 5),
        c if c.is_ascii_digit() => (lower, 0),
        _ => return None,
    };
    let n = Decimal::from_str(num.trim()).ok()?;
    if n.is_sign_negative() {
        return None;
    }
    let bytes = n.checked_mul(Decimal::from(1024u64.checked_pow(exp)?))?;
    // A byte count is whole.
    Some(bytes.floor())
}

/// Formats bytes the way the scheduler messages show them (`32g`, `512m`, `100`).
pub fn format_binary_size(bytes: Decimal) -> String {
    for (suffix, exp) in [("p", 5u32), ("t", 4), ("g", 3), ("m", 2), ("k", 1)] {
        let unit = Decimal::from(1024u64.pow(exp));
        if bytes >= unit && (bytes % unit).is_zero() {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap_or_default()
    }

    #[test]
    fn binary_sizes_are_parsed_in_powers_of_1024() {
        assert_eq!(parse_binary_size("4g"), Some(dec("4294967296")));
        assert_eq!(parse_binary_size("4GiB"), Some(dec("4294967296")));
        assert_eq!(parse_binary_size("512m"), Some(dec("536870912")));
        assert_eq!(parse_binary_size("1.5k"), Some(dec("1536")));
        assert_eq!(parse_binary_size("100"), Some(dec("100")));
        assert_eq!(parse_binary_size("lots"), None);
        assert_eq!(parse_binary_size("-1g"), None);
    }

    #[test]
    fn slots_are_parsed_from_numbers_and_strings() {
        let slots = ResourceSlots::from_json(
            &json!({"cpu": 0.5, "mem": "4g", "cuda.device": "1"}),
            "resources",
        );
        let slots = slots.unwrap_or_default();
        assert_eq!(slots.get("cpu"), dec("0.5"));
        assert_eq!(slots.get("mem"), dec("4294967296"));
        assert_eq!(slots.get("cuda.device"), dec("1"));
    }

    #[test]
    fn a_negative_amount_is_rejected_naming_the_field() {
        let err = ResourceSlots::from_json(&json!({"cpu": -1}), "resources");
        assert_eq!(err.map_err(|e| e.field), Err("resources.cpu".to_string()));
    }

    #[test]
    fn fitting_compares_every_requested_slot() {
        let cap = ResourceSlots::new()
            .with("cpu", dec("8"))
            .with("mem", dec("100"));
        assert!(ResourceSlots::new().with("cpu", dec("8")).fits_within(&cap));
        assert!(!ResourceSlots::new()
            .with("cpu", dec("8.5"))
            .fits_within(&cap));
        assert!(!ResourceSlots::new()
            .with("cuda.device", dec("1"))
            .fits_within(&cap));
    }

    #[test]
    fn slots_display_mem_as_a_binary_size() {
        let s = ResourceSlots::new()
            .with("cpu", dec("8"))
            .with("mem", dec("34359738368"));
        assert_eq!(s.to_string(), "{cpu: 8, mem: 32g}");
    }
}
