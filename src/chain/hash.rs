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

/// The parent of two merkle nodes: `sha256d(left || right)`.
pub fn merkle_parent(left: &Hash256, right: &Hash256) -> Hash256 {
    let mut hasher = Sha256::new();
    hasher.update(left.0);
    hasher.update(right.0);
    Hash256(Sha256::digest(hasher.finalize()).into())
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
    fn display_hex_round_trips_reversed() {
        let shown = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
        let hash = Hash256::from_display_hex(shown).unwrap();
        assert_eq!(hash.0[31], 0x00);
        assert_eq!(hash.0[0], 0x6f);
        assert_eq!(hash.to_string(), shown);
        assert_eq!(Hash256::from_display_hex("00"), Err(HashHexError));
    }
}
