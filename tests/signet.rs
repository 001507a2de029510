//! NDAS on a private signet of Bitcoin Core whose block challenge is
//! `OP_TRUE` (`-signetchallenge=51`): a real chain where, unlike regtest,
//! a random hash is not a block (about one in five million is).

use ndas_testkit as common;

use std::sync::atomic::{AtomicU32, Ordering};

use bitcoin::block::{Header, Version};
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{BlockHash, CompactTarget, KnownHrp, TxMerkleNode};
use common::node::RegtestNode;
use common::wallet::{Kind, Wallet};
use common::{node_config, ready_miner, start_ndas, temp_dir};
use ndas_tools::miner::{grind, hash_share, Share, Work};
use serde_json::json;

/// Signet's minimum difficulty, the bits of every block of a new signet.
const SIGNET_BITS: u32 = 0x1e03_77ae;

/// Searches the nonces of `work` on both cores until one meets the
/// header's own target; that share. The coinbase and merkle root are built
/// once, then only the header is hashed.
fn grind_block(work: &Work, extranonce1: &[u8], extranonce2: &[u8]) -> Share {
    let first = hash_share(work, extranonce1, extranonce2, 0, None, 0);
    let mut root = sha256d::Hash::hash(&first.coinbase).to_byte_array();
    for step in &work.branch {
        root = sha256d::Hash::hash(&[root, *step].concat()).to_byte_array();
    }
    let header = Header {
        version: Version::from_consensus(work.version as i32),
        prev_blockhash: BlockHash::from_byte_array(work.prev_hash),
        merkle_root: TxMerkleNode::from_byte_array(root),
        time: work.ntime,
        bits: CompactTarget::from_consensus(work.bits),
        nonce: 0,
    };
    let target = header.target();
    let found = AtomicU32::new(u32::MAX);
    std::thread::scope(|scope| {
        for start in 0..2u32 {
            let found = &found;
            scope.spawn(move || {
                let mut header = header;
                let mut nonce = start;
                while found.load(Ordering::Relaxed) == u32::MAX && nonce < u32::MAX - 2 {
                    header.nonce = nonce;
                    if header.validate_pow(target).is_ok() {
                        found.store(nonce, Ordering::Relaxed);
                    }
                    nonce += 2;
                }
            });
        }
    });
    let nonce = found.into_inner();
    assert_ne!(nonce, u32::MAX, "no block in the nonce space");
    let share = hash_share(work, extranonce1, extranonce2, nonce, None, 0);
    assert!(share.is_block);
    share
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_signet_shares_are_not_blocks_until_one_meets_the_network_target() {
    let node = RegtestNode::start_signet().await;
    let template = node
        .call("getblocktemplate", json!([{"rules": ["segwit", "signet"]}]))
        .await;
    assert_eq!(template["bits"], json!(format!("{SIGNET_BITS:08x}")));
    let payout = Wallet::new(7)
        .address_on(Kind::P2tr, KnownHrp::Testnets)
        .to_string();
    let dir = temp_dir();
    let running = start_ndas(node_config(&node, "signet", dir.path(), &payout)).await;
    let metrics = running.stats().metrics.clone();
    let (mut client, work) = ready_miner(running.stratum_addr(), "t/1", "acct.rig").await;
    assert_eq!(work.bits, SIGNET_BITS);

    // Shares at the pool's difficulty: every one accepted, none a block.
    for n in 0..20u64 {
        let en2 = n.to_be_bytes()[8 - client.extranonce2_size..].to_vec();
        let wanted = client.difficulty;
        let share = grind(&work, &client.extranonce1, &en2, (None, 0), 1_000, |s| {
            s.difficulty >= wanted
        })
        .expect("a share at the pool's difficulty");
        assert!(!share.is_block);
        let answer = client.submit("acct.rig", &share).await.unwrap();
        assert_eq!(answer["result"], json!(true), "{answer}");
    }
    assert_eq!(metrics.blocks.submitted_total.get(), 0);
    assert_eq!(node.height().await, 0);

    // A hash that meets signet's target is a block the node takes: no
    // signet solution needed under an OP_TRUE challenge.
    let en2 = vec![0xee; client.extranonce2_size];
    let extranonce1 = client.extranonce1.clone();
    let work_for_block = work.clone();
    let block =
        tokio::task::spawn_blocking(move || grind_block(&work_for_block, &extranonce1, &en2))
            .await
            .unwrap();
    let answer = client.submit("acct.rig", &block).await.unwrap();
    assert_eq!(answer["result"], json!(true), "{answer}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while node.height().await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the block never reached the chain"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let best = node.call("getbestblockhash", json!([])).await;
    assert_eq!(best, json!(block.hash.to_string()));
    let mined = node.call("getblock", json!([best, 2])).await;
    let coinbase_out = &mined["tx"][0]["vout"][0]["scriptPubKey"]["address"];
    assert_eq!(coinbase_out, &json!(payout));
    assert_eq!(metrics.blocks.submitted_total.get(), 1);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signet_whose_blocks_need_a_signature_is_refused_at_start() {
    // A 1-of-1 multisig challenge, as real signets have: NDAS cannot sign.
    let key = "03ad5e0edad18cb1f0fc0d28a3d4f1f3e445640337489abb10404f2d1e086be430";
    let challenge = format!("5121{key}51ae");
    let node = RegtestNode::start_signet_with(&challenge).await;
    let payout = Wallet::new(7)
        .address_on(Kind::P2wpkh, KnownHrp::Testnets)
        .to_string();
    let dir = temp_dir();
    let refused = match ndas::start(node_config(&node, "signet", dir.path(), &payout)).await {
        Ok(_) => panic!("NDAS started on a signet it cannot sign for"),
        Err(error) => error.to_string(),
    };
    assert!(refused.contains(&challenge), "{refused}");
    assert!(refused.contains("-signetchallenge=51"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_another_chain_than_configured_is_refused_at_start() {
    let node = RegtestNode::start_signet().await;
    let payout = Wallet::new(7)
        .address_on(Kind::P2wpkh, KnownHrp::Testnets)
        .to_string();
    let dir = temp_dir();
    let refused = match ndas::start(node_config(&node, "testnet4", dir.path(), &payout)).await {
        Ok(_) => panic!("NDAS started on the wrong chain"),
        Err(error) => error.to_string(),
    };
    assert!(
        refused.contains("the node follows chain \"signet\", but network = \"testnet4\""),
        "{refused}"
    );
}
