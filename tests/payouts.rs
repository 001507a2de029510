//! Who gets paid, against Bitcoin Core regtest: a hosting farm whose
//! customers' machines each mine to their own address (`username` mode),
//! a revenue-share pool with an operator fee and a donation split off every
//! block (`[[mining.split]]`), and the usernames and limits refused.

use ndas_testkit as common;

use std::time::Duration;

use bitcoin::consensus::deserialize;
use common::wallet::{Kind, Wallet};
use common::{http_json, next_tip, ready_miner, regtest_config, start_ndas, temp_dir, RegtestPair};
use ndas::config::{PayoutMode, SplitConfig};
use ndas_tools::miner::{Client, Work};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// An address of the tests' keys, of `kind`.
fn address(seed: u8, kind: Kind) -> String {
    Wallet::new(seed).address(kind).to_string()
}

fn script(address: &str) -> Vec<u8> {
    ndas_core::chain::address::payout_script(address, ndas_core::chain::Network::Regtest).unwrap()
}

/// The node's block `hash`, decoded; it must be on the active chain.
async fn block(pair: &RegtestPair, hash: &str) -> bitcoin::Block {
    let header = pair.main.call("getblockheader", json!([hash])).await;
    assert!(
        header["confirmations"].as_i64().unwrap() >= 1,
        "on the active chain: {header}"
    );
    let raw = pair.main.call("getblock", json!([hash, 0])).await;
    deserialize(&hex::decode(raw.as_str().unwrap()).unwrap()).unwrap()
}

/// Grinds a block on `work` as `worker`, waits for the node to take it and
/// for NDAS to hand out work on it (so that a miner connecting next is not
/// given the old tip's job, which the new tip would make stale); the block
/// and the client's job on it.
async fn mine_one(
    pair: &RegtestPair,
    client: &mut Client,
    work: &Work,
    worker: &str,
    fill: u8,
) -> (bitcoin::Block, Work) {
    let height = pair.main.height().await;
    let share = common::submit_block(client, work, worker, fill).await;
    pair.wait_height(height + 1).await;
    let next = next_tip(client, work).await;
    let best = pair.main.call("getbestblockhash", json!([])).await;
    assert_eq!(
        best.as_str().unwrap(),
        share.hash.to_string(),
        "the node's tip is the miner's block"
    );
    (block(pair, &share.hash.to_string()).await, next)
}

/// The coinbase's outputs as (script, satoshis), the witness commitment left out.
fn paid(block: &bitcoin::Block) -> Vec<(Vec<u8>, u64)> {
    let coinbase = &block.txdata[0];
    let last = coinbase.output.len() - 1;
    assert_eq!(coinbase.output[last].value.to_sat(), 0);
    assert_eq!(
        coinbase.output[last].script_pubkey.as_bytes()[..6],
        [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed],
        "the witness commitment is the last output"
    );
    coinbase.output[..last]
        .iter()
        .map(|o| (o.script_pubkey.to_bytes(), o.value.to_sat()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hosted_miner_mines_blocks_that_pay_its_own_address_and_the_fee() {
    let pair = RegtestPair::start().await;
    // Segwit and taproot spends in the mempool for the first block.
    pair.wallet.send_every_kind(&pair.main).await;
    let dir = temp_dir();
    let fee = address(40, Kind::P2wsh);
    let mut config = regtest_config(&pair, dir.path(), &address(39, Kind::P2wpkh));
    config.mining.payout_address.clear();
    config.mining.payout_mode = PayoutMode::Username;
    config.mining.split = vec![SplitConfig {
        address: fee.clone(),
        basis_points: 150,
    }];
    let running = start_ndas(config).await;
    // Three customers, three kinds of address.
    let customers = [
        address(41, Kind::P2wpkh),
        address(42, Kind::P2tr),
        address(43, Kind::P2pkh),
    ];
    let mut miners = Vec::new();
    for (i, customer) in customers.iter().enumerate() {
        let worker = format!("{customer}.rack1-s19-{i}");
        let (client, work) = ready_miner(running.stratum_addr(), "bmminer/2.0.0", &worker).await;
        miners.push((client, work, worker));
    }
    let (client, work, _) = &mut miners[0];
    *work = common::job_with_transactions(client, Some(work.clone()), 3).await;

    for i in 0..customers.len() {
        let (client, work, worker) = &mut miners[i];
        let (found, _) = mine_one(&pair, client, work, worker, 1 + i as u8).await;
        let outputs = paid(&found);
        let total: u64 = outputs.iter().map(|(_, value)| value).sum();
        assert_eq!(outputs.len(), 2, "the fee, then the customer: {outputs:?}");
        assert_eq!(
            outputs[0],
            (script(&fee), total * 150 / 10_000),
            "1.5 % to the satoshi"
        );
        assert_eq!(
            outputs[1],
            (script(&customers[i]), total - total * 150 / 10_000)
        );
        if i == 0 {
            assert!(
                found.txdata.len() >= 5,
                "the segwit spends are in the block"
            );
            assert!(found.check_witness_commitment());
            // Subsidy (regtest halves it every 150 blocks) and the four
            // spends' fees, all of it paid out.
            let height = found.bip34_block_height().unwrap();
            assert_eq!(total, (5_000_000_000u64 >> (height / 150)) + 4 * 10_000);
        }
        // The others move to the new tip, each with its own coinbase.
        for (client, work, _) in miners.iter_mut().skip(i + 1) {
            *work = next_tip(client, work).await;
        }
    }

    // The operator sees who was paid.
    let (_, stats) = http_json(running.metrics_addr(), "/api/stats").await;
    let payouts = &stats["payouts"];
    assert_eq!(payouts["mode"], json!("username"));
    assert_eq!(payouts["groups"], json!(3));
    for customer in &customers {
        let row = payouts["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["address"] == json!(customer))
            .unwrap_or_else(|| panic!("{customer} in {payouts}"));
        assert_eq!(row["connections"], json!(1));
        assert_eq!(row["blocks"], json!(1));
    }
    let recent = stats["blocks"]["recent"].as_array().unwrap();
    for customer in &customers {
        assert!(
            recent.iter().any(|b| b["payout"] == json!(customer)),
            "{recent:?}"
        );
    }
    let metrics = common::metric(running.metrics_addr(), "ndas_payout_groups").await;
    assert_eq!(metrics, 3.0);
    drop(miners);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revenue_share_pool_pays_its_fee_and_donation_first_every_block() {
    let pair = RegtestPair::start().await;
    pair.wallet.send_every_kind(&pair.main).await;
    let dir = temp_dir();
    let (pool, fee, donation) = (
        address(50, Kind::P2wpkh),
        address(51, Kind::P2tr),
        address(52, Kind::P2pkh),
    );
    let mut config = regtest_config(&pair, dir.path(), &pool);
    config.mining.split = vec![
        SplitConfig {
            address: fee.clone(),
            basis_points: 150,
        },
        SplitConfig {
            address: donation.clone(),
            basis_points: 25,
        },
    ];
    let running = start_ndas(config).await;
    let (mut client, work) =
        ready_miner(running.stratum_addr(), "cpuminer/2.5.1", "anyone.rig").await;
    let mut work = common::job_with_transactions(&mut client, Some(work), 3).await;
    for round in 0..2u8 {
        let (found, next) = mine_one(&pair, &mut client, &work, "anyone.rig", 9 + round).await;
        let outputs = paid(&found);
        let total: u64 = outputs.iter().map(|(_, value)| value).sum();
        let (to_fee, to_donation) = (total * 150 / 10_000, total * 25 / 10_000);
        assert_eq!(
            outputs,
            vec![
                (script(&fee), to_fee),
                (script(&donation), to_donation),
                (script(&pool), total - to_fee - to_donation),
            ]
        );
        if round == 0 {
            assert!(found.txdata.len() >= 5 && found.check_witness_commitment());
        }
        work = next;
    }
    // The journal's settled copy records who each block paid.
    common::wait_for_metric(
        running.metrics_addr(),
        "ndas_blocks_total{outcome=\"accepted\"}",
        |n| n == 2.0,
    )
    .await;
    let settled = std::fs::read_dir(dir.path().join("data/blocks/settled"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .collect::<String>();
    for address in [&fee, &donation, &pool] {
        assert!(
            settled.contains(address.as_str()),
            "{address} in the journal"
        );
    }
    drop(client);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usernames_that_cannot_be_paid_and_addresses_beyond_the_limit_are_refused_with_the_reason()
{
    let pair = RegtestPair::start().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &address(59, Kind::P2wpkh));
    config.mining.payout_address.clear();
    config.mining.payout_mode = PayoutMode::Username;
    config.mining.max_payout_groups = 2;
    let running = start_ndas(config).await;
    let addr = running.stratum_addr();
    let honest = address(60, Kind::P2wpkh);
    let (mut miner, work) =
        ready_miner(addr, "bitaxe/BM1370/v2.4.0", &format!("{honest}.bitaxe")).await;

    let mainnet = Wallet::new(61)
        .address_on(Kind::P2wpkh, bitcoin::KnownHrp::Mainnet)
        .to_string();
    let mut broken_checksum = address(62, Kind::P2wpkh);
    let last = broken_checksum.pop().unwrap();
    broken_checksum.push(if last == 'q' { 'p' } else { 'q' });
    for (username, reason) in [
        ("rack12-s19-004".to_owned(), "is not a Bitcoin address"),
        (format!("{mainnet}.rig"), "is not an address of regtest"),
        (format!("{broken_checksum}.rig"), "is not a Bitcoin address"),
    ] {
        let mut client = Client::connect(addr).await.unwrap();
        client.subscribe("cgminer/4.12.1").await.unwrap();
        let answer = client.authorize(&username).await.unwrap();
        assert_eq!(answer["error"][0], json!(24), "{username}: {answer}");
        let message = answer["error"][1].as_str().unwrap();
        assert!(
            message.contains(reason) && message.contains("address.worker"),
            "{username}: {message}"
        );
        // Nothing to mine: no job is sent to a refused worker.
        assert!(client
            .next_job(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none());
    }

    // Two addresses are allowed; a third waits for one to go.
    let second = address(63, Kind::P2tr);
    let (second_miner, _) = ready_miner(addr, "cpuminer/2.5.1", &second).await;
    let third = address(64, Kind::P2wsh);
    let mut client = Client::connect(addr).await.unwrap();
    client.subscribe("cpuminer/2.5.1").await.unwrap();
    let answer = client.authorize(&third).await.unwrap();
    assert!(
        answer["error"][1]
            .as_str()
            .unwrap()
            .contains("mining.max_payout_groups"),
        "{answer}"
    );
    drop(second_miner);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = client.authorize(&third).await.unwrap();
        if answer["result"] == json!(true) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Nothing of this touched the honest miner, who still mines to its address.
    let (found, _) = mine_one(&pair, &mut miner, &work, &format!("{honest}.bitaxe"), 3).await;
    assert_eq!(paid(&found)[0].0, script(&honest));
    drop((miner, client));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_s_typo_that_pays_the_fallback_is_told_to_the_operator() {
    let pair = RegtestPair::start().await;
    let dir = temp_dir();
    let pool = address(65, Kind::P2wpkh);
    let mut config = regtest_config(&pair, dir.path(), &pool);
    config.mining.payout_mode = PayoutMode::Username;
    config.mining.username_fallback = true;
    let running = start_ndas(config).await;
    let addr = running.stratum_addr();
    let customer = address(66, Kind::P2wpkh);
    let mainnet = Wallet::new(67)
        .address_on(Kind::P2wpkh, bitcoin::KnownHrp::Mainnet)
        .to_string();
    // `addr_rig` for `addr.rig`, and another network's address: both mine,
    // for the pool.
    let typo = format!("{customer}_rig");
    let wrong_network = format!("{mainnet}.rig");
    for username in [&typo, &wrong_network, &typo] {
        let (mut miner, work) = ready_miner(addr, "cgminer/4.12.1", username).await;
        let (found, _) = mine_one(&pair, &mut miner, &work, username, 4).await;
        assert_eq!(paid(&found)[0].0, script(&pool));
    }
    // Counted at each authorize, listed once per worker with the reason.
    let metrics = running.metrics_addr();
    assert_eq!(
        common::metric(metrics, "ndas_payout_fallbacks_total").await,
        3.0
    );
    let (_, stats) = http_json(metrics, "/api/stats").await;
    let fallback = &stats["payouts"]["fallback"];
    assert_eq!(fallback["workers"], json!(2), "{fallback}");
    let why = |worker: &str| {
        fallback["recent"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["worker"] == json!(worker))
            .unwrap_or_else(|| panic!("{worker} in {fallback}"))["why"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        why(&typo).contains("is not a Bitcoin address"),
        "{fallback}"
    );
    assert!(
        why(&wrong_network).contains("is not an address of regtest"),
        "{fallback}"
    );
    // A customer naming its own address is not listed.
    let own = format!("{customer}.rig");
    drop(ready_miner(addr, "cgminer/4.12.1", &own).await);
    let (_, stats) = http_json(metrics, "/api/stats").await;
    assert_eq!(stats["payouts"]["fallback"]["workers"], json!(2));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_on_another_address_s_job_is_recorded_for_the_address_it_pays() {
    let pair = RegtestPair::start().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &address(68, Kind::P2wpkh));
    config.mining.payout_address.clear();
    config.mining.payout_mode = PayoutMode::Username;
    let running = start_ndas(config).await;
    let (alice, bob) = (address(69, Kind::P2wpkh), address(70, Kind::P2tr));
    let (alice_rig, bob_rig) = (format!("{alice}.rig"), format!("{bob}.rig"));
    // One connection (a proxy) authorizes Alice's worker, then Bob's: it
    // mines for Bob now, but a block on Alice's job still goes out.
    let (mut client, alice_work) =
        ready_miner(running.stratum_addr(), "proxy/1.0", &alice_rig).await;
    assert_eq!(
        client.authorize(&bob_rig).await.unwrap()["result"],
        json!(true)
    );
    let height = pair.main.height().await;
    let en2 = vec![7; client.extranonce2_size];
    let block = ndas_tools::miner::grind(
        &alice_work,
        &client.extranonce1,
        &en2,
        (None, 0),
        10_000,
        |s| s.is_block,
    )
    .unwrap();
    let answer = client.submit(&bob_rig, &block).await.unwrap();
    assert_eq!(answer["error"][0], json!(21), "not Bob's share: {answer}");
    pair.wait_height(height + 1).await;
    let found = self::block(&pair, &block.hash.to_string()).await;
    assert_eq!(paid(&found)[0].0, script(&alice));

    // The journal, the blocks list and Alice's figures have it as Alice's.
    let metrics = running.metrics_addr();
    common::wait_for_metric(metrics, "ndas_blocks_total{outcome=\"accepted\"}", |n| {
        n == 1.0
    })
    .await;
    let workers: Vec<String> = std::fs::read_dir(dir.path().join("data/blocks/settled"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .flat_map(|text| {
            let records: Vec<serde_json::Value> = text
                .lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect();
            records
        })
        .filter_map(|record| Some(record["worker"].as_str()?.to_owned()))
        .collect();
    assert_eq!(workers, vec![alice_rig.clone()]);
    let (_, stats) = http_json(metrics, "/api/stats").await;
    let recent = &stats["blocks"]["recent"][0];
    assert_eq!(recent["worker"], json!(alice_rig), "{recent}");
    assert_eq!(recent["payout"], json!(alice), "{recent}");
    drop(client);
    running.shutdown().await;
}
