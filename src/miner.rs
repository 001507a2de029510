//! A CPU stratum client, for the quick-start demo and the integration tests.
//!
//! It hashes with the `bitcoin` crate, independently of NDAS's own chain
//! code, so a share NDAS accepts is checked by a second implementation.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bitcoin::block::{Header, Version};
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{BlockHash, CompactTarget, TxMerkleNode};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, LinesCodec};

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

/// A stratum connection with the state a miner keeps.
pub struct Client {
    lines: FramedRead<OwnedReadHalf, LinesCodec>,
    writer: OwnedWriteHalf,
    next_id: u64,
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
    pub difficulty: f64,
    pub version_mask: u32,
    /// Jobs received and not yet taken, oldest first.
    pub jobs: VecDeque<Work>,
    /// Other notifications received (e.g. `client.reconnect`).
    pub notifications: Vec<Value>,
}

type Io<T> = std::io::Result<T>;

fn invalid(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Io<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        Ok(Client {
            lines: FramedRead::new(reader, LinesCodec::new_with_max_length(1 << 20)),
            writer,
            next_id: 1,
            extranonce1: Vec::new(),
            extranonce2_size: 0,
            difficulty: 1.0,
            version_mask: 0,
            jobs: VecDeque::new(),
            notifications: Vec::new(),
        })
    }

    /// Sends raw bytes (for tests of bad input).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Io<()> {
        self.writer.write_all(bytes).await
    }

    /// Reads one line; `None` when the server closed the connection.
    pub async fn read_message(&mut self) -> Io<Option<Value>> {
        let Some(line) = self.lines.next().await else {
            return Ok(None);
        };
        let line = line.map_err(|e| invalid(e.to_string()))?;
        let message: Value =
            serde_json::from_str(&line).map_err(|e| invalid(format!("{e}: {line}")))?;
        match message["method"].as_str() {
            Some("mining.notify") => self.jobs.push_back(parse_notify(&message["params"])?),
            Some("mining.set_difficulty") => {
                self.difficulty = message["params"][0]
                    .as_f64()
                    .ok_or_else(|| invalid("bad difficulty"))?
            }
            Some("mining.set_version_mask") => {
                self.version_mask =
                    u32::from_str_radix(message["params"][0].as_str().unwrap_or(""), 16)
                        .map_err(|_| invalid("bad mask"))?
            }
            Some(_) => self.notifications.push(message.clone()),
            None => {}
        }
        Ok(Some(message))
    }

    /// Sends a request and returns the whole response (`result` and `error`).
    pub async fn request(&mut self, method: &str, params: Value) -> Io<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let line = json!({"id": id, "method": method, "params": params}).to_string() + "\n";
        self.writer.write_all(line.as_bytes()).await?;
        loop {
            let message = self
                .read_message()
                .await?
                .ok_or_else(|| invalid("connection closed"))?;
            if message["id"] == json!(id) && message.get("method").is_none() {
                return Ok(message);
            }
        }
    }

    pub async fn subscribe(&mut self, agent: &str) -> Io<Value> {
        let answer = self.request("mining.subscribe", json!([agent])).await?;
        let result = &answer["result"];
        self.extranonce1 = hex::decode(result[1].as_str().unwrap_or(""))
            .map_err(|_| invalid("bad extranonce1"))?;
        self.extranonce2_size = result[2]
            .as_u64()
            .ok_or_else(|| invalid("bad extranonce2 size"))?
            as usize;
        Ok(answer)
    }

    pub async fn configure_version_rolling(&mut self, mask: u32) -> Io<Value> {
        let params = json!([["version-rolling"], {"version-rolling.mask": format!("{mask:08x}"), "version-rolling.min-bit-count": 2}]);
        let answer = self.request("mining.configure", params).await?;
        if let Some(mask) = answer["result"]["version-rolling.mask"].as_str() {
            self.version_mask = u32::from_str_radix(mask, 16).map_err(|_| invalid("bad mask"))?;
        }
        Ok(answer)
    }

    pub async fn authorize(&mut self, user: &str) -> Io<Value> {
        self.request("mining.authorize", json!([user, "x"])).await
    }

    /// Waits for the next job; `None` if none arrives within `timeout`.
    pub async fn next_job(&mut self, timeout: Duration) -> Io<Option<Work>> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.jobs.is_empty() {
            match tokio::time::timeout_at(deadline, self.read_message()).await {
                Err(_) => return Ok(None),
                Ok(message) => {
                    message?.ok_or_else(|| invalid("connection closed"))?;
                }
            }
        }
        Ok(self.jobs.pop_front())
    }

    /// The newest job received so far, reading what has arrived.
    pub fn latest_job(&mut self) -> Option<Work> {
        let latest = self.jobs.pop_back();
        self.jobs.clear();
        latest
    }

    /// Submits a share; returns the whole response.
    pub async fn submit(&mut self, worker: &str, share: &Share) -> Io<Value> {
        self.request("mining.submit", submit_params(worker, share))
            .await
    }
}

/// The params of `mining.submit` for a share: 5, or 6 with rolled version bits.
pub fn submit_params(worker: &str, share: &Share) -> Value {
    let mut params = vec![
        json!(worker),
        json!(share.job_id),
        json!(hex::encode(&share.extranonce2)),
        json!(format!("{:08x}", share.ntime)),
        json!(format!("{:08x}", share.nonce)),
    ];
    if let Some(bits) = share.version_bits {
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
