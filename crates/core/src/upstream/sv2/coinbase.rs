//! An SV2 pool's coinbase as Stratum V1 miners hash it.
//!
//! A Stratum V2 pool may send an extended job's coinbase serialized with
//! its BIP141 witness: the marker and flag after the version, the witness
//! reserved value before the lock time (the Stratum Reference
//! Implementation's translator strips it for its V1 miners, as its pool
//! did not; its pool 0.7.0 sends it stripped). A Stratum V1 miner hashes coinb1, its extranonce and
//! coinb2 as the transaction's id, which is of the serialization without
//! the witness: so the halves are cut again from the coinbase without it.

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::Transaction;

/// The halves around an `extranonce_len`-byte extranonce of the coinbase
/// the pool's `prefix` and `suffix` make, without the witness; as they
/// are when the pool sent none.
pub(super) fn without_witness(
    prefix: &[u8],
    suffix: &[u8],
    extranonce_len: usize,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    // Version (4 bytes), then the marker 0 and flag 1 of BIP144.
    if prefix.get(4..6) != Some(&[0, 1][..]) {
        return Ok((prefix.to_vec(), suffix.to_vec()));
    }
    let mut whole = Vec::with_capacity(prefix.len() + extranonce_len + suffix.len());
    whole.extend_from_slice(prefix);
    whole.resize(prefix.len() + extranonce_len, 0);
    whole.extend_from_slice(suffix);
    let mut tx: Transaction =
        deserialize(&whole).map_err(|e| format!("the coinbase is not a transaction ({e})"))?;
    if tx.input.len() != 1 {
        return Err(format!("a coinbase of {} inputs", tx.input.len()));
    }
    for input in &mut tx.input {
        input.witness.clear();
    }
    let stripped = serialize(&tx);
    // The same bytes less the marker and flag up to the extranonce.
    let start = prefix.len() - 2;
    let end = start + extranonce_len;
    let same_prefix =
        stripped.get(..4) == Some(&prefix[..4]) && stripped.get(4..start) == Some(&prefix[6..]);
    if !same_prefix
        || stripped
            .get(start..end)
            .is_none_or(|e| e.iter().any(|b| *b != 0))
    {
        return Err("the extranonce is not covered by the coinbase's id".into());
    }
    Ok((stripped[..start].to_vec(), stripped[end..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    /// A segwit coinbase as a pool builds one: height and an 8-byte
    /// extranonce in the scriptSig, a payout and a witness commitment.
    fn coinbase(extranonce: [u8; 8]) -> Transaction {
        use bitcoin::{absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, TxIn, TxOut};
        let mut script = vec![3, 0x10, 0x27, 0];
        script.extend_from_slice(&extranonce);
        script.extend_from_slice(b"/pool/");
        let mut witness = bitcoin::Witness::new();
        witness.push([0u8; 32]);
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::from_bytes(script),
                sequence: Sequence::MAX,
                witness,
            }],
            output: vec![
                TxOut {
                    value: Amount::from_sat(5_000_000_000),
                    script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
                },
                TxOut {
                    value: Amount::ZERO,
                    script_pubkey: ScriptBuf::from_bytes(vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]),
                },
            ],
        }
    }

    #[test]
    fn a_witness_coinbase_is_cut_again_so_v1_miners_hash_its_txid() {
        let sent = serialize(&coinbase([0; 8]));
        // Where the pool cuts: version, marker, flag, one input, the null
        // outpoint, the scriptSig's length and its height push.
        let cut = 4 + 2 + 1 + 36 + 1 + 4;
        let (prefix, suffix) = (&sent[..cut], &sent[cut + 8..]);
        let (coinb1, coinb2) = without_witness(prefix, suffix, 8).unwrap();
        let extranonce = [1, 2, 3, 4, 5, 6, 7, 8];
        let mined = [&coinb1[..], &extranonce, &coinb2].concat();
        let txid = bitcoin::Txid::hash(&mined);
        assert_eq!(txid, coinbase(extranonce).compute_txid());
        assert_ne!(
            mined,
            serialize(&coinbase(extranonce)),
            "the witness is gone"
        );
    }

    #[test]
    fn a_coinbase_without_witness_is_kept_and_a_broken_one_refused() {
        let mut plain = coinbase([0; 8]);
        plain.input[0].witness.clear();
        let sent = serialize(&plain);
        let cut = 4 + 1 + 36 + 1 + 4;
        let (prefix, suffix) = (&sent[..cut], &sent[cut + 8..]);
        assert_eq!(
            without_witness(prefix, suffix, 8).unwrap(),
            (prefix.to_vec(), suffix.to_vec())
        );
        let sent = serialize(&coinbase([0; 8]));
        let cut = 4 + 2 + 1 + 36 + 1 + 4;
        let why = without_witness(&sent[..cut], &sent[cut + 8..sent.len() - 3], 8).unwrap_err();
        assert!(why.contains("not a transaction"), "{why}");
        // An extranonce the pool placed in the witness, which the id
        // does not cover.
        let end = sent.len() - 4;
        let why = without_witness(&sent[..end - 8], &sent[end..], 8).unwrap_err();
        assert!(why.contains("not covered by the coinbase's id"), "{why}");
    }
}
