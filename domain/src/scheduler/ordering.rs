//! The order a scaling group's queue is tried in (SPEC §2.3): `fifo` (priority desc,
//! then enqueue order), `lifo` (priority desc, then newest first) and `drf` (dominant
//! resource fairness: the owner with the smallest dominant share goes next).

use rust_decimal::Decimal;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use uuid::Uuid;

use crate::resources::ResourceSlots;
use crate::scaling_group::SchedulerKind;

/// One pending session as the ordering sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    /// The session.
    pub session_id: Uuid,
    /// Its owner.
    pub owner: String,
    /// 0..=100, higher first.
    pub priority: u8,
    /// Global position of its `SessionEnqueued` (arrival order).
    pub enqueue_position: i64,
    /// Slots it needs in total.
    pub requested: ResourceSlots,
    /// Scheduling attempts that failed agent selection so far.
    pub retries: u32,
}

fn fifo(a: &QueueItem, b: &QueueItem) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then(a.enqueue_position.cmp(&b.enqueue_position))
}

/// An owner's dominant share: the largest fraction of any slot type of the group's
/// capacity that the owner holds.
pub fn dominant_share(used: &ResourceSlots, capacity: &ResourceSlots) -> Decimal {
    capacity
        .0
        .iter()
        .filter(|(_, cap)| !cap.is_zero())
        // Checked: a share too large to represent is the largest share.
        .map(|(k, cap)| used.get(k).checked_div(*cap).unwrap_or(Decimal::MAX))
        .max()
        .unwrap_or(Decimal::ZERO)
}

/// Orders `items` for `kind`. For `drf`, `usage` is what each owner holds already and
/// `capacity` the group's total; the order simulates the shares growing as items are
/// granted, so one owner's burst does not starve the others.
pub fn order_queue(
    kind: SchedulerKind,
    mut items: Vec<QueueItem>,
    usage: &BTreeMap<String, ResourceSlots>,
    capacity: &ResourceSlots,
) -> Vec<QueueItem> {
    match kind {
        SchedulerKind::Fifo => {
            items.sort_by(fifo);
            items
        }
        SchedulerKind::Lifo => {
            items.sort_by(|a, b| {
                b.priority
                    .cmp(&a.priority)
                    .then(b.enqueue_position.cmp(&a.enqueue_position))
            });
            items
        }
        SchedulerKind::Drf => {
            items.sort_by(fifo);
            let mut per_owner: BTreeMap<String, VecDeque<QueueItem>> = BTreeMap::new();
            for item in items {
                per_owner
                    .entry(item.owner.clone())
                    .or_default()
                    .push_back(item);
            }
            let mut used: BTreeMap<String, ResourceSlots> = per_owner
                .keys()
                .map(|o| (o.clone(), usage.get(o).cloned().unwrap_or_default()))
                .collect();
            let mut heap: BinaryHeap<Reverse<(Decimal, String)>> = used
                .iter()
                .map(|(o, u)| Reverse((dominant_share(u, capacity), o.clone())))
                .collect();
            let mut out = Vec::new();
            while let Some(Reverse((_, owner))) = heap.pop() {
                let Some(queue) = per_owner.get_mut(&owner) else {
                    continue;
                };
                let Some(item) = queue.pop_front() else {
                    continue;
                };
                let u = used.entry(owner.clone()).or_default();
                *u = u.saturating_add(&item.requested);
                if !queue.is_empty() {
                    heap.push(Reverse((dominant_share(u, capacity), owner)));
                }
                out.push(item);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: u128, owner: &str, priority: u8, cpu: i64) -> QueueItem {
        QueueItem {
            session_id: Uuid::from_u128(n),
            owner: owner.into(),
            priority,
            enqueue_position: n as i64,
            requested: ResourceSlots::new().with("cpu", Decimal::from(cpu)),
            retries: 0,
        }
    }

    fn ids(items: &[QueueItem]) -> Vec<u128> {
        items.iter().map(|i| i.session_id.as_u128()).collect()
    }

    #[test]
    fn given_mixed_priorities_when_ordered_fifo_then_priority_first_then_arrival() {
        let items = vec![
            item(1, "a", 10, 1),
            item(2, "a", 50, 1),
            item(3, "a", 10, 1),
        ];
        let out = order_queue(
            SchedulerKind::Fifo,
            items,
            &BTreeMap::new(),
            &ResourceSlots::new(),
        );
        assert_eq!(ids(&out), vec![2, 1, 3]);
    }

    #[test]
    fn given_mixed_priorities_when_ordered_lifo_then_priority_first_then_newest() {
        let items = vec![
            item(1, "a", 10, 1),
            item(2, "a", 50, 1),
            item(3, "a", 10, 1),
        ];
        let out = order_queue(
            SchedulerKind::Lifo,
            items,
            &BTreeMap::new(),
            &ResourceSlots::new(),
        );
        assert_eq!(ids(&out), vec![2, 3, 1]);
    }

    #[test]
    fn given_one_owner_bursting_when_ordered_drf_then_owners_alternate_by_dominant_share() {
        let capacity = ResourceSlots::new().with("cpu", Decimal::from(100));
        let items = vec![
            item(1, "a", 10, 10),
            item(2, "a", 10, 10),
            item(3, "a", 10, 10),
            item(4, "b", 10, 10),
            item(5, "b", 10, 10),
        ];
        let out = order_queue(SchedulerKind::Drf, items, &BTreeMap::new(), &capacity);
        assert_eq!(ids(&out), vec![1, 4, 2, 5, 3]);
    }

    #[test]
    fn given_an_owner_already_holding_much_when_ordered_drf_then_the_other_owner_goes_first() {
        let capacity = ResourceSlots::new().with("cpu", Decimal::from(100));
        let usage = BTreeMap::from([(
            "a".to_string(),
            ResourceSlots::new().with("cpu", Decimal::from(50)),
        )]);
        let items = vec![
            item(1, "a", 10, 10),
            item(2, "b", 10, 10),
            item(3, "b", 10, 10),
        ];
        let out = order_queue(SchedulerKind::Drf, items, &usage, &capacity);
        assert_eq!(ids(&out), vec![2, 3, 1]);
    }
}
