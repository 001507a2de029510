//! Strangers against `username` mode's payout groups, with raw lines over
//! TCP against NDAS on Bitcoin Core regtest: a squatter holding groups
//! with fresh addresses on idle connections, a churner parking sessions to
//! grow NDAS's memory, and a resume that would send another address's
//! work. Each time the customers beside them are still served.

use ndas_testkit as common;

use std::net::SocketAddr;
use std::time::Duration;

use common::wallet::{Kind, Wallet};
use common::{connect_from, ready_miner, regtest_config, start_ndas, temp_dir, RegtestPair};
use ndas::config::{Config, PayoutMode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);

/// An address of the tests' keys.
fn address(seed: u8) -> String {
    Wallet::new(seed).address(Kind::P2wpkh).to_string()
}

/// A config for `username` mode on `pair`, with no fallback address.
fn username_mode(pair: &RegtestPair, dir: &std::path::Path) -> Config {
    let mut config = regtest_config(pair, dir, &address(69));
    config.mining.payout_address.clear();
    config.mining.payout_mode = PayoutMode::Username;
    config
}

/// A connection that speaks raw lines, as an attacker's script would.
struct Raw {
    stream: BufReader<TcpStream>,
    /// Notifications read while waiting for answers.
    seen: Vec<Value>,
}

impl Raw {
    async fn connect(source: [u8; 4], addr: SocketAddr) -> Raw {
        Raw {
            stream: BufReader::new(connect_from(source, addr).await),
            seen: Vec::new(),
        }
    }

    /// The next line from the server; `None` once it closed.
    async fn line(&mut self) -> Option<Value> {
        let mut line = String::new();
        let read = tokio::time::timeout(WAIT, self.stream.read_line(&mut line))
            .await
            .expect("a line within 30 s");
        match read {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
        }
    }

    /// Sends a request and reads until its answer.
    async fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        let line = json!({"id": id, "method": method, "params": params}).to_string() + "\n";
        self.stream
            .get_mut()
            .write_all(line.as_bytes())
            .await
            .unwrap();
        loop {
            let message = self.line().await.expect("an answer before a close");
            if message.get("method").is_some_and(|m| !m.is_null()) {
                self.seen.push(message);
            } else if message["id"] == json!(id) {
                return message;
            }
        }
    }

    /// The first `mining.notify` received, read or waited for.
    async fn first_notify(&mut self) -> Value {
        loop {
            if let Some(notify) = self.seen.iter().find(|m| m["method"] == "mining.notify") {
                return notify.clone();
            }
            let message = self.line().await.expect("a job before a close");
            self.seen.push(message);
        }
    }
}

/// Grinds a block on the miner's job as `worker` and waits for NDAS to hand
/// out work on it (a miner connecting next gets no stale job); the address
/// its coinbase pays, as the node has it on its active chain.
async fn mine_block(
    pair: &RegtestPair,
    client: &mut ndas_tools::miner::Client,
    work: &ndas_tools::miner::Work,
    worker: &str,
    fill: u8,
) -> String {
    let height = pair.main.height().await;
    let block = common::submit_block(client, work, worker, fill).await;
    pair.wait_height(height + 1).await;
    common::next_tip(client, work).await;
    let found = pair
        .main
        .call("getblock", json!([block.hash.to_string(), 2]))
        .await;
    assert!(found["confirmations"].as_i64().unwrap() >= 1, "{found}");
    found["tx"][0]["vout"][0]["scriptPubKey"]["address"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squatter_holding_fresh_addresses_keeps_no_customer_from_mining() {
    let pair = RegtestPair::start().await;
    let dir = temp_dir();
    let mut config = username_mode(&pair, dir.path());
    config.mining.max_payout_groups = 4;
    config.mining.max_new_payout_groups_per_ip = 2;
    let running = start_ndas(config).await;
    let addr = running.stratum_addr();

    // A customer mines (an accepted share), then its one machine drops.
    let returning = format!("{}.bitaxe", address(71));
    let (mut miner, work) = ready_miner(addr, "bitaxe/BM1370/v2.4.0", &returning).await;
    common::accepted_shares(&mut miner, &work, &returning, 1..2).await;
    drop(miner);
    common::wait_for_metric(running.metrics_addr(), "ndas_payout_groups", |n| n == 0.0).await;

    // The squatter: from one address, a fresh valid address on each of six
    // idle connections, half of them never subscribing.
    let mut held = Vec::new();
    let mut refusals = Vec::new();
    for n in 0..6u8 {
        let mut conn = Raw::connect([127, 0, 0, 2], addr).await;
        if n % 2 == 0 {
            conn.request(1, "mining.subscribe", json!(["squat/1"]))
                .await;
        }
        let user = format!("{}.s{n}", address(80 + n));
        let answer = conn
            .request(2, "mining.authorize", json!([user, "x"]))
            .await;
        match answer["error"][1].as_str() {
            None => held.push(conn),
            Some(refusal) => refusals.push(refusal.to_owned()),
        }
    }

    // A new customer beside it is served, and its block pays it.
    let newcomer = address(72);
    let worker = format!("{newcomer}.s21");
    let (mut client, work) = ready_miner(addr, "bmminer/2.0.0", &worker).await;
    assert_eq!(
        mine_block(&pair, &mut client, &work, &worker, 1).await,
        newcomer
    );

    // The squatter holds only its own address's share of new groups, and
    // the operator sees it refused.
    assert_eq!(held.len(), 2, "{refusals:?}");
    let refused = "ndas_payout_refusals_total{reason=\"max_new_payout_groups_per_ip\"}";
    assert_eq!(common::metric(running.metrics_addr(), refused).await, 4.0);
    assert!(
        refusals
            .iter()
            .all(|r| r.contains("mining.max_new_payout_groups_per_ip")),
        "{refusals:?}"
    );

    // A second squatting address fills every place left for new ones; the
    // customer who mined before comes back past it.
    for n in 6..8u8 {
        let mut conn = Raw::connect([127, 0, 0, 4], addr).await;
        let user = format!("{}.s{n}", address(80 + n));
        let answer = conn
            .request(2, "mining.authorize", json!([user, "x"]))
            .await;
        assert_eq!(answer["result"], json!(true), "{answer}");
        held.push(conn);
    }
    let (mut back, work) = ready_miner(addr, "bitaxe/BM1370/v2.4.0", &returning).await;
    assert_eq!(
        mine_block(&pair, &mut back, &work, &returning, 2).await,
        address(71)
    );
    drop((held, client, back));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_after_authorizing_another_address_sends_clean_work() {
    let pair = RegtestPair::start().await;
    let dir = temp_dir();
    let running = start_ndas(username_mode(&pair, dir.path())).await;
    let addr = running.stratum_addr();

    let (x, y) = (address(73), address(74));
    let (old, _) = ready_miner(addr, "cgminer/4.12.1", &format!("{x}.rig")).await;
    let session = hex::encode(&old.extranonce1);
    drop(old);

    // Authorized as Y, then subscribed with X's session id: once X's
    // connection is gone and parked, the id is resumed.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut conn = loop {
        let mut conn = Raw::connect([127, 0, 0, 3], addr).await;
        let user = format!("{y}.rig");
        let answer = conn
            .request(1, "mining.authorize", json!([user, "x"]))
            .await;
        assert_eq!(answer["result"], json!(true), "{answer}");
        let answer = conn
            .request(2, "mining.subscribe", json!(["cgminer/4.12.1", session]))
            .await;
        if answer["result"][1] == json!(session) {
            break conn;
        }
        assert!(tokio::time::Instant::now() < deadline, "never resumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let notify = conn.first_notify().await;
    assert_eq!(notify["params"][8], json!(true), "drop X's work: {notify}");
    let coinb2 = notify["params"][3].as_str().unwrap();
    let y_script = hex::encode(
        ndas_core::chain::address::payout_script(&y, ndas_core::chain::Network::Regtest).unwrap(),
    );
    assert!(coinb2.contains(&y_script), "the job pays Y: {coinb2}");
    drop(conn);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_churner_of_fresh_addresses_cannot_grow_the_parked_sessions_past_their_bytes() {
    let pair = RegtestPair::start().await;
    let dir = temp_dir();
    let mut config = username_mode(&pair, dir.path());
    config.mining.max_new_payout_groups_per_ip = 1000;
    config.stratum.resume_max_bytes = 20_000;
    let running = start_ndas(config).await;
    let (addr, metrics) = (running.stratum_addr(), running.metrics_addr());

    // Connect, subscribe, authorize a fresh address, take the job, close.
    for n in 0..30u8 {
        let mut conn = Raw::connect([127, 0, 0, 5], addr).await;
        conn.request(1, "mining.subscribe", json!(["churn/1"]))
            .await;
        let user = format!("{}.c", address(100 + n));
        conn.request(2, "mining.authorize", json!([user, "x"]))
            .await;
        conn.first_notify().await;
    }
    // Every churned session parked, or dropped for the bound.
    common::wait_for_metric(metrics, "ndas_disconnects_total{reason=\"eof\"}", |n| {
        n >= 30.0
    })
    .await;
    let bytes = common::metric(metrics, "ndas_parked_bytes").await;
    let parked = common::metric(metrics, "ndas_parked_sessions").await;
    assert!(bytes > 0.0 && bytes <= 20_000.0, "{bytes}");
    assert!(parked < 30.0, "the oldest went: {parked}");
    // A customer is still served.
    let customer = format!("{}.s19", address(75));
    let (mut client, work) = ready_miner(addr, "bmminer/2.0.0", &customer).await;
    common::accepted_shares(&mut client, &work, &customer, 1..2).await;
    running.shutdown().await;
}
