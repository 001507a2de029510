//! The workers by hashrate, for the status page and `?sort=hashrate`: the
//! order a flood of made-up names cannot crowd (a name without hashing sinks
//! to the end); by last share, oldest first (the machines that stopped); and
//! how many are online and offline, for `ndas_workers{state}`.
//!
//! Ranking every worker is a walk and a sort; it is done at most once per
//! [`RANK_EVERY`], however many requests come, from the registry a chunk at a
//! time (stratum paths wait for one chunk's copy at most), and requests page
//! through the last ranking.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::registry::{From, Registry};
use super::worker::{Presence, Standing};
use super::Worker;
use ndas_core::sync::LockAnyway;

/// How old a ranking may be before a request ranks again.
pub const RANK_EVERY: Duration = Duration::from_secs(10);

/// Workers copied from the registry per lock.
const CHUNK: usize = 1024;

/// The workers in the two orders the API pages through, and how many are
/// online and offline, as of `at`.
#[derive(Clone)]
pub struct Ranked {
    pub at: Instant,
    /// Highest 5-minute hashrate first (then by name).
    pub workers: Arc<Vec<Arc<Worker>>>,
    /// Longest since its last share first: the machines that stopped.
    pub by_last_share: Arc<Vec<Arc<Worker>>>,
    pub online: usize,
    pub offline: usize,
}

/// The last ranking, and a lock so that only one request ranks at a time.
#[derive(Default)]
pub struct Ranking {
    last: Mutex<Option<Ranked>>,
    ranking: Mutex<()>,
}

impl Ranking {
    /// The last ranking, ranked again first when older than [`RANK_EVERY`];
    /// a worker is offline past `offline_after` of its share intervals.
    /// Blocks for the walk: call it off the runtime's threads.
    pub fn get(&self, registry: &Registry, now: Instant, offline_after: f64) -> Ranked {
        let fresh = |last: &Option<Ranked>| {
            last.as_ref()
                .filter(|r| now.saturating_duration_since(r.at) < RANK_EVERY)
                .cloned()
        };
        if let Some(ranked) = fresh(&self.last()) {
            return ranked;
        }
        let _ranking = self.ranking.lock_anyway();
        // Another request may have ranked while this one waited.
        if let Some(ranked) = fresh(&self.last()) {
            return ranked;
        }
        let ranked = rank(registry, now, offline_after);
        *self.last.lock_anyway() = Some(ranked.clone());
        ranked
    }

    fn last(&self) -> Option<Ranked> {
        self.last.lock_anyway().clone()
    }
}

/// Every worker of `registry`, in both orders, with the state counts.
fn rank(registry: &Registry, now: Instant, offline_after: f64) -> Ranked {
    let mut all: Vec<Arc<Worker>> = Vec::new();
    loop {
        let chunk = match all.last() {
            None => registry.page(From::Offset(0), CHUNK),
            Some(last) => registry.page(From::After(&last.name), CHUNK),
        };
        let done = chunk.len() < CHUNK;
        all.extend(chunk);
        if done {
            break;
        }
    }
    let keyed: Vec<(Standing, Arc<Worker>)> = all
        .into_iter()
        .map(|w| (w.standing(now, offline_after), w))
        .collect();
    let offline = keyed
        .iter()
        .filter(|(s, _)| s.presence == Presence::Offline)
        .count();
    let mut by_hashrate = keyed.clone();
    by_hashrate.sort_by(|(a, wa), (b, wb)| {
        b.hashrate
            .total_cmp(&a.hashrate)
            .then_with(|| wa.name.cmp(&wb.name))
    });
    let mut by_last_share = keyed;
    by_last_share.sort_by(|(a, wa), (b, wb)| {
        a.last_share
            .cmp(&b.last_share)
            .then_with(|| wa.name.cmp(&wb.name))
    });
    let workers =
        |keyed: Vec<(Standing, Arc<Worker>)>| Arc::new(keyed.into_iter().map(|(_, w)| w).collect());
    Ranked {
        at: now,
        online: by_hashrate.len() - offline,
        offline,
        workers: workers(by_hashrate),
        by_last_share: workers(by_last_share),
    }
}

/// Whether `name` contains `query`, ignoring ASCII case.
pub fn matches(name: &str, query: &str) -> bool {
    query.is_empty()
        || name
            .as_bytes()
            .windows(query.len())
            .any(|w| w.eq_ignore_ascii_case(query.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_ignores_case_and_an_empty_one_matches_all() {
        assert!(matches("bc1qxyz.Rack12-S19-004", "rack12"));
        assert!(matches("anything", ""));
        assert!(!matches("acct.w1", "w2"));
        assert!(!matches("ab", "abc"));
    }
}
