//! Several stratum ports, each with its own difficulty, and the starting
//! difficulty by user agent, against Bitcoin Core on a private `OP_TRUE`
//! signet (where pool difficulties are not capped to regtest's 4.7e-10).

use ndas_testkit as common;

use std::time::Duration;

use bitcoin::KnownHrp;
use common::node::RegtestNode;
use common::wallet::{Kind, Wallet};
use common::{http_get, http_json, node_config, ready_miner, start_ndas, sum_series, temp_dir};
use ndas::config::{AgentDifficulty, Config, PortConfig};
use ndas_tools::miner::{grind, Client, Work};
use serde_json::json;

/// Mines a share per extranonce2 fill in `fills` at the miner's difficulty on `work`; each accepted.
/// Never a block (about one share in 140 would be at these difficulties):
/// a new tip would make the next share on `work` stale.
async fn mine(client: &mut Client, work: &Work, worker: &str, fills: std::ops::Range<u8>) {
    for n in fills {
        let en2 = vec![n; client.extranonce2_size];
        let wanted = client.difficulty;
        let share = grind(work, &client.extranonce1, &en2, (None, 0), 1_000_000, |s| {
            s.difficulty >= wanted && !s.is_block
        })
        .expect("a share at the miner's difficulty");
        let answer = client.submit(worker, &share).await.unwrap();
        assert_eq!(answer["result"], json!(true), "{answer}");
    }
}

/// Reads until `mining.set_difficulty` arrives; its difficulty.
async fn next_difficulty(client: &mut Client) -> f64 {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), client.read_message())
            .await
            .expect("a set_difficulty within 30 s")
            .unwrap()
            .expect("the connection stays open");
        if message["method"] == json!("mining.set_difficulty") {
            return message["params"][0].as_f64().unwrap();
        }
    }
}

fn two_ports(config: &mut Config, bitaxe_min: f64) {
    config.difficulty.start = 8e-6;
    config.difficulty.min = 1e-7;
    config.difficulty.max = 1.0;
    config.stratum.ports = vec![PortConfig {
        name: "bitaxe".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        start: 2e-6,
        min: Some(bitaxe_min),
        max: None,
        tls_cert: None,
        tls_key: None,
    }];
    config.difficulty.agents = vec![AgentDifficulty {
        prefix: "nicehash".into(),
        start: 3e-5,
        min: Some(3e-5),
    }];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_port_serves_its_own_difficulty_and_counts_its_own_shares() {
    let node = RegtestNode::start_signet().await;
    let payout = Wallet::new(3)
        .address_on(Kind::P2wpkh, KnownHrp::Testnets)
        .to_string();
    let dir = temp_dir();
    let mut config = node_config(&node, "signet", dir.path(), &payout);
    two_ports(&mut config, 1e-7);
    config.validate().unwrap();
    let mut running = start_ndas(config.clone()).await;
    let main = running.stratum_addr();
    let bitaxe = running
        .port_addr("bitaxe")
        .expect("the second port listens");
    assert_ne!(main, bitaxe);

    let (mut asic, asic_work) = ready_miner(main, "bmminer/2.0.0", "acct.s21").await;
    let (mut small, small_work) = ready_miner(bitaxe, "bitaxe/BM1370/v2.9.0", "acct.gamma").await;
    let (rental, _) = ready_miner(bitaxe, "NiceHash/1.0.0", "acct.rental").await;
    assert_eq!(asic.difficulty, 8e-6, "the main port's start");
    assert_eq!(small.difficulty, 2e-6, "the bitaxe port's start");
    assert_eq!(rental.difficulty, 3e-5, "the agent table beats the port");
    // Both ports mine the same work with their own extranonce1s.
    assert_eq!(asic_work.prev_hash, small_work.prev_hash);
    assert_ne!(asic.extranonce1, small.extranonce1);
    mine(&mut asic, &asic_work, "acct.s21", 0..3).await;
    mine(&mut small, &small_work, "acct.gamma", 0..2).await;

    let (_, text) = http_get(running.metrics_addr(), "/metrics").await;
    let series = |s: &str| sum_series(&text, s).unwrap_or_else(|| panic!("{s}:\n{text}"));
    assert_eq!(
        series(r#"ndas_shares_total{port="main",result="accepted"}"#),
        3.0
    );
    assert_eq!(
        series(r#"ndas_shares_total{port="bitaxe",result="accepted"}"#),
        2.0
    );
    assert_eq!(series(r#"ndas_connections{port="main"}"#), 1.0);
    assert_eq!(series(r#"ndas_connections{port="bitaxe"}"#), 2.0);
    assert_eq!(series(r#"ndas_connections_total{port="bitaxe"}"#), 2.0);
    assert_eq!(series(r#"ndas_shares_total{result="accepted"}"#), 5.0);
    let credited = series(r#"ndas_accepted_difficulty_total{port="bitaxe"}"#);
    assert!((credited - 4e-6).abs() < 1e-12, "{credited}");

    let (status, stats) = http_json(running.metrics_addr(), "/api/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["connections"], json!(3));
    let ports = stats["ports"].as_array().expect("ports in /api/stats");
    assert_eq!(ports.len(), 2, "{stats}");
    assert_eq!(ports[0]["name"], json!("main"));
    assert_eq!(ports[0]["listen"], json!(main.to_string()));
    assert_eq!(ports[0]["shares"]["accepted"], json!(3));
    assert_eq!(ports[1]["name"], json!("bitaxe"));
    assert_eq!(ports[1]["listen"], json!(bitaxe.to_string()));
    assert_eq!(ports[1]["difficulty"]["start"], json!(2e-6));
    assert_eq!(ports[1]["connections"], json!(2));
    assert_eq!(ports[1]["shares"]["accepted"], json!(2));

    // A reload raises the bitaxe port's floor: its miners hear at once,
    // the main port's miner does not.
    let mut raised = config.clone();
    two_ports(&mut raised, 5e-6);
    let said = running.reload(raised);
    assert!(
        said.iter()
            .any(|line| line.contains("stratum.ports bitaxe")),
        "{said:?}"
    );
    assert_eq!(next_difficulty(&mut small).await, 5e-6);
    mine(&mut small, &small_work, "acct.gamma", 2..3).await;
    let (_, stats) = http_json(running.metrics_addr(), "/api/stats").await;
    assert_eq!(stats["ports"][1]["difficulty"]["min"], json!(5e-6));
    assert_eq!(asic.difficulty, 8e-6);
    drop((asic, small, rental));
    running.shutdown().await;
}
