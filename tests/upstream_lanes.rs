//! A pool sees NDAS as a few miners, never one: with the node gone and
//! the farm on an upstream pool, each connection to it carries at most
//! `miners_per_connection` of NDAS's miners, more are opened as miners
//! come (up to `max_connections`), each miner mines its own connection's
//! job (that connection's extranonce1 in its coinbase), and its shares go
//! to the pool on that connection.
//!
//! The pool is scripted: a pool's view of which connection a share came
//! on is what is asserted, and para keeps none a test can read. (para
//! itself is the upstream in `upstream_failover.rs`.)

use ndas_testkit as common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::upstream::upstreams_when;
use common::{metric, ready_miner, regtest_config, start_ndas, temp_dir, RegtestPair};
use ndas::config::UpstreamConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const BOUND: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(30);
const POOL_DIFFICULTY: f64 = 0.000_01;
const POOL_PREV: [u8; 32] = [0x6b; 32];
const MINERS: usize = 5;

/// What the pool saw: per connection (by the order it came in), its
/// extranonce1's last byte, and each share's extranonce2.
#[derive(Default)]
struct Seen {
    connections: usize,
    shares: Vec<(u8, Vec<u8>)>,
}

/// A pool that gives its `n`th connection the extranonce1 `c0 00 00 n`,
/// and tells its first `first_told` after its job.
async fn pool(seen: Arc<Mutex<Seen>>, first_told: Option<Value>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let number = {
                let mut seen = seen.lock().unwrap();
                seen.connections += 1;
                seen.connections as u8
            };
            let told = first_told.clone().filter(|_| number == 1);
            tokio::spawn(serve(stream, number, seen.clone(), told));
        }
    });
    addr
}

async fn serve(
    stream: tokio::net::TcpStream,
    number: u8,
    seen: Arc<Mutex<Seen>>,
    mut told: Option<Value>,
) {
    let (reader, mut writer) = stream.into_split();
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let message: Value = serde_json::from_str(&line).unwrap();
        let id = message["id"].clone();
        let out = match message["method"].as_str() {
            Some("mining.configure") => vec![json!({"id": id, "result": {
                "version-rolling": true, "version-rolling.mask": "1fffe000"}, "error": null})],
            Some("mining.subscribe") => vec![json!({"id": id, "result": [
                [["mining.notify", "s1"]], format!("c00000{number:02x}"), 8], "error": null})],
            Some("mining.authorize") => [
                json!({"id": id, "result": true, "error": null}),
                json!({"id": null, "method": "mining.set_difficulty", "params": [POOL_DIFFICULTY]}),
                common::upstream::notify("j1", POOL_PREV),
            ]
            .into_iter()
            .chain(told.take())
            .collect(),
            Some("mining.submit") => {
                let extranonce2 = hex::decode(message["params"][2].as_str().unwrap()).unwrap();
                seen.lock().unwrap().shares.push((number, extranonce2));
                vec![json!({"id": id, "result": true, "error": null})]
            }
            _ => Vec::new(),
        };
        for message in out {
            let mut line = message.to_string().into_bytes();
            line.push(b'\n');
            if writer.write_all(&line).await.is_err() {
                return;
            }
        }
    }
}

/// The pool connection whose job `work` is: its extranonce1's last byte
/// ends the miner's coinb1.
fn connection_of(work: &ndas_tools::miner::Work) -> u8 {
    let tail = &work.coinb1[work.coinb1.len() - 4..];
    assert_eq!(&tail[..3], [0xc0, 0, 0], "a pool connection's extranonce1");
    tail[3]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pool_connection_carries_a_bounded_part_of_the_farm_and_its_own_shares() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let addr = pool(seen.clone(), None).await;
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    common::upstream::for_failover(&mut config, BOUND);
    // Two miners a connection, two connections at most: five miners
    // need three, so the two hold them all, three and two.
    config.upstream = vec![UpstreamConfig {
        miners_per_connection: 2,
        max_connections: 2,
        ..common::upstream::pool("lanes", addr, "farm.ndas")
    }];
    let running = start_ndas(config).await;
    let http = running.metrics_addr();
    upstreams_when(http, |list| list[0]["state"] == json!("ready")).await;
    assert_eq!(
        seen.lock().unwrap().connections,
        1,
        "one while no miner needs it"
    );

    let worker = format!("{payout}.rig");
    let mut miners = Vec::new();
    for _ in 0..MINERS {
        miners.push(
            ready_miner(running.stratum_addr(), "cgminer/4.12.1", &worker)
                .await
                .0,
        );
    }
    pair.main.signal("TERM");
    // The farm arrives on the first connection at once; the second opens
    // and the miners past its bound move to it.
    upstreams_when(http, |list| {
        list[0]["connections"] == json!(2) && list[0]["miners"] == json!(MINERS)
    })
    .await;
    // Past the job stage's pace, every miner has its connection's job.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut on: BTreeMap<u8, usize> = BTreeMap::new();
    let mut jobs = Vec::new();
    for miner in &mut miners {
        let mut newest = None;
        while let Some(work) = miner.next_job(Duration::from_millis(500)).await.unwrap() {
            if work.prev_hash == POOL_PREV {
                newest = Some(work);
            }
        }
        let work = newest.expect("the pool's job");
        *on.entry(connection_of(&work)).or_default() += 1;
        jobs.push(work);
    }
    assert_eq!(
        seen.lock().unwrap().connections,
        2,
        "never past max_connections"
    );
    assert_eq!(on.values().copied().collect::<Vec<_>>(), [3, 2], "{on:?}");
    assert_eq!(
        metric(http, "ndas_upstream_connections{upstream=\"lanes\"}").await,
        2.0
    );

    // Each miner's share reaches the pool on its own connection.
    for (miner, work) in miners.iter_mut().zip(&jobs) {
        let en2 = vec![9; miner.extranonce2_size];
        let wanted = miner.difficulty.max(POOL_DIFFICULTY);
        let share =
            ndas_tools::miner::grind(work, &miner.extranonce1, &en2, (None, 0), u32::MAX, |s| {
                s.difficulty >= wanted
            })
            .unwrap();
        let answer = miner.submit(&worker, &share).await.unwrap();
        assert_eq!(answer["result"], json!(true), "{answer}");
    }
    let deadline = std::time::Instant::now() + WAIT;
    while seen.lock().unwrap().shares.len() < MINERS {
        assert!(
            std::time::Instant::now() < deadline,
            "shares reach the pool"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shares = std::mem::take(&mut seen.lock().unwrap().shares);
    for (miner, work) in miners.iter().zip(&jobs) {
        let sent_on = shares
            .iter()
            .find(|(_, extranonce2)| extranonce2.starts_with(&miner.extranonce1))
            .map(|(connection, _)| *connection);
        assert_eq!(sent_on, Some(connection_of(work)), "{shares:?}");
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_s_client_reconnect_to_its_own_host_is_followed_and_to_another_is_not() {
    // The pool moves NDAS to its other port, as ckpool's redirector does;
    // there it is told to go to another host, which is not followed (NDAS's
    // account would go there): it stays.
    let moved_to = Arc::new(Mutex::new(Seen::default()));
    let elsewhere = json!({"id": null, "method": "client.reconnect",
        "params": ["elsewhere.example", 3333, 0]});
    let other = pool(moved_to.clone(), Some(elsewhere)).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let reconnect = json!({"id": null, "method": "client.reconnect",
        "params": ["127.0.0.1", other.port(), 0]});
    let addr = pool(seen.clone(), Some(reconnect)).await;
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    config.stratum.extranonce2_size = 4;
    config.upstream = vec![UpstreamConfig {
        max_connections: 1,
        ..common::upstream::pool("moving", addr, "farm.ndas")
    }];
    let running = start_ndas(config).await;
    let http = running.metrics_addr();
    let deadline = std::time::Instant::now() + WAIT;
    while moved_to.lock().unwrap().connections == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "never followed the reconnect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    upstreams_when(http, |list| list[0]["state"] == json!("ready")).await;
    // Settled there: neither the other host nor the configured port.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(seen.lock().unwrap().connections, 1);
    assert_eq!(moved_to.lock().unwrap().connections, 1);
    assert_eq!(
        metric(http, "ndas_upstream_up{upstream=\"moving\"}").await,
        1.0
    );
    running.shutdown().await;
}
