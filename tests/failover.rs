//! When no node serves (`mining.when_no_node`), against Bitcoin Core
//! regtest stopped under NDAS: in `disconnect` mode every miner, Stratum
//! V1 and V2, is told where to go and closed within the bound, and new
//! ones are refused until the node serves again; then they get work on its
//! tip, with `clean_jobs`.

use ndas_testkit as common;

use std::time::Duration;

use common::sv2::{connected, with_sv2, Received};
use common::{metric, ready_miner, regtest_config, start_ndas, temp_dir, wait_for_metric};
use common::{wait_for_readyz, RegtestPair};
use ndas::config::WhenNoNode;
use serde_json::json;
use tokio::io::AsyncReadExt;

const BOUND: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_node_miners_are_sent_away_within_the_bound_and_refused_until_it_serves() {
    let mut pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = with_sv2(regtest_config(&pair, dir.path(), &payout), 8);
    // A node that hangs while it stops is known to be gone this soon.
    config.node.timeout_seconds = 2.0;
    config.mining.when_no_node = Some(WhenNoNode::Disconnect);
    config.mining.failover_after_seconds = BOUND.as_secs();
    config.mining.reconnect_to = Some("backup.example:3334".into());
    let data_dir = config.data_dir.clone();
    let running = start_ndas(config).await;
    let http = running.metrics_addr();
    let sv2_addr = running.port_addr("sv2").expect("the sv2 port");
    let worker = format!("{payout}.rig");
    let (mut v1, _) = ready_miner(running.stratum_addr(), "cgminer/4.12.1", &worker).await;
    let mut v2 = connected(sv2_addr, &data_dir).await;
    v2.open(1, &worker, None).await.unwrap();
    v2.until(WAIT, |m| {
        matches!(m, Received::PrevHash { .. }).then_some(())
    })
    .await
    .unwrap();

    // From the moment the node is told to stop (NDAS cannot see it gone
    // earlier); read while it shuts down, which can take Core seconds.
    let stopped = tokio::time::Instant::now();
    pair.main.signal("TERM");
    // Stratum V1: told to go to the backup, as cgminer reads it, then closed.
    let told = common::told_then_closed(&mut v1, WAIT).await;
    let closed_after = stopped.elapsed();
    assert_eq!(told, Some(json!(["backup.example", "3334", 0])));
    // Not before the bound (a node's restart must not scatter the farm);
    // within it, give or take the poll that notices the node is gone.
    assert!(closed_after >= BOUND, "closed after {closed_after:?}");
    assert!(
        closed_after < BOUND + Duration::from_secs(10),
        "closed after {closed_after:?}"
    );
    // Stratum V2: `Reconnect` to the same backup, then closed.
    let reconnect = v2
        .until(WAIT, |m| match m {
            Received::Reconnect { new_host, new_port } => Some((new_host.clone(), *new_port)),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(reconnect, ("backup.example".to_owned(), 3334));
    assert!(v2.next(WAIT).await.is_err(), "closed after Reconnect");
    for port in ["main", "sv2"] {
        let series = format!("ndas_disconnects_total{{port=\"{port}\",reason=\"no_node\"}}");
        wait_for_metric(http, &series, |n| n == 1.0).await;
    }
    assert_eq!(metric(http, "ndas_work_withdrawn").await, 1.0);
    let (_, stats) = common::http_json(http, "/api/stats").await;
    assert_eq!(stats["node"]["miners_sent_away"], json!(true), "{stats}");

    // A miner arriving meanwhile is closed before a line is read.
    let mut late = tokio::net::TcpStream::connect(running.stratum_addr())
        .await
        .unwrap();
    let read = tokio::time::timeout(WAIT, late.read(&mut [0u8; 64])).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    let refused =
        "ndas_connections_refused_total{port=\"main\",protocol=\"stratum\",reason=\"no_node\"}";
    wait_for_metric(http, refused, |n| n >= 1.0).await;

    // The node is back: miners are let in again and get its tip's work.
    pair.main.stop();
    pair.main.restart().await;
    wait_for_readyz(http, 200).await;
    wait_for_metric(http, "ndas_work_withdrawn", |n| n == 0.0).await;
    let (_back, work) = ready_miner(running.stratum_addr(), "cgminer/4.12.1", &worker).await;
    assert!(work.clean, "the first job after the outage is clean_jobs");
    let tip = pair.main.call("getbestblockhash", json!([])).await;
    let mut prev = work.prev_hash;
    prev.reverse();
    assert_eq!(
        json!(hex::encode(prev)),
        tip,
        "the job builds on the node's tip"
    );
    assert_eq!(metric(http, "ndas_work_withdrawals_total").await, 1.0);
    let (_, stats) = common::http_json(http, "/api/stats").await;
    assert_eq!(stats["node"]["miners_sent_away"], json!(false), "{stats}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_node_sends_miners_away_once_its_calls_time_out_and_the_bound_passes() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    config.node.timeout_seconds = 2.0;
    config.mining.when_no_node = Some(WhenNoNode::Disconnect);
    config.mining.failover_after_seconds = BOUND.as_secs();
    let running = start_ndas(config).await;
    let http = running.metrics_addr();
    let worker = format!("{payout}.rig");
    let (mut miner, _) = ready_miner(running.stratum_addr(), "bmminer/2.0.0", &worker).await;

    // Stopped, not gone: its sockets accept and never answer, so NDAS
    // knows only when its calls time out (2 s), then waits the bound.
    let stopped = tokio::time::Instant::now();
    pair.main.signal("STOP");
    loop {
        match tokio::time::timeout(WAIT, miner.read_message()).await {
            Ok(Ok(Some(message))) => assert_ne!(
                message["method"],
                json!("client.reconnect"),
                "no mining.reconnect_to: closed only"
            ),
            Ok(_) => break,
            Err(_) => panic!("still open {WAIT:?} after the node hung"),
        }
    }
    let closed_after = stopped.elapsed();
    assert!(closed_after >= BOUND, "closed after {closed_after:?}");
    assert!(
        closed_after < BOUND + Duration::from_secs(2 + 10),
        "closed after {closed_after:?}"
    );
    wait_for_metric(
        http,
        "ndas_disconnects_total{port=\"main\",reason=\"no_node\"}",
        |n| n == 1.0,
    )
    .await;

    pair.main.signal("CONT");
    wait_for_readyz(http, 200).await;
    wait_for_metric(http, "ndas_work_withdrawn", |n| n == 0.0).await;
    let (_back, work) = ready_miner(running.stratum_addr(), "bmminer/2.0.0", &worker).await;
    assert!(work.clean);
    running.shutdown().await;
}
