//! The node fails; NDAS and its miners ride it out. Each test asserts what
//! was kept: the connections, the last job, the blocks.

mod common;

use std::time::Duration;

use common::{ready_miner, regtest_config, start_ndas, temp_dir, wait_for_readyz, RegtestPair};
use ndas::miner::grind;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_gone_for_a_minute_keeps_miners_connected_and_work_resumes() {
    let mut pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let running = start_ndas(regtest_config(&pair, dir.path(), &payout)).await;
    let http = running.metrics_addr();
    let worker = format!("{payout}.rig");
    let (mut client, work) = ready_miner(running.stratum_addr(), "t/1", &worker).await;

    let height = pair.main.height().await;
    pair.main.stop();
    let body = wait_for_readyz(http, 503).await;
    let reason = body["reasons"][0].as_str().unwrap();
    assert!(reason.starts_with("node unreachable"), "{reason}");

    // A minute without a node: the miner keeps its connection and answers.
    let outage_ends = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < outage_ends {
        let answer = client
            .request("mining.suggest_difficulty", json!([1]))
            .await
            .expect("the connection stays open while the node is away");
        assert_eq!(answer["result"], json!(true), "{answer}");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    assert_eq!(running.stats().connected_workers(), 1);

    // The node returns: readiness recovers and the same connection, never
    // restarted, mines a block the node takes.
    pair.main.restart().await;
    wait_for_readyz(http, 200).await;
    // The job from before the outage is still on the node's tip.
    let en2 = vec![5; client.extranonce2_size];
    let block = grind(&work, &client.extranonce1, &en2, (None, 0), 10_000, |s| {
        s.is_block
    })
    .unwrap();
    assert_eq!(
        client.submit(&worker, &block).await.unwrap()["result"],
        json!(true)
    );
    pair.wait_height(height + 1).await;
    assert_eq!(
        pair.main.call("getbestblockhash", json!([])).await,
        json!(block.hash.to_string())
    );
    running.shutdown().await;
}
