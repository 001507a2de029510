//! Every job within its template's own limits, against Bitcoin Core regtest:
//! a node that reserves less room for the coinbase (`-blockreservedweight`)
//! than NDAS's `mining.block_reserved_weight` says, a full mempool, and a
//! coinbase larger than the node's reservation.

use ndas_testkit as common;

use bitcoin::consensus::deserialize;
use common::wallet::{Kind, Wallet};
use common::{metric, ready_miner, regtest_config, start_ndas, temp_dir, RegtestPair};
use ndas::config::SplitConfig;
use serde_json::{json, Value};

/// Sum of `field` over a `getblocktemplate` answer's transactions.
fn template_sum(template: &Value, field: &str) -> u64 {
    template["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tx| tx[field].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reserving_less_than_the_coinbase_needs_still_gets_valid_blocks() {
    // Core's least reservation and the consensus weight limit: its
    // templates fill 3,998,000 weight units with transactions.
    let pair = RegtestPair::start_with(&[
        "-blockreservedweight=2000".into(),
        "-blockmaxweight=4000000".into(),
    ])
    .await;
    // Twelve coins more (the pair's funding left one), then a mempool
    // fuller than a block.
    pair.wallet.fund(&pair.main, 112).await;
    pair.wallet.fill_blocks(&pair.main, 11, 1200).await;
    let template = pair
        .main
        .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
        .await;
    let weight = template_sum(&template, "weight");
    assert!(
        (3_996_000..3_998_000).contains(&weight),
        "the node's template fills its room: {weight} weight units"
    );

    // NDAS's coinbase: thirty P2WSH splits, about 5,900 weight units. It
    // fits the 8,000 NDAS believes the node reserves, not the 2,000 it does.
    let dir = temp_dir();
    let payout = Wallet::new(60).address(Kind::P2wpkh).to_string();
    let fee = Wallet::new(61).address(Kind::P2wsh).to_string();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    assert_eq!(config.mining.block_reserved_weight, 8000);
    config.mining.split = (0..30)
        .map(|_| SplitConfig {
            address: fee.clone(),
            basis_points: 10,
        })
        .collect();
    config
        .validate()
        .expect("the config is valid for an 8,000 reservation");
    let running = start_ndas(config).await;
    let metrics = running.metrics_addr();

    let (mut client, work) = ready_miner(running.stratum_addr(), "cpuminer/2.5.1", "w.1").await;
    // More than 256 transactions in the job: the full mempool's template.
    let work = common::job_with_transactions(&mut client, Some(work), 9).await;
    let height = pair.main.height().await;
    let share = common::submit_block(&mut client, &work, "w.1", 1).await;
    // The node's verdict, as NDAS records it.
    let settled = "ndas_blocks_total";
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while metric(metrics, settled).await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the block was never settled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(metrics, "ndas_blocks_total{outcome=\"rejected\"}").await,
        0.0,
        "the node refused NDAS's block (bad-blk-weight)"
    );
    pair.wait_height(height + 1).await;
    let best = pair.main.call("getbestblockhash", json!([])).await;
    assert_eq!(best.as_str().unwrap(), share.hash.to_string());
    let raw = pair.main.call("getblock", json!([best, 0])).await;
    let block: bitcoin::Block = deserialize(&hex::decode(raw.as_str().unwrap()).unwrap()).unwrap();
    assert!(block.weight().to_wu() <= 4_000_000);
    assert!(block.check_witness_commitment());
    // The coinbase paid every split: it was not made smaller, the block's
    // transactions were (and the reward by their fees).
    assert_eq!(block.txdata[0].output.len(), 30 + 1 + 1);
    assert!(block.txdata.len() - 1 < template["transactions"].as_array().unwrap().len());
    // Told: the metric the NdasTemplateOverLimits alert watches.
    assert!(
        metric(
            metrics,
            "ndas_templates_over_limits_total{action=\"trimmed\"}"
        )
        .await
            >= 1.0
    );
    assert_eq!(
        metric(
            metrics,
            "ndas_templates_over_limits_total{action=\"refused\"}"
        )
        .await,
        0.0
    );
    running.shutdown().await;
}
