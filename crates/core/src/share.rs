//! Share validation: one pure function from a job and a submission to a verdict.

use crate::chain::hash::sha256d_header;
use crate::chain::header::Header;
use crate::chain::merkle::root_from_branch;
use crate::chain::target::hash_difficulty;
use crate::chain::{Hash256, Target};
use crate::stratum::method::Submit;
use crate::stratum::{ErrorCode, StratumError};
use crate::work::{Extranonce1, Job};

/// How far ahead of the clock a header time may be (Bitcoin Core's `MAX_FUTURE_BLOCK_TIME`).
pub const MAX_FUTURE_SECONDS: u32 = 7200;

/// The connection's side of a share check.
#[derive(Clone, Copy, Debug)]
pub struct ShareContext<'a> {
    pub extranonce1: &'a Extranonce1,
    pub extranonce2_size: usize,
    /// Version bits any miner may roll, negotiated with BIP310 or not (a
    /// miner behind a rental proxy rolls without `mining.configure`; ckpool
    /// accepts that too).
    pub version_mask: u32,
    /// The share target the miner was given for this job.
    pub target: &'a Target,
    /// Seconds since the Unix epoch, now.
    pub now_unix: u32,
}

/// A share that met its target.
#[derive(Clone, Copy, Debug)]
pub struct Accepted {
    pub hash: Hash256,
    pub header: [u8; 80],
    /// Whether the hash also meets the network target on a node's job (a
    /// pool's job is the pool's to submit).
    pub is_block: bool,
    /// The difficulty the hash achieved (for best-share display).
    pub achieved: f64,
}

/// Why a share was refused. One place maps each to its stratum code and metric label.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reject {
    Unauthorized,
    NotSubscribed,
    JobNotFound,
    Stale,
    Duplicate,
    LowDifficulty {
        achieved: f64,
    },
    Extranonce2Size {
        got: usize,
        want: usize,
    },
    NtimeTooOld,
    NtimeTooNew,
    /// A header time for which the job's bits are not the target (testnet's
    /// 20-minute rule): the block would need other bits.
    NtimeOutsideBits,
    VersionBits,
    /// A share on a job whose coinbase pays another address than the
    /// worker's it names (a connection with workers of two addresses).
    OtherPayout,
}

impl Reject {
    crate::labels! {
        /// Every label [`Reject::reason`] can give, in the order of its table.
        REASONS;
        /// The label on `ndas_shares_total{reason=…}`.
        fn reason;
        Reject::Unauthorized => "unauthorized",
        Reject::NotSubscribed => "not_subscribed",
        Reject::JobNotFound => "job_not_found",
        Reject::Stale => "stale",
        Reject::Duplicate => "duplicate",
        Reject::LowDifficulty { .. } => "low_difficulty",
        Reject::Extranonce2Size { .. } => "bad_extranonce2",
        Reject::NtimeTooOld | Reject::NtimeTooNew | Reject::NtimeOutsideBits => "bad_ntime",
        Reject::VersionBits => "bad_version",
        Reject::OtherPayout => "other_payout",
    }

    /// Whether the share proves a broken or hostile client: only these count
    /// toward `max_invalid_shares` and bans. Stale and unknown jobs are the
    /// chain's doing, duplicates what a reconnecting miner resends, and a low
    /// difficulty what any miner sends just after a retarget: a farm behind
    /// one address must never be banned for them.
    pub fn proves_broken_client(&self) -> bool {
        match self {
            Reject::Stale
            | Reject::JobNotFound
            | Reject::Duplicate
            | Reject::LowDifficulty { .. }
            // A miner that rolls its time a few seconds past the mark is
            // not broken; the job after the mark has the bits it needs.
            | Reject::NtimeOutsideBits
            // An honest proxy switching workers sends some.
            | Reject::OtherPayout => false,
            Reject::Unauthorized
            | Reject::NotSubscribed
            | Reject::Extranonce2Size { .. }
            | Reject::NtimeTooOld
            | Reject::NtimeTooNew
            | Reject::VersionBits => true,
        }
    }

    /// The answer the miner gets.
    pub fn to_stratum(&self) -> StratumError {
        match *self {
            Reject::Unauthorized => {
                StratumError::new(ErrorCode::Unauthorized, "Unauthorized worker")
            }
            Reject::NotSubscribed => StratumError::new(ErrorCode::NotSubscribed, "Not subscribed"),
            Reject::JobNotFound => StratumError::new(ErrorCode::JobNotFound, "Job not found"),
            Reject::Stale => StratumError::new(ErrorCode::JobNotFound, "Stale share"),
            Reject::Duplicate => StratumError::new(ErrorCode::DuplicateShare, "Duplicate share"),
            Reject::LowDifficulty { .. } => {
                StratumError::new(ErrorCode::LowDifficulty, "Low difficulty share")
            }
            Reject::Extranonce2Size { got, want } => StratumError::other(format!(
                "Invalid extranonce2 size: {got} bytes, expected {want}"
            )),
            Reject::NtimeTooOld => StratumError::new(ErrorCode::Other, "Invalid ntime: too old"),
            Reject::NtimeTooNew => {
                StratumError::new(ErrorCode::Other, "Invalid ntime: too far in the future")
            }
            Reject::NtimeOutsideBits => StratumError::new(
                ErrorCode::Other,
                "Invalid ntime: this job's bits are not the target at that time (20-minute rule)",
            ),
            Reject::OtherPayout => StratumError::new(
                ErrorCode::JobNotFound,
                "This job pays another worker's address: mine the newest job for this worker",
            ),
            Reject::VersionBits => StratumError::new(
                ErrorCode::Other,
                "Invalid version bits: outside the allowed mask",
            ),
        }
    }
}

/// Rebuilds coinbase, merkle root and header for `submit` on `job` and checks
/// the hash against the share target. Duplicate and stale checks need the
/// connection's history and are the session's.
pub fn validate(
    job: &Job,
    submit: &Submit,
    context: &ShareContext<'_>,
) -> Result<Accepted, Reject> {
    let extranonce2 = submit.extranonce2.as_bytes();
    if extranonce2.len() != context.extranonce2_size {
        return Err(Reject::Extranonce2Size {
            got: extranonce2.len(),
            want: context.extranonce2_size,
        });
    }
    if submit.ntime < job.template.min_time {
        return Err(Reject::NtimeTooOld);
    }
    if submit.ntime > context.now_unix.saturating_add(MAX_FUTURE_SECONDS) {
        return Err(Reject::NtimeTooNew);
    }
    if !job.template.bits_time.contains(&submit.ntime) {
        return Err(Reject::NtimeOutsideBits);
    }
    let version = match submit.version_bits {
        Some(submitted) => rolled_version(job.version, submitted, context.version_mask)?,
        None => job.version,
    };
    let coinbase_txid = job.coinbase.txid(&context.extranonce1.0, extranonce2);
    let header = Header {
        version,
        prev_hash: job.template.prev_hash,
        merkle_root: root_from_branch(&coinbase_txid, &job.branch),
        time: submit.ntime,
        bits: job.template.bits,
        nonce: submit.nonce,
    }
    .serialize();
    let hash = sha256d_header(&header);
    if !context.target.is_met_by(&hash) {
        return Err(Reject::LowDifficulty {
            achieved: hash_difficulty(&hash),
        });
    }
    Ok(Accepted {
        hash,
        header,
        is_block: job.pool.is_none() && job.network_target().is_met_by(&hash),
        achieved: hash_difficulty(&hash),
    })
}

/// The header version a miner hashed, from the job's version and the sixth
/// `mining.submit` parameter.
///
/// The job's version has no bit inside `mask` ([`Job::version`]), so what
/// firmware sends comes down to the same rolled bits: BIP310's bits
/// (cgminer, bmminer, Braiins OS), ESP-Miner's `rolled ^ job_version`, or a
/// whole version (older translating proxies), told apart by carrying the
/// job's own bits outside the mask.
#[inline]
pub fn rolled_version(job_version: u32, submitted: u32, mask: u32) -> Result<u32, Reject> {
    let fixed = job_version & !mask;
    let bits = if submitted & !mask == fixed {
        submitted & mask
    } else {
        submitted
    };
    if bits & !mask != 0 {
        return Err(Reject::VersionBits);
    }
    Ok(fixed | bits)
}

#[cfg(test)]
mod tests;
