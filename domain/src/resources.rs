//! Resource slots: `cpu` (cores, decimal), `mem` (bytes) and any accelerator slot such as
//! `cuda.device`. Amounts are exact decimals, serialised as strings (as Backend.AI does).
//!
//! Input is bounded at the edge ([`ResourceSlots::parse`]): every amount at most
//! [`MAX_SLOT_AMOUNT`], strings per [`DECIMAL_PATTERN`] (`mem`: [`SIZE_PATTERN`]),
//! numbers rounded to [`MAX_DECIMAL_PLACES`] (so an amount as the API shows it is
//! always accepted back), `mem` in whole bytes, at most [`MAX_SLOTS`] slots. Arithmetic is checked everywhere
//! ([`ResourceSlots::checked_add`], …): a sum that would overflow is a typed
//! [`SlotOverflow`], never a panic, so a poisoned stored value cannot stop a worker.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::error::ValidationError;

/// The largest amount of any one slot: 2^60 (1 EiB of `mem`).
pub const MAX_SLOT_AMOUNT: u64 = 1 << 60;
/// Most slots in one map.
pub const MAX_SLOTS: usize = 32;
/// The rule of slot names, as a regular expression.
pub const SLOT_NAME_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,63}$";

/// A sum or product of slot amounts left the representable range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("resource amounts overflow")]
pub struct SlotOverflow;

/// What a map of slots is for; decides which amounts are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotUse {
    /// What a session asks for: at least one slot, every amount positive.
    Request,
    /// An agent's capacity or a policy's limit: amounts may be zero, the map may be empty.
    Capacity,
}

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

    /// Slot-wise sum; `Err` when an amount would overflow.
    pub fn checked_add(&self, other: &ResourceSlots) -> Result<ResourceSlots, SlotOverflow> {
        let mut out = self.clone();
        for (k, v) in &other.0 {
            let entry = out.0.entry(k.clone()).or_insert(Decimal::ZERO);
            *entry = entry.checked_add(*v).ok_or(SlotOverflow)?;
        }
        Ok(out)
    }

    /// Slot-wise sum that stops at the largest representable amount (for statistics
    /// such as a group's total capacity, never for a fit or a limit).
    pub fn saturating_add(&self, other: &ResourceSlots) -> ResourceSlots {
        let mut out = self.clone();
        for (k, v) in &other.0 {
            let entry = out.0.entry(k.clone()).or_insert(Decimal::ZERO);
            *entry = entry.saturating_add(*v);
        }
        out
    }

    /// Slot-wise difference; zero entries are dropped; `Err` on overflow.
    pub fn checked_sub(&self, other: &ResourceSlots) -> Result<ResourceSlots, SlotOverflow> {
        let mut out = self.clone();
        for (k, v) in &other.0 {
            let entry = out.0.entry(k.clone()).or_insert(Decimal::ZERO);
            *entry = entry.checked_sub(*v).ok_or(SlotOverflow)?;
        }
        out.0.retain(|_, v| !v.is_zero());
        Ok(out)
    }

    /// Every amount multiplied (e.g. by a cluster size); `Err` on overflow.
    pub fn checked_scale(&self, factor: u32) -> Result<ResourceSlots, SlotOverflow> {
        self.0
            .iter()
            .map(|(k, v)| {
                v.checked_mul(Decimal::from(factor))
                    .map(|n| (k.clone(), n))
                    .ok_or(SlotOverflow)
            })
            .collect::<Result<_, _>>()
            .map(ResourceSlots)
    }

    /// The sum of many maps; `Err` on overflow.
    pub fn checked_sum<'a>(
        items: impl IntoIterator<Item = &'a ResourceSlots>,
    ) -> Result<ResourceSlots, SlotOverflow> {
        items
            .into_iter()
            .try_fold(ResourceSlots::new(), |acc, s| acc.checked_add(s))
    }

    /// Whether every requested amount is available in `capacity`.
    pub fn fits_within(&self, capacity: &ResourceSlots) -> bool {
        self.0.iter().all(|(k, v)| *v <= capacity.get(k))
    }

    /// Whether `self + extra` fits within `capacity`, without building the sum; an
    /// overflowing sum does not fit.
    pub fn fits_with(&self, extra: &ResourceSlots, capacity: &ResourceSlots) -> bool {
        extra.0.iter().all(|(k, v)| {
            self.get(k)
                .checked_add(*v)
                .is_some_and(|sum| sum <= capacity.get(k))
        })
    }

    /// True when no slot has a positive amount.
    pub fn is_empty(&self) -> bool {
        self.0.values().all(|v| v.is_zero())
    }

    /// Parses a JSON object of slots at the edge, accepting numbers or strings; `mem`
    /// also accepts binary sizes such as `"4g"` or `"512MiB"`. `field` names the field
    /// in errors; `use_` decides whether zero amounts and an empty map are allowed.
    pub fn parse(
        value: &serde_json::Value,
        field: &str,
        use_: SlotUse,
    ) -> Result<Self, ValidationError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ValidationError::new(field, "must be an object of slot amounts"))?;
        if obj.len() > MAX_SLOTS {
            return Err(ValidationError::new(
                field,
                format!("must name at most {MAX_SLOTS} slots"),
            ));
        }
        if use_ == SlotUse::Request && obj.is_empty() {
            return Err(ValidationError::new(
                field,
                "must name at least one slot, e.g. {\"cpu\": 1, \"mem\": \"2g\"}",
            ));
        }
        let mut slots = BTreeMap::new();
        for (name, amount) in obj {
            let path = format!("{field}.{name}");
            if !valid_slot_name(name) {
                return Err(ValidationError::new(
                    &path,
                    "slot names are 1-64 lower-case letters, digits, '.', '_' and '-', starting with a letter or digit",
                ));
            }
            let parsed = parse_amount(name, amount).map_err(|m| ValidationError::new(&path, m))?;
            if use_ == SlotUse::Request && parsed.is_zero() {
                return Err(ValidationError::new(
                    &path,
                    "must be positive (leave out a slot you do not need)",
                ));
            }
            slots.insert(name.clone(), parsed);
        }
        Ok(ResourceSlots(slots))
    }
}

/// The most decimal places of an amount (a number with more is rounded to them).
pub const MAX_DECIMAL_PLACES: u32 = 10;

/// The rule of a decimal amount given as a string: up to 19 integer digits (so every
/// amount up to [`MAX_SLOT_AMOUNT`], 2^60, as the API shows it, is accepted back) and up
/// to 10 decimal places.
pub const DECIMAL_PATTERN: &str = "^[0-9]{1,19}(\\.[0-9]{1,10})?$";
/// The rule of `mem` given as a string: bytes, or a whole number of a binary unit
/// (`4g`, `512M`, `2GiB`; at most 999999t or 999p, so never above 2^60).
pub const SIZE_PATTERN: &str =
    "^([0-9]{1,19}|[0-9]{1,6}[kKmMgGtT]([iI]?[bB])?|[0-9]{1,3}[pP]([iI]?[bB])?)$";

fn digits(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` matches [`DECIMAL_PATTERN`].
fn is_decimal_text(s: &str) -> bool {
    match s.split_once('.') {
        Some((int, frac)) => digits(int, 1, 19) && digits(frac, 1, 10),
        None => digits(s, 1, 19),
    }
}

/// Whether `s` matches [`SIZE_PATTERN`].
fn is_size_text(s: &str) -> bool {
    if digits(s, 1, 19) {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    let unit_end = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let Some(unit) = unit_end.chars().last() else {
        return false;
    };
    let Some(number) = unit_end.strip_suffix(unit) else {
        return false;
    };
    // The unit's suffix is `b` or `ib` only after a unit letter.
    match unit {
        'k' | 'm' | 'g' | 't' => digits(number, 1, 6),
        'p' => digits(number, 1, 3),
        _ => false,
    }
}

/// One amount: a JSON number or a string (`mem`: bytes or a whole binary size), within
/// the bounds. The error is the message after the field name.
fn parse_amount(name: &str, amount: &serde_json::Value) -> Result<Decimal, String> {
    use rust_decimal::prelude::FromPrimitive;
    let mem = name == "mem";
    let parsed = match amount {
        serde_json::Value::Number(n) => {
            let exact = n
                .as_u64()
                .map(Decimal::from)
                .or_else(|| n.as_i64().map(Decimal::from));
            match (exact, n.as_f64()) {
                (Some(d), _) => d,
                (None, Some(f)) if f < 0.0 => return Err("must not be negative".to_string()),
                (None, Some(f)) if f > MAX_SLOT_AMOUNT as f64 => {
                    return Err(format!("must be at most {MAX_SLOT_AMOUNT}"))
                }
                (None, Some(f)) if mem && f.fract() != 0.0 => {
                    return Err("must be a whole number of bytes".to_string())
                }
                // A float is rounded to the 10 decimal places a string may have, so the
                // amount as shown (a decimal string) is accepted back; one too small for
                // a decimal rounds to zero.
                (None, Some(f)) => Decimal::from_f64(f)
                    .map(|d| d.round_dp(MAX_DECIMAL_PLACES))
                    .unwrap_or(Decimal::ZERO),
                (None, None) => return Err("is not a valid number".to_string()),
            }
        }
        serde_json::Value::String(s) if mem => {
            if !is_size_text(s) {
                return Err(
                    "must be a byte count or a whole size like '4g', '512m' or '2GiB'".to_string(),
                );
            }
            parse_binary_size(s).ok_or_else(|| "is not a valid size".to_string())?
        }
        serde_json::Value::String(s) => {
            if !is_decimal_text(s) {
                return Err(
                    "must be a decimal amount (up to 19 digits and 10 decimal places)".to_string(),
                );
            }
            Decimal::from_str(s).map_err(|_| "is not a valid decimal amount".to_string())?
        }
        _ => return Err("must be a number or a string".to_string()),
    };
    if parsed.is_sign_negative() && !parsed.is_zero() {
        return Err("must not be negative".to_string());
    }
    let parsed = parsed.normalize();
    if parsed > Decimal::from(MAX_SLOT_AMOUNT) {
        return Err(format!("must be at most {MAX_SLOT_AMOUNT}"));
    }
    if mem && !parsed.fract().is_zero() {
        return Err("must be a whole number of bytes".to_string());
    }
    // `-0` normalises to 0.
    Ok(parsed.abs())
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
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 64
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// Parses `"4g"`, `"4G"`, `"4GiB"`, `"1.5g"`, `"512m"`, `"1024"` into bytes (powers of
/// 1024). The result may have a fraction (`"1.3g"`); callers decide whether that is
/// allowed.
pub fn parse_binary_size(s: &str) -> Option<Decimal> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    let lower = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let last = lower.chars().last()?;
    let exp = match last {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        c if c.is_ascii_digit() => 0,
        _ => return None,
    };
    let num = if exp == 0 {
        lower
    } else {
        lower.strip_suffix(last)?
    };
    let n = Decimal::from_str(num.trim()).ok()?;
    if n.is_sign_negative() {
        return None;
    }
    n.checked_mul(Decimal::from(1024u64.checked_pow(exp)?))
}

/// Formats bytes the way the scheduler messages show them (`32g`, `512m`, `100`).
pub fn format_binary_size(bytes: Decimal) -> String {
    for (suffix, exp) in [("p", 5u32), ("t", 4), ("g", 3), ("m", 2), ("k", 1)] {
        let unit = Decimal::from(1024u64.pow(exp));
        if bytes >= unit && bytes.checked_rem(unit).is_some_and(|r| r.is_zero()) {
            if let Some(n) = bytes.checked_div(unit) {
                return format!("{n}{suffix}");
            }
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn field_of(r: Result<ResourceSlots, ValidationError>) -> String {
        r.expect_err("rejected").field
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
        let slots = ResourceSlots::parse(
            &json!({"cpu": 0.5, "mem": "4g", "cuda.device": "1"}),
            "resources",
            SlotUse::Request,
        )
        .unwrap();
        assert_eq!(slots.get("cpu"), dec("0.5"));
        assert_eq!(slots.get("mem"), dec("4294967296"));
        assert_eq!(slots.get("cuda.device"), dec("1"));
    }

    #[test]
    fn a_negative_amount_is_rejected_naming_the_field() {
        let err = ResourceSlots::parse(&json!({"cpu": -1}), "resources", SlotUse::Request);
        assert_eq!(field_of(err), "resources.cpu");
    }

    #[test]
    fn a_request_names_at_least_one_positive_slot() {
        assert_eq!(
            field_of(ResourceSlots::parse(
                &json!({}),
                "resources",
                SlotUse::Request
            )),
            "resources"
        );
        assert_eq!(
            field_of(ResourceSlots::parse(
                &json!({"cpu": 0}),
                "resources",
                SlotUse::Request
            )),
            "resources.cpu"
        );
        assert!(ResourceSlots::parse(&json!({}), "available_slots", SlotUse::Capacity).is_ok());
        assert!(ResourceSlots::parse(
            &json!({"cuda.device": 0}),
            "available_slots",
            SlotUse::Capacity
        )
        .is_ok());
    }

    #[test]
    fn an_amount_above_the_bound_is_rejected_naming_the_field() {
        for v in [
            json!({"mem": "999999999999g"}),
            json!({"cpu": "79228162514264337593543950335"}),
            json!({"cpu": 1e30}),
        ] {
            assert_eq!(
                field_of(ResourceSlots::parse(&v, "resources", SlotUse::Request))
                    .split('.')
                    .next(),
                Some("resources"),
                "{v}"
            );
        }
        assert!(
            ResourceSlots::parse(&json!({ "cpu": MAX_SLOT_AMOUNT }), "r", SlotUse::Request).is_ok()
        );
        assert!(ResourceSlots::parse(
            &json!({ "cpu": MAX_SLOT_AMOUNT + 1 }),
            "r",
            SlotUse::Request
        )
        .is_err());
    }

    #[test]
    fn fractional_bytes_and_ill_formed_amounts_are_rejected() {
        for v in [
            json!({"mem": 0.5}),
            json!({"mem": "1.3g"}),
            json!({"mem": "1.5g"}),
            json!({"mem": "9999999t"}),
            json!({"cpu": "0.12345678901"}),
            json!({"cpu": "1e3"}),
            json!({"cpu": " 1"}),
            json!({"cpu": "4g"}),
        ] {
            assert!(
                ResourceSlots::parse(&v, "resources", SlotUse::Request).is_err(),
                "{v}"
            );
        }
        for v in [
            json!({"mem": "4g"}),
            json!({"mem": "2GiB"}),
            json!({"mem": "512MB"}),
            json!({"mem": 2.0}),
            json!({"cpu": 0.5000000000000001}),
            json!({"cpu": "0.0000000001"}),
            json!({"mem": "999p"}),
        ] {
            assert!(
                ResourceSlots::parse(&v, "resources", SlotUse::Request).is_ok(),
                "{v}"
            );
        }
    }

    #[test]
    fn the_largest_amounts_as_shown_are_accepted_back() {
        // The API shows amounts as decimal strings; 2^60 has 19 digits (tests/fuzz found
        // that `{"cpu": "1152921504606846976"}` was refused while the number was not).
        let shown = json!({"cpu": "1152921504606846976", "mem": "1152921504606846976"});
        let s = ResourceSlots::parse(&shown, "r", SlotUse::Request).unwrap();
        assert_eq!(serde_json::to_value(&s).unwrap(), shown);
        for over in [
            "1152921504606846977",
            "9999999999999999999",
            "1152921504606846976.5",
        ] {
            assert!(
                ResourceSlots::parse(&json!({ "cpu": over }), "r", SlotUse::Request).is_err(),
                "{over}"
            );
        }
        assert!(ResourceSlots::parse(
            &json!({"cpu": "10000000000000000000"}),
            "r",
            SlotUse::Request
        )
        .is_err());
    }

    #[test]
    fn a_float_amount_is_rounded_to_ten_places() {
        // tests/fuzz: `{"cpu": 1.83e-25}` was accepted as a positive request the API then
        // showed as a string it refuses.
        assert!(ResourceSlots::parse(&json!({"cpu": 1.83e-25}), "r", SlotUse::Request).is_err());
        let s =
            ResourceSlots::parse(&json!({"cpu": 0.123456789012}), "r", SlotUse::Request).unwrap();
        assert_eq!(s.get("cpu"), dec("0.1234567890"));
        let shown = serde_json::to_value(&s).unwrap();
        assert_eq!(ResourceSlots::parse(&shown, "r", SlotUse::Request), Ok(s));
    }

    #[test]
    fn a_capacity_of_a_tiny_float_is_zero_not_an_error() {
        let s = ResourceSlots::parse(
            &json!({"cpu": 5e-324}),
            "available_slots",
            SlotUse::Capacity,
        )
        .unwrap();
        assert_eq!(s.get("cpu"), Decimal::ZERO);
    }

    proptest::proptest! {
        #[test]
        fn the_string_rules_are_exactly_their_patterns(s in "[0-9.kKmMgGtTpPiIbB ]{0,24}") {
            let decimal = regex_lite::Regex::new(DECIMAL_PATTERN).unwrap();
            let size = regex_lite::Regex::new(SIZE_PATTERN).unwrap();
            proptest::prop_assert_eq!(decimal.is_match(&s), is_decimal_text(&s), "{:?}", s);
            proptest::prop_assert_eq!(size.is_match(&s), is_size_text(&s), "{:?}", s);
        }
    }

    #[test]
    fn too_many_slots_or_a_bad_slot_name_are_rejected() {
        let many: serde_json::Map<String, serde_json::Value> = (0..=MAX_SLOTS)
            .map(|i| (format!("s{i}"), json!(1)))
            .collect();
        assert!(ResourceSlots::parse(&json!(many), "r", SlotUse::Request).is_err());
        for bad in ["CPU", ".x", "a b", ""] {
            assert!(
                ResourceSlots::parse(&json!({ bad: 1 }), "r", SlotUse::Request).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn sums_that_overflow_are_errors_not_panics() {
        let huge = ResourceSlots::new().with("cpu", Decimal::MAX);
        assert_eq!(huge.checked_add(&huge), Err(SlotOverflow));
        assert_eq!(huge.checked_scale(2), Err(SlotOverflow));
        assert_eq!(
            ResourceSlots::new()
                .with("cpu", Decimal::MIN)
                .checked_sub(&huge),
            Err(SlotOverflow)
        );
        assert_eq!(huge.saturating_add(&huge).get("cpu"), Decimal::MAX);
        assert!(!huge.fits_with(&huge, &huge));
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
        let used = ResourceSlots::new().with("cpu", dec("6"));
        assert!(used.fits_with(&ResourceSlots::new().with("cpu", dec("2")), &cap));
        assert!(!used.fits_with(&ResourceSlots::new().with("cpu", dec("3")), &cap));
    }

    #[test]
    fn slots_display_mem_as_a_binary_size() {
        let s = ResourceSlots::new()
            .with("cpu", dec("8"))
            .with("mem", dec("34359738368"));
        assert_eq!(s.to_string(), "{cpu: 8, mem: 32g}");
    }
}
