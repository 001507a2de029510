//! End to end against Bitcoin Core regtest: a CPU miner subscribes through
//! NDAS, negotiates version rolling, finds blocks carrying segwit and taproot
//! spends, and the node takes them onto its active chain.

use ndas_testkit as common;

use std::time::Duration;

use bitcoin::consensus::deserialize;
use bitcoin::hashes::Hash;
use common::{regtest_config, start_ndas, temp_dir, RegtestPair};
use ndas_tools::miner::{grind, Client, Share, Work};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn find(
    client: &Client,
    work: &Work,
    extranonce2: u64,
    rolled: Option<u32>,
    wanted: impl Fn(&Share) -> bool,
) -> Share {
    let en2 = extranonce2.to_be_bytes()[8 - client.extranonce2_size..].to_vec();
    grind(
        work,
        &client.extranonce1,
        &en2,
        (rolled, client.version_mask),
        10_000,
        wanted,
    )
    .expect("a share")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miners_find_blocks_that_the_node_accepts() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    // P2WPKH, P2WSH, P2TR and P2PKH spends, children with their parents.
    let sent = pair.wallet.send_every_kind(&pair.main).await;
    let mempool: Vec<String> =
        serde_json::from_value(pair.main.call("getrawmempool", json!([])).await).unwrap();
    assert_eq!(mempool.len(), 4);
    assert!(sent.iter().all(|txid| mempool.contains(&txid.to_string())));
    let dir = temp_dir();
    let config = regtest_config(&pair, dir.path(), &payout);
    let running = start_ndas(config).await;

    let mut client = Client::connect(running.stratum_addr()).await.unwrap();
    let configured = client.configure_version_rolling(0xffff_ffff).await.unwrap();
    assert_eq!(
        configured["result"],
        json!({"version-rolling": true, "version-rolling.mask": "1fffe000"})
    );
    let subscribed = client.subscribe("test-miner/1.0").await.unwrap();
    assert_eq!(subscribed["result"][2], json!(8));
    assert_eq!(client.extranonce1[0], 9, "instance_id leads extranonce1");
    let authorized = client.authorize(&format!("{payout}.rig1")).await.unwrap();
    assert_eq!(authorized["result"], json!(true));

    // The template refresh brings the wallet's transactions into a job.
    let work = common::job_with_transactions(&mut client, None, 3).await;
    assert!((client.difficulty - 2.5e-10).abs() < 1e-20);
    let start_height = pair.main.height().await;

    let rolled = Some(0x0000_6000);
    let share = find(&client, &work, 1, rolled, |s| s.is_block);
    let answer = client
        .submit(&format!("{payout}.rig1"), &share)
        .await
        .unwrap();
    assert_eq!(answer["result"], json!(true), "{answer}");
    pair.wait_height(start_height + 1).await;

    // The node's new tip is exactly the miner's block, with its coinbase and transactions.
    let best = pair.main.call("getbestblockhash", json!([])).await;
    assert_eq!(best.as_str().unwrap(), share.hash.to_string());
    let raw = pair.main.call("getblock", json!([best, 0])).await;
    let block: bitcoin::Block = deserialize(&hex::decode(raw.as_str().unwrap()).unwrap()).unwrap();
    assert!(block.check_merkle_root());
    assert!(
        block.check_witness_commitment(),
        "the witness commitment is valid"
    );
    assert!(
        block.txdata[1..]
            .iter()
            .all(|tx| tx.compute_wtxid().to_byte_array() != tx.compute_txid().to_byte_array()),
        "every transaction carries witness data"
    );
    let on_chain = pair.main.call("getblock", json!([best, 1])).await;
    assert_eq!(on_chain["confirmations"], json!(1), "on the active chain");
    assert_eq!(
        block.header.version.to_consensus() as u32 & 0x1fff_e000,
        0x0000_6000
    );
    // The coinbase the miner hashed, and in the block the witness reserved
    // value (BIP141) its commitment needs.
    let mut stripped = block.txdata[0].clone();
    let reserved: Vec<Vec<u8>> = stripped.input[0].witness.to_vec();
    assert_eq!(reserved, vec![vec![0u8; 32]]);
    stripped.input[0].witness.clear();
    assert_eq!(bitcoin::consensus::serialize(&stripped), share.coinbase);
    let payout_script =
        ndas_core::chain::address::payout_script(&payout, ndas_core::chain::Network::Regtest)
            .unwrap();
    assert_eq!(
        block.txdata[0].output[0].script_pubkey.as_bytes(),
        &payout_script[..]
    );
    let included: Vec<String> = block.txdata[1..]
        .iter()
        .map(|tx| tx.compute_txid().to_string())
        .collect();
    for txid in &mempool {
        assert!(
            included.contains(txid),
            "block lacks mempool transaction {txid}"
        );
    }

    // Miners move to the new tip with clean_jobs, and the old job is stale.
    let next = client
        .next_job(WAIT)
        .await
        .unwrap()
        .expect("a job on the new tip");
    assert!(next.clean);
    assert_eq!(next.prev_hash, block.block_hash().to_byte_array());
    // (Not a block: a stale block is still submitted, as its own test shows.)
    let late = find(&client, &work, 2, None, |s| !s.is_block);
    let stale = client
        .submit(&format!("{payout}.rig1"), &late)
        .await
        .unwrap();
    assert_eq!(stale["error"], json!([21, "Stale share", null]));

    // A share that is not a block is accepted once, then refused as a duplicate.
    let plain = find(&client, &next, 3, None, |s| {
        !s.is_block && s.difficulty >= 2.6e-10
    });
    let first = client
        .submit(&format!("{payout}.rig1"), &plain)
        .await
        .unwrap();
    assert_eq!(first["result"], json!(true), "{first}");
    let again = client
        .submit(&format!("{payout}.rig1"), &plain)
        .await
        .unwrap();
    assert_eq!(again["error"], json!([22, "Duplicate share", null]));

    // A second block on the new tip: the chain keeps growing through NDAS.
    let share = find(&client, &next, 4, None, |s| s.is_block);
    assert_eq!(
        client
            .submit(&format!("{payout}.rig1"), &share)
            .await
            .unwrap()["result"],
        json!(true)
    );
    pair.wait_height(start_height + 2).await;

    running.shutdown().await;
    let journal = ndas::blocks::Journal::open(&dir.path().join("data")).unwrap();
    assert!(journal.pending().unwrap().is_empty());
    let settled = journal.settled().unwrap();
    assert_eq!(settled.len(), 2);
    assert!(settled
        .iter()
        .all(|e| e.outcome == Some(ndas::blocks::Outcome::Accepted)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_on_a_template_whose_version_has_bits_inside_the_mask_are_accepted() {
    let pair = RegtestPair::start_signalling_bit_28().await;
    pair.wallet.send_every_kind(&pair.main).await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let running = start_ndas(regtest_config(&pair, dir.path(), &payout)).await;
    let mut client = Client::connect(running.stratum_addr()).await.unwrap();
    client.configure_version_rolling(0x1fff_e000).await.unwrap();
    client.subscribe("test-miner/1.0").await.unwrap();
    client.authorize("acct.rig").await.unwrap();
    let mut work = common::job_with_transactions(&mut client, None, 3).await;

    // Unrolled, rolled below bit 28, and every bit of the mask rolled.
    for (n, rolled) in [(1, None), (2, Some(0x0000_6000)), (3, Some(0x1fff_e000))] {
        let height = pair.main.height().await;
        let share = find(&client, &work, n, rolled, |s| s.is_block);
        let answer = client.submit("acct.rig", &share).await.unwrap();
        assert_eq!(answer["result"], json!(true), "{rolled:x?}: {answer}");
        pair.wait_height(height + 1).await;
        let best = pair.main.call("getbestblockhash", json!([])).await;
        assert_eq!(best.as_str().unwrap(), share.hash.to_string());
        let header = pair.main.call("getblockheader", json!([best])).await;
        let expected = match rolled {
            Some(bits) => (work.version & !0x1fff_e000) | bits,
            None => work.version,
        };
        assert_eq!(header["version"].as_u64(), Some(u64::from(expected)));
        let raw = pair.main.call("getblock", json!([best, 0])).await;
        let block: bitcoin::Block =
            deserialize(&hex::decode(raw.as_str().unwrap()).unwrap()).unwrap();
        assert!(block.check_witness_commitment());
        work = common::next_tip(&mut client, &work).await;
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zmq_hashblock_moves_miners_to_a_new_tip() {
    let zmq_port = common::node::free_port();
    // The Bitcoin SV node: the Core built here has no ZMQ.
    let pair =
        RegtestPair::start_sv_with(&[format!("-zmqpubhashblock=tcp://127.0.0.1:{zmq_port}")]).await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    config.node.zmq_hashblock = Some(format!("tcp://127.0.0.1:{zmq_port}"));
    config.node.poll_interval_ms = 60_000;
    let running = start_ndas(config).await;
    let (mut client, _) = common::ready_miner(running.stratum_addr(), "t/1", "w").await;
    // Give the subscription a moment to connect before the block is announced.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mined = pair.main.mine(1).await;
    let hash = mined[0].clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    let job = loop {
        let job = client
            .next_job(WAIT)
            .await
            .unwrap()
            .expect("a job on the new tip");
        if job.clean {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline);
    };
    let mut display = job.prev_hash;
    display.reverse();
    assert_eq!(hex::encode(display), hash);
    let zmq = running
        .stats()
        .metrics
        .nodes
        .zmq_hashblocks_total
        .with_label_values(&["primary"])
        .get();
    assert!(zmq >= 1, "the node's hashblock announcement reached NDAS");
    running.shutdown().await;
}
