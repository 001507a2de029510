//! Double SHA-256 and the 32-byte hash type.

use std::fmt;

use sha2::{Digest, Sha256};

/// A 32-byte hash in internal byte order, the order it has inside blocks.
///
/// Bitcoin Core displays hashes reversed; [`Hash256::from_display_hex`] and
/// the `Display` impl use that order so logs match `bitcoin-cli`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Hash256(pub [u8; 32]);

/// A hex string that is not a 32-byte hash.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected 64 hex characters for a 32-byte hash")]
pub struct HashHexError;

impl Hash256 {
    /// The all-zero hash: the coinbase's wtxid in the witness merkle tree.
    pub const ZERO: Hash256 = Hash256([0; 32]);

    /// Parses a hash written as Bitcoin Core displays it (reversed).
    pub fn from_display_hex(s: &str) -> Result<Self, HashHexError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| HashHexError)?;
        bytes.reverse();
        Ok(Hash256(bytes))
    }

    /// The bytes in internal order.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut reversed = self.0;
        reversed.reverse();
        f.write_str(&hex::encode(reversed))
    }
}

impl fmt::Debug for Hash256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash256({self})")
    }
}

/// SHA-256 applied twice: the hash of headers, transactions and merkle nodes.
pub fn sha256d(data: &[u8]) -> Hash256 {
    let first = Sha256::digest(data);
    Hash256(Sha256::digest(first).into())
}

// The hot path below calls the SHA-256 compression function directly, with
// the padding of its fixed-size inputs precomputed: a merkle node is exactly
// 3 compressions and a header exactly 3, with no buffering in between.

const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The padding block of a 64-byte message (bit length 512).
const PAD_64: [u8; 64] = {
    let mut block = [0u8; 64];
    block[0] = 0x80;
    block[62] = 0x02;
    block
};

#[inline(always)]
fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::compress256(
        state,
        std::slice::from_ref(sha2::digest::generic_array::GenericArray::from_slice(block)),
    );
}

/// The second SHA-256 of sha256d: over the 32-byte first digest.
#[inline(always)]
fn second_round(first: &[u32; 8]) -> Hash256 {
    let mut block = [0u8; 64];
    for (chunk, word) in block.chunks_exact_mut(4).zip(first) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    block[32] = 0x80;
    block[62] = 0x01; // bit length 256
    let mut state = IV;
    compress(&mut state, &block);
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    Hash256(out)
}

/// The parent of two merkle nodes: `sha256d(left || right)`.
#[inline]
pub fn merkle_parent(left: &Hash256, right: &Hash256) -> Hash256 {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(&left.0);
    block[32..].copy_from_slice(&right.0);
    let mut state = IV;
    compress(&mut state, &block);
    compress(&mut state, &PAD_64);
    second_round(&state)
}

/// sha256d of an 80-byte block header.
#[inline]
pub fn sha256d_header(header: &[u8; 80]) -> Hash256 {
    let mut state = IV;
    let (first, rest) = header.split_at(64);
    compress(&mut state, first.try_into().expect("64 of 80 bytes"));
    let mut block = [0u8; 64];
    block[..16].copy_from_slice(rest);
    block[16] = 0x80;
    block[62] = 0x02;
    block[63] = 0x80; // bit length 640
    compress(&mut state, &block);
    second_round(&state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256d_of_empty_input_is_the_known_value() {
        assert_eq!(
            hex::encode(sha256d(b"").0),
            "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
        );
    }

    #[test]
    fn hand_rolled_fixed_size_hashes_match_the_library() {
        let mut seed = sha256d(b"seed");
        for _ in 0..100 {
            let other = sha256d(&seed.0);
            let mut pair = [0u8; 64];
            pair[..32].copy_from_slice(&seed.0);
            pair[32..].copy_from_slice(&other.0);
            assert_eq!(merkle_parent(&seed, &other), sha256d(&pair));
            let mut header = [0u8; 80];
            header[..32].copy_from_slice(&seed.0);
            header[32..64].copy_from_slice(&other.0);
            header[64..].copy_from_slice(&seed.0[..16]);
            assert_eq!(sha256d_header(&header), sha256d(&header));
            seed = other;
        }
    }

    #[test]
    fn display_hex_round_trips_reversed() {
        let shown = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
        let hash = Hash256::from_display_hex(shown).unwrap();
        assert_eq!(hash.0[31], 0x00);
        assert_eq!(hash.0[0], 0x6f);
        assert_eq!(hash.to_string(), shown);
        assert_eq!(Hash256::from_display_hex("00"), Err(HashHexError));
    }
}
