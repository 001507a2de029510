//! Session resumption.
//!
//! cgminer, cpuminer and NiceHash-style clients reconnect after a drop with
//! `mining.subscribe(agent, <previous subscription id>)` — NDAS's
//! subscription id is the extranonce1 — and keep hashing the job they had,
//! cgminer even resending the shares it had in flight. A miner handed a new
//! extranonce1 has those shares judged against the wrong coinbase. So a
//! connection that closes parks its jobs here for `window`; a subscribe
//! that names its extranonce1 gets it back, with those jobs (and the shares
//! already accepted on them, so a resent one is a duplicate, not credited
//! twice), when no live connection holds it.
//!
//! Bounded: entries are this instance's own released extranonce1 values,
//! inserted by NDAS, never keyed by what a miner sends; at most
//! [`MAX_PARKED`], oldest dropped first, each gone after `window`. And in
//! bytes: in `username` mode a connection that authorizes a fresh address,
//! takes its job and closes leaves a job of its own (about 3 KB with a full
//! merkle branch), so a churner could pin hundreds of MB. The jobs parked
//! sessions keep alive are counted, each once however many sessions share
//! it ([`job_bytes`]: in `fixed` mode a whole fleet's blip parks the same
//! few jobs), and kept under `stratum.resume_max_bytes`, oldest sessions
//! dropped first. Counting every job, not only those no live group still
//! holds, leaves no way around the bound: a group's last connection may be
//! one that never parks.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::channel::Parked;
use crate::stratum::method::JobId;
use crate::sync::LockAnyway;
use crate::work::{Extranonce1, ExtranonceAllocator, Job, Lease};

/// Parked sessions kept at most: a connect-and-close flood cannot grow this.
pub const MAX_PARKED: usize = 100_000;

/// Parked bytes kept at most unless configured (`stratum.resume_max_bytes`).
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

/// What [`Resumptions::reporting`] is given: the sessions parked and the
/// bytes their jobs hold.
type Report = Box<dyn Fn(usize, usize) + Send + Sync>;

/// Sessions that ended recently, by the extranonce1 they held.
pub struct Resumptions {
    allocator: Arc<ExtranonceAllocator>,
    window: Duration,
    /// What the parked sessions' jobs may hold (see [`job_bytes`]).
    max_bytes: usize,
    parked: Mutex<Parking>,
    /// Told the sessions parked and the bytes their jobs hold after each
    /// change (the server's `ndas_parked_sessions` and `ndas_parked_bytes`).
    report: Option<Report>,
}

#[derive(Default)]
struct Parking {
    by_extranonce: HashMap<Extranonce1, (Instant, Parked)>,
    /// Insertion order, for expiry and the bounds.
    order: VecDeque<(Instant, Extranonce1)>,
    /// Each parked job: the sessions keeping it, and its [`job_bytes`].
    jobs: HashMap<JobId, (u32, usize)>,
    /// The sum of the parked jobs' bytes, each counted once.
    bytes: usize,
}

/// About what one job holds of its own (its template and merkle branch are
/// shared with every job of the template): two notify lines, which carry
/// the coinbase and the branch in hex, and a coinbase and outputs of about
/// half of one of them.
pub fn job_bytes(job: &Job) -> usize {
    let line = job.notify(true).len();
    std::mem::size_of::<Job>() + line + job.notify(false).len() + line / 2
}

impl Parking {
    /// Drops entries parked before `oldest`, and the oldest past `max` or
    /// past `max_bytes`.
    fn expire(&mut self, oldest: Option<Instant>, max: usize, max_bytes: usize) {
        while let Some(&(at, extranonce1)) = self.order.front() {
            let expired = oldest.is_some_and(|oldest| at < oldest);
            if !expired && self.order.len() <= max && self.bytes <= max_bytes {
                break;
            }
            self.order.pop_front();
            // Only if not parked again since.
            if self
                .by_extranonce
                .get(&extranonce1)
                .is_some_and(|(parked_at, _)| *parked_at == at)
            {
                self.take(extranonce1);
            }
        }
    }

    /// Parks a session, its jobs counted.
    fn insert(&mut self, extranonce1: Extranonce1, parked: Parked, now: Instant) {
        for job in parked.jobs() {
            let (sessions, bytes) = self.jobs.entry(job.id).or_insert((0, job_bytes(job)));
            if *sessions == 0 {
                self.bytes += *bytes;
            }
            *sessions += 1;
        }
        self.by_extranonce.insert(extranonce1, (now, parked));
        self.order.push_back((now, extranonce1));
    }

    /// Removes a parked session, and the bytes of the jobs only it kept.
    fn take(&mut self, extranonce1: Extranonce1) -> Option<Parked> {
        let (_, parked) = self.by_extranonce.remove(&extranonce1)?;
        for job in parked.jobs() {
            if let Some((sessions, bytes)) = self.jobs.get_mut(&job.id) {
                *sessions -= 1;
                if *sessions == 0 {
                    self.bytes -= *bytes;
                    self.jobs.remove(&job.id);
                }
            }
        }
        Some(parked)
    }
}

impl Resumptions {
    /// Sessions are kept for `window` (zero: never resumed).
    pub fn new(allocator: Arc<ExtranonceAllocator>, window: Duration) -> Resumptions {
        Resumptions {
            allocator,
            window,
            max_bytes: DEFAULT_MAX_BYTES,
            parked: Mutex::new(Parking::default()),
            report: None,
        }
    }

    /// Parked sessions' jobs hold at most about `max_bytes`.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Resumptions {
        self.max_bytes = max_bytes;
        self
    }

    /// Reports the sessions parked and the bytes their jobs hold to
    /// `report`, after every change.
    pub fn reporting(
        mut self,
        report: impl Fn(usize, usize) + Send + Sync + 'static,
    ) -> Resumptions {
        self.report = Some(Box::new(report));
        self
    }

    fn report(&self, parking: &Parking) {
        if let Some(report) = &self.report {
            report(parking.by_extranonce.len(), parking.bytes);
        }
    }

    /// Parks the jobs of a session that held `extranonce1` and just ended.
    pub fn park(&self, extranonce1: Extranonce1, parked: Parked, now: Instant) {
        if self.window.is_zero() {
            return;
        }
        let mut parking = self.parked.lock_anyway();
        parking.take(extranonce1);
        parking.insert(extranonce1, parked, now);
        parking.expire(now.checked_sub(self.window), MAX_PARKED, self.max_bytes);
        self.report(&parking);
    }

    /// `extranonce1` back for a resuming miner, with its parked jobs: only
    /// if it was parked within the window and no live connection holds it.
    pub fn resume(&self, extranonce1: Extranonce1, now: Instant) -> Option<(Lease, Parked)> {
        let mut parking = self.parked.lock_anyway();
        parking.expire(now.checked_sub(self.window), MAX_PARKED, self.max_bytes);
        let resumed = parking
            .by_extranonce
            .contains_key(&extranonce1)
            .then(|| self.allocator.claim(extranonce1))
            .flatten()
            .and_then(|lease| Some((lease, parking.take(extranonce1)?)));
        self.report(&parking);
        resumed
    }

    /// About the bytes the parked sessions' jobs hold now.
    pub fn bytes(&self) -> usize {
        let parking = self.parked.lock_anyway();
        parking.bytes
    }

    /// Sessions parked now.
    pub fn len(&self) -> usize {
        let parking = self.parked.lock_anyway();
        parking.by_extranonce.len()
    }

    /// Whether none is parked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(window: u64) -> (Arc<ExtranonceAllocator>, Resumptions) {
        let allocator = Arc::new(ExtranonceAllocator::new(9));
        let resumptions = Resumptions::new(allocator.clone(), Duration::from_secs(window));
        (allocator, resumptions)
    }

    #[test]
    fn a_parked_session_is_resumed_once_within_the_window() {
        let (allocator, resumptions) = registry(600);
        let start = Instant::now();
        let lease = allocator.allocate().unwrap();
        let value = lease.extranonce1;
        resumptions.park(value, Parked::default(), start);
        // Still held (the old connection not yet gone): not resumed.
        assert!(resumptions.resume(value, start).is_none());
        drop(lease);
        let (again, _) = resumptions.resume(value, start).expect("resumed");
        assert_eq!(again.extranonce1, value);
        assert!(resumptions.resume(value, start).is_none(), "once");
        assert!(resumptions.is_empty());
    }

    #[test]
    fn past_the_window_or_never_parked_nothing_is_resumed() {
        let (allocator, resumptions) = registry(600);
        let start = Instant::now();
        let value = allocator.allocate().unwrap().extranonce1;
        resumptions.park(value, Parked::default(), start);
        let late = start + Duration::from_secs(601);
        assert!(resumptions.resume(value, late).is_none());
        // A free value nobody parked: a guess gets nothing.
        assert!(resumptions
            .resume(Extranonce1([9, 0, 0, 77]), start)
            .is_none());
        let (_, off) = registry(0);
        off.park(value, Parked::default(), start);
        assert!(off.is_empty());
    }

    #[test]
    fn the_registry_is_bounded() {
        let (_, resumptions) = registry(600);
        let start = Instant::now();
        for n in 0..(MAX_PARKED as u32 + 10) {
            let [_, a, b, c] = n.to_be_bytes();
            resumptions.park(Extranonce1([9, a, b, c]), Parked::default(), start);
        }
        assert_eq!(resumptions.len(), MAX_PARKED);
        // The oldest went first.
        assert!(resumptions
            .resume(Extranonce1([9, 0, 0, 0]), start)
            .is_none());
        assert!(resumptions
            .resume(Extranonce1([9, 0, 0, 20]), start)
            .is_some());
    }
}
