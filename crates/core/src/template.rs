//! `getblocktemplate` answers, checked and turned into a [`Template`].
//!
//! Fields per [BIP22](https://github.com/bitcoin/bips/blob/master/bip-0022.mediawiki)
//! and [BIP23](https://github.com/bitcoin/bips/blob/master/bip-0023.mediawiki);
//! the witness commitment per BIP141, recomputed here and checked against the node's.
//! The block limits (`weightlimit`, `sigoplimit`) and each transaction's
//! `weight`, `sigops` and `fee` are Core's segwit additions to BIP23; they
//! are kept so that every job can be checked against the template's own
//! limits ([`crate::work::limits`]).

use serde::Deserialize;

use crate::chain::merkle::{witness_commitment, witness_commitment_script};
use crate::chain::target::CompactError;
use crate::chain::{coinbase::WITNESS_RESERVED_VALUE, sha256d, Hash256, Target};

/// Consensus bound on a block's weight (BIP141 `MAX_BLOCK_WEIGHT`): a
/// template's `weightlimit` above it is not believed.
pub const MAX_BLOCK_WEIGHT: u64 = 4_000_000;
/// Consensus bound on a block's sigop cost (BIP141 `MAX_BLOCK_SIGOPS_COST`):
/// legacy and P2SH sigops count four, witness sigops one.
pub const MAX_BLOCK_SIGOPS_COST: u64 = 80_000;
/// All the satoshis there will ever be (Core's `MAX_MONEY`).
const MAX_MONEY: u64 = 21_000_000 * 100_000_000;

/// Rules NDAS knows how to follow; a required (`!`-prefixed) rule outside
/// this list makes the template unusable.
const KNOWN_RULES: &[&str] = &["csv", "segwit", "taproot", "signet", "testdummy"];

/// A block template, validated.
#[derive(Debug, Clone)]
pub struct Template {
    pub version: u32,
    pub prev_hash: Hash256,
    pub bits: u32,
    pub network_target: Target,
    pub height: u32,
    pub cur_time: u32,
    /// Earliest allowed header time (median time past + 1).
    pub min_time: u32,
    /// The header times for which `bits` is the target: all of them, except
    /// under testnet's 20-minute rule (see the server's `node::testnet`), where a
    /// block's time decides its bits.
    pub bits_time: std::ops::RangeInclusive<u32>,
    /// Subsidy plus fees, paid to the operator's address.
    pub coinbase_value: u64,
    pub txids: Vec<Hash256>,
    /// The BIP141 commitment, when the block must carry one.
    pub witness_commitment: Option<Hash256>,
    /// All transactions, concatenated in block serialization and template order.
    pub tx_data: bytes::Bytes,
    pub tx_count: usize,
    pub longpoll_id: Option<String>,
    /// The block's bounds, as the template gives them (or consensus's).
    pub limits: BlockLimits,
    /// What each transaction counts against `limits`, in template order.
    pub costs: Vec<TxCost>,
}

/// The most a block on a template may weigh and cost in sigops
/// (`weightlimit`, `sigoplimit`), each at most consensus's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLimits {
    pub weight: u64,
    /// In sigop cost units (BIP141: legacy sigops count four).
    pub sigops: u64,
}

/// What one template transaction counts against the block's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxCost {
    /// For the witness commitment of a template cut short.
    pub wtxid: Hash256,
    /// Its bytes in `tx_data`.
    pub len: usize,
    /// BIP141 weight, computed from its data (and checked against the node's).
    pub weight: u64,
    /// Sigop cost as the node counted it (it needs the spent outputs, which
    /// NDAS does not have); 0 when the node did not say (no Core does that).
    pub sigops: u64,
    /// Fee in satoshis, when the node says: what leaves `coinbasevalue` if
    /// the transaction is left out.
    pub fee: Option<u64>,
}

impl Template {
    /// The header and the transaction count (coinbase included) in the
    /// block's weight: four units a byte, as all non-witness data.
    pub fn header_and_count_weight(&self) -> u64 {
        header_and_count_weight(self.tx_count)
    }

    /// The weight of the transactions, the coinbase left out.
    pub fn transactions_weight(&self) -> u64 {
        self.costs.iter().map(|tx| tx.weight).sum()
    }

    /// The sigop cost of the transactions, the coinbase left out.
    pub fn transactions_sigops(&self) -> u64 {
        self.costs.iter().map(|tx| tx.sigops).sum()
    }

    /// Room the template leaves for the coinbase, in weight and sigop cost:
    /// its limits less the header, the count and its transactions (zero
    /// when they alone are over).
    pub fn coinbase_room(&self) -> BlockLimits {
        BlockLimits {
            weight: self
                .limits
                .weight
                .saturating_sub(self.header_and_count_weight() + self.transactions_weight()),
            sigops: self
                .limits
                .sigops
                .saturating_sub(self.transactions_sigops()),
        }
    }

    /// The template with only its first `keep` transactions: the rest's
    /// fees out of the coinbase value and the witness commitment computed
    /// again. A transaction depends only on earlier ones (`depends`), so
    /// what is kept is still a valid block's. `None` when a left-out
    /// transaction's fee is unknown (the coinbase would claim it).
    pub fn first_transactions(&self, keep: usize) -> Option<Template> {
        let keep = keep.min(self.tx_count);
        let mut dropped_fees = 0u64;
        for tx in &self.costs[keep..] {
            dropped_fees = dropped_fees.checked_add(tx.fee?)?;
        }
        let costs = self.costs[..keep].to_vec();
        let bytes: usize = costs.iter().map(|tx| tx.len).sum();
        let witness_commitment = self.witness_commitment.map(|_| {
            let wtxids: Vec<Hash256> = costs.iter().map(|tx| tx.wtxid).collect();
            witness_commitment(&wtxids, &WITNESS_RESERVED_VALUE)
        });
        Some(Template {
            coinbase_value: self.coinbase_value.checked_sub(dropped_fees)?,
            txids: self.txids[..keep].to_vec(),
            witness_commitment,
            tx_data: self.tx_data.slice(..bytes),
            tx_count: keep,
            costs,
            bits_time: self.bits_time.clone(),
            longpoll_id: self.longpoll_id.clone(),
            ..*self
        })
    }
}

/// The header (80 bytes) and the CompactSize count of `transactions` plus
/// the coinbase, four weight units a byte.
pub fn header_and_count_weight(transactions: usize) -> u64 {
    let count = transactions as u64 + 1;
    let count_len = match count {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    };
    4 * (80 + count_len)
}

/// A template NDAS refuses to mine on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("template is not valid JSON for getblocktemplate: {0}")]
    Shape(String),
    #[error("template field `{field}` is invalid: {why}")]
    Field { field: &'static str, why: String },
    #[error("template transaction {index}: {why}")]
    Transaction { index: usize, why: String },
    #[error("template requires rule `{0}`, which NDAS does not implement")]
    UnknownRule(String),
    #[error("witness commitment mismatch: node sent {node}, transactions give {ours}")]
    WitnessCommitment { node: String, ours: String },
}

/// A `getblocktemplate` answer as the node sends it, read straight from the
/// response (no intermediate JSON tree for a big template).
#[derive(Deserialize)]
pub struct RawTemplate {
    version: u32,
    previousblockhash: String,
    transactions: Vec<RawTransaction>,
    coinbasevalue: u64,
    bits: String,
    #[serde(default)]
    target: Option<String>,
    height: u32,
    curtime: u64,
    mintime: Option<u64>,
    #[serde(default)]
    rules: Vec<String>,
    default_witness_commitment: Option<String>,
    longpollid: Option<String>,
    weightlimit: Option<u64>,
    sigoplimit: Option<u64>,
}

#[derive(Deserialize)]
struct RawTransaction {
    data: String,
    txid: Option<String>,
    hash: Option<String>,
    #[serde(default)]
    depends: Vec<u64>,
    weight: Option<u64>,
    sigops: Option<u64>,
    fee: Option<u64>,
}

fn field(field: &'static str, why: impl Into<String>) -> TemplateError {
    TemplateError::Field {
        field,
        why: why.into(),
    }
}

impl Template {
    /// Checks a `getblocktemplate` result and builds the template.
    pub fn from_json(value: serde_json::Value) -> Result<Template, TemplateError> {
        let raw: RawTemplate =
            serde_json::from_value(value).map_err(|e| TemplateError::Shape(e.to_string()))?;
        Template::from_raw(raw)
    }

    /// Checks a template read straight from the node's answer.
    pub fn from_raw(raw: RawTemplate) -> Result<Template, TemplateError> {
        for rule in &raw.rules {
            if let Some(required) = rule.strip_prefix('!') {
                if !KNOWN_RULES.contains(&required) {
                    return Err(TemplateError::UnknownRule(required.to_owned()));
                }
            }
        }
        let prev_hash = Hash256::from_display_hex(&raw.previousblockhash)
            .map_err(|e| field("previousblockhash", e.to_string()))?;
        let bits = parse_bits(&raw.bits)?;
        let network_target =
            Target::from_compact(bits).map_err(|e: CompactError| field("bits", e.to_string()))?;
        if let Some(target) = &raw.target {
            let mut be = [0u8; 32];
            hex::decode_to_slice(target, &mut be)
                .map_err(|_| field("target", "not 64 hex digits"))?;
            if Target::from_be_bytes(&be) != network_target {
                return Err(field("target", "does not match bits"));
            }
        }
        if raw.height == 0 {
            return Err(field("height", "must be above 0"));
        }
        let cur_time = u32::try_from(raw.curtime).map_err(|_| field("curtime", "beyond 2106"))?;
        let min_time = raw
            .mintime
            .map_or(Ok(0), u32::try_from)
            .map_err(|_| field("mintime", "beyond 2106"))?;

        // Before segwit's deployment Core counts sigops unscaled (and its
        // limit a quarter); NDAS compares costs, four to a legacy sigop.
        let segwit = raw
            .rules
            .iter()
            .any(|r| r.trim_start_matches('!') == "segwit");
        let scale = if segwit { 1 } else { 4 };
        let transactions = read_transactions(&raw.transactions, scale)?;
        let has_witness = transactions.iter().any(|tx| tx.txid != tx.wtxid);
        let witness_commitment = if raw.default_witness_commitment.is_some() || has_witness {
            let wtxids: Vec<Hash256> = transactions.iter().map(|tx| tx.wtxid).collect();
            let ours = witness_commitment(&wtxids, &WITNESS_RESERVED_VALUE);
            if let Some(node) = &raw.default_witness_commitment {
                let script = hex::encode(witness_commitment_script(&ours));
                if !node.eq_ignore_ascii_case(&script) {
                    return Err(TemplateError::WitnessCommitment {
                        node: node.clone(),
                        ours: script,
                    });
                }
            }
            Some(ours)
        } else {
            None
        };
        let mut tx_data = Vec::with_capacity(transactions.iter().map(|tx| tx.data.len()).sum());
        for tx in &transactions {
            tx_data.extend_from_slice(&tx.data);
        }
        Ok(Template {
            version: raw.version,
            prev_hash,
            bits,
            network_target,
            height: raw.height,
            cur_time,
            min_time,
            bits_time: 0..=u32::MAX,
            coinbase_value: raw.coinbasevalue,
            txids: transactions.iter().map(|tx| tx.txid).collect(),
            witness_commitment,
            tx_count: transactions.len(),
            tx_data: tx_data.into(),
            longpoll_id: raw.longpollid,
            limits: BlockLimits {
                weight: raw
                    .weightlimit
                    .map_or(MAX_BLOCK_WEIGHT, |w| w.min(MAX_BLOCK_WEIGHT)),
                sigops: raw
                    .sigoplimit
                    .map_or(MAX_BLOCK_SIGOPS_COST, |s| s.saturating_mul(scale))
                    .min(MAX_BLOCK_SIGOPS_COST),
            },
            costs: transactions.into_iter().map(|tx| tx.cost).collect(),
        })
    }
}

fn parse_bits(bits: &str) -> Result<u32, TemplateError> {
    if bits.len() != 8 {
        return Err(field("bits", "must be 8 hex digits"));
    }
    u32::from_str_radix(bits, 16).map_err(|_| field("bits", "must be 8 hex digits"))
}

struct Transaction {
    data: Vec<u8>,
    txid: Hash256,
    wtxid: Hash256,
    cost: TxCost,
}

/// The transactions, checked; `scale` turns the node's sigops into costs.
fn read_transactions(
    raw: &[RawTransaction],
    scale: u64,
) -> Result<Vec<Transaction>, TemplateError> {
    let mut out = Vec::with_capacity(raw.len());
    for (index, tx) in raw.iter().enumerate() {
        let error = |why: &str| TemplateError::Transaction {
            index,
            why: why.to_owned(),
        };
        let data = hex::decode(&tx.data).map_err(|_| error("data is not hex"))?;
        if data.len() < 10 {
            return Err(error("data is too short to be a transaction"));
        }
        let wtxid = sha256d(&data);
        // A witness serialization has a zero input-count marker and a non-zero flag.
        let segwit = data[4] == 0 && data[5] != 0;
        let (txid, weight) = if segwit {
            let decoded: bitcoin::Transaction = bitcoin::consensus::deserialize(&data)
                .map_err(|_| error("data is not a transaction"))?;
            (
                Hash256(*decoded.compute_txid().as_ref()),
                decoded.weight().to_wu(),
            )
        } else {
            (wtxid, 4 * data.len() as u64)
        };
        if tx.weight.is_some_and(|given| given != weight) {
            return Err(error("weight does not match data"));
        }
        if let Some(given) = &tx.txid {
            if Hash256::from_display_hex(given).ok() != Some(txid) {
                return Err(error("txid does not match data"));
            }
        }
        if let Some(given) = &tx.hash {
            if Hash256::from_display_hex(given).ok() != Some(wtxid) {
                return Err(error("hash does not match data"));
            }
        }
        // `depends` holds 1-based positions of earlier transactions in this template.
        if tx.depends.iter().any(|&d| d == 0 || d > index as u64) {
            return Err(error(
                "depends on a transaction that does not come before it",
            ));
        }
        // Bounds that keep every sum below overflow: no transaction costs
        // more than a block may, or pays more than all the bitcoin there is.
        if tx
            .sigops
            .is_some_and(|sigops| sigops.saturating_mul(scale) > MAX_BLOCK_SIGOPS_COST)
        {
            return Err(error("sigops are over a block's limit"));
        }
        if tx.fee.is_some_and(|fee| fee > MAX_MONEY) {
            return Err(error("fee is over 21 million bitcoin"));
        }
        let cost = TxCost {
            wtxid,
            len: data.len(),
            weight,
            sigops: tx.sigops.unwrap_or(0).saturating_mul(scale),
            fee: tx.fee,
        };
        out.push(Transaction {
            data,
            txid,
            wtxid,
            cost,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
