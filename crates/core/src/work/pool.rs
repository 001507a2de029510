//! Jobs from an upstream pool (issue 24): when no node serves, NDAS's
//! miners mine a pool's jobs through it, and NDAS is one miner to the pool.
//!
//! Each miner keeps its own extranonce1 (its lease, 4 bytes) and
//! extranonce2 size: together they are a slice of the pool's extranonce2.
//! The pool's coinbase is cut for the miners as
//! `coinb1 ‖ pool extranonce1` | miner's extranonce1 ‖ miner's extranonce2 |
//! `zeros ‖ coinb2`, the zeros filling what the pool's extranonce2 has
//! beyond the slice, so a share is checked as on a node's job (the header
//! rebuilt and hashed) and sent to the pool with the pool's extranonce2
//! put back together. A job of a pool pays the pool: it is every payout
//! group's, and never a block NDAS submits.

use std::sync::Arc;
use std::time::Instant;

use super::extranonce::EXTRANONCE1_LEN;
use super::payout::Payout;
use super::Job;
use crate::chain::coinbase::Coinbase;
use crate::chain::{Hash256, Target};
use crate::client::Work;
use crate::stratum::method::{JobId, Submit};
use crate::stratum::notify::{notify, NotifyFields};
use crate::template::{BlockLimits, Template};
use crate::upstream::UpstreamShare;

/// A pool's job as its connection hands it to the job stage, with what
/// the connection holds of the pool when it came.
#[derive(Clone, Debug)]
pub struct PoolWork {
    /// The upstream's place in the config (`[[upstream]]`).
    pub pool: usize,
    /// Which connection to that upstream: a share on a job of an earlier
    /// one is not sent (its extranonce1 may be another).
    pub connection: u64,
    pub work: Work,
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
    /// The pool's share difficulty: a share is sent when it meets it.
    pub difficulty: f64,
    /// The version bits the pool lets miners roll.
    pub version_mask: u32,
}

/// What a [`Job`] made from a pool's job keeps of it.
#[derive(Clone, Debug)]
pub struct PoolJob {
    pub pool: usize,
    pub connection: u64,
    /// The pool's own id, for its `mining.submit`.
    pub job_id: String,
    /// The pool's share target when the job was made.
    pub target: Target,
    /// The version the pool sent, and the bits it lets miners roll.
    pub version: u32,
    pub version_mask: u32,
    /// Zero bytes of the pool's extranonce2 after the miner's.
    pub padding: usize,
}

/// Why a pool's job cannot be mined by NDAS's miners.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PoolJobError {
    #[error("the pool's extranonce2 is {given} bytes; each miner needs {needed}")]
    Extranonce2TooSmall { given: usize, needed: usize },
    #[error("the pool's bits {0:08x} are not a target")]
    Bits(u32),
    #[error("the pool's difficulty {0} is not a positive number")]
    Difficulty(f64),
}

impl Job {
    /// The job miners with `extranonce2_size` bytes of their own mine for
    /// the pool's `from`.
    pub fn from_pool(
        id: JobId,
        from: &PoolWork,
        extranonce2_size: usize,
    ) -> Result<Job, PoolJobError> {
        let needed = EXTRANONCE1_LEN + extranonce2_size;
        let padding =
            from.extranonce2_size
                .checked_sub(needed)
                .ok_or(PoolJobError::Extranonce2TooSmall {
                    given: from.extranonce2_size,
                    needed,
                })?;
        if !(from.difficulty.is_finite() && from.difficulty > 0.0) {
            return Err(PoolJobError::Difficulty(from.difficulty));
        }
        let work = &from.work;
        let network_target =
            Target::from_compact(work.bits).map_err(|_| PoolJobError::Bits(work.bits))?;
        let mut coinb1 = Vec::with_capacity(work.coinb1.len() + from.extranonce1.len());
        coinb1.extend_from_slice(&work.coinb1);
        coinb1.extend_from_slice(&from.extranonce1);
        let mut coinb2 = vec![0u8; padding];
        coinb2.extend_from_slice(&work.coinb2);
        let coinbase = Coinbase::from_parts(coinb1, coinb2, needed);
        let branch: Arc<[Hash256]> = work.branch.iter().map(|h| Hash256(*h)).collect();
        let prev_hash = Hash256(work.prev_hash);
        let job_id = id.to_string();
        let (coinb1, coinb2) = (
            hex::encode(coinbase.coinb1()),
            hex::encode(coinbase.coinb2()),
        );
        let merkle_branch: Vec<String> = branch.iter().map(|h| hex::encode(h.0)).collect();
        let (prev, version, bits, ntime) = (
            super::job::stratum_prev_hash(&prev_hash),
            format!("{:08x}", work.version),
            format!("{:08x}", work.bits),
            format!("{:08x}", work.ntime),
        );
        let line = |clean_jobs| {
            notify(&NotifyFields {
                job_id: &job_id,
                prev_hash: &prev,
                coinb1: &coinb1,
                coinb2: &coinb2,
                merkle_branch: &merkle_branch,
                version: &version,
                bits: &bits,
                ntime: &ntime,
                clean_jobs,
            })
        };
        let (notify_clean, notify_update) = (line(true), line(false));
        let template = Arc::new(header_only(work, network_target));
        Ok(Job {
            id,
            // Miners' difficulty is capped at this: at most the pool's, or
            // the pool would get fewer shares than it credits hashrate for.
            network_difficulty: network_target.difficulty().min(from.difficulty),
            template,
            coinbase,
            branch,
            payout: Payout {
                address: "".into(),
                script: Arc::from(&[][..]),
            },
            paid: Vec::new(),
            version: work.version,
            created: Instant::now(),
            notify_clean,
            notify_update,
            pool: Some(Arc::new(PoolJob {
                pool: from.pool,
                connection: from.connection,
                job_id: work.job_id.clone(),
                target: Target::from_difficulty(from.difficulty),
                version: work.version,
                version_mask: from.version_mask,
                padding,
            })),
        })
    }
}

impl PoolJob {
    /// The pool's `mining.submit` for a miner's share on this job: the
    /// pool's extranonce2 put back together (the miner's extranonce1, its
    /// extranonce2, the padding), and the rolled bits as BIP310 sends
    /// them. Bits rolled outside the pool's mask are sent as the whole
    /// version, which the connection refuses and counts against the miner.
    pub fn share(&self, extranonce1: &[u8], submit: &Submit, header_version: u32) -> UpstreamShare {
        let extranonce2_bytes = submit.extranonce2.as_bytes();
        let mut extranonce2 =
            Vec::with_capacity(extranonce1.len() + extranonce2_bytes.len() + self.padding);
        extranonce2.extend_from_slice(extranonce1);
        extranonce2.extend_from_slice(extranonce2_bytes);
        extranonce2.resize(extranonce2.len() + self.padding, 0);
        let fixed = !self.version_mask;
        let version_bits = if header_version == self.version {
            None
        } else if header_version & fixed == self.version & fixed {
            Some(header_version & self.version_mask)
        } else {
            Some(header_version)
        };
        UpstreamShare {
            job_id: self.job_id.clone(),
            extranonce2,
            ntime: submit.ntime,
            nonce: submit.nonce,
            version_bits,
        }
    }
}

/// A template of a pool's header fields alone: what share checks read
/// (previous block, bits, times). No transactions, no value: a pool's job
/// is never put in a block by NDAS.
fn header_only(work: &Work, network_target: Target) -> Template {
    Template {
        version: work.version,
        prev_hash: Hash256(work.prev_hash),
        bits: work.bits,
        network_target,
        height: bip34_height(&work.coinb1).unwrap_or(0),
        cur_time: work.ntime,
        // Miners roll the time forward from the job's; the pool judges
        // how far.
        min_time: work.ntime,
        bits_time: 0..=u32::MAX,
        coinbase_value: 0,
        txids: Vec::new(),
        witness_commitment: None,
        tx_data: bytes::Bytes::new(),
        tx_count: 0,
        longpoll_id: None,
        limits: BlockLimits {
            weight: 0,
            sigops: 0,
        },
        costs: Vec::new(),
    }
}

/// The height a coinbase's first half starts its scriptSig with (BIP34),
/// if it reads as one: for the operator's display only.
fn bip34_height(coinb1: &[u8]) -> Option<u32> {
    // version (4), input count (1), outpoint (36), scriptSig length (1).
    let script = coinb1.get(42..)?;
    let len = usize::from(*script.first()?);
    if !(1..=4).contains(&len) {
        return None;
    }
    let mut bytes = [0u8; 4];
    bytes[..len].copy_from_slice(script.get(1..1 + len)?);
    Some(u32::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests;
