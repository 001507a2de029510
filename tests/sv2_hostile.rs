//! Clients the Stratum V2 endpoint turns away, against Bitcoin Core
//! regtest: another pool's key, plain text, oversized and malformed
//! frames, frames before the setup, handshakes never finished, and floods
//! (while a proxy's many channels each get their own budget); and the
//! frames it discards (extensions, unknown message types).

use ndas_testkit as common;

use std::time::Duration;

use common::node::RegtestPair;
use common::sv2::{connected, with_sv2, Client, Received};
use common::{regtest_config, start_ndas, temp_dir, wait_for_metric};
use ndas::sv2::keys::AuthorityKey;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(30);
const POOL: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_key_plain_text_and_oversized_frames_are_turned_away() {
    let pair = RegtestPair::start().await;
    let dir = temp_dir();
    let mut config = with_sv2(regtest_config(&pair, dir.path(), POOL), 2);
    config.stratum.max_line_bytes = 512;
    config.stratum.handshake_timeout_seconds = 2.0;
    let data_dir = config.data_dir.clone();
    let running = start_ndas(config).await;
    let addr = running.port_addr("sv2").expect("the sv2 port");
    let metrics = running.metrics_addr();
    let key = AuthorityKey::load_or_create(&data_dir).unwrap();

    // A miner given another pool's key refuses NDAS's certificate.
    let mut other = *key.public();
    other[0] ^= 1;
    let other = bitcoin::secp256k1::XOnlyPublicKey::from_slice(&other)
        .map(|k| k.serialize())
        .unwrap_or_else(|_| {
            // Not a curve point: any other valid key will do.
            let secp = bitcoin::secp256k1::Secp256k1::new();
            let secret = bitcoin::secp256k1::SecretKey::from_slice(&[3; 32]).unwrap();
            secret.x_only_public_key(&secp).0.serialize()
        });
    assert!(Client::connect(addr, other).await.is_err());

    // A Stratum V1 miner pointed at the V2 port: its line is taken for a
    // handshake, what follows does not decrypt, and it is closed.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    let line = format!(
        "{}\n",
        json!({"id": 1, "method": "mining.subscribe", "params": ["cgminer/4.12.1"]})
    );
    plain.write_all(line.as_bytes()).await.unwrap();
    plain.write_all(line.as_bytes()).await.unwrap();
    let mut sink = Vec::new();
    let read = tokio::time::timeout(WAIT, plain.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "closed");
    wait_for_metric(
        metrics,
        "ndas_disconnects_total{port=\"sv2\",reason=\"noise\"}",
        |n| n == 1.0,
    )
    .await;

    // A frame past max_line_bytes: closed before its payload is read.
    let mut big = Client::connect(addr, *key.public()).await.unwrap();
    big.setup_as(0, &"v".repeat(200)).await.unwrap();
    assert!(big.next(WAIT).await.is_err(), "closed without an answer");
    wait_for_metric(
        metrics,
        "ndas_disconnects_total{port=\"sv2\",reason=\"line_too_long\"}",
        |n| n == 1.0,
    )
    .await;
    // A client that opens a channel before setting up the connection.
    let mut early = Client::connect(addr, *key.public()).await.unwrap();
    early.open(1, POOL, Some(4)).await.unwrap();
    assert!(early.next(WAIT).await.is_err(), "closed without an answer");
    wait_for_metric(
        metrics,
        "ndas_disconnects_total{port=\"sv2\",reason=\"protocol\"}",
        |n| n == 1.0,
    )
    .await;
    // A connection that never starts the handshake, and one that does but
    // never sets up: both closed at the handshake timeout.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut unready = Client::connect(addr, *key.public()).await.unwrap();
    let closed = tokio::time::timeout(WAIT, silent.read_to_end(&mut Vec::new())).await;
    assert!(closed.is_ok(), "closed");
    assert!(
        unready.next(WAIT).await.is_err(),
        "closed without an answer"
    );
    wait_for_metric(
        metrics,
        "ndas_disconnects_total{port=\"sv2\",reason=\"handshake_timeout\"}",
        |n| n == 2.0,
    )
    .await;
    drop((big, early));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_flood_is_closed_but_a_proxy_s_many_channels_get_a_budget_each() {
    let pair = RegtestPair::start().await;
    let dir = temp_dir();
    let mut config = with_sv2(regtest_config(&pair, dir.path(), POOL), 8);
    config.stratum.max_lines_per_second = 10;
    let data_dir = config.data_dir.clone();
    let running = start_ndas(config).await;
    let addr = running.port_addr("sv2").expect("the sv2 port");
    let metrics = running.metrics_addr();

    // One channel's worth of budget, and shares for a channel it never
    // opened, as fast as it can: closed for flooding.
    let mut flood = connected(addr, &data_dir).await;
    for sequence in 0..40 {
        if flood
            .submit_standard(99, sequence, 1, 0, 0, 0)
            .await
            .is_err()
        {
            break;
        }
    }
    let mut answered = 0;
    while flood.next(WAIT).await.is_ok() {
        answered += 1;
    }
    assert!(
        answered < 40,
        "closed before all 40 were answered: {answered}"
    );
    wait_for_metric(
        metrics,
        "ndas_disconnects_total{port=\"sv2\",reason=\"flood\"}",
        |n| n == 1.0,
    )
    .await;

    // A proxy with eight channels sends as much and is answered in full.
    let mut proxy = connected(addr, &data_dir).await;
    for request in 0..8 {
        proxy
            .open(request, &format!("{POOL}.m{request}"), Some(4))
            .await
            .unwrap();
    }
    let mut opened = 0;
    while opened < 8 {
        if let Received::OpenSuccess { .. } = proxy.next(WAIT).await.unwrap() {
            opened += 1;
        }
    }
    for sequence in 0..40 {
        proxy
            .submit_standard(99, sequence, 1, 0, 0, 0)
            .await
            .unwrap();
    }
    let mut refused = 0;
    while refused < 40 {
        if let Received::SubmitError { code, .. } = proxy.next(WAIT).await.unwrap() {
            assert_eq!(code, "invalid-channel-id");
            refused += 1;
        }
    }
    drop((flood, proxy));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_extensions_and_message_types_are_discarded_but_malformed_ones_close() {
    let pair = RegtestPair::start().await;
    let dir = temp_dir();
    let config = with_sv2(regtest_config(&pair, dir.path(), POOL), 8);
    let data_dir = config.data_dir.clone();
    let running = start_ndas(config).await;
    let addr = running.port_addr("sv2").expect("the sv2 port");
    let metrics = running.metrics_addr();
    // Each before a channel's open, which must still be answered: a
    // message type no protocol has; `RequestExtensions` for extension
    // 0x0002 (SRI's translator sends it when configured to require one;
    // unanswered, it mines without); the same extension and type as
    // Braiins' old telemetry open, a payload that is no `RequestExtensions`;
    // an extension nobody has defined, with the channel bit.
    let discarded: [(u16, u8, &[u8]); 4] = [
        (0x0000, 0x7f, &[]),
        (0x0001, 0x00, &[1, 0, 1, 0, 2, 0]),
        (0x0001, 0x00, &[0xff; 3]),
        (0x8123, 0x05, &[1, 2, 3]),
    ];
    for (extension, kind, payload) in discarded {
        let mut client = connected(addr, &data_dir).await;
        client.send_frame(extension, kind, payload).await.unwrap();
        client.open(1, POOL, Some(4)).await.unwrap();
        let answer = client.next(WAIT).await;
        assert!(
            matches!(answer, Ok(Received::OpenSuccess { .. })),
            "{extension:#x}/{kind:#x}: {answer:?}"
        );
    }
    // A Mining Protocol message whose bytes do not parse: closed.
    let mut broken = connected(addr, &data_dir).await;
    broken.send_frame(0x8000, 0x1b, &[1, 2, 3]).await.unwrap();
    assert!(broken.next(WAIT).await.is_err(), "closed without an answer");
    wait_for_metric(
        metrics,
        "ndas_disconnects_total{port=\"sv2\",reason=\"protocol\"}",
        |n| n == 1.0,
    )
    .await;
    running.shutdown().await;
}
