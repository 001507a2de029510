//! `getblocktemplate` answers, checked and turned into a [`Template`].
//!
//! Fields per [BIP22](https://github.com/bitcoin/bips/blob/master/bip-0022.mediawiki)
//! and [BIP23](https://github.com/bitcoin/bips/blob/master/bip-0023.mediawiki);
//! the witness commitment per BIP141, recomputed here and checked against the node's.

use serde::Deserialize;

use crate::chain::merkle::{witness_commitment, witness_commitment_script};
use crate::chain::target::CompactError;
use crate::chain::{coinbase::WITNESS_RESERVED_VALUE, sha256d, Hash256, Target};

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
    /// under testnet's 20-minute rule (see [`super::testnet`]), where a
    /// block's time decides its bits.
    pub bits_time: std::ops::RangeInclusive<u32>,
    /// Subsidy plus fees, paid to the operator's address.
    pub coinbase_value: u64,
    pub txids: Vec<Hash256>,
    /// The BIP141 commitment, when the block must carry one.
    pub witness_commitment: Option<Hash256>,
    /// All transactions, concatenated in block serialization and template order.
    pub tx_data: bytes::Bytes,
    /// Set once the transactions are in the block journal (with their hex
    /// for `submitblock`): a block found on this template then journals
    /// only its header and coinbase.
    pub journaled: std::sync::OnceLock<crate::blocks::journal::JournaledTransactions>,
    pub tx_count: usize,
    pub longpoll_id: Option<String>,
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
}

#[derive(Deserialize)]
struct RawTransaction {
    data: String,
    txid: Option<String>,
    hash: Option<String>,
    #[serde(default)]
    depends: Vec<u64>,
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

        let transactions = read_transactions(&raw.transactions)?;
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
            journaled: std::sync::OnceLock::new(),
            longpoll_id: raw.longpollid,
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
}

fn read_transactions(raw: &[RawTransaction]) -> Result<Vec<Transaction>, TemplateError> {
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
        let txid = if segwit {
            let decoded: bitcoin::Transaction = bitcoin::consensus::deserialize(&data)
                .map_err(|_| error("data is not a transaction"))?;
            Hash256(*decoded.compute_txid().as_ref())
        } else {
            wtxid
        };
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
        out.push(Transaction { data, txid, wtxid });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
