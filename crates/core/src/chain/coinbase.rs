//! The coinbase transaction, split around the extranonce for stratum.
//!
//! Miners rebuild it as `coinb1 | extranonce1 | extranonce2 | coinb2`; that is
//! the transaction's legacy (non-witness) serialization, so its hash is the txid.

use sha2::{Digest, Sha256};

use super::encode::{write_compact_size, write_push, write_script_number};
use super::Hash256;

/// Consensus bound on a coinbase scriptSig's length (`bad-cb-length`).
pub const MAX_SCRIPT_SIG_LEN: usize = 100;

/// The value reserved in the coinbase witness by BIP141; Bitcoin Core uses zeros.
pub const WITNESS_RESERVED_VALUE: [u8; 32] = [0; 32];

/// One transaction output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxOut {
    pub value: u64,
    pub script_pubkey: Vec<u8>,
}

/// What goes into a coinbase.
#[derive(Clone, Debug)]
pub struct CoinbaseSpec<'a> {
    /// Block height, pushed first in the scriptSig as BIP34 requires.
    pub height: u32,
    /// Pool text pushed after the extranonce (e.g. `/NDAS/`).
    pub tag: &'a [u8],
    /// extranonce1 plus extranonce2 bytes.
    pub extranonce_len: usize,
    pub outputs: &'a [TxOut],
    /// Whether the block carries a witness commitment, so the coinbase must
    /// carry the witness reserved value in the block.
    pub witness: bool,
}

/// A coinbase that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoinbaseError {
    #[error("coinbase scriptSig would be {len} bytes, over the consensus limit of {MAX_SCRIPT_SIG_LEN}; shorten mining.coinbase_tag")]
    ScriptSigTooLong { len: usize },
    #[error("extranonce of {0} bytes does not fit one push")]
    ExtranonceSize(usize),
    #[error("coinbase needs at least one output")]
    NoOutputs,
    /// The template leaves less room than this coinbase takes: a block on
    /// it would be refused (`bad-blk-weight`, `bad-blk-sigops`).
    #[error("coinbase of {needed} {unit} does not fit the {room} the template leaves for it")]
    OverTemplateLimit {
        unit: &'static str,
        needed: u64,
        room: u64,
    },
}

/// A coinbase split around its extranonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coinbase {
    coinb1: Vec<u8>,
    coinb2: Vec<u8>,
    extranonce_len: usize,
    witness: bool,
}

impl Coinbase {
    /// Builds the two halves.
    pub fn build(spec: &CoinbaseSpec<'_>) -> Result<Coinbase, CoinbaseError> {
        if spec.extranonce_len == 0 || spec.extranonce_len >= 0x4c {
            return Err(CoinbaseError::ExtranonceSize(spec.extranonce_len));
        }
        if spec.outputs.is_empty() {
            return Err(CoinbaseError::NoOutputs);
        }
        let mut head = Vec::with_capacity(16);
        write_script_number(&mut head, spec.height);
        head.push(spec.extranonce_len as u8);
        // The tag's push: its length byte, and `OP_PUSHDATA1` from 76 bytes
        // on. Measured before it is written, so that a tag of any length
        // (a config value) is refused by name, never asserted on.
        let tag_push = match spec.tag.len() {
            0 => 0,
            len @ 1..0x4c => 1 + len,
            len => 2 + len,
        };
        let script_len = head.len() + spec.extranonce_len + tag_push;
        if script_len > MAX_SCRIPT_SIG_LEN {
            return Err(CoinbaseError::ScriptSigTooLong { len: script_len });
        }
        let mut tail = Vec::with_capacity(tag_push);
        if !spec.tag.is_empty() {
            write_push(&mut tail, spec.tag);
        }

        let mut coinb1 = Vec::with_capacity(64);
        coinb1.extend_from_slice(&1u32.to_le_bytes());
        coinb1.push(1);
        coinb1.extend_from_slice(&[0u8; 32]);
        coinb1.extend_from_slice(&u32::MAX.to_le_bytes());
        write_compact_size(&mut coinb1, script_len as u64);
        coinb1.extend_from_slice(&head);

        let mut coinb2 = tail;
        coinb2.extend_from_slice(&u32::MAX.to_le_bytes());
        write_compact_size(&mut coinb2, spec.outputs.len() as u64);
        for output in spec.outputs {
            coinb2.extend_from_slice(&output.value.to_le_bytes());
            write_compact_size(&mut coinb2, output.script_pubkey.len() as u64);
            coinb2.extend_from_slice(&output.script_pubkey);
        }
        coinb2.extend_from_slice(&0u32.to_le_bytes());
        Ok(Coinbase {
            coinb1,
            coinb2,
            extranonce_len: spec.extranonce_len,
            witness: spec.witness,
        })
    }

    /// A coinbase another party split: an upstream pool's halves, its
    /// extranonce1 already at the end of `coinb1`. Hashed as NDAS's own
    /// are; NDAS never puts it in a block (the pool does).
    pub fn from_parts(coinb1: Vec<u8>, coinb2: Vec<u8>, extranonce_len: usize) -> Coinbase {
        Coinbase {
            coinb1,
            coinb2,
            extranonce_len,
            witness: false,
        }
    }

    /// Everything before the extranonce.
    pub fn coinb1(&self) -> &[u8] {
        &self.coinb1
    }

    /// Everything after the extranonce.
    pub fn coinb2(&self) -> &[u8] {
        &self.coinb2
    }

    /// extranonce1 plus extranonce2 bytes.
    pub fn extranonce_len(&self) -> usize {
        self.extranonce_len
    }

    /// Its weight in the block (BIP141): four units per byte of the legacy
    /// serialization, one per witness byte (marker, flag, the reserved value).
    pub fn weight(&self) -> usize {
        let legacy = self.coinb1.len() + self.extranonce_len + self.coinb2.len();
        4 * legacy + if self.witness { 2 + 1 + 1 + 32 } else { 0 }
    }

    /// The txid for a given extranonce, hashed without building the transaction.
    pub fn txid(&self, extranonce1: &[u8], extranonce2: &[u8]) -> Hash256 {
        debug_assert_eq!(extranonce1.len() + extranonce2.len(), self.extranonce_len);
        let first = Sha256::new()
            .chain_update(&self.coinb1)
            .chain_update(extranonce1)
            .chain_update(extranonce2)
            .chain_update(&self.coinb2)
            .finalize();
        Hash256(Sha256::digest(first).into())
    }

    /// Appends the coinbase as it goes in the block: with the BIP141 marker,
    /// flag and witness reserved value when the block commits to witnesses.
    pub fn write_for_block(&self, extranonce1: &[u8], extranonce2: &[u8], out: &mut Vec<u8>) {
        if !self.witness {
            out.extend_from_slice(&self.coinb1);
            out.extend_from_slice(extranonce1);
            out.extend_from_slice(extranonce2);
            out.extend_from_slice(&self.coinb2);
            return;
        }
        let (locktime_at, version_len) = (self.coinb2.len() - 4, 4);
        out.extend_from_slice(&self.coinb1[..version_len]);
        out.extend_from_slice(&[0x00, 0x01]);
        out.extend_from_slice(&self.coinb1[version_len..]);
        out.extend_from_slice(extranonce1);
        out.extend_from_slice(extranonce2);
        out.extend_from_slice(&self.coinb2[..locktime_at]);
        out.extend_from_slice(&[0x01, 0x20]);
        out.extend_from_slice(&WITNESS_RESERVED_VALUE);
        out.extend_from_slice(&self.coinb2[locktime_at..]);
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::consensus::deserialize;
    use bitcoin::hashes::Hash;

    use super::*;

    fn spec<'a>(outputs: &'a [TxOut], witness: bool) -> CoinbaseSpec<'a> {
        CoinbaseSpec {
            height: 840_000,
            tag: b"/NDAS/",
            extranonce_len: 12,
            outputs,
            witness,
        }
    }

    fn outputs() -> Vec<TxOut> {
        vec![TxOut {
            value: 312_500_000,
            script_pubkey: vec![
                0x00, 0x14, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
            ],
        }]
    }

    #[test]
    fn halves_join_into_a_transaction_the_bitcoin_crate_reads() {
        let outputs = outputs();
        let coinbase = Coinbase::build(&spec(&outputs, false)).unwrap();
        let (en1, en2) = ([1, 2, 3, 4], [9u8; 8]);
        let mut bytes = Vec::new();
        coinbase.write_for_block(&en1, &en2, &mut bytes);
        let tx: bitcoin::Transaction = deserialize(&bytes).unwrap();
        assert!(tx.is_coinbase());
        assert_eq!(tx.output[0].value.to_sat(), 312_500_000);
        let script = tx.input[0].script_sig.as_bytes();
        assert_eq!(&script[..4], &[0x03, 0x40, 0xd1, 0x0c]);
        assert!(script
            .windows(12)
            .any(|w| w == [1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 9]));
        assert_eq!(
            coinbase.txid(&en1, &en2).0,
            tx.compute_txid().to_raw_hash().to_byte_array()
        );
    }

    #[test]
    fn witness_form_carries_reserved_value_and_keeps_the_txid() {
        let outputs = outputs();
        let coinbase = Coinbase::build(&spec(&outputs, true)).unwrap();
        let (en1, en2) = ([0xaa; 4], [0xbb; 8]);
        let mut bytes = Vec::new();
        coinbase.write_for_block(&en1, &en2, &mut bytes);
        let tx: bitcoin::Transaction = deserialize(&bytes).unwrap();
        assert_eq!(tx.input[0].witness.len(), 1);
        assert_eq!(tx.input[0].witness.nth(0).unwrap(), &[0u8; 32]);
        assert_eq!(coinbase.weight(), tx.weight().to_wu() as usize);
        assert_eq!(
            coinbase.txid(&en1, &en2).0,
            tx.compute_txid().to_raw_hash().to_byte_array()
        );
    }

    #[test]
    fn over_long_tag_is_refused_by_name() {
        let outputs = outputs();
        let tag = [b'x'; 90];
        let spec = CoinbaseSpec {
            tag: &tag,
            ..spec(&outputs, false)
        };
        assert_eq!(
            Coinbase::build(&spec),
            Err(CoinbaseError::ScriptSigTooLong { len: 109 })
        );
        // Longer than one push can hold: refused the same way, not asserted on.
        let tag = vec![b'x'; 300];
        let spec = CoinbaseSpec { tag: &tag, ..spec };
        assert_eq!(
            Coinbase::build(&spec),
            Err(CoinbaseError::ScriptSigTooLong {
                len: 4 + 1 + 12 + 302
            })
        );
    }

    #[test]
    fn low_heights_use_small_integer_opcodes() {
        let outputs = outputs();
        let spec = CoinbaseSpec {
            height: 5,
            ..spec(&outputs, false)
        };
        let coinbase = Coinbase::build(&spec).unwrap();
        // version, input count, prevout, sequence-less scriptSig length, OP_5.
        assert_eq!(coinbase.coinb1()[41 + 1], 0x55);
    }
}
