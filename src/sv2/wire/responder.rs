//! The Noise responder with NDAS's kept static key.
//!
//! noise_sv2 2.0.0's `Responder` draws its static key from the random
//! source it is given, one connection at a time; it offers no way to give
//! it one. `Responder::new_with_rng` draws the ephemeral key's 32 bytes,
//! then the static key's 32 (its fields in that order), so [`KeptStatic`]
//! hands it fresh bytes for the first and the kept secret for the second.
//! The tests below hold that order to the pinned version: a version that
//! drew them otherwise fails them.

use noise_sv2::Responder;
use rand::{CryptoRng, RngCore};

use super::{text, WireError, CERTIFICATE_VALIDITY};
use crate::sv2::keys::{AuthorityKey, StaticKey};

/// Fresh randomness, except the static key's draw.
struct KeptStatic<'a, R> {
    fresh: R,
    secret: &'a [u8; 32],
    drawn: usize,
}

impl<R: RngCore> RngCore for KeptStatic<'_, R> {
    fn next_u32(&mut self) -> u32 {
        self.drawn += 4;
        self.fresh.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.drawn += 8;
        self.fresh.next_u64()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if self.drawn == 32 && dest.len() == 32 {
            dest.copy_from_slice(self.secret);
        } else {
            self.fresh.fill_bytes(dest);
        }
        self.drawn += dest.len();
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl<R: CryptoRng> CryptoRng for KeptStatic<'_, R> {}

/// A responder for one handshake: a fresh ephemeral key from `fresh`, the
/// kept static key, a certificate the authority signs.
fn with_rng<R: RngCore + CryptoRng>(
    authority: &AuthorityKey,
    kept: &StaticKey,
    fresh: R,
) -> Result<Box<Responder>, WireError> {
    let mut rng = KeptStatic {
        fresh,
        secret: kept.secret(),
        drawn: 0,
    };
    Responder::from_authority_kp_with_rng(
        authority.public(),
        authority.secret(),
        CERTIFICATE_VALIDITY,
        &mut rng,
    )
    .map_err(|e| WireError::Handshake(text(e)))
}

/// A responder for one handshake, its ephemeral key from the system.
pub(super) fn responder(
    authority: &AuthorityKey,
    kept: &StaticKey,
) -> Result<Box<Responder>, WireError> {
    with_rng(authority, kept, rand::thread_rng())
}

#[cfg(test)]
mod tests {
    use super::*;
    use noise_sv2::Initiator;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// The responder's answer to `theirs`, its ephemeral key from `seed`.
    fn answer(kept: &StaticKey, seed: u64, theirs: [u8; 64], now: u32) -> [u8; 234] {
        let authority = AuthorityKey::from_bytes([7; 32]).unwrap();
        let mut responder = with_rng(&authority, kept, StdRng::seed_from_u64(seed)).unwrap();
        let (answer, _) = responder
            .step_1_with_now_rng(theirs, now, &mut StdRng::seed_from_u64(0))
            .unwrap();
        answer
    }

    #[test]
    fn the_handshake_presents_the_kept_static_key_and_a_fresh_ephemeral_one() {
        let authority = AuthorityKey::from_bytes([7; 32]).unwrap();
        let (a, b) = (
            StaticKey::from_bytes([1; 32]).unwrap(),
            StaticKey::from_bytes([2; 32]).unwrap(),
        );
        let mut initiator = Initiator::from_raw_k(*authority.public()).unwrap();
        let theirs = initiator.step_0().unwrap();
        let now = u32::try_from(ndas_core::clock::unix_now()).unwrap() - 60;
        let first = answer(&a, 1, theirs, now);
        // The answer is the ephemeral key (64 bytes), then the static key
        // encrypted (80), then the certificate encrypted (90).
        assert_eq!(first, answer(&a, 1, theirs, now), "the same inputs");
        let other_static = answer(&b, 1, theirs, now);
        assert_eq!(
            first[..64],
            other_static[..64],
            "the ephemeral key is not the kept one"
        );
        assert_ne!(
            first[64..144],
            other_static[64..144],
            "the static key is the kept one"
        );
        let other_ephemeral = answer(&a, 2, theirs, now);
        assert_ne!(
            first[..64],
            other_ephemeral[..64],
            "the ephemeral key is fresh"
        );
        // A client pinning the authority takes the certificate over it.
        initiator.step_2(first).unwrap();
    }
}
