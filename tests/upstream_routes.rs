//! `[[route]]` against a real pool that is not NDAS: para's, on the same
//! Bitcoin Core signet node as NDAS (a random hash is not a block there).
//! Nine CPU miners of known hashrates (one eight times the others') mine
//! through NDAS, 70 % routed to the node and 30 % to para: whole miners
//! are moved by the difficulty each had accepted, and the accepted
//! difficulty on each side ends within 8 points of the weights. Alone in
//! its binary: the miners' hashrates are what the test measures, and
//! another test's grinding would take their CPU.

use ndas_testkit as common;

use std::str::FromStr;
use std::time::{Duration, Instant};

use bitcoin::KnownHrp;
use common::para::{ParaNode, ParaPool};
use common::wallet::{Kind, Wallet};
use common::{http_json, metric, ready_miner, start_ndas, temp_dir, wait_for_metric};
use serde_json::json;

/// Accepted difficulty on each side, tallied by the miners themselves.
#[derive(Default)]
struct Tally {
    node: f64,
    pool: f64,
}

/// A miner hashing `rate` nonces a second (in tenths of a second) through
/// NDAS at `addr`, submitting each share that meets its difficulty; while
/// `counting`, what NDAS accepts is tallied on the node's side when the
/// job pays `payout_script` (NDAS's own coinbase), else on the pool's.
/// Returns whether it mined for the node last.
async fn throttled_miner(
    addr: std::net::SocketAddr,
    worker: String,
    rate: u32,
    payout_script: Vec<u8>,
    (tally, counting, stop): (
        std::sync::Arc<std::sync::Mutex<Tally>>,
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        std::sync::Arc<std::sync::atomic::AtomicBool>,
    ),
) -> bool {
    use std::sync::atomic::Ordering::Relaxed;
    let (mut client, mut work) = ready_miner(addr, "cpuminer/2.5.1", &worker).await;
    // Each job from nonce 0 with an extranonce2 of its own, as firmware
    // does: the same header is never hashed twice.
    let (mut nonce, mut jobs) = (0u32, 0u32);
    // Exactly `rate` a second over the miner's life, however often jobs
    // come: each batch waits (reading jobs) until it is due.
    let (started, batch, mut hashed) = (Instant::now(), rate / 10, 0u64);
    let mut node_side = true;
    while !stop.load(Relaxed) {
        let due =
            started + Duration::from_secs_f64((hashed + u64::from(batch)) as f64 / f64::from(rate));
        while let Some(left) = due.checked_duration_since(Instant::now()) {
            if let Some(newer) = client.next_job(left).await.unwrap() {
                (work, nonce, jobs) = (newer, 0, jobs + 1);
            }
        }
        if let Some(newer) = client.latest_job() {
            (work, nonce, jobs) = (newer, 0, jobs + 1);
        }
        hashed += u64::from(batch);
        let (job, en1) = (work.clone(), client.extranonce1.clone());
        let mut en2 = vec![0u8; client.extranonce2_size];
        en2[..4].copy_from_slice(&jobs.to_le_bytes());
        let (wanted, from) = (client.difficulty, nonce);
        nonce += batch;
        let found = tokio::task::spawn_blocking(move || {
            // The header once, then only its nonce: a share is built
            // again only for the nonces that meet the target.
            use bitcoin::hashes::{sha256d, Hash};
            let first = ndas_tools::miner::hash_share(&job, &en1, &en2, from, None, 0);
            let mut root = sha256d::Hash::hash(&first.coinbase).to_byte_array();
            for step in &job.branch {
                root = sha256d::Hash::hash(&[root, *step].concat()).to_byte_array();
            }
            let mut header = bitcoin::block::Header {
                version: bitcoin::block::Version::from_consensus(job.version as i32),
                prev_blockhash: bitcoin::BlockHash::from_byte_array(job.prev_hash),
                merkle_root: bitcoin::TxMerkleNode::from_byte_array(root),
                time: job.ntime,
                bits: bitcoin::CompactTarget::from_consensus(job.bits),
                nonce: from,
            };
            let target = ndas_core::chain::Target::from_difficulty(wanted);
            (from..from + batch)
                .filter(|&n| {
                    header.nonce = n;
                    let hash = header.block_hash().to_byte_array();
                    target.is_met_by(&ndas_core::chain::Hash256(hash))
                })
                .map(|n| ndas_tools::miner::hash_share(&job, &en1, &en2, n, None, 0))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        node_side = work
            .coinb2
            .windows(payout_script.len())
            .any(|w| w == payout_script);
        for found in found {
            let answer = client.submit(&worker, &found).await.unwrap();
            if answer["result"] == json!(true) && counting.load(Relaxed) {
                let mut tally = tally.lock().unwrap();
                *(if node_side {
                    &mut tally.node
                } else {
                    &mut tally.pool
                }) += wanted;
            }
        }
    }
    node_side
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_split_the_farm_70_30_between_the_node_and_para_by_accepted_difficulty() {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::sync::{Arc, Mutex};
    let para_node = ParaNode::start().await;
    let para = ParaPool::start(&para_node, 0.000_001).await;
    let address = Wallet::new(25)
        .address_on(Kind::P2wpkh, KnownHrp::Testnets)
        .to_string();
    // NDAS mines on the same signet (a random hash is not a block there).
    let payout = Wallet::new(26)
        .address_on(Kind::P2wpkh, KnownHrp::Testnets)
        .to_string();
    let payout_script = bitcoin::Address::from_str(&payout)
        .unwrap()
        .assume_checked()
        .script_pubkey()
        .to_bytes();
    let dir = temp_dir();
    let mut config = common::node_config(&para_node.node, "signet", dir.path(), &payout);
    config.stratum.extranonce2_size = 4;
    // One share a second for a small miner (2,000 hashes a second), at one
    // difficulty for every miner (below para's): what NDAS credits a share
    // with is what the miner tallies.
    const SMALL: u32 = 2_000;
    let unit = f64::from(SMALL) / 4_294_967_296.0;
    (
        config.difficulty.start,
        config.difficulty.min,
        config.difficulty.max,
    ) = (unit, unit, unit);
    config.difficulty.agents = Vec::new();
    config.upstream = vec![common::upstream::pool(
        "para",
        para.stratum(),
        &format!("{address}.ndas"),
    )];
    config.route = vec![
        common::upstream::route("node", 70.0),
        common::upstream::route("para", 30.0),
    ];
    let running = start_ndas(config).await;
    let http = running.metrics_addr();
    wait_for_metric(http, "ndas_upstream_up{upstream=\"para\"}", |n| n == 1.0).await;

    // One miner eight times the others': 8 + 8 × 1 = 16 units. 30 % is
    // 4.8 of them: five small miners (31 %) or four (25 %). Splitting by
    // count instead (three of nine) gives 19 %, or 62 % with the large one.
    let tally = Arc::new(Mutex::new(Tally::default()));
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut miners = Vec::new();
    for (i, rate) in std::iter::once(8 * SMALL).chain([SMALL; 8]).enumerate() {
        let shared = (tally.clone(), counting.clone(), stop.clone());
        miners.push(tokio::spawn(throttled_miner(
            running.stratum_addr(),
            format!("{payout}.rig{i}"),
            rate,
            payout_script.clone(),
            shared,
        )));
    }
    // Two plans measure the miners and move them (ndas_core's PLAN_EVERY,
    // 30 s); a third corrects an overshoot. Then a minute is tallied.
    tokio::time::sleep(Duration::from_secs(100)).await;
    counting.store(true, Relaxed);
    tokio::time::sleep(Duration::from_secs(60)).await;
    counting.store(false, Relaxed);
    let (node, pool) = {
        let tally = tally.lock().unwrap();
        (tally.node, tally.pool)
    };
    let part = pool / (node + pool);
    eprintln!("para's part of the accepted difficulty: {part:.3}");
    let (_, stats) = http_json(http, "/api/stats").await;
    assert!(
        (0.22..=0.38).contains(&part),
        "para's part of the accepted difficulty is {part:.3} (node {node:.3e}, para {pool:.3e}), not 30 % ± 8; routes: {}",
        stats["routes"]
    );
    // The split is on the page's figures too, and the work reached para.
    let routes = stats["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 2, "{stats}");
    assert_eq!(routes[1]["to"], json!("para"));
    assert_eq!(routes[1]["available"], json!(true));
    assert!((routes[1]["weight"].as_f64().unwrap() - 0.3).abs() < 1e-9);
    let miners_on: u64 = routes.iter().map(|r| r["miners"].as_u64().unwrap()).sum();
    assert_eq!(miners_on, 9, "{stats}");
    assert!(routes[1]["share"].as_f64() > Some(0.0), "{stats}");
    assert!(metric(http, "ndas_route_weight{route=\"para\"}").await > 0.29);
    para.wait_for_accepted(&address, 1).await;
    stop.store(true, Relaxed);
    let mut on_node = Vec::new();
    for miner in miners {
        on_node.push(miner.await.unwrap());
    }
    // Whole miners by what they had accepted: the large one on the node,
    // four or five small ones on para.
    assert!(on_node[0], "the large miner mines for para: {on_node:?}");
    let small_on_para = on_node[1..].iter().filter(|node| !**node).count();
    assert!((4..=5).contains(&small_on_para), "{on_node:?}");
    running.shutdown().await;
}
