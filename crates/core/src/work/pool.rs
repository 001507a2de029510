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

use crate::chain::Target;
use crate::client::Work;
use crate::stratum::method::Submit;
use crate::upstream::UpstreamShare;

/// A pool's job as its connection hands it to the job stage, with what
/// the connection holds of the pool when it came.
#[derive(Clone, Debug)]
pub struct PoolWork {
    /// The upstream's place in the config (`[[upstream]]`).
    pub pool: usize,
    /// The connection's lane ([`super::lanes`]).
    pub lane: usize,
    /// Which connection to that upstream, unique among its lanes: a share
    /// on a job of an earlier one is not sent (its extranonce1 may be
    /// another).
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
    pub lane: usize,
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

#[cfg(test)]
mod tests;
