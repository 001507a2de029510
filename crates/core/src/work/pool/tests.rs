use bitcoin::hashes::Hash;

use super::*;
use crate::chain::Target;
use crate::client::{hash_share_rolled, Work};
use crate::share::{validate, ShareContext};
use crate::stratum::method::JobId;
use crate::stratum::method::Submit;
use crate::work::job::bip34_height;
use crate::work::Extranonce1;
use crate::work::Job;

/// A pool's job as para sends one: a 4-byte extranonce1, an 8-byte
/// extranonce2, a signet-like target.
fn pool_work(extranonce2_size: usize) -> PoolWork {
    PoolWork {
        pool: 1,
        lane: 0,
        connection: 7,
        work: Work {
            job_id: "a1".into(),
            prev_hash: [0x11; 32],
            // version, one input, null outpoint, a 4-byte scriptSig
            // length, the height 300 pushed in two bytes.
            coinb1: [
                &[1, 0, 0, 0, 1][..],
                &[0; 32],
                &[0xff; 4],
                &[0x20, 0x02, 0x2c, 0x01],
            ]
            .concat(),
            coinb2: vec![
                0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
            branch: vec![[0x22; 32], [0x33; 32]],
            version: 0x2000_0000,
            bits: 0x207f_ffff,
            ntime: 1_700_000_000,
            clean: true,
        },
        extranonce1: vec![0xaa, 0xbb, 0xcc, 0xdd],
        extranonce2_size,
        difficulty: 0.5,
        version_mask: 0x1fff_e000,
    }
}

fn submit(extranonce2: &[u8], nonce: u32, version_bits: Option<u32>) -> Submit {
    Submit {
        worker: "w".into(),
        job_id: Some(JobId(9)),
        extranonce2: crate::stratum::method::Extranonce2::from_bytes(extranonce2).unwrap(),
        ntime: 1_700_000_000,
        nonce,
        version_bits,
    }
}

#[test]
fn a_pool_extranonce2_too_small_for_a_slice_is_refused() {
    let error = Job::from_pool(JobId(1), &pool_work(7), 4).unwrap_err();
    assert_eq!(
        error,
        PoolJobError::Extranonce2TooSmall {
            given: 7,
            needed: 8
        }
    );
    let mut bad = pool_work(8);
    bad.difficulty = 0.0;
    assert!(matches!(
        Job::from_pool(JobId(1), &bad, 4),
        Err(PoolJobError::Difficulty(_))
    ));
}

#[test]
fn the_miner_hashes_the_pool_s_coinbase_and_the_pool_gets_its_extranonce2_back() {
    // A pool extranonce2 of 10: 4 for the miner's extranonce1, 4 of its
    // own, 2 of padding.
    let from = pool_work(10);
    let job = Job::from_pool(JobId(9), &from, 4).unwrap();
    let pool = job.pool.clone().unwrap();
    assert_eq!(pool.padding, 2);
    assert_eq!(job.template.height, 300);
    let miner_en1 = Extranonce1([1, 2, 3, 4]);
    // What the pool hashes: its coinb1, its extranonce1, the whole
    // extranonce2 NDAS sends it, its coinb2.
    let share = submit(&[5, 6, 7, 8], 42, None);
    let upstream = pool.share(&miner_en1.0, &share, from.work.version);
    assert_eq!(upstream.extranonce2, [1, 2, 3, 4, 5, 6, 7, 8, 0, 0]);
    assert_eq!(upstream.job_id, "a1");
    assert_eq!(upstream.version_bits, None);
    let pools_view = crate::client::Work {
        coinb1: [&from.work.coinb1[..], &from.extranonce1].concat(),
        ..from.work.clone()
    };
    let hashed = hash_share_rolled(&pools_view, &[], &upstream.extranonce2, 42, None);
    // NDAS's check of the miner's share rebuilds the same header.
    let target = Target::from_difficulty(1e-12);
    let context = ShareContext {
        extranonce1: &miner_en1,
        extranonce2_size: 4,
        version_mask: 0x1fff_e000,
        target: &target,
        now_unix: 1_700_000_100,
    };
    let accepted = validate(&job, &share, &context).unwrap();
    assert_eq!(accepted.hash.0, hashed.hash.to_byte_array());
    // Never a block of NDAS's, whatever the hash meets.
    assert!(!accepted.is_block);
}

#[test]
fn rolled_bits_are_sent_as_bip310_bits_and_bits_outside_the_pool_s_mask_whole() {
    let from = pool_work(8);
    let job = Job::from_pool(JobId(9), &from, 4).unwrap();
    let pool = job.pool.unwrap();
    let share = submit(&[0; 4], 1, Some(0x0000_6000));
    let rolled = 0x2000_6000;
    assert_eq!(
        pool.share(&[0; 4], &share, rolled).version_bits,
        Some(0x0000_6000)
    );
    // The pool allows fewer bits than NDAS's miners roll.
    let narrow = PoolJob {
        version_mask: 0x0000_2000,
        ..PoolJob::clone(&pool)
    };
    assert_eq!(
        narrow.share(&[0; 4], &share, rolled).version_bits,
        Some(rolled)
    );
}

#[test]
fn a_time_before_the_pool_s_is_refused_and_the_bip34_height_is_read_when_there() {
    let from = pool_work(8);
    let job = Job::from_pool(JobId(9), &from, 4).unwrap();
    let target = Target::from_difficulty(1e-12);
    let context = ShareContext {
        extranonce1: &Extranonce1([1, 2, 3, 4]),
        extranonce2_size: 4,
        version_mask: 0x1fff_e000,
        target: &target,
        now_unix: 1_700_000_100,
    };
    let mut early = submit(&[0; 4], 1, None);
    early.ntime = from.work.ntime - 1;
    assert_eq!(
        validate(&job, &early, &context).unwrap_err(),
        crate::share::Reject::NtimeTooOld
    );
    assert_eq!(bip34_height(&[0; 10]), None);
    let mut five = from.work.coinb1;
    five[42] = 5;
    assert_eq!(bip34_height(&five), None);
}
