//! The Stratum V2 endpoint against Bitcoin Core regtest: SV1 miners
//! behind the Stratum Reference Implementation's translator (an
//! independent SV2 client) mine blocks Core accepts; a header-only
//! standard channel and an extended channel each mine one too (headers
//! hashed by the `bitcoin` crate, not by NDAS). Hostile clients are in
//! `sv2_hostile.rs`.

use ndas_testkit as common;

use std::time::Duration;

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, CompactTarget, TxMerkleNode};
use common::node::RegtestPair;
use common::sv2::{connected, extended_root, with_sv2};
use common::sv2::{Client, Received};
use common::translator::{Settings, Translator};
use common::{
    next_tip, ready_miner, regtest_config, start_ndas, submit_block, temp_dir, wait_for_metric,
};
use ndas::sv2::keys::AuthorityKey;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const POOL: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

/// The open's success (other channels' messages passed over), the job
/// and the `SetNewPrevHash` naming it.
async fn opened(client: &mut Client) -> (Received, Received, Received) {
    let success = client
        .until(WAIT, |m| {
            matches!(m, Received::OpenSuccess { .. } | Received::OpenError { .. })
                .then(|| m.clone())
        })
        .await
        .unwrap();
    assert!(
        matches!(success, Received::OpenSuccess { .. }),
        "{success:?}"
    );
    let job = client.next(WAIT).await.unwrap();
    let prev = client.next(WAIT).await.unwrap();
    (success, job, prev)
}

/// The share `sequence` was accepted (other channels' messages passed
/// over), and Core's tip is its block, `header`, above `height`.
async fn accepted_and_taken(
    client: &mut Client,
    sequence: u32,
    pair: &RegtestPair,
    height: u64,
    header: &Header,
) {
    let answer = common::sv2::share_answer(client, WAIT).await;
    let accepted = Received::SubmitSuccess {
        last_sequence_number: sequence,
    };
    assert_eq!(answer, accepted);
    core_took(pair, height, header.block_hash()).await;
}

/// The first nonce whose header meets the network target.
fn grind(version: u32, prev: [u8; 32], root: [u8; 32], time: u32, bits: u32) -> Header {
    let mut header = Header {
        version: Version::from_consensus(version as i32),
        prev_blockhash: BlockHash::from_byte_array(prev),
        merkle_root: TxMerkleNode::from_byte_array(root),
        time,
        bits: CompactTarget::from_consensus(bits),
        nonce: 0,
    };
    while header.validate_pow(header.target()).is_err() {
        header.nonce += 1;
    }
    header
}

/// Waits for Core's tip to be `hash`.
async fn core_took(pair: &RegtestPair, height: u64, hash: BlockHash) {
    pair.wait_height(height + 1).await;
    let best = pair.main.call("getbestblockhash", json!([])).await;
    assert_eq!(best.as_str().unwrap(), hash.to_string(), "Core's tip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_and_extended_channels_each_mine_a_block_core_accepts() {
    let pair = RegtestPair::start().await;
    let dir = temp_dir();
    let config = with_sv2(regtest_config(&pair, dir.path(), POOL), 2);
    let data_dir = config.data_dir.clone();
    let running = start_ndas(config).await;
    let addr = running.port_addr("sv2").expect("the sv2 port");
    let mut client = connected(addr, &data_dir).await;

    // A header-only miner (ESP-Miner's standard channel): NDAS gave it the
    // merkle root of its own coinbase.
    client
        .open(1, &format!("{POOL}.bitaxe"), None)
        .await
        .unwrap();
    let (success, job, prev) = opened(&mut client).await;
    let Received::OpenSuccess { channel_id, .. } = success else {
        unreachable!()
    };
    let (
        Received::StandardJob {
            job_id,
            min_ntime: None,
            version,
            merkle_root,
            ..
        },
        Received::PrevHash {
            job_id: named,
            prev_hash,
            min_ntime,
            nbits,
            ..
        },
    ) = (job, prev)
    else {
        panic!("a future standard job and its SetNewPrevHash")
    };
    assert_eq!(job_id, named);
    let height = pair.main.height().await;
    let header = grind(version, prev_hash, merkle_root, min_ntime, nbits);
    client
        .submit_standard(channel_id, 1, job_id, header.nonce, header.time, version)
        .await
        .unwrap();
    accepted_and_taken(&mut client, 1, &pair, height, &header).await;

    // A proxy's extended channel on the new tip: it builds the coinbase
    // around the extranonce and folds the merkle path itself.
    client
        .open(2, &format!("{POOL}.proxy"), Some(4))
        .await
        .unwrap();
    let (success, mut job, mut prev) = opened(&mut client).await;
    let Received::OpenSuccess {
        channel_id,
        extranonce_prefix,
        extranonce_size: Some(8),
        ..
    } = success
    else {
        panic!("{success:?}")
    };
    // Its jobs on the new tip (the first may be the old tip's, when NDAS
    // had not yet built the new one).
    while !matches!(prev, Received::PrevHash { prev_hash, channel_id: to, .. }
        if to == channel_id && BlockHash::from_byte_array(prev_hash) == header.block_hash())
    {
        (job, prev) = (prev, client.next(WAIT).await.unwrap());
    }
    let (
        Received::ExtendedJob {
            job_id,
            version,
            merkle_path,
            coinbase_prefix,
            coinbase_suffix,
            ..
        },
        Received::PrevHash {
            prev_hash,
            min_ntime,
            nbits,
            ..
        },
    ) = (job, prev)
    else {
        unreachable!()
    };
    let rolled = [7u8; 8];
    let root = extended_root(
        &coinbase_prefix,
        &extranonce_prefix,
        &rolled,
        &coinbase_suffix,
        &merkle_path,
    );
    let version = version | 0x0010_0000; // a rolled BIP320 bit
    let height = pair.main.height().await;
    let header = grind(version, prev_hash, root, min_ntime, nbits);
    client
        .submit_extended(
            channel_id,
            2,
            job_id,
            header.nonce,
            header.time,
            version,
            &rolled,
        )
        .await
        .unwrap();
    accepted_and_taken(&mut client, 2, &pair, height, &header).await;

    // The connection's channel bound holds.
    client
        .open(3, &format!("{POOL}.third"), Some(4))
        .await
        .unwrap();
    let refused = client
        .until(WAIT, |m| match m {
            Received::OpenError { code } => Some(code.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(refused, "channel-limit-reached");
    let refusals = "ndas_channel_refusals_total{reason=\"channel-limit-reached\"}";
    assert_eq!(common::metric(running.metrics_addr(), refusals).await, 1.0);
    // Both blocks are the pool's, counted on the sv2 port.
    let metrics = running.metrics_addr();
    wait_for_metric(metrics, "ndas_blocks_total{outcome=\"accepted\"}", |n| {
        n == 2.0
    })
    .await;
    let shares = common::metric(
        metrics,
        "ndas_shares_total{port=\"sv2\",result=\"accepted\"}",
    )
    .await;
    assert_eq!(shares, 2.0);
    // Stopping, NDAS tells the client to come back (to it, once restarted).
    let stopping = tokio::spawn(running.shutdown());
    let told = client
        .until(WAIT, |m| {
            matches!(m, Received::Reconnect { .. }).then(|| m.clone())
        })
        .await
        .unwrap();
    let reconnect = Received::Reconnect {
        new_host: String::new(),
        new_port: 0,
    };
    assert_eq!(told, reconnect);
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_farm_behind_the_reference_translator_mines_blocks_through_the_sv2_endpoint() {
    let pair = RegtestPair::start().await;
    let dir = temp_dir();
    let config = with_sv2(regtest_config(&pair, dir.path(), POOL), 100);
    let data_dir = config.data_dir.clone();
    let running = start_ndas(config).await;
    let addr = running.port_addr("sv2").expect("the sv2 port");
    let key = AuthorityKey::load_or_create(&data_dir).unwrap();
    // The key as `ndas sv2-key` prints it, in the translator's config; its
    // miners' first difficulty from a CPU's hashrate (it applies the pool's
    // `SetTarget` from their next job on).
    let mut settings = Settings::new(addr, &key.public_text(), POOL, 4);
    settings.min_hashrate = 0.1;
    let translator = Translator::start_with(&settings).await;

    // Two SV1 miners behind it: a channel each, mining blocks Core takes.
    let (mut first, work) = ready_miner(translator.addr(), "cpuminer/2.5.1", "rig1").await;
    let (mut second, _) = ready_miner(translator.addr(), "cpuminer/2.5.1", "rig2").await;
    let height = pair.main.height().await;
    let share = submit_block(&mut first, &work, "rig1", 1).await;
    core_took(&pair, height, share.hash).await;
    let work = next_tip(&mut second, &work).await;
    let share = submit_block(&mut second, &work, "rig2", 2).await;
    core_took(&pair, height + 1, share.hash).await;

    // NDAS counted the shares on its sv2 port, for each channel's worker.
    let metrics = running.metrics_addr();
    wait_for_metric(metrics, "ndas_blocks_total{outcome=\"accepted\"}", |n| {
        n == 2.0
    })
    .await;
    let accepted = "ndas_shares_total{port=\"sv2\",result=\"accepted\"}";
    wait_for_metric(metrics, accepted, |n| n >= 2.0).await;
    let (_, stats) = common::http_json(metrics, "/api/stats").await;
    let v2 = &stats["protocols"]["stratum2"];
    assert_eq!(v2["connections"], json!(1), "one translator: {v2}");
    assert!(v2["shares"]["accepted"].as_u64().unwrap() >= 2, "{v2}");
    assert!(v2["hashrate"]["1m"].as_f64().unwrap() > 0.0, "{v2}");
    let port = stats["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "sv2");
    assert_eq!(port.unwrap()["protocol"], json!("stratum2"));
    let text = stats.to_string();
    for channel in ["miner1", "miner2"] {
        assert!(
            text.contains(&format!("{POOL}.{channel}")),
            "{channel} in {text}"
        );
    }
    // Stopping NDAS does not crash the translator (it panics on Reconnect).
    running.shutdown().await;
    drop((first, second));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = translator.log();
    assert!(!log.contains("panicked"), "{}", translator.tail());
}
