//! The 80-byte block header.

use super::{sha256d, Hash256};

/// The version bits miners may roll: BIP320 takes bits 13–28 out of
/// soft-fork signalling for exactly this ([BIP320]).
///
/// [BIP320]: https://github.com/bitcoin/bips/blob/master/bip-0320.mediawiki
pub const BIP320_MASK: u32 = 0x1fff_e000;

/// A block header's fields; serialized little-endian as consensus demands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub prev_hash: Hash256,
    pub merkle_root: Hash256,
    pub time: u32,
    pub bits: u32,
    pub nonce: u32,
}

impl Header {
    /// The 80 bytes that are hashed and sent to the node.
    pub fn serialize(&self) -> [u8; 80] {
        let mut out = [0u8; 80];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(&self.prev_hash.0);
        out[36..68].copy_from_slice(&self.merkle_root.0);
        out[68..72].copy_from_slice(&self.time.to_le_bytes());
        out[72..76].copy_from_slice(&self.bits.to_le_bytes());
        out[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// The block hash.
    pub fn hash(&self) -> Hash256 {
        sha256d(&self.serialize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Hash256 {
        Hash256::from_display_hex(s).unwrap()
    }

    #[test]
    fn genesis_header_hashes_to_the_genesis_block() {
        let genesis = Header {
            version: 1,
            prev_hash: Hash256::ZERO,
            merkle_root: h("4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"),
            time: 1231006505,
            bits: 0x1d00ffff,
            nonce: 2083236893,
        };
        assert_eq!(
            genesis.hash().to_string(),
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
    }

    #[test]
    fn block_125552_header_hashes_to_its_known_hash() {
        let header = Header {
            version: 1,
            prev_hash: h("00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81"),
            merkle_root: h("2b12fcf1b09288fcaff797d71e950e71ae42b91e8bdb2304758dfcffc2b620e3"),
            time: 1305998791,
            bits: 0x1a44b9f2,
            nonce: 2504433986,
        };
        assert_eq!(
            header.hash().to_string(),
            "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d"
        );
        let target = crate::chain::Target::from_compact(header.bits).unwrap();
        assert!(target.is_met_by(&header.hash()));
    }
}
