//! Stratum over real TCP against NDAS serving a real regtest node: every
//! reject reason and bad input gets the server's actual answer, and abuse by
//! one miner never stalls the others.

use ndas_testkit as common;

use std::time::Duration;

use common::{ready_miner, regtest_config, start_ndas, temp_dir, RegtestPair};
use ndas_tools::miner::{grind, Client, Share, Work};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(30);

fn share(client: &Client, work: &Work, extranonce2: u8, wanted: impl Fn(&Share) -> bool) -> Share {
    let en2 = vec![extranonce2; client.extranonce2_size];
    grind(work, &client.extranonce1, &en2, (None, 0), 10_000, wanted).expect("a share")
}

async fn error_of(client: &mut Client, worker: &str, share: &Share) -> Value {
    client.submit(worker, share).await.unwrap()["error"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reject_reason_and_bad_input_gets_its_answer() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = regtest_config(&pair, dir.path(), &payout);
    // The network's own difficulty: a hash either is a block or is too low.
    config.difficulty.start = 4.656542373906925e-10;
    config.difficulty.min = 4.656542373906925e-10;
    config.difficulty.max = 4.656542373906925e-10;
    let running = start_ndas(config).await;
    let addr = running.stratum_addr();
    let worker = format!("{payout}.w1");

    // Methods out of order.
    let mut early = Client::connect(addr).await.unwrap();
    let answer = early
        .request(
            "mining.submit",
            json!(["w", "1", "00", "00000000", "00000000"]),
        )
        .await
        .unwrap();
    assert_eq!(answer["error"], json!([25, "Not subscribed", null]));
    // Authorized before subscribing (old proxies do it): kept for later.
    let answer = early
        .request("mining.authorize", json!(["w", "x"]))
        .await
        .unwrap();
    assert_eq!(answer["result"], json!(true), "{answer}");
    early.subscribe("early/1").await.unwrap();
    let answer = early
        .request(
            "mining.submit",
            json!(["v", "1", "00", "00000000", "00000000"]),
        )
        .await
        .unwrap();
    assert_eq!(answer["error"], json!([24, "Unauthorized worker", null]));

    let (mut client, work) = ready_miner(addr, "protocol-test/1", &worker).await;
    let low = share(&client, &work, 1, |s| !s.is_block);
    assert_eq!(
        error_of(&mut client, &worker, &low).await,
        json!([23, "Low difficulty share", null])
    );
    let good = share(&client, &work, 2, |s| s.is_block);
    assert_eq!(
        error_of(&mut client, "someone.else", &good).await,
        json!([24, "Unauthorized worker", null])
    );
    let mut unknown = good.clone();
    unknown.job_id = "abcdef".into();
    assert_eq!(
        error_of(&mut client, &worker, &unknown).await,
        json!([21, "Job not found", null])
    );
    let mut short = good.clone();
    short.extranonce2.truncate(3);
    assert_eq!(
        error_of(&mut client, &worker, &short).await,
        json!([20, "Invalid extranonce2 size: 3 bytes, expected 8", null])
    );
    let mut future = good.clone();
    future.ntime = work.ntime + 3 * 3600;
    assert_eq!(
        error_of(&mut client, &worker, &future).await,
        json!([20, "Invalid ntime: too far in the future", null])
    );
    let mut ancient = good.clone();
    ancient.ntime = 1_296_688_602;
    assert_eq!(
        error_of(&mut client, &worker, &ancient).await,
        json!([20, "Invalid ntime: too old", null])
    );
    let mut rolled = good.clone();
    rolled.version_bits = Some(0x0000_1000);
    assert_eq!(
        error_of(&mut client, &worker, &rolled).await,
        json!([20, "Invalid version bits: outside the allowed mask", null])
    );

    // Malformed lines: JSON errors with a null id, wrong types named.
    client.send_raw(b"{not json}\n").await.unwrap();
    let answer = client.read_message().await.unwrap().unwrap();
    assert_eq!(
        answer,
        json!({"id": null, "result": null, "error": [20, "invalid JSON-RPC request", null]})
    );
    let answer = client
        .request(
            "mining.submit",
            json!([worker, 5, "00", "00000000", "00000000"]),
        )
        .await
        .unwrap();
    assert_eq!(
        answer["error"],
        json!([20, "mining.submit: job id must be a string", null])
    );
    let answer = client
        .request("mining.suggest_difficulty", json!(["NaN"]))
        .await
        .unwrap();
    assert_eq!(answer["error"][0], json!(20));
    let answer = client.request("mining.bogus", json!([])).await.unwrap();
    assert_eq!(
        answer["error"],
        json!([20, "Unknown method mining.bogus", null])
    );
    let bomb = format!("{}{}\n", "[".repeat(2000), "]".repeat(2000));
    client.send_raw(bomb.as_bytes()).await.unwrap();
    assert_eq!(
        client.read_message().await.unwrap().unwrap()["error"][0],
        json!(20)
    );

    // The connection still works: a real block is accepted after all that.
    let block = share(&client, &work, 3, |s| s.is_block);
    assert_eq!(
        client.submit(&worker, &block).await.unwrap()["result"],
        json!(true)
    );
    // The next miner below starts on the job after this block.
    common::next_tip(&mut client, &work).await;

    // An oversized line closes that connection, and only that one.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    raw.write_all(&vec![b'x'; 8192]).await.unwrap();
    raw.write_all(b"\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, raw.read_to_end(&mut answer))
        .await
        .expect("server closes")
        .unwrap();
    let text = String::from_utf8(answer).unwrap();
    assert!(text.contains("line too long"), "{text}");

    let (mut other, work) = ready_miner(addr, "protocol-test/1", &format!("{payout}.w2")).await;
    let fine = share(&other, &work, 4, |s| s.is_block);
    assert_eq!(
        other.submit(&format!("{payout}.w2"), &fine).await.unwrap()["result"],
        json!(true)
    );

    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_miners_to_reconnect() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let running = start_ndas(regtest_config(&pair, dir.path(), &payout)).await;
    let (mut client, _) = ready_miner(running.stratum_addr(), "protocol-test/1", "w").await;
    running.shutdown().await;
    common::expect_reconnect(&mut client).await;
    assert!(
        client
            .read_message()
            .await
            .map(|m| m.is_none())
            .unwrap_or(true),
        "closed after reconnect"
    );
}
