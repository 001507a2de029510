//! What a channel leaves when its connection ends, and takes back when its
//! miner returns (see [`crate::session::resume`]).

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Channel, Feed, SentJob};
use crate::chain::Hash256;
use crate::work::{Extranonce1, Job};

/// What a channel that ended leaves for its miner's return: the jobs it was
/// sent on the last tip, with the shares accepted on each.
#[derive(Default)]
pub struct Parked {
    jobs: VecDeque<SentJob>,
    tip: Option<Hash256>,
    /// Vardiff's choice when the channel ended (0 when unknown: the floor).
    difficulty: f64,
}

impl Parked {
    /// The jobs it keeps alive, for the parked memory's count.
    pub fn jobs(&self) -> impl Iterator<Item = &Arc<Job>> {
        self.jobs.iter().map(|sent| &sent.job)
    }
}

impl<F: Feed> Channel<F> {
    /// The jobs it was sent on the last tip, to park; none when it was
    /// sent none.
    pub fn park(&mut self) -> Option<Parked> {
        if self.jobs.is_empty() {
            return None;
        }
        let tip = self.tip;
        let jobs: VecDeque<SentJob> = std::mem::take(&mut self.jobs)
            .into_iter()
            .filter(|sent| Some(*sent.job.prev_hash()) == tip)
            .collect();
        Some(Parked {
            jobs,
            tip,
            difficulty: self.difficulty,
        })
    }

    /// Takes back a parked channel's extranonce1, jobs and difficulty.
    pub fn resume(&mut self, extranonce1: Extranonce1, parked: Parked) {
        self.extranonce1 = extranonce1;
        self.jobs = parked.jobs;
        // Same tip: the first job goes out without clean_jobs, and the
        // miner keeps the work it had; unless a worker authorized before
        // this subscribe mines for another address than the parked jobs
        // pay (as `authorize` does on a switch): then it drops them.
        let other = self.group.as_ref().is_some_and(|mining| {
            let script = &mining.group().payout.script;
            self.jobs
                .iter()
                .any(|sent| sent.job.payout.script != *script)
        });
        self.tip = parked.tip.filter(|_| !other);
        self.difficulty = self.bounded(parked.difficulty);
    }
}
