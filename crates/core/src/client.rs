//! The miner's side of Stratum V1: a `mining.notify` decoded, a share
//! built, hashed and ground as each firmware rolls its version bits, and
//! the params of its `mining.submit`. The CPU miner, the load generator and
//! the tests build their shares with it.
//!
//! It hashes with the `bitcoin` crate, independently of NDAS's own chain
//! code, so a share NDAS accepts is checked by a second implementation.

use bitcoin::block::{Header, Version};
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{BlockHash, CompactTarget, TxMerkleNode};
use serde_json::{json, Value};

/// A `mining.notify`, decoded.
#[derive(Clone, Debug)]
pub struct Work {
    pub job_id: String,
    /// Internal byte order, as in the header.
    pub prev_hash: [u8; 32],
    pub coinb1: Vec<u8>,
    pub coinb2: Vec<u8>,
    pub branch: Vec<[u8; 32]>,
    pub version: u32,
    pub bits: u32,
    pub ntime: u32,
    pub clean: bool,
}

/// A hashed candidate share.
#[derive(Clone, Debug)]
pub struct Share {
    pub job_id: String,
    pub extranonce2: Vec<u8>,
    pub ntime: u32,
    pub nonce: u32,
    pub version_bits: Option<u32>,
    pub hash: BlockHash,
    /// The difficulty the hash achieved.
    pub difficulty: f64,
    /// Whether the hash meets the header's own target.
    pub is_block: bool,
    /// The coinbase the miner built, for checks against the found block.
    pub coinbase: Vec<u8>,
}

type Io<T> = std::io::Result<T>;

fn invalid(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

/// The params of `mining.submit` for a share: 5, or 6 with rolled version bits.
pub fn submit_params(worker: &str, share: &Share) -> Value {
    submit_fields(
        worker,
        &share.job_id,
        &share.extranonce2,
        share.ntime,
        share.nonce,
        share.version_bits,
    )
}

/// `mining.submit`'s params from their parts, in their wire form.
pub fn submit_fields(
    worker: &str,
    job_id: &str,
    extranonce2: &[u8],
    ntime: u32,
    nonce: u32,
    version_bits: Option<u32>,
) -> Value {
    let mut params = vec![
        json!(worker),
        json!(job_id),
        json!(hex::encode(extranonce2)),
        json!(format!("{ntime:08x}")),
        json!(format!("{nonce:08x}")),
    ];
    if let Some(bits) = version_bits {
        params.push(json!(format!("{bits:08x}")));
    }
    Value::Array(params)
}

/// Decodes the params of a `mining.notify`.
pub fn parse_notify(params: &Value) -> Io<Work> {
    let text = |i: usize| {
        params[i]
            .as_str()
            .ok_or_else(|| invalid(format!("notify param {i}")))
    };
    let bytes = |i: usize| -> Io<Vec<u8>> {
        hex::decode(text(i)?).map_err(|_| invalid(format!("notify param {i} hex")))
    };
    let word = |i: usize| -> Io<u32> {
        u32::from_str_radix(text(i)?, 16).map_err(|_| invalid(format!("notify param {i}")))
    };
    let swapped: [u8; 32] = bytes(1)?
        .try_into()
        .map_err(|_| invalid("prevhash length"))?;
    let mut prev_hash = swapped;
    for chunk in prev_hash.chunks_exact_mut(4) {
        chunk.reverse();
    }
    let branch = params[4]
        .as_array()
        .ok_or_else(|| invalid("branch"))?
        .iter()
        .map(|h| {
            let decoded =
                hex::decode(h.as_str().unwrap_or("")).map_err(|_| invalid("branch hex"))?;
            decoded.try_into().map_err(|_| invalid("branch length"))
        })
        .collect::<Io<Vec<[u8; 32]>>>()?;
    Ok(Work {
        job_id: text(0)?.to_owned(),
        prev_hash,
        coinb1: bytes(2)?,
        coinb2: bytes(3)?,
        branch,
        version: word(5)?,
        bits: word(6)?,
        ntime: word(7)?,
        clean: params[8].as_bool().ok_or_else(|| invalid("clean_jobs"))?,
    })
}

/// How a miner combines the job's version with the bits it rolls, and what
/// it submits as the sixth `mining.submit` param: each as its source does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rolling {
    /// BIP310: hashes `(job & !mask) | bits`, submits the bits.
    Bip310,
    /// cgminer and bmminer: hash `job | bits`, submit the bits.
    Cgminer,
    /// ESP-Miner (Bitaxe, NerdQAxe): hashes `job | bits`, submits
    /// `rolled ^ job` (`asic_result_task.c`).
    EspMiner,
    /// Older translating proxies: hash `(job & !mask) | bits`, submit the
    /// whole rolled version.
    WholeVersion,
}

impl Rolling {
    /// The version hashed and the param submitted for `bits` on `job_version`.
    /// (Bits outside `mask` are hashed by none, and submitted as given by
    /// BIP310 miners, so a test can send them.)
    pub fn apply(self, job_version: u32, given: u32, mask: u32) -> (u32, u32) {
        let bits = given & mask;
        match self {
            Rolling::Bip310 => ((job_version & !mask) | bits, given),
            Rolling::Cgminer => (job_version | bits, bits),
            Rolling::EspMiner => {
                let rolled = job_version | bits;
                (rolled, rolled ^ job_version)
            }
            Rolling::WholeVersion => {
                let rolled = (job_version & !mask) | bits;
                (rolled, rolled)
            }
        }
    }
}

/// Hashes one candidate with the `bitcoin` crate, rolling version bits the
/// BIP310 way.
pub fn hash_share(
    work: &Work,
    extranonce1: &[u8],
    extranonce2: &[u8],
    nonce: u32,
    version_bits: Option<u32>,
    mask: u32,
) -> Share {
    let rolled = version_bits.map(|bits| (Rolling::Bip310, bits, mask));
    hash_share_rolled(work, extranonce1, extranonce2, nonce, rolled)
}

/// [`hash_share`], rolling `bits` within `mask` as `rolling` firmware does.
pub fn hash_share_rolled(
    work: &Work,
    extranonce1: &[u8],
    extranonce2: &[u8],
    nonce: u32,
    rolled: Option<(Rolling, u32, u32)>,
) -> Share {
    let coinbase = [&work.coinb1[..], extranonce1, extranonce2, &work.coinb2[..]].concat();
    let mut root = sha256d::Hash::hash(&coinbase).to_byte_array();
    for step in &work.branch {
        root = sha256d::Hash::hash(&[root, *step].concat()).to_byte_array();
    }
    let (version, version_bits) = match rolled {
        Some((rolling, bits, mask)) => {
            let (version, submitted) = rolling.apply(work.version, bits, mask);
            (version, Some(submitted))
        }
        None => (work.version, None),
    };
    let header = Header {
        version: Version::from_consensus(version as i32),
        prev_blockhash: BlockHash::from_byte_array(work.prev_hash),
        merkle_root: TxMerkleNode::from_byte_array(root),
        time: work.ntime,
        bits: CompactTarget::from_consensus(work.bits),
        nonce,
    };
    let hash = header.block_hash();
    let achieved = bitcoin::Target::from_le_bytes(hash.to_byte_array()).difficulty_float();
    Share {
        job_id: work.job_id.clone(),
        extranonce2: extranonce2.to_vec(),
        ntime: work.ntime,
        nonce,
        version_bits,
        hash,
        difficulty: achieved,
        is_block: header.validate_pow(header.target()).is_ok(),
        coinbase,
    }
}

/// Tries nonces from 0 until `wanted` accepts a share or `tries` run out.
pub fn grind(
    work: &Work,
    extranonce1: &[u8],
    extranonce2: &[u8],
    (version_bits, mask): (Option<u32>, u32),
    tries: u32,
    wanted: impl Fn(&Share) -> bool,
) -> Option<Share> {
    (0..tries)
        .map(|nonce| hash_share(work, extranonce1, extranonce2, nonce, version_bits, mask))
        .find(|share| wanted(share))
}

/// The `i`-th of a simulated fleet's regtest P2WPKH addresses, its
/// username in `username` payout mode (a program hashed from `i`: nobody
/// holds its key, and nobody needs to).
pub fn payout_address(i: usize) -> String {
    use sha2::Digest;
    let program = sha2::Sha256::digest((i as u64).to_le_bytes());
    let program = bitcoin::WitnessProgram::new(bitcoin::WitnessVersion::V0, &program[..20])
        .expect("20 bytes is a v0 program");
    bitcoin::Address::from_witness_program(program, bitcoin::KnownHrp::Regtest).to_string()
}
