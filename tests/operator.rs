//! The operator's surface against a running NDAS and the real regtest node:
//! health, readiness, metrics, the JSON API and the status page.

use ndas_testkit as common;

use std::time::Duration;

use common::{http_get, http_json, regtest_config, start_ndas, temp_dir, RegtestPair};
use ndas_tools::miner::grind;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn metric(text: &str, series: &str) -> f64 {
    common::sum_series(text, series).unwrap_or_else(|| panic!("{series} not in /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_report_what_the_pool_does() {
    let mut pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    config.node.timeout_seconds = 1.0;
    let running = start_ndas(config).await;
    let http = running.metrics_addr();

    assert_eq!(
        http_json(http, "/healthz").await,
        (200, json!({"status": "alive"}))
    );
    assert_eq!(
        http_json(http, "/readyz").await,
        (200, json!({"ready": true}))
    );

    // Two workers; one finds a block, one has a share rejected.
    let (mut first, work) =
        common::ready_miner(running.stratum_addr(), "bmminer/2.0.0", "acct.rig1").await;
    let en2 = vec![1; first.extranonce2_size];
    let (mut second, work2) =
        common::ready_miner(running.stratum_addr(), "bitaxe/BM1366", "acct.rig2").await;
    let mut unknown = grind(&work2, &second.extranonce1, &en2, (None, 0), 10, |_| true).unwrap();
    unknown.job_id = "ffffff".into();
    assert_eq!(
        second.submit("acct.rig2", &unknown).await.unwrap()["error"][0],
        json!(21)
    );
    // Its accepted share gives it a place among the workers, with the
    // rejection it had before.
    let fine = grind(
        &work2,
        &second.extranonce1,
        &[2; 8][..second.extranonce2_size],
        (None, 0),
        1000,
        |s| s.difficulty >= 2.5e-10 && !s.is_block,
    )
    .unwrap();
    assert_eq!(
        second.submit("acct.rig2", &fine).await.unwrap()["result"],
        json!(true)
    );
    let block = common::submit_block(&mut first, &work, "acct.rig1", 1).await;

    // The block settles as accepted.
    let deadline = tokio::time::Instant::now() + WAIT;
    let stats = loop {
        let (status, stats) = http_json(http, "/api/stats").await;
        assert_eq!(status, 200);
        if stats["blocks"]["accepted"] == json!(1) {
            break stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "block never accepted: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stats["connections"], json!(2));
    assert_eq!(stats["workers"], json!({"known": 2, "connected": 2}));
    assert_eq!(stats["shares"]["accepted"], json!(2));
    assert_eq!(stats["shares"]["rejected"]["job_not_found"], json!(1));
    assert!(stats["hashrate"]["1m"].as_f64().unwrap() > 0.0);
    assert_eq!(stats["blocks"]["found"], json!(1));
    let recent = &stats["blocks"]["recent"][0];
    assert_eq!(recent["hash"], json!(block.hash.to_string()));
    assert_eq!(recent["worker"], json!("acct.rig1"));
    assert_eq!(recent["status"], json!("accepted"));
    assert_eq!(stats["node"]["up"], json!(true));
    assert!(stats["template"]["height"].as_u64().unwrap() >= 102);

    let (status, page) = http_json(http, "/api/workers?limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(
        (page["total"].clone(), page["limit"].clone()),
        (json!(2), json!(1))
    );
    let rig1 = &page["workers"][0];
    assert_eq!(rig1["name"], json!("acct.rig1"));
    assert_eq!(rig1["accepted"], json!(1));
    assert_eq!(rig1["user_agent"], json!("bmminer/2.0.0"));
    assert!(rig1["difficulty"].as_f64().unwrap() > 0.0);
    assert!(rig1["best_share"].as_f64().unwrap() > 0.0);
    let (_, rest) = http_json(http, "/api/workers?offset=1&limit=1").await;
    assert_eq!(rest["workers"][0]["name"], json!("acct.rig2"));
    assert_eq!(rest["workers"][0]["rejected"], json!(1));

    // The accepted block moves both miners to the new tip: the broadcast
    // that follows is timed per connection.
    let deadline = tokio::time::Instant::now() + WAIT;
    let metrics = loop {
        let (status, metrics) = http_get(http, "/metrics").await;
        assert_eq!(status, 200);
        if metric(&metrics, "ndas_notify_delay_seconds_count") >= 2.0 {
            break metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new tip never reached both miners"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(metric(&metrics, "ndas_connections "), 2.0);
    assert_eq!(
        metric(
            &metrics,
            "ndas_shares_total{reason=\"none\",result=\"accepted\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &metrics,
            "ndas_shares_total{reason=\"job_not_found\",result=\"rejected\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, "ndas_blocks_total{outcome=\"accepted\"}"),
        1.0
    );
    assert_eq!(metric(&metrics, "ndas_blocks_found_total"), 1.0);
    assert_eq!(metric(&metrics, "ndas_node_up"), 1.0);
    assert!(
        metric(
            &metrics,
            "ndas_rpc_calls_total{method=\"submitblock\",outcome=\"ok\"}"
        ) >= 1.0
    );
    assert!(metric(&metrics, "ndas_tip_to_job_seconds_count") >= 1.0);
    assert!(metric(&metrics, "ndas_bytes_received_total") > 0.0);
    assert!(metrics.contains("process_resident_memory_bytes"));

    let (status, html) = http_get(http, "/").await;
    assert_eq!(status, 200);
    assert!(html.contains("<title>NDAS status</title>") && html.contains("api/stats"));
    assert_eq!(http_get(http, "/nope").await.0, 404);

    // The node goes away: readiness fails with the reason, then recovers.
    pair.main.stop();
    let reasons = common::wait_for_readyz(http, 503).await["reasons"].clone();
    assert!(
        reasons[0].as_str().unwrap().starts_with("node unreachable"),
        "{reasons}"
    );
    let (_, metrics) = http_get(http, "/metrics").await;
    assert_eq!(metric(&metrics, "ndas_node_up"), 0.0);
    pair.main.restart().await;
    common::wait_for_readyz(http, 200).await;

    // Nothing the API shows carries the node's credentials.
    let password = pair.main.password.clone();
    for path in ["/metrics", "/api/stats", "/api/workers", "/readyz", "/"] {
        assert!(
            !http_get(http, path).await.1.contains(&password),
            "{path} shows the RPC password"
        );
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_on_the_same_data_dir_refuses_to_start_whatever_its_id() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let running = start_ndas(regtest_config(&pair, dir.path(), &payout)).await;
    // The same id, or another: two writers would share blocks/found.log,
    // truncate it under each other and number its records alike.
    for id in [9, 10] {
        let mut other = regtest_config(&pair, dir.path(), &payout);
        other.instance_id = id;
        let error = ndas::start(other).await.err().expect("refused");
        let text = error.to_string();
        assert!(
            text.contains("another NDAS already runs on data_dir"),
            "{text}"
        );
        assert!(text.contains("by instance_id 9"), "{text}");
        assert!(text.contains("its own data_dir"), "{text}");
    }
    running.shutdown().await;
    let again = ndas::start(regtest_config(&pair, dir.path(), &payout))
        .await
        .expect("the lock is freed at shutdown");
    again.shutdown().await;
}
