//! Share validation against the `bitcoin` crate, on Bitcoin Core's own segwit
//! templates: the block NDAS assembles must reproduce Core's merkle root and
//! witness commitment and carry Core's transactions in Core's order.

use std::sync::Arc;

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use serde_json::Value;

use super::*;
use crate::stratum::method::{Extranonce2, JobId};
use crate::testkit::find;
use crate::work::{Extranonce1, JobConfig};
use crate::FoundBlock;

fn core_job(fixture: &str) -> Arc<Job> {
    let raw: Value = serde_json::from_str(fixture).unwrap();
    let template = crate::template::Template::from_json(raw).unwrap();
    let config = JobConfig {
        // P2WPKH, as an operator paying a bc1q… address would have.
        payout_script: hex::decode("0014f5e19ce4798d4fa87b1de99bc4d8557a6264f610").unwrap(),
        coinbase_tag: b"/NDAS/".to_vec(),
        extranonce2_size: 8,
        splits: Vec::new(),
    };
    Arc::new(Job::build(JobId(1), Arc::new(template), &config).unwrap())
}

const CORE_121: &str =
    include_str!("../../../../tests/fixtures/core-regtest-gbt-height121-60tx.json");
const CORE_226: &str =
    include_str!("../../../../tests/fixtures/core-regtest-gbt-height226-3500tx.json");
const EXTRANONCE1: Extranonce1 = Extranonce1([9, 0, 0, 1]);

fn submit_of(share: &crate::client::Share) -> Submit {
    Submit {
        worker: "w".into(),
        job_id: Some(JobId(1)),
        extranonce2: Extranonce2::from_bytes(&share.extranonce2).unwrap(),
        ntime: share.ntime,
        nonce: share.nonce,
        version_bits: share.version_bits,
    }
}

fn context(target: &Target) -> ShareContext<'_> {
    ShareContext {
        extranonce1: &EXTRANONCE1,
        extranonce2_size: 8,
        version_mask: 0x1fff_e000,
        target,
        now_unix: 1_795_486_000,
    }
}

#[test]
fn segwit_block_matches_cores_and_passes_the_bitcoin_crate() {
    let job = core_job(CORE_121);
    let share = find(&job, [7; 8], Some(0x0040_0000), |s| s.is_block);
    let accepted = validate(&job, &submit_of(&share), &context(&Target::MAX)).unwrap();
    assert_eq!(accepted.hash.0, share.hash.to_byte_array());
    assert!(accepted.is_block);

    let found = FoundBlock {
        job: job.clone(),
        header: accepted.header,
        hash: accepted.hash,
        extranonce1: EXTRANONCE1,
        extranonce2: Extranonce2::from_bytes(&share.extranonce2).unwrap(),
        worker: "w".into(),
        received: std::time::Instant::now(),
    };
    let block: bitcoin::Block = deserialize(&found.serialize()).unwrap();
    assert!(block.check_merkle_root());
    assert!(
        block.check_witness_commitment(),
        "witness commitment must verify"
    );
    assert!(block.header.validate_pow(block.header.target()).is_ok());
    assert_eq!(block.bip34_block_height().unwrap(), 121);

    let core_hex = include_str!("../../../../tests/fixtures/core-regtest-block-height121-60tx.hex");
    let core: bitcoin::Block = deserialize(&hex::decode(core_hex.trim()).unwrap()).unwrap();
    assert_eq!(block.txdata.len(), core.txdata.len());
    for (ours, theirs) in block.txdata[1..].iter().zip(&core.txdata[1..]) {
        assert_eq!(serialize(ours), serialize(theirs));
    }
    let coinbase = &block.txdata[0];
    assert_eq!(coinbase.output[0].value.to_sat(), 5_000_132_390);
    assert_eq!(coinbase.input[0].witness.len(), 1, "witness reserved value");
}

#[test]
fn validation_agrees_with_the_bitcoin_crate_on_a_3500_transaction_template() {
    let job = core_job(CORE_226);
    assert_eq!(job.branch.len(), 12);
    for extranonce2 in 0..8u8 {
        let share = find(&job, [extranonce2; 8], None, |_| true);
        let accepted = validate(&job, &submit_of(&share), &context(&Target::MAX)).unwrap();
        assert_eq!(accepted.hash.0, share.hash.to_byte_array());
        assert_eq!(accepted.is_block, share.is_block);
    }
}

#[test]
fn the_share_target_is_compared_as_an_integer() {
    let job = core_job(CORE_121);
    let share = find(&job, [8; 8], None, |_| true);
    let hash = crate::chain::Hash256(share.hash.to_byte_array());
    let exact = Target::from_hash(&hash);
    assert!(
        validate(&job, &submit_of(&share), &context(&exact)).is_ok(),
        "equal to target meets it"
    );
    let mut below = hash.0;
    let first_nonzero = below.iter().rposition(|&b| b != 0).unwrap();
    below[first_nonzero] -= 1;
    let tighter = Target::from_le_bytes(&below);
    assert!(matches!(
        validate(&job, &submit_of(&share), &context(&tighter)),
        Err(Reject::LowDifficulty { .. })
    ));
}

#[test]
fn every_form_of_the_sixth_param_rebuilds_the_same_version() {
    use super::rolled_version;
    let (job, mask) = (0x2000_0000, 0x1fff_e000);
    let bits = 0x0012_4000;
    // BIP310 bits, ESP-Miner's rolled ^ job (the same bits), a whole version.
    assert_eq!(rolled_version(job, bits, mask), Ok(job | bits));
    assert_eq!(
        rolled_version(job, (job | bits) ^ job, mask),
        Ok(job | bits)
    );
    assert_eq!(rolled_version(job, job | bits, mask), Ok(job | bits));
    assert_eq!(rolled_version(job, 0, mask), Ok(job));
    // Bits outside the mask that are not the job's own: refused.
    assert_eq!(
        rolled_version(job, 0x0000_1000, mask),
        Err(Reject::VersionBits)
    );
    assert_eq!(
        rolled_version(job, 0x4000_0000 | bits, mask),
        Err(Reject::VersionBits)
    );
}

/// The labels are Prometheus label values that dashboards and alerts name:
/// neither their spelling nor their order may drift.
#[test]
fn the_reject_labels_are_the_published_ones_in_their_order() {
    assert_eq!(
        Reject::REASONS,
        [
            "unauthorized",
            "not_subscribed",
            "job_not_found",
            "stale",
            "duplicate",
            "low_difficulty",
            "bad_extranonce2",
            "bad_ntime",
            "bad_version",
            "other_payout",
        ]
    );
    assert_eq!(Reject::NtimeOutsideBits.reason(), "bad_ntime");
    assert_eq!(
        Reject::LowDifficulty { achieved: 1.0 }.reason(),
        "low_difficulty"
    );
}
