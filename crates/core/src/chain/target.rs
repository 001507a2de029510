//! 256-bit proof-of-work targets.
//!
//! Whether a hash is a share or a block is decided by comparing 256-bit
//! integers, never floats; difficulty (a float) exists for display and vardiff.

use std::cmp::Ordering;

use super::Hash256;

/// A 256-bit unsigned target; a hash meets it when, read as a little-endian
/// integer, it is at or below the target.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Target {
    /// Limbs, least significant first.
    limbs: [u64; 4],
}

/// A compact `bits` value that encodes no valid target.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompactError {
    #[error("compact target {0:08x} is negative")]
    Negative(u32),
    #[error("compact target {0:08x} overflows 256 bits")]
    Overflow(u32),
    #[error("compact target {0:08x} is zero")]
    Zero(u32),
}

/// `2^208`, the scale of the difficulty-1 target `0xffff * 2^208`.
const TWO_POW_208: f64 = 4.113761393303015e62;
const TWO_POW_64: f64 = 18446744073709551616.0;

impl Target {
    /// The largest target: every hash meets it.
    pub const MAX: Target = Target {
        limbs: [u64::MAX; 4],
    };

    /// The difficulty-1 target, `0x00000000ffff0000…`.
    pub const DIFF1: Target = Target {
        limbs: [0, 0, 0, 0x0000_0000_ffff_0000],
    };

    /// Reads a hash as the little-endian integer it stands for.
    pub fn from_hash(hash: &Hash256) -> Target {
        Target::from_le_bytes(&hash.0)
    }

    /// A target from 32 little-endian bytes.
    pub fn from_le_bytes(bytes: &[u8; 32]) -> Target {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            *limb = u64::from_le_bytes(word);
        }
        Target { limbs }
    }

    /// A target from 32 big-endian bytes (as the template's `target` field shows it).
    pub fn from_be_bytes(bytes: &[u8; 32]) -> Target {
        let mut le = *bytes;
        le.reverse();
        Target::from_le_bytes(&le)
    }

    /// The 32 big-endian bytes of the target.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.limbs.iter().enumerate() {
            out[24 - i * 8..32 - i * 8].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// Decodes the header's compact `bits` ([Bitcoin Core `arith_uint256::SetCompact`]).
    ///
    /// [Bitcoin Core `arith_uint256::SetCompact`]: https://github.com/bitcoin/bitcoin/blob/master/src/arith_uint256.cpp
    pub fn from_compact(bits: u32) -> Result<Target, CompactError> {
        let exponent = bits >> 24;
        let mantissa = bits & 0x007f_ffff;
        if mantissa != 0 && bits & 0x0080_0000 != 0 {
            return Err(CompactError::Negative(bits));
        }
        if mantissa == 0 {
            return Err(CompactError::Zero(bits));
        }
        if exponent <= 3 {
            let value = u64::from(mantissa >> (8 * (3 - exponent)));
            if value == 0 {
                return Err(CompactError::Zero(bits));
            }
            return Ok(Target {
                limbs: [value, 0, 0, 0],
            });
        }
        let shift = 8 * (exponent - 3);
        let significant_bits = 32 - mantissa.leading_zeros();
        if shift + significant_bits > 256 {
            return Err(CompactError::Overflow(bits));
        }
        Ok(Target::from_u64_shifted(u64::from(mantissa), shift))
    }

    /// The target for a (possibly fractional) pool difficulty: `DIFF1 / difficulty`,
    /// saturating at [`Target::MAX`] for difficulties below about `2.3e-10`.
    ///
    /// `difficulty` must be finite and positive; callers validate it at the edge.
    pub fn from_difficulty(difficulty: f64) -> Target {
        debug_assert!(difficulty.is_finite() && difficulty > 0.0);
        let value = 65535.0 / difficulty * TWO_POW_208;
        if value.is_nan() || value >= 2f64.powi(256) {
            return Target::MAX;
        }
        if value < 1.0 {
            return Target {
                limbs: [1, 0, 0, 0],
            };
        }
        let bits = value.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as i32 - 1075;
        let mantissa = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
        if exponent >= 0 {
            Target::from_u64_shifted(mantissa, exponent as u32)
        } else {
            Target {
                limbs: [mantissa >> (-exponent) as u32, 0, 0, 0],
            }
        }
    }

    /// The difficulty this target stands for: `DIFF1 / target`.
    pub fn difficulty(&self) -> f64 {
        65535.0 * TWO_POW_208 / self.to_f64()
    }

    /// True when `hash`, as a little-endian integer, is at or below this target.
    #[inline]
    pub fn is_met_by(&self, hash: &Hash256) -> bool {
        Target::from_hash(hash) <= *self
    }

    /// The target as a float, for display and difficulty arithmetic only.
    pub fn to_f64(&self) -> f64 {
        self.limbs
            .iter()
            .rev()
            .fold(0.0, |acc, &limb| acc * TWO_POW_64 + limb as f64)
    }

    fn from_u64_shifted(value: u64, shift: u32) -> Target {
        let mut limbs = [0u64; 4];
        let limb = (shift / 64) as usize;
        let bit = shift % 64;
        limbs[limb] = value << bit;
        if bit != 0 && limb + 1 < 4 {
            limbs[limb + 1] = value >> (64 - bit);
        }
        Target { limbs }
    }
}

/// The difficulty a hash achieved: `DIFF1 / hash`, for best-share display.
pub fn hash_difficulty(hash: &Hash256) -> f64 {
    let value = Target::from_hash(hash).to_f64().max(1.0);
    65535.0 * TWO_POW_208 / value
}

impl Ord for Target {
    fn cmp(&self, other: &Self) -> Ordering {
        self.limbs.iter().rev().cmp(other.limbs.iter().rev())
    }
}

impl PartialOrd for Target {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", hex::encode(self.to_be_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn be_hex(target: Target) -> String {
        hex::encode(target.to_be_bytes())
    }

    #[test]
    fn compact_decodes_genesis_and_regtest_bits() {
        assert_eq!(
            be_hex(Target::from_compact(0x1d00ffff).unwrap()),
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(
            be_hex(Target::from_compact(0x207fffff).unwrap()),
            "7fffff0000000000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(Target::from_compact(0x1d00ffff).unwrap(), Target::DIFF1);
    }

    #[test]
    fn compact_rejects_negative_zero_and_overflow() {
        assert_eq!(
            Target::from_compact(0x04923456),
            Err(CompactError::Negative(0x04923456))
        );
        assert_eq!(
            Target::from_compact(0x1d000000),
            Err(CompactError::Zero(0x1d000000))
        );
        assert_eq!(
            Target::from_compact(0x22012345),
            Err(CompactError::Overflow(0x22012345))
        );
        assert_eq!(
            Target::from_compact(0x01003456),
            Err(CompactError::Zero(0x01003456))
        );
    }

    #[test]
    fn compact_agrees_with_bitcoin_crate() {
        for bits in [
            0x1d00ffffu32,
            0x1b0404cb,
            0x17034219,
            0x207fffff,
            0x1a05db8b,
            0x03123456,
        ] {
            let ours = Target::from_compact(bits).unwrap().to_be_bytes();
            let theirs =
                bitcoin::Target::from_compact(bitcoin::CompactTarget::from_consensus(bits));
            assert_eq!(ours, theirs.to_be_bytes(), "bits {bits:08x}");
        }
    }

    #[test]
    fn difficulty_one_is_diff1_and_round_trips() {
        assert_eq!(Target::from_difficulty(1.0), Target::DIFF1);
        assert!((Target::DIFF1.difficulty() - 1.0).abs() < 1e-12);
        let target = Target::from_difficulty(1024.0);
        assert!((target.difficulty() - 1024.0).abs() < 1e-9);
        assert_eq!(
            be_hex(Target::from_difficulty(256.0)),
            "0000000000ffff00000000000000000000000000000000000000000000000000"
        );
    }

    #[test]
    fn fractional_difficulty_reaches_regtest_and_saturates_below() {
        let regtest = Target::from_compact(0x207fffff).unwrap();
        let regtest_difficulty = regtest.difficulty();
        assert!((regtest_difficulty - 4.656542373906925e-10).abs() < 1e-20);
        let near = Target::from_difficulty(regtest_difficulty);
        assert!(near.difficulty() / regtest_difficulty - 1.0 < 1e-12);
        assert_eq!(Target::from_difficulty(1e-12), Target::MAX);
    }

    #[test]
    fn hash_meets_target_as_little_endian_integer() {
        let target = Target::from_compact(0x1d00ffff).unwrap();
        let genesis = Hash256::from_display_hex(
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
        )
        .unwrap();
        assert!(target.is_met_by(&genesis));
        let mut too_high = genesis;
        too_high.0[28] = 1;
        assert!(!target.is_met_by(&too_high));
        assert!(hash_difficulty(&genesis) > 2536.0 && hash_difficulty(&genesis) < 2537.0);
    }
}
