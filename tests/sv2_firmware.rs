//! ESP-Miner's Stratum V2 client as its source writes it, against NDAS and
//! Bitcoin Core regtest at a height where Core's template version has a
//! bit inside the BIP320 mask (`0x30000000`: `testdummy` on bit 28).
//!
//! Each message is serialized here byte for byte as ESP-Miner's
//! `components/stratum_v2/sv2_protocol.c` does (not by the reference
//! implementation's encoder), for the three stages devices run:
//! E1 (PR 1553: standard channels, setup flags 0x01), E2 (v2.14: extended
//! channels by default, flags 0x00, `min_extranonce_size` 2) and E3 (PR
//! 1897: flags 0x04 | 0x01 for a standard channel). The client reads one
//! frame after the setup and one after the open, as the firmware does;
//! it rolls version bits as `job.version | (asic_bits << 13)` and submits
//! the whole version; each stage mines a block Core accepts.

use ndas_testkit as common;

use std::time::Duration;

use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, CompactTarget, TxMerkleNode};
use common::node::RegtestPair;
use common::sv2::{extended_root, with_sv2, Client, Received};
use common::{regtest_config, start_ndas, temp_dir};
use ndas::sv2::keys::AuthorityKey;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// One ESP-Miner stage: its setup flags and the channel it opens.
struct Stage {
    name: &'static str,
    flags: u32,
    /// `Some(min_extranonce_size)` for an extended channel.
    extended: Option<u16>,
}

const STAGES: [Stage; 4] = [
    Stage {
        name: "E1 standard",
        flags: 0x01,
        extended: None,
    },
    Stage {
        name: "E2 standard",
        flags: 0x01,
        extended: None,
    },
    Stage {
        name: "E2 extended",
        flags: 0x00,
        extended: Some(2),
    },
    Stage {
        name: "E3 standard",
        flags: 0x05,
        extended: None,
    },
];

/// STR0_255: a length byte, then the bytes.
fn str0_255(out: &mut Vec<u8>, text: &str) {
    out.push(text.len() as u8);
    out.extend_from_slice(text.as_bytes());
}

/// `sv2_encode_setup_connection`: protocol 0, versions 2..2, the flags,
/// the host as typed, the port, vendor "bitaxe", the ASIC's name, and an
/// empty firmware and device id.
fn setup_connection(flags: u32, port: u16) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    str0_255(&mut out, "127.0.0.1");
    out.extend_from_slice(&port.to_le_bytes());
    str0_255(&mut out, "bitaxe");
    str0_255(&mut out, "BM1370");
    str0_255(&mut out, "");
    str0_255(&mut out, "");
    out
}

/// `sv2_encode_open_*_mining_channel`: request id 1, the user as typed,
/// 1e12 H/s, any target; an extended open adds its least extranonce size.
fn open_channel(user: &str, extended: Option<u16>) -> Vec<u8> {
    let mut out = 1u32.to_le_bytes().to_vec();
    str0_255(&mut out, user);
    out.extend_from_slice(&1e12f32.to_le_bytes());
    out.extend_from_slice(&[0xff; 32]);
    if let Some(size) = extended {
        out.extend_from_slice(&size.to_le_bytes());
    }
    out
}

/// `sv2_encode_submit_shares_*`: channel, sequence, job, nonce, ntime, the
/// whole version, and for an extended channel its rolled extranonce.
fn submit(channel: u32, sequence: u32, job: u32, header: &Header, extranonce: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for field in [channel, sequence, job, header.nonce, header.time] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    out.extend_from_slice(&header.version.to_consensus().to_le_bytes());
    if !extranonce.is_empty() {
        out.push(extranonce.len() as u8);
        out.extend_from_slice(extranonce);
    }
    out
}

/// The first header, rolling `asic_bits << 13` into the job's version,
/// whose hash meets the network target.
fn grind(version: u32, prev: [u8; 32], root: [u8; 32], time: u32, bits: u32) -> Header {
    let mut asic_bits = 1u32 << 15; // bit 28: the bit Core signals on
    let mut header = Header {
        version: Version::from_consensus((version | asic_bits << 13) as i32),
        prev_blockhash: BlockHash::from_byte_array(prev),
        merkle_root: TxMerkleNode::from_byte_array(root),
        time,
        bits: CompactTarget::from_consensus(bits),
        nonce: 0,
    };
    while header.validate_pow(header.target()).is_err() {
        header.nonce += 1;
        asic_bits = (asic_bits + 1) & 0xffff;
        let rolled = version | (asic_bits << 13);
        header.version = Version::from_consensus(rolled as i32);
    }
    header
}

/// One stage's conversation, to the block Core takes.
async fn mine_as(
    stage: &Stage,
    n: u32,
    addr: std::net::SocketAddr,
    key: [u8; 32],
    pair: &RegtestPair,
) {
    let name = stage.name;
    let mut client = Client::connect(addr, key).await.unwrap();
    client
        .send_frame(0, 0x00, &setup_connection(stage.flags, addr.port()))
        .await
        .unwrap();
    // Exactly one frame, and it must be the success (flags without
    // REQUIRES_FIXED_VERSION: E3 refuses that).
    let Received::SetupSuccess { flags } = client.next(WAIT).await.unwrap() else {
        panic!("{name}: the setup's answer")
    };
    assert_eq!(flags & 1, 0, "{name}");
    let user = format!("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080.bitaxe{n}");
    let kind = if stage.extended.is_some() { 0x13 } else { 0x10 };
    client
        .send_frame(0, kind, &open_channel(&user, stage.extended))
        .await
        .unwrap();
    let success = client.next(WAIT).await.unwrap();
    let Received::OpenSuccess {
        channel_id,
        extranonce_prefix,
        extranonce_size,
        ..
    } = success
    else {
        panic!("{name}: the open's answer: {success:?}")
    };
    assert!(extranonce_prefix.len() + usize::from(extranonce_size.unwrap_or(0)) <= 32);
    // A future job, the SetNewPrevHash naming it, then SetTarget.
    let job = client.next(WAIT).await.unwrap();
    let Received::PrevHash {
        job_id,
        prev_hash,
        min_ntime,
        nbits,
        ..
    } = client.next(WAIT).await.unwrap()
    else {
        panic!("{name}: SetNewPrevHash")
    };
    let Received::SetTarget { .. } = client.next(WAIT).await.unwrap() else {
        panic!("{name}: SetTarget")
    };
    let (version, root, extranonce) = match job {
        Received::StandardJob {
            job_id: id,
            min_ntime: None,
            version,
            merkle_root,
            ..
        } if id == job_id => (version, merkle_root, Vec::new()),
        Received::ExtendedJob {
            job_id: id,
            min_ntime: None,
            version,
            merkle_path,
            coinbase_prefix,
            coinbase_suffix,
            ..
        } if id == job_id => {
            let rolled = vec![0x5a; usize::from(extranonce_size.unwrap())];
            let root = extended_root(
                &coinbase_prefix,
                &extranonce_prefix,
                &rolled,
                &coinbase_suffix,
                &merkle_path,
            );
            (version, root, rolled)
        }
        other => panic!("{name}: a future job named by the SetNewPrevHash: {other:?}"),
    };
    // BIP320: no job version bit inside the mask, whatever Core signals.
    assert_eq!(version & 0x1fff_e000, 0, "{name}");
    let height = pair.main.height().await;
    let header = grind(version, prev_hash, root, min_ntime, nbits);
    let (ext, kind) = (0x8000, if extranonce.is_empty() { 0x1a } else { 0x1b });
    client
        .send_frame(
            ext,
            kind,
            &submit(channel_id, 0, job_id, &header, &extranonce),
        )
        .await
        .unwrap();
    let answer = common::sv2::share_answer(&mut client, WAIT).await;
    assert_eq!(
        answer,
        Received::SubmitSuccess {
            last_sequence_number: 0
        },
        "{name}"
    );
    pair.wait_height(height + 1).await;
    let best = pair.main.call("getbestblockhash", json!([])).await;
    assert_eq!(
        best,
        json!(header.block_hash().to_string()),
        "{name}: Core's tip"
    );
    let block = pair.main.call("getblockheader", json!([best])).await;
    assert_eq!(
        block["version"].as_i64().unwrap() as u32 & 0x1fff_e000,
        header.version.to_consensus() as u32 & 0x1fff_e000,
        "{name}: the rolled bits are in Core's block"
    );
    assert_ne!(
        header.version.to_consensus() & 1 << 28,
        0,
        "{name}: bit 28 rolled"
    );
    // NDAS's job on the new tip reaches this connection: the next stage
    // connects to that job, not the old tip's.
    let new_tip = |m: &Received| match m {
        Received::PrevHash { prev_hash, .. } => {
            (BlockHash::from_byte_array(*prev_hash) == header.block_hash()).then_some(())
        }
        _ => None,
    };
    client.until(WAIT, new_tip).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn esp_miner_s_sv2_stages_talk_as_their_source_does_and_mine_blocks_core_accepts() {
    let pair = RegtestPair::start_signalling_bit_28().await;
    let template = pair
        .main
        .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
        .await;
    assert_eq!(
        template["version"],
        json!(0x3000_0000),
        "Core signals on bit 28"
    );
    let dir = temp_dir();
    let payout = pair.new_address().await;
    let config = with_sv2(regtest_config(&pair, dir.path(), &payout), 4);
    let data_dir = config.data_dir.clone();
    let running = start_ndas(config).await;
    let addr = running.port_addr("sv2").expect("the sv2 port");
    let key = *AuthorityKey::load_or_create(&data_dir).unwrap().public();
    for (n, stage) in STAGES.iter().enumerate() {
        mine_as(stage, n as u32, addr, key, &pair).await;
    }
    running.shutdown().await;
}
