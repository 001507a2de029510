//! `mining.when_no_node = "upstream"` against a real pool that is not
//! NDAS: para's, on a Bitcoin Core signet node of its own. NDAS's node
//! (regtest) stops while a miner mines through NDAS: within the bound the
//! miner gets para's work with `clean_jobs`, its shares reach para under
//! NDAS's account, a block it finds there is taken by para's node; the
//! node comes back and the miner is on solo work again, with `clean_jobs`.
//! With one miner per pool connection, the two miners are on two
//! connections to para, each on its own connection's job, and para takes
//! the shares of both.

use ndas_testkit as common;

use std::time::{Duration, Instant};

use bitcoin::KnownHrp;
use common::para::{ParaNode, ParaPool};
use common::upstream::{job_on, share, tip};
use common::wallet::{Kind, Wallet};
use common::{http_json, metric, ready_miner, regtest_config, start_ndas, temp_dir};
use common::{wait_for_metric, RegtestPair};
use ndas::config::UpstreamConfig;
use ndas_tools::miner::{Client, Work};
use serde_json::json;

const BOUND: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(60);

/// The newest job `client` has been sent, `last` if none since.
async fn newest(client: &mut Client, last: Work) -> Work {
    let mut newest = last;
    while let Some(work) = client.next_job(Duration::from_millis(500)).await.unwrap() {
        newest = work;
    }
    newest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_node_the_farm_mines_for_para_and_comes_back_to_its_node() {
    let para_node = ParaNode::start().await;
    // Every share NDAS's miner finds meets para's difficulty.
    let para = ParaPool::start(&para_node, 0.000_001).await;
    let address = Wallet::new(24)
        .address_on(Kind::P2wpkh, KnownHrp::Testnets)
        .to_string();

    let mut pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    common::upstream::for_failover(&mut config, BOUND);
    // No `when_no_node`: with an upstream configured, it is "upstream".
    config.upstream = vec![UpstreamConfig {
        // One miner per connection to para: the second miner opens another.
        miners_per_connection: 1,
        ..common::upstream::pool("para", para.stratum(), &format!("{address}.ndas"))
    }];
    let running = start_ndas(config).await;
    let http = running.metrics_addr();
    wait_for_metric(http, "ndas_upstream_up{upstream=\"para\"}", |n| n == 1.0).await;
    let worker = format!("{payout}.rig");
    let (mut miner, solo) = ready_miner(running.stratum_addr(), "cgminer/4.12.1", &worker).await;
    assert_eq!(solo.prev_hash, tip(&pair.main).await);
    let (mut second, _) = ready_miner(running.stratum_addr(), "bitaxe/2.4", &worker).await;

    let stopped = Instant::now();
    pair.main.signal("TERM");
    let para_tip = tip(&para_node.node).await;
    let pooled = job_on(&mut miner, para_tip, WAIT, String::new).await;
    let moved_after = stopped.elapsed();
    assert!(pooled.clean, "the first job of the pool is clean_jobs");
    assert!(moved_after >= BOUND, "moved after {moved_after:?}");
    assert!(
        moved_after < BOUND + Duration::from_secs(10),
        "moved after {moved_after:?}"
    );
    // The miner keeps its connection, extranonce1 and extranonce2 size.
    wait_for_metric(http, "ndas_upstream_mining{upstream=\"para\"}", |n| {
        n == 1.0
    })
    .await;
    // A second connection to para for the second miner: once it is ready
    // (and the job stage's pace has passed), each miner mines its own
    // connection's job, para's extranonce1 for it ending its coinb1.
    common::upstream::upstreams_when(http, |list| {
        list[0]["connections"] == json!(2) && list[0]["miners"] == json!(2)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pooled = newest(&mut miner, pooled).await;
    let first_of_second = job_on(&mut second, para_tip, WAIT, String::new).await;
    let on_second = newest(&mut second, first_of_second).await;
    let tail = |work: &Work| work.coinb1[work.coinb1.len() - 4..].to_vec();
    assert_ne!(tail(&pooled), tail(&on_second), "two connections' jobs");

    // Shares that meet para's difficulty reach para, under NDAS's account
    // (the miner's own difficulty is lower: regtest's).
    let (_, stats) = http_json(http, "/api/stats").await;
    let para_difficulty = stats["upstreams"][0]["difficulty"].as_f64().unwrap();
    assert!(miner.difficulty < para_difficulty, "{stats}");
    // Well above it: para's vardiff is per connection, and the page shows
    // the first connection's.
    let least = para_difficulty * 16.0;
    for fill in 0..3 {
        let found = share(&miner, &pooled, fill, least, false).await;
        let answer = miner.submit(&worker, &found).await.unwrap();
        assert_eq!(answer["result"], json!(true), "{answer}");
        let found = share(&second, &on_second, fill, least, false).await;
        let answer = second.submit(&worker, &found).await.unwrap();
        assert_eq!(answer["result"], json!(true), "{answer}");
    }
    let user = para.wait_for_accepted(&address, 6).await;
    assert!(
        user["stats"]["accepted_shares"].as_u64().unwrap() >= 6,
        "{user}"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, stats) = http_json(http, "/api/stats").await;
        let upstream = &stats["upstreams"][0];
        if upstream["shares_accepted"].as_u64() >= Some(6) {
            assert_eq!(upstream["mining"], json!(true), "{upstream}");
            // The hashrate para credits NDAS with, from what it accepted.
            assert!(
                upstream["hashrate"]["5m"].as_f64() > Some(0.0),
                "{upstream}"
            );
            assert_eq!(upstream["shares_rejected"], json!(0), "{upstream}");
            break;
        }
        assert!(Instant::now() < deadline, "{upstream}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = common::upstream::worker(http, &worker).await;
    assert!(
        listed["upstream"]["accepted"].as_u64() >= Some(6),
        "{listed}"
    );

    // A block found on para's job is para's: NDAS sends it on as a share,
    // para submits it, and its node takes it.
    let block = share(&miner, &pooled, 9, para_difficulty, true).await;
    let answer = miner.submit(&worker, &block).await.unwrap();
    assert_eq!(answer["result"], json!(true), "{answer}");
    let hash = block.hash.to_string();
    common::upstream::wait_for_best(&para_node.node, &hash, WAIT, || para.log()).await;
    // Not a block of NDAS's: nothing journaled or submitted to its node.
    assert_eq!(metric(http, "ndas_blocks_found_total").await, 0.0);

    // The node is back: solo work again, with clean_jobs.
    pair.main.stop();
    pair.main.restart().await;
    let back = job_on(&mut miner, tip(&pair.main).await, WAIT, String::new).await;
    assert!(back.clean, "the first job after the pool is clean_jobs");
    wait_for_metric(http, "ndas_upstream_mining{upstream=\"para\"}", |n| {
        n == 0.0
    })
    .await;
    let height = pair.main.call("getblockcount", json!([])).await;
    common::submit_block(&mut miner, &back, &worker, 1).await;
    let deadline = Instant::now() + WAIT;
    while pair.main.call("getblockcount", json!([])).await.as_u64() <= height.as_u64() {
        assert!(Instant::now() < deadline, "no block on NDAS's node");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running.shutdown().await;
}
