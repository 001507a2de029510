//! Who a coinbase pays: the operator's split outputs first, the rest to the
//! miner's (or the pool's) address, the witness commitment last.

use std::sync::Arc;

use crate::chain::address::{payout_script, AddressError};
use crate::chain::coinbase::{Coinbase, CoinbaseSpec, TxOut};
use crate::chain::merkle::witness_commitment_script;
use crate::chain::Network;

/// The least `-blockreservedweight` Bitcoin Core takes; its default is
/// 8000 (since Core 29): a template leaves that much for the block header,
/// the transaction count and the coinbase, no more.
pub const MIN_BLOCK_RESERVED_WEIGHT: usize = 2000;
/// Of the reservation: the header (80 bytes) and the longest transaction count (5 bytes).
pub const HEADER_AND_COUNT_WEIGHT: usize = 4 * (80 + 5);
/// Longest scriptPubKey a payout can have (P2WSH and P2TR: 34 bytes).
pub const LONGEST_PAYOUT_SCRIPT: usize = 34;
/// Parts of the reward in basis points.
pub const BASIS_POINTS: u64 = 10_000;

/// An address a coinbase pays, parsed once.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Payout {
    /// As the operator or the miner wrote it.
    pub address: Arc<str>,
    pub script: Arc<[u8]>,
}

impl Payout {
    /// `address` on `network`, or why it cannot be paid.
    pub fn parse(address: &str, network: Network) -> Result<Payout, AddressError> {
        let script = payout_script(address, network)?;
        Ok(Payout {
            address: address.into(),
            script: script.into(),
        })
    }
}

/// A part of every block's reward paid to an address of the operator's
/// (a fee, a donation), before the miner's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub payout: Payout,
    /// Out of [`BASIS_POINTS`]: 150 is 1.5 %.
    pub basis_points: u32,
}

/// An output of a job's coinbase other than the witness commitment: who a
/// block on it pays, and how much.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paid {
    pub address: Arc<str>,
    pub value: u64,
}

/// The outputs of a coinbase worth `value`: each split its part (rounded
/// down), a split below its script's dust threshold folded into the main
/// output, the main output the rest, and the witness commitment last (where
/// Core puts it; BIP141 takes the last output that matches). The values add
/// up to `value` exactly. With them, who each output but the commitment pays.
pub fn reward_outputs(
    value: u64,
    splits: &[Split],
    main: &Payout,
    commitment: Option<&crate::chain::Hash256>,
) -> (Vec<TxOut>, Vec<Paid>) {
    let mut outputs = Vec::with_capacity(splits.len() + 2);
    let mut paid = Vec::with_capacity(splits.len() + 1);
    let mut rest = value;
    for split in splits {
        // u128: value × basis points cannot overflow.
        let part =
            (u128::from(value) * u128::from(split.basis_points) / u128::from(BASIS_POINTS)) as u64;
        if part == 0 || part < dust_threshold(&split.payout.script) {
            continue;
        }
        rest -= part;
        paid.push(Paid {
            address: split.payout.address.clone(),
            value: part,
        });
        outputs.push(TxOut {
            value: part,
            script_pubkey: split.payout.script.to_vec(),
        });
    }
    paid.push(Paid {
        address: main.address.clone(),
        value: rest,
    });
    outputs.push(TxOut {
        value: rest,
        script_pubkey: main.script.to_vec(),
    });
    if let Some(commitment) = commitment {
        outputs.push(TxOut {
            value: 0,
            script_pubkey: witness_commitment_script(commitment),
        });
    }
    (outputs, paid)
}

/// The least value Core relays to `script` (its dust threshold at 3 sat/vB).
fn dust_threshold(script: &[u8]) -> u64 {
    bitcoin::Script::from_bytes(script)
        .minimal_non_dust()
        .to_sat()
}

/// The weight of the largest coinbase these settings can build: the longest
/// scriptSig the tag and extranonce make, every split paid, a main output of
/// `main_script_len` bytes, a witness commitment. Compared at config load
/// with [`coinbase_weight_budget`].
pub fn worst_case_weight(
    tag: &[u8],
    extranonce_len: usize,
    splits: &[Split],
    main_script_len: usize,
) -> Result<usize, crate::chain::coinbase::CoinbaseError> {
    let mut outputs: Vec<TxOut> = splits
        .iter()
        .map(|split| TxOut {
            value: u64::MAX,
            script_pubkey: split.payout.script.to_vec(),
        })
        .collect();
    outputs.push(TxOut {
        value: u64::MAX,
        script_pubkey: vec![0; main_script_len],
    });
    outputs.push(TxOut {
        value: 0,
        script_pubkey: witness_commitment_script(&crate::chain::Hash256([0; 32])),
    });
    let coinbase = Coinbase::build(&CoinbaseSpec {
        // The longest BIP34 push: a 4-byte height.
        height: u32::MAX >> 1,
        tag,
        extranonce_len,
        outputs: &outputs,
        witness: true,
    })?;
    Ok(coinbase.weight())
}

/// Room for the coinbase in a template made with `-blockreservedweight=reserved`.
pub fn coinbase_weight_budget(reserved: usize) -> usize {
    reserved.saturating_sub(HEADER_AND_COUNT_WEIGHT)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEE: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
    const MINER: &str = "bcrt1q6rz28mcfaxtmd6v789l9rrlrusdprr9pz3cppk";

    fn split(basis_points: u32) -> Split {
        Split {
            payout: Payout::parse(FEE, Network::Regtest).unwrap(),
            basis_points,
        }
    }

    fn miner() -> Payout {
        Payout::parse(MINER, Network::Regtest).unwrap()
    }

    #[test]
    fn a_split_is_paid_first_and_the_values_add_up_to_the_satoshi() {
        let commitment = crate::chain::Hash256([7; 32]);
        let (outputs, paid) =
            reward_outputs(312_500_001, &[split(150)], &miner(), Some(&commitment));
        assert_eq!(paid.len(), 2);
        assert_eq!((&*paid[0].address, paid[0].value), (FEE, 4_687_500));
        assert_eq!(&*paid[1].address, MINER);
        assert_eq!(outputs.len(), 3);
        // 1.5 % of 312,500,001, rounded down; the miner has the rest.
        assert_eq!(outputs[0].value, 4_687_500);
        assert_eq!(&outputs[0].script_pubkey[..], &*split(150).payout.script);
        assert_eq!(outputs[1].value, 312_500_001 - 4_687_500);
        assert_eq!(&outputs[1].script_pubkey[..], &*miner().script);
        assert_eq!(outputs[2].value, 0);
        assert_eq!(
            outputs[2].script_pubkey[..6],
            [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]
        );
        assert_eq!(outputs.iter().map(|o| o.value).sum::<u64>(), 312_500_001);
    }

    #[test]
    fn a_dust_sized_split_is_folded_into_the_main_output() {
        // 1 bp of 2,000,000 sat is 200 sat: below P2WPKH's 294.
        let (outputs, paid) = reward_outputs(2_000_000, &[split(1), split(5000)], &miner(), None);
        assert_eq!(outputs.len(), 2);
        assert_eq!(paid[1].value, 1_000_000);
        assert_eq!(outputs[0].value, 1_000_000);
        assert_eq!(outputs[1].value, 1_000_000);
        // With no reward at all (regtest after its halvings, no fees).
        let (outputs, _) = reward_outputs(0, &[split(150)], &miner(), None);
        assert_eq!(outputs.len(), 1);
        assert_eq!(outputs[0].value, 0);
    }

    #[test]
    fn the_worst_case_grows_with_each_split_and_the_budget_holds_dozens() {
        let one = worst_case_weight(b"/NDAS/", 12, &[split(100)], LONGEST_PAYOUT_SCRIPT).unwrap();
        let two = worst_case_weight(
            b"/NDAS/",
            12,
            &[split(100), split(100)],
            LONGEST_PAYOUT_SCRIPT,
        )
        .unwrap();
        // A P2WPKH output: 8 value bytes, 1 length, 22 script, four weight units each.
        assert_eq!(two - one, 4 * 31);
        let budget = coinbase_weight_budget(8000);
        assert_eq!(budget, 7660);
        let many = vec![split(1); 40];
        assert!(worst_case_weight(b"/NDAS/", 12, &many, 34).unwrap() < budget);
        let too_many = vec![split(1); 70];
        assert!(worst_case_weight(b"/NDAS/", 12, &too_many, 34).unwrap() > budget);
    }
}
