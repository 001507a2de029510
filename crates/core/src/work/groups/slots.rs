//! Who may hold a payout group, in `username` mode.
//!
//! A group costs a coinbase and a notify line per template, and
//! `max_payout_groups` bounds them. Authorizing a fresh valid address costs
//! a stranger nothing, so if every group counted from its authorize, one
//! source address could hold them all with idle connections and every new
//! customer would be told "full, try later". So a group earns its place
//! with work: it counts against `max_payout_groups` once one of its
//! connections has had an accepted share (*proven*). Until then it *waits*:
//! each source address (an IPv6 host by its /64, as the connection bounds
//! count it) may have `max_new_payout_groups_per_ip` groups waiting, and no
//! more than `max_payout_groups` wait in all, so what the groups cost stays
//! within twice the limit. A customer already mining is never refused: its
//! group exists and joining one is never bounded, and an address proven
//! within [`REMEMBER_PROVEN`] that comes back after its last connection
//! dropped starts proven, not among the strangers waiting.
//!
//! The same idea as the worker registry's (a name earns its place with its
//! first accepted share) and ckpool's, which creates a user's state at
//! authorize but keeps nothing per user that a stranger can grow without
//! shares.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::JoinError;
use crate::sync::LockAnyway;

/// How long an address whose group was proven is let back in as proven
/// after its last connection went: a day covers a machine's maintenance,
/// a site's power cut or a network outage.
pub const REMEMBER_PROVEN: Duration = Duration::from_secs(24 * 3600);

/// Sweeps of the remembered addresses at most this often: a full table is
/// never walked per group that goes.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The counts of proven and waiting groups, and their bounds.
#[derive(Debug)]
pub struct Slots {
    /// Proven groups at most (`mining.max_payout_groups`); as many may wait.
    max: usize,
    /// Groups one source address may have waiting at once.
    per_source: usize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    proven: usize,
    waiting: usize,
    /// Waiting groups by the source address that made each.
    by_source: HashMap<IpAddr, usize>,
    /// Addresses proven lately whose groups went, until when they are
    /// remembered; at most `max`.
    remembered: HashMap<Arc<[u8]>, Instant>,
    next_sweep: Option<Instant>,
}

/// A group's place among the bounded ones, given back when it goes.
#[derive(Debug)]
pub struct Place {
    slots: Arc<Slots>,
    /// The payout script, remembered when a proven group goes.
    script: Arc<[u8]>,
    /// The source address that made the group, charged while it waits.
    source: Option<IpAddr>,
    proven: AtomicBool,
}

impl Slots {
    pub fn new(max: usize, per_source: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max: max.max(1),
            per_source: per_source.max(1),
            counts: Mutex::new(Counts::default()),
        })
    }

    /// The groups' counts hold no invariant a panic elsewhere could break
    /// halfway: keep serving after one.
    fn counts(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock_anyway()
    }

    /// Proven groups at most.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Groups alive now: proven and waiting.
    pub fn live(&self) -> (usize, usize) {
        let counts = self.counts();
        (counts.proven, counts.waiting)
    }

    /// A place for a new group paying `script`, made by a connection from
    /// `source` (none: not bounded by source, as in unit tests).
    pub fn take(
        self: &Arc<Self>,
        script: &Arc<[u8]>,
        source: Option<IpAddr>,
        now: Instant,
    ) -> Result<Place, JoinError> {
        let mut counts = self.counts();
        if counts.proven >= self.max {
            return Err(JoinError::Full { max: self.max });
        }
        let remembered = counts
            .remembered
            .remove(script)
            .is_some_and(|until| until > now);
        if remembered {
            counts.proven += 1;
        } else {
            if counts.waiting >= self.max {
                return Err(JoinError::Waiting { max: self.max });
            }
            let from_source =
                source.map_or(0, |ip| counts.by_source.get(&ip).copied().unwrap_or(0));
            if from_source >= self.per_source {
                return Err(JoinError::FromSource {
                    max: self.per_source,
                });
            }
            counts.waiting += 1;
            if let Some(ip) = source {
                *counts.by_source.entry(ip).or_default() += 1;
            }
        }
        Ok(Place {
            slots: self.clone(),
            script: script.clone(),
            source,
            proven: AtomicBool::new(remembered),
        })
    }
}

impl Counts {
    /// One group less waiting for `source`.
    fn stop_waiting(&mut self, source: Option<IpAddr>) {
        self.waiting -= 1;
        if let Some(ip) = source {
            if let Some(count) = self.by_source.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    self.by_source.remove(&ip);
                }
            }
        }
    }

    /// Lets `script` back in as proven until `now` + [`REMEMBER_PROVEN`].
    fn remember(&mut self, script: Arc<[u8]>, max: usize, now: Instant) {
        if self.remembered.len() >= max && self.next_sweep.is_none_or(|at| at <= now) {
            self.remembered.retain(|_, until| *until > now);
            self.next_sweep = Some(now + SWEEP_EVERY);
        }
        if self.remembered.len() < max {
            self.remembered.insert(script, now + REMEMBER_PROVEN);
        }
    }
}

impl Place {
    /// Whether a connection of the group has had an accepted share.
    pub fn is_proven(&self) -> bool {
        self.proven.load(Ordering::Relaxed)
    }

    /// A connection of the group had an accepted share: it counts against
    /// `max_payout_groups` from now on, and no longer waits. The limit may
    /// be passed here by the groups that were waiting (a share is never
    /// refused for it); new groups are refused until it is not.
    pub fn prove(&self) {
        if self.proven.load(Ordering::Relaxed) || self.proven.swap(true, Ordering::Relaxed) {
            return;
        }
        let mut counts = self.slots.counts();
        counts.stop_waiting(self.source);
        counts.proven += 1;
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut counts = self.slots.counts();
        if self.is_proven() {
            counts.proven -= 1;
            counts.remember(self.script.clone(), self.slots.max, Instant::now());
        } else {
            counts.stop_waiting(self.source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(n: u8) -> Arc<[u8]> {
        vec![0, 20, n].into()
    }

    #[test]
    fn a_source_holds_only_its_share_of_waiting_groups_and_work_frees_it() {
        let slots = Slots::new(10, 2);
        let (squatter, customer) = (Some([10, 0, 0, 1].into()), Some([10, 0, 0, 2].into()));
        let now = Instant::now();
        let a = slots.take(&script(1), squatter, now).unwrap();
        let _b = slots.take(&script(2), squatter, now).unwrap();
        let refused = slots.take(&script(3), squatter, now).unwrap_err();
        assert_eq!(refused, JoinError::FromSource { max: 2 });
        assert!(refused
            .to_string()
            .contains("mining.max_new_payout_groups_per_ip"));
        // Another source is not held back by it.
        let c = slots.take(&script(4), customer, now).unwrap();
        c.prove();
        assert_eq!(slots.live(), (1, 2));
        // A share frees the source's place for another new address.
        a.prove();
        a.prove();
        assert_eq!(slots.live(), (2, 1));
        let _d = slots.take(&script(5), squatter, now).unwrap();
        drop((a, c));
        assert_eq!(slots.live(), (0, 2));
    }

    #[test]
    fn only_proven_groups_fill_the_limit_and_a_proven_address_comes_back_as_proven() {
        let slots = Slots::new(2, 5);
        let now = Instant::now();
        let first = slots.take(&script(0), None, now).unwrap();
        first.prove();
        // Waiting groups do not count against the proven ones, but are
        // bounded as many again.
        let waiting: Vec<Place> = (1..3)
            .map(|n| slots.take(&script(n), None, now).unwrap())
            .collect();
        assert_eq!(slots.live(), (1, 2));
        assert_eq!(
            slots.take(&script(9), None, now).unwrap_err(),
            JoinError::Waiting { max: 2 }
        );
        // Proven past the limit by those that were waiting: a share is
        // never refused, but no new group comes in until it is under.
        waiting.iter().for_each(Place::prove);
        assert_eq!(slots.live(), (3, 0));
        assert_eq!(
            slots.take(&script(9), None, now).unwrap_err(),
            JoinError::Full { max: 2 }
        );
        drop(first);
        drop(waiting);
        assert_eq!(slots.live(), (0, 0));
        // As many are remembered as may be mined for, the first first.
        assert_eq!(slots.counts().remembered.len(), 2);
        // Strangers fill every waiting place; the proven address returns
        // past them, proven from its first authorize.
        let squat: Vec<Place> = (10..12)
            .map(|n| slots.take(&script(n), None, now).unwrap())
            .collect();
        let back = slots.take(&script(0), None, now).unwrap();
        assert!(back.is_proven());
        assert_eq!(slots.live(), (1, 2));
        // Remembered once, and for a while only.
        drop(back);
        let later = now + REMEMBER_PROVEN + Duration::from_secs(1);
        assert_eq!(
            slots.take(&script(0), None, later).unwrap_err(),
            JoinError::Waiting { max: 2 }
        );
        drop(squat);
    }
}
