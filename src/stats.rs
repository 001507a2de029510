//! Pool-wide share and block counts, kept with atomics off the hot path's locks.
//!
//! The Prometheus registry and JSON API read these.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::session::Event;

/// Running totals.
#[derive(Debug, Default)]
pub struct Stats {
    pub shares_accepted: AtomicU64,
    pub shares_rejected: AtomicU64,
    pub shares_stale: AtomicU64,
    pub blocks_found: AtomicU64,
    pub authorizations: AtomicU64,
    pub blocks_accepted: AtomicU64,
    pub blocks_rejected: AtomicU64,
    /// `hashblock` announcements received over ZMQ.
    pub zmq_hashblocks: AtomicU64,
    /// Whether the last template fetch succeeded.
    pub node_up: AtomicBool,
    /// Sum of accepted share difficulty, as f64 bits, for hashrate.
    accepted_difficulty_bits: AtomicU64,
}

impl Stats {
    /// Counts one session event.
    pub fn record(&self, event: &Event) {
        match event {
            Event::Share {
                verdict: Ok(_),
                difficulty,
                ..
            } => {
                self.shares_accepted.fetch_add(1, Ordering::Relaxed);
                let _ = self.accepted_difficulty_bits.fetch_update(
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                    |bits| Some((f64::from_bits(bits) + difficulty).to_bits()),
                );
            }
            Event::Share {
                verdict: Err(reject),
                ..
            } => {
                self.shares_rejected.fetch_add(1, Ordering::Relaxed);
                if reject.reason() == "stale" {
                    self.shares_stale.fetch_add(1, Ordering::Relaxed);
                }
            }
            Event::Block(_) => {
                self.blocks_found.fetch_add(1, Ordering::Relaxed);
            }
            Event::Authorized { .. } => {
                self.authorizations.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Sum of the difficulty of every accepted share.
    pub fn accepted_difficulty(&self) -> f64 {
        f64::from_bits(self.accepted_difficulty_bits.load(Ordering::Relaxed))
    }
}
