//! The pool-wide worker registry: bounded, ordered by name for paging, with
//! the disconnected workers in the order they went quiet, so the longest
//! quiet is evicted first when it is full and a connected worker never is.
//!
//! A name enters only with its first accepted share (see
//! [`super::connection::ConnectionStats`]): authorizing names costs nothing,
//! a share costs real hashing. Stratum paths take the lock once per name per
//! connection (its first accepted share and its disconnect); the API holds
//! it for a range of `limit` entries, never for a copy of them all.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{MinuteFigures, Worker};
use ndas_core::sync::LockAnyway;

/// The registry.
pub struct Registry {
    cap: usize,
    inner: Mutex<Inner>,
    /// What workers dropped from the registry had not yet given the fleet
    /// history (their minute's figures), until it takes them; bounded.
    leftovers: Mutex<Vec<(Arc<str>, MinuteFigures)>>,
    /// Leftovers past [`MAX_LEFTOVERS`], counted until taken.
    leftovers_dropped: std::sync::atomic::AtomicU64,
}

/// Most leftovers held between two takes: one per worker dropped in a
/// minute with shares not yet taken (the registry's own bound keeps drops
/// few; a flood of names past it is what this caps).
const MAX_LEFTOVERS: usize = 100_000;

#[derive(Default)]
struct Inner {
    by_name: BTreeMap<Arc<str>, Entry>,
    /// Disconnected workers by when they went quiet (a sequence number).
    quiet: BTreeSet<(u64, Arc<str>)>,
    sequence: u64,
}

struct Entry {
    worker: Arc<Worker>,
    connections: u32,
    /// Its key in `quiet` while no connection holds it.
    quiet_since: Option<u64>,
}

/// What [`Registry::join`] did.
#[derive(Debug)]
pub enum Joined {
    /// The worker's entry (new or found), now counted connected once more.
    Entry(Arc<Worker>, Option<Evicted>),
    /// Full of connected workers: this name is not kept.
    Full,
}

/// A disconnected worker dropped to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evicted;

impl Registry {
    /// A registry of at most `cap` workers.
    pub fn new(cap: usize) -> Registry {
        Registry {
            cap: cap.max(1),
            inner: Mutex::default(),
            leftovers: Mutex::default(),
            leftovers_dropped: Default::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Each operation leaves the maps consistent before it can panic.
        self.inner.lock_anyway()
    }

    /// A connection's worker `name` earned its place: its entry, counted
    /// connected; the longest-quiet disconnected worker is evicted if full.
    pub fn join(&self, name: &Arc<str>, now: Instant) -> Joined {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if let Some(entry) = inner.by_name.get_mut(name) {
            entry.connections += 1;
            if let Some(since) = entry.quiet_since.take() {
                inner.quiet.remove(&(since, name.clone()));
            }
            return Joined::Entry(entry.worker.clone(), None);
        }
        let mut evicted = None;
        if inner.by_name.len() >= self.cap {
            let Some((_, oldest)) = inner.quiet.pop_first() else {
                return Joined::Full;
            };
            if let Some(entry) = inner.by_name.remove(&oldest) {
                self.keep_leftover(&entry.worker);
            }
            evicted = Some(Evicted);
        }
        let worker = Arc::new(Worker::new(name.clone(), now));
        let entry = Entry {
            worker: worker.clone(),
            connections: 1,
            quiet_since: None,
        };
        inner.by_name.insert(name.clone(), entry);
        Joined::Entry(worker, evicted)
    }

    /// The entry of `name`, if kept.
    pub fn get(&self, name: &str) -> Option<Arc<Worker>> {
        self.lock()
            .by_name
            .get(name)
            .map(|entry| entry.worker.clone())
    }

    /// A connection that joined as `name` ended.
    pub fn leave(&self, name: &Arc<str>) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let Some(entry) = inner.by_name.get_mut(name) else {
            return;
        };
        entry.connections = entry.connections.saturating_sub(1);
        if entry.connections == 0 && entry.quiet_since.is_none() {
            inner.sequence += 1;
            entry.quiet_since = Some(inner.sequence);
            inner.quiet.insert((inner.sequence, name.clone()));
        }
    }

    /// Forgets disconnected workers quiet for longer than `idle`, oldest first.
    pub fn prune(&self, now: Instant, idle: Duration) -> usize {
        let mut inner = self.lock();
        let mut pruned = 0;
        while let Some((_, name)) = inner.quiet.first().cloned() {
            let stale = inner
                .by_name
                .get(&name)
                .is_none_or(|entry| entry.worker.is_idle(now, idle));
            if !stale {
                break;
            }
            inner.quiet.pop_first();
            if let Some(entry) = inner.by_name.remove(&name) {
                self.keep_leftover(&entry.worker);
            }
            pruned += 1;
        }
        pruned
    }

    /// Keeps what a worker leaving the registry had not given the fleet
    /// history yet.
    fn keep_leftover(&self, worker: &Worker) {
        let figures = worker.take_minute();
        if figures.is_empty() {
            return;
        }
        let mut leftovers = self.leftovers.lock_anyway();
        if leftovers.len() < MAX_LEFTOVERS {
            leftovers.push((worker.name.clone(), figures));
        } else {
            self.leftovers_dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// What workers that left the registry had not given the fleet
    /// history, and how many more there were past the bound.
    pub fn take_leftovers(&self) -> (Vec<(Arc<str>, MinuteFigures)>, u64) {
        let leftovers = std::mem::take(&mut *self.leftovers.lock_anyway());
        let dropped = self
            .leftovers_dropped
            .swap(0, std::sync::atomic::Ordering::Relaxed);
        (leftovers, dropped)
    }

    /// Workers kept, and how many of them have a connection.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        let known = inner.by_name.len();
        (known, known - inner.quiet.len())
    }

    /// Up to `limit` workers by name after `after` (or skipping `offset`).
    pub fn page(&self, from: From<'_>, limit: usize) -> Vec<Arc<Worker>> {
        let inner = self.lock();
        let workers = |entries: &mut dyn Iterator<Item = &Entry>| {
            entries.take(limit).map(|e| e.worker.clone()).collect()
        };
        match from {
            From::After(name) => {
                let range = inner
                    .by_name
                    .range::<str, _>((Bound::Excluded(name), Bound::Unbounded));
                workers(&mut range.map(|(_, entry)| entry))
            }
            From::Offset(offset) => workers(&mut inner.by_name.values().skip(offset)),
        }
    }
}

/// Where a page of workers starts.
#[derive(Clone, Copy, Debug)]
pub enum From<'a> {
    /// After this name: a cursor, a range lookup however deep the page.
    After(&'a str),
    /// After this many names: a walk, kept for the existing clients.
    Offset(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: usize) -> Arc<str> {
        format!("acct.w{n:03}").into()
    }

    #[test]
    fn when_full_the_longest_quiet_goes_and_a_connected_worker_never_does() {
        let registry = Registry::new(3);
        let now = Instant::now();
        for n in 0..3 {
            assert!(matches!(
                registry.join(&name(n), now),
                Joined::Entry(_, None)
            ));
        }
        // All connected: a fourth name is not kept.
        assert!(matches!(registry.join(&name(3), now), Joined::Full));
        registry.leave(&name(1));
        registry.leave(&name(0));
        assert_eq!(registry.counts(), (3, 1));
        // w001 went quiet first: it goes; w000 stays.
        assert!(matches!(
            registry.join(&name(3), now),
            Joined::Entry(_, Some(Evicted))
        ));
        let names: Vec<String> = registry
            .page(From::Offset(0), 10)
            .iter()
            .map(|w| w.name.to_string())
            .collect();
        assert_eq!(names, ["acct.w000", "acct.w002", "acct.w003"]);
        // A quiet worker that reconnects is no longer a candidate.
        assert!(matches!(
            registry.join(&name(0), now),
            Joined::Entry(_, None)
        ));
        assert!(matches!(registry.join(&name(4), now), Joined::Full));
    }

    #[test]
    fn pages_follow_names_from_a_cursor_or_an_offset() {
        let registry = Registry::new(100);
        let now = Instant::now();
        for n in (0..10).rev() {
            registry.join(&name(n), now);
        }
        let page = |from| -> Vec<String> {
            registry
                .page(from, 3)
                .iter()
                .map(|w| w.name.to_string())
                .collect()
        };
        assert_eq!(
            page(From::After("acct.w004")),
            ["acct.w005", "acct.w006", "acct.w007"]
        );
        assert_eq!(page(From::Offset(8)), ["acct.w008", "acct.w009"]);
        assert_eq!(page(From::After("zzz")), Vec::<String>::new());
    }

    #[test]
    fn pruning_takes_the_quiet_in_order_and_stops_at_the_first_recent_one() {
        let registry = Registry::new(100);
        let start = Instant::now();
        for n in 0..4 {
            registry.join(&name(n), start);
        }
        for n in 0..3 {
            registry.leave(&name(n));
        }
        let later = start + Duration::from_secs(100);
        // w000-w002 went quiet at `start` (their last_seen): pruned after 50 s.
        assert_eq!(registry.prune(later, Duration::from_secs(50)), 3);
        assert_eq!(registry.counts(), (1, 1));
    }

    #[test]
    fn a_worker_dropped_with_shares_not_yet_taken_leaves_them_behind() {
        let registry = Registry::new(1);
        let now = Instant::now();
        let Joined::Entry(first, _) = registry.join(&name(0), now) else {
            panic!("joined");
        };
        first.accepted(1024.0, 4096.0, now);
        registry.leave(&name(0));
        // Full: the quiet worker is evicted for a new name, its minute kept.
        assert!(matches!(
            registry.join(&name(1), now),
            Joined::Entry(_, Some(Evicted))
        ));
        let (left, _) = registry.take_leftovers();
        assert_eq!(left.len(), 1);
        assert_eq!((&*left[0].0, left[0].1.accepted), ("acct.w000", 1));
        assert!(registry.take_leftovers().0.is_empty());
        // Pruned: the same; one with nothing untaken leaves nothing.
        registry.leave(&name(1));
        assert_eq!(
            registry.prune(now + Duration::from_secs(100), Duration::from_secs(50)),
            1
        );
        assert!(registry.take_leftovers().0.is_empty());
    }
}
