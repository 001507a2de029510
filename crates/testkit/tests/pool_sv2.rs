//! The test kit's pool_sv2 wrapper against the real `pool_sv2` on its own
//! signet `bitcoin-node`: a Stratum V2 client that is not NDAS opens an
//! extended channel, gets the pool's work, has each share answered, and
//! finds a block the pool hands to its node. What the SV2 upstream tests
//! will rely on in the pool is proven here first.

use std::time::Duration;

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, CompactTarget, TxMerkleNode};
use ndas_testkit::pool_sv2::{PoolSv2, BLOCK_LINE, TEMPLATE_LINE};
use ndas_testkit::sv2::extended_root;
use ndas_tools::sv2_client::{Client, Received};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_serves_work_and_answers_every_share() {
    let mut pool = PoolSv2::start().await;
    assert!(pool.count(TEMPLATE_LINE) >= 1, "{}", pool.log());
    // The URL names the key NDAS pins.
    let key = ndas::sv2::keys::parse_public(&pool.url()).unwrap();
    let mut client = Client::connect(pool.address(), key).await.unwrap();
    client.setup(0).await.unwrap();
    assert_eq!(
        client.next(WAIT).await.unwrap(),
        Received::SetupSuccess { flags: 0 }
    );

    // Nominal hash rate 0 and the easiest max_target: every hash is a share.
    client.open(1, "ndas-test", Some(4)).await.unwrap();
    let Received::OpenSuccess {
        channel_id,
        target,
        extranonce_prefix,
        extranonce_size: Some(rolled),
        ..
    } = client.next(WAIT).await.unwrap()
    else {
        panic!("no OpenExtendedMiningChannel.Success; log:\n{}", pool.log());
    };
    assert_eq!(target, [0xff; 32]);
    // Its first job and previous block come on the channel itself.
    let Received::ExtendedJob {
        channel_id: job_channel,
        job_id,
        version,
        coinbase_prefix,
        ..
    } = client.next(WAIT).await.unwrap()
    else {
        panic!("no first job");
    };
    assert_eq!(job_channel, channel_id);
    // Without BIP141's marker and flag: version, then one input.
    assert_eq!(coinbase_prefix[4], 1, "{}", hex::encode(&coinbase_prefix));
    let Received::PrevHash {
        channel_id: prev_channel,
        job_id: prev_job,
        min_ntime,
        ..
    } = client.next(WAIT).await.unwrap()
    else {
        panic!("no SetNewPrevHash");
    };
    assert_eq!((prev_channel, prev_job), (channel_id, job_id));

    // Each share is answered (share_batch_size = 1).
    let extranonce = vec![7; usize::from(rolled)];
    for sequence in 1..=2 {
        client
            .submit_extended(
                channel_id,
                sequence,
                job_id,
                sequence,
                min_ntime,
                version,
                &extranonce,
            )
            .await
            .unwrap();
        let answer = client.next(WAIT).await.unwrap();
        assert_eq!(
            answer,
            Received::SubmitSuccess {
                last_sequence_number: sequence
            },
            "{}",
            pool.log()
        );
    }
    pool.wait_for_accepted(2).await;
    assert_eq!(pool.rejected_shares(), 0);

    // A new block: the next work comes on the connection's group channel.
    let height = pool.mine_block().await;
    let mut jobs = Vec::new();
    let prev = client
        .until(WAIT, |message| match message {
            Received::ExtendedJob { .. } => {
                jobs.push(message.clone());
                None
            }
            Received::PrevHash { .. } => Some(message.clone()),
            _ => None,
        })
        .await
        .unwrap();
    let Received::PrevHash {
        channel_id: group,
        job_id,
        prev_hash,
        min_ntime,
        nbits,
    } = prev
    else {
        unreachable!()
    };
    let [Received::ExtendedJob {
        channel_id: job_channel,
        job_id: group_job,
        version,
        merkle_path,
        coinbase_prefix,
        coinbase_suffix,
        ..
    }] = &jobs[..]
    else {
        panic!("not one job before the previous block: {jobs:?}");
    };
    assert_ne!(group, channel_id);
    assert_eq!((*job_channel, *group_job), (group, job_id));

    // A block on the group's job, submitted on the extended channel: the
    // pool answers it and its node takes it.
    let root = extended_root(
        coinbase_prefix,
        &extranonce_prefix,
        &extranonce,
        coinbase_suffix,
        merkle_path,
    );
    let nonce = (0..u32::MAX)
        .find(|&nonce| {
            let header = Header {
                version: Version::from_consensus(*version as i32),
                prev_blockhash: BlockHash::from_byte_array(prev_hash),
                merkle_root: TxMerkleNode::from_byte_array(root),
                time: min_ntime,
                bits: CompactTarget::from_consensus(nbits),
                nonce,
            };
            header.target().is_met_by(header.block_hash())
        })
        .expect("a block at signet's difficulty");
    client
        .submit_extended(
            channel_id,
            3,
            job_id,
            nonce,
            min_ntime,
            *version,
            &extranonce,
        )
        .await
        .unwrap();
    assert_eq!(
        client.next(WAIT).await.unwrap(),
        Received::SubmitSuccess {
            last_sequence_number: 3
        }
    );
    pool.wait_for_log(BLOCK_LINE, 1).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while pool.node().height().await < height + 1 {
        assert!(tokio::time::Instant::now() < deadline, "{}", pool.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((pool.accepted_shares(), pool.blocks_found()), (3, 1));
    println!(
        "extended channel {channel_id}, group channel {group}, extranonce prefix {} + {rolled} rolled",
        hex::encode(&extranonce_prefix)
    );
}
