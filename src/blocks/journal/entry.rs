//! What the journal holds: found blocks and their verdicts, and the metas of
//! its records.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::json;
use ndas_core::clock::unix_now;
use ndas_core::FoundBlock;

/// A found block, pending or settled with the node's verdict.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JournalEntry {
    pub hash: String,
    pub height: u32,
    pub worker: String,
    /// Unix seconds when the share arrived.
    pub found_at: u64,
    /// Who the coinbase pays, splits first (not the witness commitment).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paid: Vec<PaidOutput>,
    /// The serialized block (hex in JSON, as `submitblock` takes it).
    #[serde(with = "hex_block")]
    pub block: BlockBytes,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Each node's verdict, in the order they came (in the settled copy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<NodeOutcome>,
}

/// An output of a found block's coinbase: an address and its satoshis.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PaidOutput {
    pub address: String,
    pub value: u64,
}

/// One node's verdict on a block.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeOutcome {
    /// The node's config name.
    pub node: String,
    pub outcome: Outcome,
}

/// A serialized block as two parts: what the block itself adds (header,
/// transaction count, coinbase) and its template's transactions, shared
/// with the template rather than copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockBytes {
    pub head: Bytes,
    pub transactions: Bytes,
}

impl BlockBytes {
    /// A block held in one buffer.
    pub fn whole(bytes: impl Into<Bytes>) -> BlockBytes {
        BlockBytes {
            head: bytes.into(),
            transactions: Bytes::new(),
        }
    }

    /// The block in one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        [&self.head[..], &self.transactions[..]].concat()
    }
}

/// The node's final word on a block.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    Accepted,
    /// The node already had it.
    Duplicate,
    /// Valid so far, but not on the node's best chain (yet).
    Inconclusive,
    Rejected(String),
}

impl Outcome {
    /// The label on `ndas_blocks_total{outcome=…}`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Rejected(_) => "rejected",
        }
    }
}

/// A template's transactions as written to the log, and their hex for
/// `submitblock`.
#[derive(Clone, Debug)]
pub struct JournaledTransactions {
    /// The log's generation when written: emptying the log starts a new
    /// one, and a block may refer only to transactions of the current one.
    pub(super) generation: u64,
    pub(super) id: u64,
    pub hex: Bytes,
}

impl JournalEntry {
    /// The entry for a block just found, in one buffer.
    pub fn from_block(block: &FoundBlock) -> JournalEntry {
        JournalEntry {
            block: BlockBytes::whole(block.serialize()),
            ..JournalEntry::meta_of(block)
        }
    }

    /// Everything but the block bytes.
    pub(super) fn meta_of(block: &FoundBlock) -> JournalEntry {
        JournalEntry {
            hash: block.hash.to_string(),
            height: block.job.template.height,
            worker: block.worker.to_string(),
            found_at: unix_now(),
            paid: block
                .job
                .paid
                .iter()
                .map(|paid| PaidOutput {
                    address: paid.address.to_string(),
                    value: paid.value,
                })
                .collect(),
            block: BlockBytes::default(),
            outcome: None,
            nodes: Vec::new(),
        }
    }

    pub(super) fn meta(&self, transactions: Option<u64>) -> Vec<u8> {
        json(&FoundMeta {
            hash: self.hash.clone(),
            height: self.height,
            worker: self.worker.clone(),
            found_at: self.found_at,
            paid: self.paid.clone(),
            transactions,
        })
    }
}

/// What a found record carries besides the block.
#[derive(Serialize, Deserialize)]
pub(super) struct FoundMeta {
    pub(super) hash: String,
    pub(super) height: u32,
    pub(super) worker: String,
    pub(super) found_at: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) paid: Vec<PaidOutput>,
    /// The transactions record completing the block, when the record holds
    /// only the block's head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) transactions: Option<u64>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct SettledMeta {
    pub(super) hash: String,
}

#[derive(Serialize, Deserialize)]
pub(super) struct TransactionsMeta {
    pub(super) id: u64,
}

/// A found block just written to the log, not yet flushed.
pub struct FoundWrite {
    pub entry: JournalEntry,
    /// The hex of the block's transactions, when its template had them ready.
    pub transactions_hex: Option<Bytes>,
    pub written: std::io::Result<()>,
}

mod hex_block {
    use super::BlockBytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(block: &BlockBytes, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&faster_hex::hex_string(&block.to_vec()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BlockBytes, D::Error> {
        let text = <&str>::deserialize(deserializer)?;
        hex::decode(text)
            .map(BlockBytes::whole)
            .map_err(serde::de::Error::custom)
    }
}
