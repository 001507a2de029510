//! Merkle trees: the stratum branch, the root, and the BIP141 witness commitment.

use super::hash::{merkle_parent, sha256d};
use super::Hash256;

/// The stratum merkle branch for a coinbase at index 0 followed by `txids`.
///
/// Folding the coinbase txid with these hashes in order gives the block's
/// merkle root. O(n) over the transaction count: each level is built once.
pub fn branch(txids: &[Hash256]) -> Vec<Hash256> {
    let mut branch = Vec::new();
    // The level without its first element, which depends on the coinbase.
    let mut level: Vec<Hash256> = txids.to_vec();
    while !level.is_empty() {
        branch.push(level[0]);
        // Pairs after the first element; an odd level repeats its last hash.
        let rest = &level[1..];
        let mut next = Vec::with_capacity(rest.len().div_ceil(2));
        for pair in rest.chunks(2) {
            let right = pair.get(1).unwrap_or(&pair[0]);
            next.push(merkle_parent(&pair[0], right));
        }
        level = next;
    }
    branch
}

/// The merkle root from the coinbase txid and the stratum branch.
#[inline]
pub fn root_from_branch(coinbase_txid: &Hash256, branch: &[Hash256]) -> Hash256 {
    branch
        .iter()
        .fold(*coinbase_txid, |acc, step| merkle_parent(&acc, step))
}

/// The merkle root of a full list of hashes (Bitcoin Core's `ComputeMerkleRoot`).
pub fn root(hashes: &[Hash256]) -> Hash256 {
    if hashes.is_empty() {
        return Hash256::ZERO;
    }
    let mut level = hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| merkle_parent(&pair[0], pair.get(1).unwrap_or(&pair[0])))
            .collect();
    }
    level[0]
}

/// The BIP141 commitment: `sha256d(witness_root || reserved)`, where the
/// witness root puts a zero hash in the coinbase's place
/// ([BIP141](https://github.com/bitcoin/bips/blob/master/bip-0141.mediawiki#commitment-structure)).
pub fn witness_commitment(wtxids: &[Hash256], reserved: &[u8; 32]) -> Hash256 {
    let mut leaves = Vec::with_capacity(wtxids.len() + 1);
    leaves.push(Hash256::ZERO);
    leaves.extend_from_slice(wtxids);
    let witness_root = root(&leaves);
    let mut data = [0u8; 64];
    data[..32].copy_from_slice(&witness_root.0);
    data[32..].copy_from_slice(reserved);
    sha256d(&data)
}

/// The scriptPubKey of the commitment output: `OP_RETURN 0x24 aa21a9ed <commitment>`.
pub fn witness_commitment_script(commitment: &Hash256) -> Vec<u8> {
    let mut script = Vec::with_capacity(38);
    script.extend_from_slice(&[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]);
    script.extend_from_slice(&commitment.0);
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> Hash256 {
        sha256d(&[n])
    }

    #[test]
    fn branch_folds_to_the_full_root_for_every_size() {
        for count in 0..40u8 {
            let txids: Vec<Hash256> = (1..=count).map(hash).collect();
            let coinbase = hash(0);
            let mut all = vec![coinbase];
            all.extend_from_slice(&txids);
            let folded = root_from_branch(&coinbase, &branch(&txids));
            assert_eq!(folded, root(&all), "{count} transactions");
        }
    }

    #[test]
    fn branch_depth_is_the_tree_depth() {
        assert_eq!(branch(&[]).len(), 0);
        assert_eq!(branch(&[hash(1)]).len(), 1);
        let txids: Vec<Hash256> = (0..=254).map(hash).collect();
        assert_eq!(branch(&txids).len(), 8);
    }
}
