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
//! takes its job and closes leaves jobs no live group shares (about 3 KB
//! each with a full merkle branch), so a churner could pin hundreds of MB;
//! what parked sessions alone hold is counted ([`Parked::bytes`]) and kept
//! under `stratum.resume_max_bytes`, oldest dropped first. Jobs a live
//! group still publishes are shared and cost nothing more, so `fixed` mode
//! and customers with other machines mining are not counted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::IntGauge;

use super::state::Parked;
use crate::work::{Extranonce1, ExtranonceAllocator, Lease};

/// Parked sessions kept at most: a connect-and-close flood cannot grow this.
pub const MAX_PARKED: usize = 100_000;

/// Parked bytes kept at most unless configured (`stratum.resume_max_bytes`).
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

/// Sessions that ended recently, by the extranonce1 they held.
pub struct Resumptions {
    allocator: Arc<ExtranonceAllocator>,
    window: Duration,
    /// What parked sessions alone may hold (see [`Parked::bytes`]).
    max_bytes: usize,
    parked: Mutex<Parking>,
    /// `ndas_parked_sessions` and `ndas_parked_bytes`, when reported.
    gauges: Option<(IntGauge, IntGauge)>,
}

#[derive(Default)]
struct Parking {
    by_extranonce: HashMap<Extranonce1, (Instant, Parked)>,
    /// Insertion order, for expiry and the bounds.
    order: VecDeque<(Instant, Extranonce1)>,
    /// The sum of the parked sessions' [`Parked::bytes`].
    bytes: usize,
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

    /// Removes a parked session, and its bytes from the sum.
    fn take(&mut self, extranonce1: Extranonce1) -> Option<Parked> {
        let (_, parked) = self.by_extranonce.remove(&extranonce1)?;
        self.bytes -= parked.bytes();
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
            gauges: None,
        }
    }

    /// Parked sessions hold at most `max_bytes` of their own.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Resumptions {
        self.max_bytes = max_bytes;
        self
    }

    /// Reports the sessions parked and the bytes they alone hold.
    pub fn reporting(mut self, sessions: IntGauge, bytes: IntGauge) -> Resumptions {
        self.gauges = Some((sessions, bytes));
        self
    }

    fn report(&self, parking: &Parking) {
        if let Some((sessions, bytes)) = &self.gauges {
            sessions.set(parking.by_extranonce.len() as i64);
            bytes.set(parking.bytes as i64);
        }
    }

    /// Parks the jobs of a session that held `extranonce1` and just ended.
    pub fn park(&self, extranonce1: Extranonce1, parked: Parked, now: Instant) {
        if self.window.is_zero() {
            return;
        }
        let mut parking = self.parked.lock().unwrap_or_else(|e| e.into_inner());
        parking.take(extranonce1);
        parking.bytes += parked.bytes();
        parking.by_extranonce.insert(extranonce1, (now, parked));
        parking.order.push_back((now, extranonce1));
        parking.expire(now.checked_sub(self.window), MAX_PARKED, self.max_bytes);
        self.report(&parking);
    }

    /// `extranonce1` back for a resuming miner, with its parked jobs: only
    /// if it was parked within the window and no live connection holds it.
    pub fn resume(&self, extranonce1: Extranonce1, now: Instant) -> Option<(Lease, Parked)> {
        let mut parking = self.parked.lock().unwrap_or_else(|e| e.into_inner());
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

    /// Bytes the parked sessions alone hold now.
    pub fn bytes(&self) -> usize {
        let parking = self.parked.lock().unwrap_or_else(|e| e.into_inner());
        parking.bytes
    }

    /// Sessions parked now.
    pub fn len(&self) -> usize {
        let parking = self.parked.lock().unwrap_or_else(|e| e.into_inner());
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
