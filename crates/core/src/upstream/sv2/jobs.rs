//! An SV2 pool's jobs and prev hashes, turned into the Stratum V1 work
//! NDAS's miners mine.

use super::{coinbase, protocol, Sv2Upstream};
use crate::client::Work;
use crate::upstream::{Event, Now, Refusal, MAX_BRANCH_STEPS, MAX_COINBASE_PART_BYTES};

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

    /// A job: mined at once when it is for the current tip (or the one
    /// a prev hash named before it came), else kept for the prev hash
    /// that will name it.
    pub(super) fn new_job(&mut self, job: PoolJob, events: &mut Vec<Event<T>>) {
        if self.named.is_some_and(|(id, _)| id == job.id) {
            self.named = None;
            if let Some(tip) = self.tip {
                return self.mine(&job, tip, true, events);
            }
        }
        match (job.min_ntime, self.tip) {
            (Some(_), Some(tip)) => self.mine(&job, tip, false, events),
            // Future jobs, and an active one before any prev hash (which a
            // prev hash may still name).
            _ => {
                self.waiting.retain(|kept| kept.id != job.id);
                if self.waiting.len() >= self.settings.limits.max_jobs.max(1) {
                    self.waiting.pop_front();
                }
                self.waiting.push_back(job);
            }
        }
    }

    /// A new prev hash: the job it names is the one to mine, now or when
    /// it comes, and every earlier one is stale.
    pub(super) fn new_tip(
        &mut self,
        job_id: u32,
        prev_hash: [u8; 32],
        min_ntime: u32,
        nbits: u32,
        now: Now,
        events: &mut Vec<Event<T>>,
    ) {
        let tip = Tip {
            prev_hash,
            min_ntime,
            nbits,
        };
        self.tip = Some(tip);
        self.minable.clear();
        let named = self.waiting.iter().position(|j| j.id == job_id);
        let job = named.and_then(|at| self.waiting.remove(at));
        self.waiting.clear();
        match job {
            Some(job) => self.mine(&job, tip, true, events),
            // Miners stay on the last job until it comes, for
            // NAMED_JOB_WAIT at most; shares on it are not sent (the pool
            // would call them stale).
            None => self.named = Some((job_id, now.instant)),
        }
    }

    /// `job` on `tip`, as the Stratum V1 work NDAS's miners are given;
    /// then the easier difficulty the pool set for jobs from now on, if
    /// it set one.
    pub(super) fn mine(
        &mut self,
        job: &PoolJob,
        tip: Tip,
        clean: bool,
        events: &mut Vec<Event<T>>,
    ) {
        self.minable.retain(|(id, _)| *id != job.id);
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
        if let Some(easier) = self.easier.take() {
            self.difficulty = Some(easier);
            events.push(Event::Difficulty(easier));
        }
    }
}
