//! The worker registry under churn, against Bitcoin Core regtest: names
//! that are only authorized never enter it, names that do earn a place (an
//! accepted share) are held to the cap by evicting the longest quiet, and
//! the honest, connected worker is never the one evicted.

mod common;

use std::net::SocketAddr;

use common::{http_json, metric, ready_miner, regtest_config, start_ndas, temp_dir, RegtestPair};
use ndas::miner::{grind, Client, Work};
use serde_json::json;

/// Submits one accepted share on `work` that is not a block, as `worker`.
async fn one_share(client: &mut Client, work: &Work, worker: &str, fill: u8) {
    let en2 = vec![fill; client.extranonce2_size];
    let wanted = client.difficulty;
    let share = grind(work, &client.extranonce1, &en2, (None, 0), 1000, |s| {
        s.difficulty >= wanted && !s.is_block
    })
    .unwrap();
    let answer = client.submit(worker, &share).await.unwrap();
    assert_eq!(answer["result"], json!(true), "{answer}");
}

/// Waits until NDAS counts `wanted` open connections.
async fn wait_for_connections(http: SocketAddr, wanted: f64) {
    common::wait_for_metric(http, "ndas_connections", |n| n == wanted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churned_names_never_grow_the_registry_past_its_cap_nor_push_out_a_connected_worker() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    config.stratum.max_workers = 20;
    let running = start_ndas(config).await;
    let (addr, http) = (running.stratum_addr(), running.metrics_addr());
    let (mut honest, work) = ready_miner(addr, "bmminer/2.0.0", "acct.honest").await;
    one_share(&mut honest, &work, "acct.honest", 1).await;

    // Authorizing costs nothing: 40 connections of 32 names each leave
    // nothing behind.
    for connection in 0..40 {
        let mut client = Client::connect(addr).await.unwrap();
        client.subscribe("churn/1").await.unwrap();
        for n in 0..32 {
            let name = format!("free.{connection:02}-{n:02}-{}", "x".repeat(90));
            assert_eq!(
                client.authorize(&name).await.unwrap()["result"],
                json!(true)
            );
        }
    }
    wait_for_connections(http, 1.0).await;
    let (_, stats) = http_json(http, "/api/stats").await;
    assert_eq!(
        stats["workers"],
        json!({"known": 1, "connected": 1}),
        "{stats}"
    );

    // Names that pay with a share: held to the cap, oldest quiet first.
    for n in 0..60u8 {
        let name = format!("paid.{n:02}");
        let (mut client, work) = ready_miner(addr, "churn/1", &name).await;
        one_share(&mut client, &work, &name, n).await;
        drop(client);
        wait_for_connections(http, 1.0).await;
    }
    let (_, stats) = http_json(http, "/api/stats").await;
    assert_eq!(
        stats["workers"],
        json!({"known": 20, "connected": 1}),
        "{stats}"
    );
    assert_eq!(metric(http, "ndas_workers_registered").await, 20.0);
    assert_eq!(metric(http, "ndas_workers_evicted_total").await, 41.0);
    assert_eq!(metric(http, "ndas_workers_refused_total").await, 0.0);

    // The honest worker is still there, with its share; the survivors are
    // the 19 paid most recently.
    let (_, first) = http_json(http, "/api/workers?limit=1").await;
    assert_eq!(first["total"], json!(20));
    assert_eq!(first["workers"][0]["name"], json!("acct.honest"));
    assert_eq!(first["workers"][0]["accepted"], json!(1));
    assert_eq!(first["next"], json!("acct.honest"));
    let (_, rest) = http_json(http, "/api/workers?after=acct.honest&limit=1000").await;
    let names: Vec<&str> = rest["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    let survivors: Vec<String> = (41..60).map(|n| format!("paid.{n:02}")).collect();
    assert_eq!(names, survivors);
    assert_eq!(rest["next"], json!(null));
    drop(honest);
    running.shutdown().await;
}
