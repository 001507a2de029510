//! The log read back: the blocks still pending, each completed with its
//! template's transactions. The scan keeps only each record's meta and where
//! its body lies; bodies are read at the end, for the pending blocks alone,
//! so start-up needs memory for what it will submit, not for the log.

use std::collections::HashMap;
use std::fs::File;

use bytes::Bytes;

use super::entry::{FoundMeta, SettledMeta, TransactionsMeta};
use super::record::{Kind, Record, Span};
use super::{BlockBytes, JournalEntry};

/// Highest height a record may claim (Bitcoin is near 1,000,000).
const MAX_HEIGHT: u32 = 100_000_000;

/// Whether `hash` is a block hash as NDAS writes it: 64 lowercase hex digits.
pub(super) fn is_block_hash(hash: &str) -> bool {
    hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What the records read so far say.
#[derive(Default)]
pub(super) struct Reading {
    /// Each transactions record's body, by id.
    transactions: HashMap<u64, Span>,
    /// Found records not (yet) followed by a settle record, oldest first.
    pending: Vec<Pending>,
    /// The id the next transactions record gets.
    pub(super) next_transactions_id: u64,
    /// Good records read.
    pub(super) records: u64,
}

struct Pending {
    meta: FoundMeta,
    head: Span,
    transactions: Option<Span>,
}

impl Reading {
    /// Takes in the next record of `file`.
    pub(super) fn add(&mut self, file: &File, record: Record) -> std::io::Result<()> {
        self.records += 1;
        match record.kind {
            Kind::Transactions => match serde_json::from_slice::<TransactionsMeta>(&record.meta) {
                Ok(meta) => {
                    self.next_transactions_id = self.next_transactions_id.max(meta.id + 1);
                    // A suspect one never replaces transactions already read.
                    if !(record.suspect && self.transactions.contains_key(&meta.id)) {
                        self.transactions.insert(meta.id, record.body);
                    }
                }
                Err(error) => tracing::error!(%error, "unreadable transactions record"),
            },
            Kind::Found => match serde_json::from_slice::<FoundMeta>(&record.meta) {
                Ok(meta) if !is_block_hash(&meta.hash) || meta.height > MAX_HEIGHT => {
                    tracing::error!(hash = ?meta.hash, height = meta.height, "found-block record with an impossible hash or height; ignored")
                }
                // Inside a damaged record: kept only if its header hashes to its hash.
                Ok(meta)
                    if record.suspect
                        && !header_hashes_to(&record.body.first(80).read(file)?, &meta.hash) =>
                {
                    tracing::error!(hash = %meta.hash, "found-block record inside a damaged one does not hash to its hash; ignored")
                }
                Ok(meta) => {
                    let transactions = match meta.transactions {
                        None => None,
                        Some(id) => match self.transactions.get(&id) {
                            Some(span) => Some(*span),
                            None => {
                                let head = faster_hex::hex_string(&record.body.read(file)?);
                                tracing::error!(hash = %meta.hash, %head, "journaled block refers to transactions missing from the log; only its header and coinbase are known");
                                return Ok(());
                            }
                        },
                    };
                    self.pending.retain(|p| p.meta.hash != meta.hash);
                    self.pending.push(Pending {
                        meta,
                        head: record.body,
                        transactions,
                    });
                }
                Err(error) => tracing::error!(%error, "unreadable found-block record"),
            },
            Kind::Settled => match serde_json::from_slice::<SettledMeta>(&record.meta) {
                // Nothing to check it by: a block it would settle is
                // submitted again instead (at worst a duplicate).
                Ok(_) if record.suspect => {
                    tracing::warn!("settle record inside a damaged one; ignored")
                }
                Ok(meta) if !is_block_hash(&meta.hash) => {
                    tracing::error!(hash = ?meta.hash, "settle record with an impossible hash; ignored")
                }
                Ok(meta) => self.pending.retain(|p| p.meta.hash != meta.hash),
                Err(error) => tracing::error!(%error, "unreadable settle record"),
            },
        }
        Ok(())
    }

    /// The pending blocks, oldest first, their bytes read from `file`.
    pub(super) fn finish(self, file: &File) -> std::io::Result<Vec<JournalEntry>> {
        self.pending
            .into_iter()
            .map(
                |Pending {
                     meta,
                     head,
                     transactions,
                 }| {
                    Ok(JournalEntry {
                        block: BlockBytes {
                            head: head.read(file)?,
                            transactions: match transactions {
                                Some(span) => span.read(file)?,
                                None => Bytes::new(),
                            },
                        },
                        hash: meta.hash,
                        height: meta.height,
                        worker: meta.worker,
                        found_at: meta.found_at,
                        paid: meta.paid,
                        outcome: None,
                        nodes: Vec::new(),
                    })
                },
            )
            .collect()
    }
}

/// Whether `head` starts with an 80-byte header whose hash is `hash`.
fn header_hashes_to(head: &[u8], hash: &str) -> bool {
    head.get(..80)
        .is_some_and(|header| ndas_core::chain::sha256d(header).to_string() == hash)
}
