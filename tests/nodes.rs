//! Two Bitcoin Core regtest nodes that are each other's peer, `[node]` and a
//! `[[node.backup]]`: either can stop or fall behind while miners work, and
//! a miner sees at most one job switch; every found block goes to both.

use ndas_testkit as common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{
    http_json, metric, next_tip, ready_miner, start_ndas, submit_block, temp_dir, two_node_config,
    wait_for_metric, RegtestPair,
};
use ndas_tools::miner::{Client, Work};
use serde_json::{json, Value};

/// `/api/stats`'s `nodes`, by name.
async fn node_state(http: SocketAddr, name: &str) -> Value {
    let (_, stats) = http_json(http, "/api/stats").await;
    stats["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == json!(name))
        .cloned()
        .unwrap_or_else(|| panic!("no node {name} in {stats}"))
}

/// Waits until `/api/stats` shows node `name` in `state`.
async fn wait_for_state(http: SocketAddr, name: &str, state: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while node_state(http, name).await["state"] != json!(state) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {name} never {state}: {}",
            node_state(http, name).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until templates come from the node at `index` (0: `[node]`).
async fn wait_for_source(http: SocketAddr, index: f64) {
    wait_for_metric(http, "ndas_template_source", |n| n == index).await;
}

/// Whether `node` has block `hash`.
async fn has_block(node: &common::node::RegtestNode, hash: &str) -> bool {
    node.rpc
        .call::<Value>("getblockheader", json!([hash]))
        .await
        .is_ok()
}

async fn wait_for_block(node: &common::node::RegtestNode, hash: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !has_block(node, hash).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "block {hash} never reached the node"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The nodes whose verdicts the settled copy of `hash` has, once it has `count`.
async fn wait_settled(running: &ndas::Running, hash: &str, count: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let settled = running.journal().settled().unwrap();
        if let Some(entry) = settled.iter().find(|e| e.hash == hash) {
            if entry.nodes.len() >= count {
                return entry.nodes.iter().map(|n| n.node.clone()).collect();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "block {hash} never settled with {count} verdicts"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every job the miner is sent within `window`: none may be `clean_jobs`.
async fn no_clean_job_within(client: &mut Client, window: Duration) -> Vec<Work> {
    let deadline = tokio::time::Instant::now() + window;
    let mut jobs = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client
            .next_job(left)
            .await
            .expect("the connection stays open")
        {
            Some(work) => {
                assert!(!work.clean, "a clean_jobs notify at the same tip");
                jobs.push(work);
            }
            None => return jobs,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_stops_the_backup_serves_and_the_primary_takes_over_again_at_the_same_tip() {
    let mut pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let running = start_ndas(two_node_config(&pair, dir.path(), &payout)).await;
    let http = running.metrics_addr();
    let (mut client, work) = ready_miner(running.stratum_addr(), "t/1", "acct.rig").await;
    wait_for_source(http, 0.0).await;
    assert_eq!(node_state(http, "primary").await["serving"], json!(true));

    // The primary stops mid-mining: the backup serves, the miner stays.
    pair.main.stop();
    wait_for_source(http, 1.0).await;
    // Down after three failed fetches: the source may move to the backup
    // at the first, before the third.
    wait_for_state(http, "primary", "down").await;
    let (status, ready) = http_json(http, "/readyz").await;
    assert_eq!(status, 200, "ready on the backup: {ready}");
    assert!(
        ready["degraded"][0].as_str().unwrap().contains("primary"),
        "{ready}"
    );
    let block = submit_block(&mut client, &work, "acct.rig", 1).await;
    let hash = block.hash.to_string();
    wait_for_block(&pair.peer, &hash).await;
    let work = next_tip(&mut client, &work).await;
    assert_eq!(
        ndas_core::chain::Hash256(work.prev_hash).to_string(),
        hash,
        "the next job is on the block, from the backup"
    );
    assert_eq!(
        metric(http, "ndas_blocks_total{outcome=\"accepted\"}").await,
        1.0
    );

    // The primary returns: it gets the block, and takes templates back at
    // the next refresh without a clean_jobs (the tip is the same).
    pair.main.restart().await;
    wait_for_block(&pair.main, &hash).await;
    wait_for_source(http, 0.0).await;
    // New transactions at the same tip: jobs go out, none of them clean
    // (Core builds a template with new transactions 5 s after its last).
    pair.wallet.send_every_kind(&pair.main).await;
    let jobs = no_clean_job_within(&mut client, Duration::from_secs(8)).await;
    assert!(
        !jobs.is_empty(),
        "the primary's new transactions reach the miner"
    );
    // NDAS itself gave the primary the block (a verdict from it), not only
    // its peer: both verdicts are in the settled copy, the backup's first.
    let verdicts = wait_settled(&running, &hash, 2).await;
    assert_eq!(verdicts, ["backup", "primary"]);

    // Now the backup stops: nothing changes for the miner.
    pair.peer.stop();
    wait_for_metric(http, "ndas_node_up{node=\"backup\"}", |n| n == 0.0).await;
    assert_eq!(metric(http, "ndas_template_source").await, 0.0);
    no_clean_job_within(&mut client, Duration::from_secs(2)).await;
    let (status, ready) = http_json(http, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert!(
        ready["degraded"][0].as_str().unwrap().contains("backup"),
        "{ready}"
    );
    drop(client);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_left_behind_is_not_used_and_its_error_on_a_block_does_not_stop_the_other() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let running = start_ndas(two_node_config(&pair, dir.path(), &payout)).await;
    let http = running.metrics_addr();
    let (mut client, work) = ready_miner(running.stratum_addr(), "t/1", "acct.rig").await;
    wait_for_source(http, 0.0).await;

    // The primary is cut off from its peer; the backup moves on.
    pair.main.call("setnetworkactive", json!([false])).await;
    let mined = pair
        .peer
        .call("generatetoaddress", json!([1, payout]))
        .await;
    let tip = mined[0].as_str().unwrap().to_owned();
    let work = next_tip(&mut client, &work).await;
    assert!(work.clean, "a new tip is clean_jobs");
    assert_eq!(
        ndas_core::chain::Hash256(work.prev_hash).to_string(),
        tip,
        "the job is on the backup's tip, not the primary's old one"
    );
    assert_eq!(metric(http, "ndas_template_source").await, 1.0);
    wait_for_metric(http, "ndas_node_behind{node=\"primary\"}", |n| n == 1.0).await;
    assert_eq!(node_state(http, "primary").await["state"], json!("behind"));

    // A block on it: the primary cannot take it (it lacks the parent), the
    // backup does.
    let block = submit_block(&mut client, &work, "acct.rig", 2).await;
    let hash = block.hash.to_string();
    wait_for_block(&pair.peer, &hash).await;
    wait_for_metric(http, "ndas_node_blocks_total{node=\"primary\"}", |n| {
        n >= 1.0
    })
    .await;
    wait_for_metric(http, "ndas_blocks_total{outcome=\"accepted\"}", |n| {
        n == 1.0
    })
    .await;
    wait_settled(&running, &hash, 2).await;
    let settled = running.journal().settled().unwrap();
    let entry = settled.iter().find(|e| e.hash == hash).unwrap();
    assert_eq!(entry.outcome, Some(ndas::blocks::Outcome::Accepted));
    let primary = entry.nodes.iter().find(|n| n.node == "primary").unwrap();
    assert_ne!(
        primary.outcome,
        ndas::blocks::Outcome::Accepted,
        "{entry:?}"
    );
    assert!(!has_block(&pair.main, &hash).await);

    // Back on the network, it catches up and serves again.
    pair.main.call("setnetworkactive", json!([true])).await;
    wait_for_block(&pair.main, &hash).await;
    wait_for_source(http, 0.0).await;
    wait_for_metric(http, "ndas_node_behind{node=\"primary\"}", |n| n == 0.0).await;
    drop(client);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_both_nodes_down_a_block_stays_journaled_and_reaches_both_when_they_return() {
    let mut pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let running = start_ndas(two_node_config(&pair, dir.path(), &payout)).await;
    let http = running.metrics_addr();
    let (mut client, work) = ready_miner(running.stratum_addr(), "t/1", "acct.rig").await;

    pair.main.stop();
    pair.peer.stop();
    wait_for_metric(http, "ndas_template_source", |n| n == -1.0).await;
    let block = submit_block(&mut client, &work, "acct.rig", 3).await;
    let hash = block.hash.to_string();
    let journal = running.journal().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !journal.pending().unwrap().iter().any(|e| e.hash == hash) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the block was never journaled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = http_json(http, "/readyz").await;
    assert_eq!(status, 503, "not ready with no node");

    pair.main.restart().await;
    pair.peer.restart().await;
    wait_for_block(&pair.main, &hash).await;
    wait_for_block(&pair.peer, &hash).await;
    wait_for_metric(http, "ndas_blocks_total{outcome=\"accepted\"}", |n| {
        n == 1.0
    })
    .await;
    assert!(journal.pending().unwrap().iter().all(|e| e.hash != hash));
    drop(client);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_hangs_is_passed_over_and_the_backup_serves_the_next_tip() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let running = start_ndas(two_node_config(&pair, dir.path(), &payout)).await;
    let http = running.metrics_addr();
    let (mut client, work) = ready_miner(running.stratum_addr(), "t/1", "acct.rig").await;
    wait_for_source(http, 0.0).await;

    // The primary hangs (stopped, not gone: its socket takes requests and
    // never answers), and the backup finds a block.
    pair.main.signal("STOP");
    let mined = pair
        .peer
        .call("generatetoaddress", json!([1, payout]))
        .await;
    let tip = mined[0].as_str().unwrap().to_owned();
    let work = next_tip(&mut client, &work).await;
    assert_eq!(ndas_core::chain::Hash256(work.prev_hash).to_string(), tip);
    assert_eq!(metric(http, "ndas_template_source").await, 1.0);
    pair.main.signal("CONT");
    wait_for_source(http, 0.0).await;
    drop(client);
    running.shutdown().await;
}
