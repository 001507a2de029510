//! `/api/workers`' pages: by name from a cursor, or ranked (by hashrate or
//! last share) and filtered (by name and state); and the state counts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::{ranking, registry, Presence, Stats, Worker};

/// The orders `/api/workers` pages through besides by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerSort {
    /// Highest 5-minute hashrate first.
    Hashrate,
    /// Longest since its last share first.
    LastShare,
}

impl WorkerSort {
    pub fn label(self) -> &'static str {
        match self {
            WorkerSort::Hashrate => "hashrate",
            WorkerSort::LastShare => "last_share",
        }
    }
}

/// What a ranked page of `/api/workers` shows.
#[derive(Clone, Copy, Debug)]
pub struct WorkerView<'a> {
    pub sort: WorkerSort,
    /// A name substring, any case; empty for all.
    pub query: &'a str,
    pub state: Option<Presence>,
}

impl Stats {
    /// A page of the workers in `view`'s order whose names contain its
    /// query (any case) and whose state is its state, skipping `offset`.
    /// Blocks while it ranks (at most every 10 s): call it off the
    /// runtime's threads.
    pub fn workers_ranked(&self, view: &WorkerView<'_>, offset: usize, limit: usize) -> Value {
        let now = Instant::now();
        let offline_after = self.offline_after();
        let ranked = self.ranking.get(&self.workers, now, offline_after);
        let order = match view.sort {
            WorkerSort::Hashrate => &ranked.workers,
            WorkerSort::LastShare => &ranked.by_last_share,
        };
        let matching: Vec<&Arc<Worker>> = order
            .iter()
            .filter(|w| ranking::matches(&w.name, view.query))
            .filter(|w| {
                view.state
                    .is_none_or(|state| w.presence(now, offline_after) == state)
            })
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|w| w.to_json(now, offline_after))
            .collect();
        json!({
            "sort": view.sort.label(),
            "q": view.query,
            "state": view.state.map(Presence::label),
            "ranked_seconds_ago": now.saturating_duration_since(ranked.at).as_secs(),
            "total": matching.len(),
            "offset": offset,
            "limit": limit,
            "workers": page,
        })
    }

    /// The workers whose last share is under `within` old (as of the last
    /// ranking, at most 10 s old), newest first.
    pub fn recently_shared(&self, within: std::time::Duration) -> Vec<Arc<Worker>> {
        let now = Instant::now();
        let ranked = self.ranking.get(&self.workers, now, self.offline_after());
        ranked
            .by_last_share
            .iter()
            .rev()
            .take_while(|w| w.standing(now, 1.0).since_share_seconds < within.as_secs_f64())
            .cloned()
            .collect()
    }

    /// Workers online and offline, as of the last ranking (at most 10 s old).
    pub fn worker_states(&self) -> (usize, usize) {
        let ranked = self
            .ranking
            .get(&self.workers, Instant::now(), self.offline_after());
        (ranked.online, ranked.offline)
    }

    /// How many of its share intervals a worker may go without a share.
    pub fn offline_after(&self) -> f64 {
        f64::from_bits(self.offline_after.load(Ordering::Relaxed))
    }

    /// `stratum.offline_after_share_intervals` (at start and on SIGHUP).
    pub fn set_offline_after(&self, intervals: f64) {
        self.offline_after
            .store(intervals.to_bits(), Ordering::Relaxed);
    }

    /// `/api/workers`: sorted by name, `limit` at a time from `from`.
    pub fn workers_page(&self, from: registry::From<'_>, limit: usize) -> Value {
        let now = Instant::now();
        let page: Vec<Value> = self
            .workers
            .page(from, limit)
            .iter()
            .map(|w| w.to_json(now, self.offline_after()))
            .collect();
        let (total, _) = self.workers.counts();
        let mut answer = json!({"total": total, "limit": limit, "workers": page});
        match from {
            registry::From::Offset(offset) => answer["offset"] = json!(offset),
            registry::From::After(name) => answer["after"] = json!(name),
        }
        // The cursor for the next page, while there may be one.
        if let Some(last) = page.last().filter(|_| page.len() == limit) {
            answer["next"] = last["name"].clone();
        }
        answer
    }
}
