//! The worker registry under churn, against Bitcoin Core regtest: names
//! that are only authorized never enter it, names that do earn a place (an
//! accepted share) are held to the cap by evicting the longest quiet, and
//! the honest, connected worker is never the one evicted.

use ndas_testkit as common;

use std::net::SocketAddr;

use common::{http_json, metric, ready_miner, regtest_config, start_ndas, temp_dir, RegtestPair};
use ndas_tools::miner::{Client, Work};
use serde_json::json;

/// Submits one accepted share on `work` that is not a block, as `worker`.
async fn one_share(client: &mut Client, work: &Work, worker: &str, fill: u8) {
    common::accepted_shares(client, work, worker, fill..fill + 1).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_pages_order_is_by_hashrate_so_made_up_names_cannot_crowd_it_and_names_are_searchable(
) {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let running = start_ndas(regtest_config(&pair, dir.path(), &payout)).await;
    let (addr, http) = (running.stratum_addr(), running.metrics_addr());
    // Names that sort before the real ones, each with the least it takes
    // to be listed: one share.
    for n in 0..30u8 {
        let name = format!("aaaa.{n:02}");
        let (mut client, work) = ready_miner(addr, "churn/1", &name).await;
        one_share(&mut client, &work, &name, n).await;
    }
    let (mut rig, work) = ready_miner(addr, "bmminer/2.0.0", "acct.Rack12-S19-004").await;
    for fill in 100..105 {
        one_share(&mut rig, &work, "acct.Rack12-S19-004", fill).await;
    }
    let (mut other, work) = ready_miner(addr, "bmminer/2.0.0", "acct.rack13-s19-001").await;
    for fill in 110..113 {
        one_share(&mut other, &work, "acct.rack13-s19-001", fill).await;
    }

    // By name, the made-up names fill the first page.
    let (_, by_name) = http_json(http, "/api/workers?limit=5").await;
    assert_eq!(by_name["workers"][0]["name"], json!("aaaa.00"));
    // By hashrate, the real rigs lead.
    let (_, ranked) = http_json(http, "/api/workers?sort=hashrate&limit=5").await;
    let names: Vec<&str> = ranked["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names[..2],
        ["acct.Rack12-S19-004", "acct.rack13-s19-001"],
        "{ranked}"
    );
    assert_eq!(ranked["total"], json!(32));
    assert_eq!(ranked["sort"], json!("hashrate"));
    // A search, in any case, pages through the matches alone.
    let (_, found) = http_json(http, "/api/workers?sort=hashrate&q=RACK1&limit=1&offset=1").await;
    assert_eq!(found["total"], json!(2), "{found}");
    assert_eq!(found["workers"][0]["name"], json!("acct.rack13-s19-001"));
    let (status, _) = common::http_get(
        http,
        &format!("/api/workers?sort=hashrate&q={}", "x".repeat(129)),
    )
    .await;
    assert_eq!(status, 400, "a search longer than any name is refused");
    // The page asks for that order.
    let (_, page) = common::http_get(http, "/").await;
    assert!(
        page.contains("api/workers?sort=hashrate"),
        "the status page ranks by hashrate"
    );
    drop((rig, other));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_stops_sharing_is_offline_by_its_own_pace_and_back_with_its_next_share() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    config.stratum.offline_after_share_intervals = 2.0;
    let running = start_ndas(config).await;
    let (addr, http) = (running.stratum_addr(), running.metrics_addr());
    let (mut stopping, work) = ready_miner(addr, "bmminer/2.0.0", "acct.stops").await;
    for fill in 0..10 {
        one_share(&mut stopping, &work, "acct.stops", fill).await;
    }
    // The other keeps sharing at its pace all along.
    let (mut steady, steady_work) = ready_miner(addr, "bmminer/2.0.0", "acct.steady").await;
    let keep_going = tokio::spawn(async move {
        for fill in 0..=255u8 {
            one_share(&mut steady, &steady_work, "acct.steady", fill).await;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    });

    // Still connected, no longer sharing: offline after two of its intervals.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let offline = loop {
        let (_, page) = http_json(http, "/api/workers?state=offline").await;
        if page["total"] == json!(1) {
            break page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never offline: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let worker = &offline["workers"][0];
    assert_eq!(worker["name"], json!("acct.stops"));
    assert_eq!(worker["state"], json!("offline"));
    assert_eq!(worker["connections"], json!(1), "offline while connected");
    let interval = &worker["share_interval"];
    assert!(
        interval["since_last_seconds"].as_f64().unwrap()
            > 2.0 * interval["expected_seconds"].as_f64().unwrap(),
        "{interval}"
    );
    let (_, oldest) = http_json(http, "/api/workers?sort=last_share&limit=1").await;
    assert_eq!(oldest["workers"][0]["name"], json!("acct.stops"));
    common::wait_for_metric(http, "ndas_workers{state=\"offline\"}", |n| n == 1.0).await;
    assert_eq!(metric(http, "ndas_workers{state=\"online\"}").await, 1.0);

    // One share and it is back.
    one_share(&mut stopping, &work, "acct.stops", 200).await;
    let (_, page) = http_json(http, "/api/workers?state=offline").await;
    assert_eq!(page["total"], json!(0), "{page}");
    let (status, bad) = common::http_get(http, "/api/workers?state=sleeping").await;
    assert_eq!(status, 400, "{bad}");
    keep_going.abort();
    drop(stopping);
    running.shutdown().await;
}
