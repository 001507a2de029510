//! `/api/stats` `payouts`: the operator's view of the payout groups, read
//! from the groups off the job path.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::slots::Place;
use super::{Feed, Group, PayoutGroups};
use crate::sync::LockAnyway;

impl<F: Feed> PayoutGroups<F> {
    /// `/api/stats` `payouts`: the mode, how many groups there are, and the
    /// `limit` addresses with the most hashrate (5 minutes), each with its
    /// connections, shares and blocks.
    pub fn snapshot(&self, limit: usize) -> serde_json::Value {
        let now = Instant::now();
        let groups: Vec<Arc<Group<F>>> = {
            let shared = self.shared();
            shared.groups.values().filter_map(Weak::upgrade).collect()
        };
        let mut rows: Vec<(f64, serde_json::Value)> = groups
            .iter()
            .filter_map(|group| {
                let figures = group.figures.as_ref()?;
                let figures = figures.lock_anyway();
                let [_, m5, h1] = figures.rates.hashrates(now);
                let connections = group.mining.load(Ordering::Relaxed);
                let proven = group.place.as_ref().is_none_or(Place::is_proven);
                Some((
                    m5,
                    serde_json::json!({
                        "address": &*group.payout.address,
                        "connections": connections,
                        "hashrate": {"5m": m5, "1h": h1},
                        "accepted": figures.accepted,
                        "blocks": figures.blocks,
                        "proven": proven,
                    }),
                ))
            })
            .collect();
        rows.sort_by(|a, b| b.0.total_cmp(&a.0));
        rows.truncate(limit);
        let (_, waiting) = self.slots.live();
        serde_json::json!({
            "mode": if self.by_username.is_some() { "username" } else { "fixed" },
            "groups": groups.len(),
            "waiting_for_a_share": waiting,
            "max_groups": self.slots.max(),
            "fixed_address": self.fixed.as_ref().map(|f| &*f.payout.address),
            "addresses": rows.into_iter().map(|(_, row)| row).collect::<Vec<_>>(),
        })
    }
}
