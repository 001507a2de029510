//! Upstream pools (`[[upstream]]`) against a real pool that is not NDAS:
//! para's, on a Bitcoin Core signet node of its own. NDAS keeps a
//! connection to each pool and says what each makes of it: taken, refused
//! (with the pool's reason or NDAS's), or unreachable; and tries again.

use ndas_testkit as common;

use bitcoin::KnownHrp;
use common::para::{ParaNode, ParaPool};
use common::upstream::upstreams_when;
use common::wallet::{Kind, Wallet};
use common::{metric, regtest_config, start_ndas, temp_dir, RegtestPair};
use ndas::config::UpstreamConfig;
use serde_json::json;

fn upstream(name: &str, addr: std::net::SocketAddr, user: &str) -> UpstreamConfig {
    common::upstream::pool(name, addr, user)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_upstream_pool_is_connected_and_said_to_take_refuse_or_miss_ndas() {
    let node = ParaNode::start().await;
    let para = ParaPool::start(&node, 0.001).await;
    // A pool whose extranonce2 (4 bytes) leaves no room for a 4-byte slice
    // per miner beside the miners' own 4.
    let narrow = ParaPool::start_with(&node, 0.001, &["--enonce2-size", "4"]).await;
    let address = Wallet::new(21)
        .address_on(Kind::P2wpkh, KnownHrp::Testnets)
        .to_string();
    let account = format!("{address}.ndas");
    let nowhere = std::net::SocketAddr::from(([127, 0, 0, 1], common::node::free_port()));

    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    config.stratum.extranonce2_size = 4;
    config.upstream = vec![
        upstream("para", para.stratum(), &account),
        upstream("narrow", narrow.stratum(), &account),
        upstream("gone", nowhere, &account),
    ];
    let running = start_ndas(config).await;
    let http = running.metrics_addr();

    let list = upstreams_when(http, |list| {
        list.len() == 3
            && list[0]["state"] == json!("ready")
            && list[0]["difficulty"].is_number()
            && list[1]["state"] == json!("refused")
            && list[2]["state"] == json!("down")
    })
    .await;
    // Taken: subscribed with para's 8-byte extranonce2, authorized as the
    // account, at para's starting difficulty.
    assert_eq!(list[0]["name"], json!("para"));
    assert_eq!(list[0]["extranonce2_size"], json!(8));
    // (para sends its target's difficulty: 0.001 to a few parts in 10^6.)
    let difficulty = list[0]["difficulty"].as_f64().unwrap();
    assert!((difficulty / 0.001 - 1.0).abs() < 1e-6, "{difficulty}");
    assert!(list[0]["reason"].is_null(), "{list:?}");
    // (Only para's answers make `ready`: authorize taken, its difficulty.)
    // Refused by NDAS, with the reason; unreachable, with the reason.
    let reason = list[1]["reason"].as_str().unwrap();
    assert!(
        reason.contains("extranonce2 is 4 bytes; NDAS needs 8"),
        "{reason}"
    );
    let reason = list[2]["reason"].as_str().unwrap();
    assert!(reason.contains("cannot connect"), "{reason}");
    assert_eq!(
        metric(http, "ndas_upstream_up{upstream=\"para\"}").await,
        1.0
    );
    assert_eq!(
        metric(http, "ndas_upstream_up{upstream=\"narrow\"}").await,
        0.0
    );
    assert!(
        metric(
            http,
            "ndas_upstream_failures_total{state=\"refused\",upstream=\"narrow\"}"
        )
        .await
            >= 1.0
    );

    // The pool goes away: down, with the reason, and tried again.
    drop(para);
    let list = upstreams_when(http, |list| list[0]["state"] != json!("ready")).await;
    assert!(
        ["down", "connecting"].contains(&list[0]["state"].as_str().unwrap()),
        "{list:?}"
    );
    assert_eq!(
        metric(http, "ndas_upstream_up{upstream=\"para\"}").await,
        0.0
    );
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_never_answers_is_refused_at_the_handshake_bound_and_taken_once_it_does() {
    let node = ParaNode::start().await;
    let para = ParaPool::start(&node, 0.001).await;
    // Stopped: the kernel still accepts connections, para answers none.
    common::process::signal(para.pid(), "STOP");
    let address = Wallet::new(22)
        .address_on(Kind::P2wpkh, KnownHrp::Testnets)
        .to_string();
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    config.stratum.extranonce2_size = 4;
    config.upstream = vec![upstream("para", para.stratum(), &format!("{address}.ndas"))];
    let running = start_ndas(config).await;
    let http = running.metrics_addr();
    let list = upstreams_when(http, |list| list[0]["state"] != json!("connecting")).await;
    assert_eq!(list[0]["state"], json!("refused"), "{list:?}");
    let reason = list[0]["reason"].as_str().unwrap();
    assert!(reason.contains("not ready within"), "{reason}");

    // It answers again: taken at the next try.
    common::process::signal(para.pid(), "CONT");
    upstreams_when(http, |list| list[0]["state"] == json!("ready")).await;
    running.shutdown().await;
}
