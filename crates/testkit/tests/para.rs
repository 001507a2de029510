//! The test kit's para wrapper against the real `para pool` on its own
//! signet node: a CPU miner that is not NDAS mines shares to it directly,
//! and the pool's API counts them under the miner's address. What the
//! upstream tests read from para is proven here first.

use std::time::Duration;

use bitcoin::KnownHrp;
use ndas_testkit::para::{ParaNode, ParaPool};
use ndas_testkit::wallet::{Kind, Wallet};
use ndas_tools::miner::{grind, Client};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_s_shares_are_counted_under_its_address() {
    let node = ParaNode::start().await;
    let pool = ParaPool::start(&node, 0.00001).await;
    let address = Wallet::new(11)
        .address_on(Kind::P2wpkh, KnownHrp::Testnets)
        .to_string();
    let worker = format!("{address}.rig");

    let mut miner = Client::connect(pool.stratum()).await.unwrap();
    miner.subscribe("cpuminer/2.5.1").await.unwrap();
    let authorized = miner.authorize(&worker).await.unwrap();
    assert_eq!(authorized["result"], json!(true), "{authorized}");
    let work = miner
        .next_job(Duration::from_secs(30))
        .await
        .unwrap()
        .expect("a job after authorize");
    for fill in 0..3u8 {
        let en2 = vec![fill; miner.extranonce2_size];
        let wanted = miner.difficulty;
        let share = grind(&work, &miner.extranonce1, &en2, (None, 0), 5_000_000, |s| {
            s.difficulty >= wanted && !s.is_block
        })
        .expect("a share at para's difficulty");
        let answer = miner.submit(&worker, &share).await.unwrap();
        assert_eq!(answer["result"], json!(true), "{answer}");
    }
    let user = pool.wait_for_accepted(&address, 3).await;
    assert_eq!(user["address"], json!(address), "{user}");
    // Another address's name is unknown to it.
    let other = Wallet::new(12)
        .address_on(Kind::P2wpkh, KnownHrp::Testnets)
        .to_string();
    assert_eq!(pool.user(&other).await, serde_json::Value::Null);
}
