//! Resource slots and sizes, `scheduler_opts`, and the bounded numbers of request
//! bodies (`integer` + `Priority`, `ClusterSize`, `BatchTimeout`, `PolicyCount`).

use domain::bounds::{BatchTimeout, ClusterSize, PolicyCount, Priority};
use domain::resources::{
    format_binary_size, parse_binary_size, ResourceSlots, SlotUse, MAX_SLOTS, MAX_SLOT_AMOUNT,
};
use domain::scaling_group::{SchedulerKind, SchedulerOpts};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::gen::{edge_number, edge_string, mutated, re};
use crate::{check, fuzz};

fn slot_seeds() -> Vec<Value> {
    vec![
        json!({"cpu": 1, "mem": "4g"}),
        json!({"cpu": "0.5", "mem": 1073741824u64, "cuda.device": 2}),
        json!({"cpu": 8, "mem": "32GiB", "cuda.shares": "1.25", "tpu-v4_x": 1}),
        json!({"mem": "512m"}),
        json!({"cpu": 0, "mem": 0}),
        json!({"cpu": 1152921504606846976u64, "mem": "999p"}),
        json!({}),
    ]
}

/// A size as text: digits and a unit, or an edge string.
fn size_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => (re("[0-9]{1,20}(\\.[0-9]{1,12})?"), re("(|[kKmMgGtTpPxX])(|[iI]?[bB])"))
            .prop_map(|(n, u)| format!("{n}{u}")),
        1 => edge_string(),
        1 => re(" ?-?[0-9]{0,4} ?[kmgtp]?i?b? ?"),
    ]
    .boxed()
}

fn slots_value() -> BoxedStrategy<Value> {
    prop_oneof![
        6 => mutated(slot_seeds()),
        1 => prop::collection::btree_map(
                prop_oneof![Just("mem".to_string()), Just("cpu".to_string()), re("[a-z0-9._-]{1,8}")],
                prop_oneof![size_text().prop_map(Value::String), edge_number()],
                0..40,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ]
    .boxed()
}

#[test]
fn resource_slots() {
    fuzz("resource_slots", slots_value(), |v| {
        for use_ in [SlotUse::Request, SlotUse::Capacity] {
            let Ok(slots) = ResourceSlots::parse(&v, "resources", use_) else {
                continue;
            };
            check!(slots.0.len() <= MAX_SLOTS, "{} slots", slots.0.len());
            let most: serde_json::Map<String, Value> = slots
                .0
                .keys()
                .map(|k| (k.clone(), json!(MAX_SLOT_AMOUNT)))
                .collect();
            let most =
                ResourceSlots::parse(&Value::Object(most), "most", SlotUse::Capacity).unwrap();
            check!(slots.fits_within(&most), "{slots} out of bounds");
            for (k, d) in &slots.0 {
                check!(!d.is_sign_negative(), "{k} = {d} is negative");
                check!(k != "mem" || d.fract().is_zero(), "fractional mem {d}");
                check!(
                    use_ == SlotUse::Capacity || !d.is_zero(),
                    "zero amount in a request"
                );
            }
            // What the API shows (decimal strings) and what the store keeps read back
            // to the same slots.
            let shown = serde_json::to_value(&slots).unwrap();
            let back = ResourceSlots::parse(&shown, "resources", use_);
            check!(
                back.as_ref() == Ok(&slots),
                "{shown} does not round-trip: {back:?}"
            );
            let stored: ResourceSlots = serde_json::from_value(shown).unwrap();
            check!(stored == slots, "the stored form differs");
            // Checked arithmetic on accepted amounts never panics.
            let _ = slots.checked_scale(u32::MAX);
            let _ = slots
                .checked_add(&slots)
                .and_then(|s| s.checked_sub(&slots));
            let _ = slots.saturating_add(&slots);
            let _ = slots.to_string();
            if use_ == SlotUse::Request {
                crate::accepted();
            }
        }
        Ok(())
    });
}

#[test]
fn binary_sizes() {
    let s = prop_oneof![
        4 => size_text(),
        1 => any::<u64>().prop_map(|n| n.to_string()),
    ];
    fuzz("binary_sizes", s, |s| {
        if let Some(bytes) = parse_binary_size(&s) {
            crate::accepted();
            check!(
                !bytes.is_sign_negative() || bytes.is_zero(),
                "negative size from {s:?}"
            );
            let shown = format_binary_size(bytes);
            if bytes.fract().is_zero() {
                check!(
                    parse_binary_size(&shown) == Some(bytes),
                    "{s:?} -> {bytes} -> {shown:?} does not round-trip"
                );
            }
        }
        // As a `mem` amount, through the edge parser.
        let _ = ResourceSlots::parse(&json!({ "mem": s }), "resources", SlotUse::Request);
        Ok(())
    });
}

fn opts_seeds() -> Vec<Value> {
    vec![
        json!({}),
        Value::Null,
        json!({"allowed_session_types": ["interactive", "batch"], "pending_timeout": 30,
               "agent_selection_strategy": "concentrated", "config": {"num_retries_to_skip": 3}}),
        json!({"allowed_session_types": [], "pending_timeout": 315360000,
               "agent_selection_strategy": "roundrobin", "config": {}}),
        json!({"pending_timeout": 30.0, "config": {"num_retries_to_skip": 1000000}}),
        SchedulerOpts::default().to_json(SchedulerKind::Fifo),
        SchedulerOpts::default().to_json(SchedulerKind::Drf),
    ]
}

fn kind() -> impl Strategy<Value = SchedulerKind> {
    prop::sample::select(SchedulerKind::ALL.to_vec())
}

#[test]
fn scheduler_opts() {
    let s = (mutated(opts_seeds()), kind(), mutated(opts_seeds()), kind());
    fuzz("scheduler_opts", s, |(v, kind, patch, to)| {
        match SchedulerOpts::parse(&v, kind) {
            Ok(opts) => {
                crate::accepted();
                check!(
                    opts.pending_timeout <= domain::bounds::MAX_TIMEOUT_SECS,
                    "timeout"
                );
                let shown = opts.to_json(kind);
                let back = SchedulerOpts::parse(&shown, kind);
                check!(
                    back.as_ref() == Ok(&opts),
                    "{shown} does not round-trip: {back:?}"
                );
                let stored: SchedulerOpts =
                    serde_json::from_value(serde_json::to_value(&opts).unwrap()).unwrap();
                check!(stored == opts, "the stored form differs");
                if let Value::Object(patch) = &patch {
                    if let Ok(merged) = opts.merge_patch(kind, patch, to) {
                        let again = SchedulerOpts::parse(&merged.to_json(to), to);
                        check!(
                            again.as_ref() == Ok(&merged),
                            "a merged patch does not round-trip"
                        );
                    }
                }
            }
            Err(e) => check!(
                e.field.starts_with("scheduler_opts"),
                "the error names {:?}",
                e.field
            ),
        }
        Ok(())
    });
}

#[test]
fn bounded_numbers() {
    let n = prop_oneof![
        3 => edge_number(),
        1 => re("-?[0-9]{1,40}(\\.[0-9]{1,5})?([eE][+-]?[0-9]{1,3})?")
            .prop_filter_map("a JSON number", |t| serde_json::from_str::<Value>(&t).ok()),
    ];
    fuzz("bounded_numbers", n, |v| {
        let Value::Number(n) = &v else { return Ok(()) };
        match sessiond::http::extract::integer("f", n) {
            Ok(i) => {
                let _ = Priority::parse("f", i).map(|p| p.get());
                let _ = ClusterSize::parse("f", i).map(|p| p.get());
                let _ = BatchTimeout::parse("f", i).map(|p| p.get());
                let _ = PolicyCount::parse("f", i).map(|p| p.get());
                if let Ok(p) = Priority::parse("f", i) {
                    crate::accepted();
                    check!(i128::from(p.get()) == i, "{i} changed");
                }
            }
            Err(e) => check!(
                e.code == sessiond::http::ErrorCode::ValidationError,
                "untyped rejection {e:?}"
            ),
        }
        Ok(())
    });
}
