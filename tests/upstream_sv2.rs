//! A Stratum V2 upstream (`stratum2+tcp://host:port/<key>`) against a real
//! SV2 pool that is not NDAS: the Stratum Reference Implementation's
//! `pool_sv2`, fed by a Bitcoin Core signet node of its own over IPC.
//! NDAS's node stops while a V1 miner mines through NDAS: within the bound
//! the miner gets the pool's work with `clean_jobs`, its shares reach the
//! pool over NDAS's extended channel and the pool accepts them (so the
//! coinbase NDAS's miner hashes, without the pool's witness, is the one the
//! pool checks), and a block found on the pool's job is taken by the pool's
//! node. A pool whose certificate another key signed is refused; and when
//! the pool dies, the miner is closed once the bound passes.

use ndas_testkit as common;

use std::time::{Duration, Instant};

use common::pool_sv2::PoolSv2;
use common::upstream::{job_on, share, tip};
use common::{http_json, metric, ready_miner, regtest_config, start_ndas, temp_dir};
use common::{wait_for_metric, RegtestPair};
use ndas::config::UpstreamConfig;
use serde_json::json;

const BOUND: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(90);

fn sv2_pool(name: &str, url: String) -> UpstreamConfig {
    UpstreamConfig {
        url,
        ..common::upstream::pool(name, "unused:1", "ndas-fleet")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_node_the_farm_mines_for_an_sv2_pool_that_accepts_its_shares_and_blocks() {
    let pool = PoolSv2::start().await;
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    common::upstream::for_failover(&mut config, BOUND);
    let floor = config.difficulty.min;
    // The same pool under a key that did not sign its certificate.
    // (secp256k1's generator's x: a valid key nobody's pool signs with).
    let g = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
    let stranger = ndas::sv2::keys::public_text(&hex::decode(g).unwrap().try_into().unwrap());
    let (host_port, _) = pool.url()["stratum2+tcp://".len()..]
        .split_once('/')
        .map(|(h, k)| (h.to_owned(), k.to_owned()))
        .unwrap();
    config.upstream = vec![
        sv2_pool("sri", pool.url()),
        sv2_pool("forged", format!("stratum2+tcp://{host_port}/{stranger}")),
    ];
    let running = start_ndas(config).await;
    let http = running.metrics_addr();
    wait_for_metric(http, "ndas_upstream_up{upstream=\"sri\"}", |n| n == 1.0).await;
    let forged =
        common::upstream::upstreams_when(http, |list| list[1]["state"] == json!("refused")).await;
    let why = forged[1]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(why.contains("handshake"), "{forged:?}");

    let worker = format!("{payout}.rig");
    let (mut miner, solo) = ready_miner(running.stratum_addr(), "cgminer/4.12.1", &worker).await;
    assert_eq!(solo.prev_hash, tip(&pair.main).await);

    let stopped = Instant::now();
    pair.main.signal("TERM");
    let pool_tip = tip(pool.node()).await;
    let pooled = job_on(&mut miner, pool_tip, WAIT, || pool.log()).await;
    let moved_after = stopped.elapsed();
    assert!(pooled.clean, "the first job of the pool is clean_jobs");
    assert!(moved_after >= BOUND, "moved after {moved_after:?}");
    wait_for_metric(http, "ndas_upstream_mining{upstream=\"sri\"}", |n| n == 1.0).await;

    // Shares that meet the pool's target reach it and are accepted: the
    // pool rebuilt the same coinbase id and header NDAS's miner hashed.
    let (_, stats) = http_json(http, "/api/stats").await;
    let pool_difficulty = stats["upstreams"][0]["difficulty"].as_f64().unwrap();
    // Never easier than NDAS's miners' floor, which NDAS asked for.
    assert!(pool_difficulty >= floor, "{pool_difficulty} vs {floor}");
    let accepted_before = pool.accepted_shares();
    for fill in 0..3 {
        let found = share(&miner, &pooled, fill, pool_difficulty, false).await;
        let answer = miner.submit(&worker, &found).await.unwrap();
        assert_eq!(answer["result"], json!(true), "{answer}");
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, stats) = http_json(http, "/api/stats").await;
        let upstream = &stats["upstreams"][0];
        if upstream["shares_accepted"].as_u64() >= Some(3) {
            assert_eq!(upstream["shares_rejected"], json!(0), "{upstream}");
            assert_eq!(upstream["mining"], json!(true), "{upstream}");
            break;
        }
        assert!(Instant::now() < deadline, "{upstream}\n{}", pool.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        pool.accepted_shares() >= accepted_before + 3,
        "{}",
        pool.log()
    );
    assert_eq!(pool.rejected_shares(), 0, "{}", pool.log());
    let listed = common::upstream::worker(http, &worker).await;
    assert!(
        listed["upstream"]["accepted"].as_u64() >= Some(3),
        "{listed}"
    );

    // A block found on the pool's job is the pool's: NDAS sends it as a
    // share, the pool submits it, and its node takes it.
    let block = share(&miner, &pooled, 9, pool_difficulty, true).await;
    let answer = miner.submit(&worker, &block).await.unwrap();
    assert_eq!(answer["result"], json!(true), "{answer}");
    let hash = block.hash.to_string();
    common::upstream::wait_for_best(pool.node(), &hash, WAIT, || pool.log()).await;
    assert_eq!(metric(http, "ndas_blocks_found_total").await, 0.0);

    // The pool dies (stopped by its PID): NDAS sees its connection go, and
    // with no node and no other pool, its miner is closed once the bound
    // passes, never left on the dead pool's work longer.
    let died = Instant::now();
    drop(pool);
    let down =
        common::upstream::upstreams_when(http, |list| list[0]["state"] == json!("down")).await;
    assert!(
        down[0]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{down:?}"
    );
    common::told_then_closed(&mut miner, WAIT).await;
    let closed_after = died.elapsed();
    assert!(closed_after >= BOUND, "{closed_after:?}");
    assert!(
        closed_after < BOUND + Duration::from_secs(10),
        "{closed_after:?}"
    );
    running.shutdown().await;
}
