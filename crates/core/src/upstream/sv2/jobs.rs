//! An SV2 pool's jobs and prev hashes, turned into the Stratum V1 work
//! NDAS's miners mine.

use super::{coinbase, protocol, Sv2Upstream};
use crate::client::Work;
use crate::upstream::{Event, Refusal, MAX_BRANCH_STEPS, MAX_COINBASE_PART_BYTES};

/// A job as the pool sent it, until its prev hash is known.
#[derive(Clone, Debug)]
pub(super) struct PoolJob {
    pub(super) id: u32,
    min_ntime: Option<u32>,
    pub(super) version: u32,
    branch: Vec<[u8; 32]>,
    /// The coinbase without its BIP141 witness, cut around the extranonce.
    coinb1: Vec<u8>,
    coinb2: Vec<u8>,
}

/// The pool's current prev hash.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tip {
    prev_hash: [u8; 32],
    min_ntime: u32,
    nbits: u32,
}

impl<T> Sv2Upstream<T> {
    /// A job checked, bounded and with its coinbase made Stratum V1's.
    pub(super) fn job(
        &self,
        id: u32,
        min_ntime: Option<u32>,
        version: u32,
        branch: Vec<[u8; 32]>,
        prefix: &[u8],
        suffix: &[u8],
    ) -> Result<PoolJob, Refusal> {
        let Some(channel) = &self.channel else {
            return Err(protocol("a job before the channel opened"));
        };
        if branch.len() > MAX_BRANCH_STEPS {
            return Err(protocol(format!(
                "a merkle path of {} steps (at most {MAX_BRANCH_STEPS})",
                branch.len()
            )));
        }
        if prefix.len() > MAX_COINBASE_PART_BYTES || suffix.len() > MAX_COINBASE_PART_BYTES {
            return Err(protocol(format!(
                "a coinbase half over {MAX_COINBASE_PART_BYTES} bytes"
            )));
        }
        let extranonce = channel.prefix.len() + channel.size;
        let (coinb1, coinb2) = coinbase::without_witness(prefix, suffix, extranonce)
            .map_err(|why| protocol(format!("job {id}: {why}")))?;
        // The channel's prefix follows coinb1 as a V1 pool's extranonce1
        // does (it is the extranonce1 of `Event::Ready`).
        Ok(PoolJob {
            id,
            min_ntime,
            version,
            branch,
            coinb1,
            coinb2,
        })
    }

    pub(super) fn new_job(&mut self, job: PoolJob, events: &mut Vec<Event<T>>) {
        let active = job.min_ntime.is_some();
        self.jobs.retain(|kept| kept.id != job.id);
        if self.jobs.len() >= self.settings.limits.max_jobs.max(1) {
            self.jobs.pop_front();
        }
        self.jobs.push_back(job);
        if active {
            if let Some(tip) = self.tip {
                let job = self.jobs.back().cloned().expect("just kept");
                self.mine(&job, tip, false, events);
            }
        }
    }

    /// A new prev hash: the future job it names is the one to mine, and
    /// every earlier one is stale.
    pub(super) fn new_tip(
        &mut self,
        job_id: u32,
        prev_hash: [u8; 32],
        min_ntime: u32,
        nbits: u32,
        events: &mut Vec<Event<T>>,
    ) -> Result<(), Refusal> {
        let tip = Tip {
            prev_hash,
            min_ntime,
            nbits,
        };
        self.tip = Some(tip);
        self.minable.clear();
        let Some(job) = self.jobs.iter().find(|j| j.id == job_id).cloned() else {
            // A tip naming a job NDAS did not keep: miners wait for the next.
            return Ok(());
        };
        self.jobs.retain(|j| j.id == job_id);
        self.mine(&job, tip, true, events);
        Ok(())
    }

    /// `job` on `tip`, as the Stratum V1 work NDAS's miners are given.
    pub(super) fn mine(
        &mut self,
        job: &PoolJob,
        tip: Tip,
        clean: bool,
        events: &mut Vec<Event<T>>,
    ) {
        if self.minable.len() >= self.settings.limits.max_jobs.max(1) {
            self.minable.pop_front();
        }
        self.minable.push_back((job.id, job.version));
        let work = Work {
            job_id: job.id.to_string(),
            prev_hash: tip.prev_hash,
            coinb1: job.coinb1.clone(),
            coinb2: job.coinb2.clone(),
            branch: job.branch.clone(),
            version: job.version,
            bits: tip.nbits,
            ntime: job.min_ntime.unwrap_or(tip.min_ntime).max(tip.min_ntime),
            clean,
        };
        events.push(Event::Job { work, clean });
    }
}
