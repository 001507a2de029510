//! The history survives a restart, against Bitcoin Core regtest: the pool's
//! buckets, a worker's totals across both runs, and a found block with its
//! verdict, read back from `data_dir/history.redb` by the next NDAS.

use ndas_testkit as common;

use common::{
    http_get, http_json, ready_miner, regtest_config, start_ndas, submit_block, temp_dir,
    RegtestPair,
};
use serde_json::json;

/// `count` accepted shares that are not blocks.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_and_each_workers_totals_outlive_a_restart() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let config = regtest_config(&pair, dir.path(), &payout);

    let running = start_ndas(config.clone()).await;
    let (mut client, work) = ready_miner(running.stratum_addr(), "t/1", "acct.rig1").await;
    common::accepted_shares(&mut client, &work, "acct.rig1", 0..5).await;
    let block = submit_block(&mut client, &work, "acct.rig1", 100).await;
    pair.wait_height(102).await;
    common::wait_for_metric(
        running.metrics_addr(),
        "ndas_blocks_total{outcome=\"accepted\"}",
        |n| n == 1.0,
    )
    .await;
    drop(client);
    // Shutdown writes what the minute had so far.
    running.shutdown().await;

    let running = start_ndas(config).await;
    let http = running.metrics_addr();
    let (_, series) = http_json(http, "/api/history?range=1h").await;
    let accepted: u64 = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["accepted"].as_u64().unwrap())
        .sum();
    assert_eq!(
        accepted, 6,
        "five shares and the block, from the first run: {series}"
    );
    assert!(
        series["points"][0]["hashrate"].as_f64().unwrap() > 0.0,
        "{series}"
    );
    let (_, totals) = http_json(http, "/api/history/worker?name=acct.rig1").await;
    assert_eq!(totals["totals"]["accepted"], json!(6), "{totals}");
    let (_, blocks) = http_json(http, "/api/history/blocks").await;
    assert_eq!(
        blocks["blocks"][0]["hash"],
        json!(block.hash.to_string()),
        "{blocks}"
    );
    assert_eq!(blocks["blocks"][0]["status"], json!("accepted"), "{blocks}");

    // The same worker in the second run: its totals go on from the first.
    let (mut client, work) = ready_miner(running.stratum_addr(), "t/1", "acct.rig1").await;
    common::accepted_shares(&mut client, &work, "acct.rig1", 0..3).await;
    drop(client);
    let (status, _) = http_get(http, "/api/history?range=forever").await;
    assert_eq!(status, 400);
    running.shutdown().await;
    let history = ndas::history::History::open(&dir.path().join("data"), 100).unwrap();
    assert_eq!(history.worker("acct.rig1").unwrap().unwrap().accepted, 9);
}

#[test]
fn a_history_file_from_a_newer_ndas_is_refused_not_overwritten() {
    let dir = temp_dir();
    {
        let history = ndas::history::History::open(dir.path(), 10).unwrap();
        drop(history);
    }
    let db = redb::Database::create(dir.path().join("history.redb")).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut meta = tx
            .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
            .unwrap();
        meta.insert("schema_version", ndas::history::SCHEMA_VERSION + 1)
            .unwrap();
    }
    tx.commit().unwrap();
    drop(db);
    let refused = match ndas::history::History::open(dir.path(), 10) {
        Ok(_) => panic!("a newer schema was opened"),
        Err(error) => error.to_string(),
    };
    assert!(refused.contains("newer"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_that_cannot_be_opened_never_stops_mining() {
    let dir = temp_dir();
    let config = common::endpoint_config(
        (common::node::free_port(), "u", "p"),
        "regtest",
        dir.path(),
        "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080",
    );
    // Where the file should be, a folder: it cannot be opened.
    std::fs::create_dir_all(config.data_dir.join("history.redb")).unwrap();
    let running = ndas::start(config)
        .await
        .expect("NDAS starts without its history");
    let (status, body) = http_get(running.metrics_addr(), "/api/history?range=1h").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("history unavailable"), "{body}");
    running.shutdown().await;
}
