//! Every firmware family as its source code talks and hashes, against
//! NDAS and Bitcoin Core regtest at a height where Core's template version
//! has a bit inside the BIP310 mask (`0x30000000`: `testdummy` on bit 28).
//!
//! Each conversation is replayed line for line as the firmware writes it
//! (ESP-Miner `components/stratum/stratum_api.c`, cgminer `util.c`,
//! cpuminer `util.c`, NerdMiner `src/stratum.cpp`, Braiins' V1 client), every
//! answer asserted; then the miner rolls version bits with its own formula,
//! formats its nonce its own way, and mines a block Core accepts.

use ndas_testkit as common;

use std::time::Duration;

use common::{regtest_config, start_ndas, temp_dir, RegtestPair};
use ndas_tools::miner::{hash_share_rolled, Client, Rolling, Share, Work};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// One firmware family: what it says before mining, and how it mines.
struct Firmware {
    name: &'static str,
    /// Its lines, `{worker}` standing for the worker name.
    hello: &'static [&'static str],
    /// How it rolls version bits; `None` for miners that do not.
    rolling: Option<Rolling>,
    /// NerdMiner writes the nonce with `String(nonce, HEX)`: no leading zeros.
    unpadded_nonce: bool,
}

fn families() -> Vec<Firmware> {
    vec![
        Firmware {
            name: "ESP-Miner (Bitaxe, NerdQAxe)",
            hello: &[
                r#"{"id": 1, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "ffffffff"}]}"#,
                r#"{"id": 2, "method": "mining.subscribe", "params": ["bitaxe/BM1370/v2.9.0"]}"#,
                r#"{"id": 3, "method": "mining.authorize", "params": ["{worker}", "x"]}"#,
                r#"{"id": 4, "method": "mining.suggest_difficulty", "params": [1000]}"#,
                r#"{"id": 5, "method": "mining.extranonce.subscribe", "params": []}"#,
            ],
            rolling: Some(Rolling::EspMiner),
            unpadded_nonce: false,
        },
        Firmware {
            name: "cgminer (Avalon and other cgminer builds)",
            hello: &[
                r#"{"id": 1, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "ffffffff"}]}"#,
                r#"{"id": 2, "method": "mining.subscribe", "params": ["cgminer/4.11.1"]}"#,
                r#"{"id": 3, "method": "mining.authorize", "params": ["{worker}", "x"]}"#,
                r#"{"id": 4, "method": "mining.suggest_difficulty", "params": [4096]}"#,
            ],
            rolling: Some(Rolling::Cgminer),
            unpadded_nonce: false,
        },
        Firmware {
            name: "bmminer (Antminer stock): configure after authorize",
            hello: &[
                r#"{"id":1,"method":"mining.subscribe","params":["bmminer/2.0.0"]}"#,
                r#"{"id":2,"method":"mining.authorize","params":["{worker}","123"]}"#,
                r#"{"id":3,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]}"#,
            ],
            rolling: Some(Rolling::Cgminer),
            unpadded_nonce: false,
        },
        Firmware {
            name: "Braiins OS",
            hello: &[
                r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":16}]}"#,
                r#"{"id":2,"method":"mining.subscribe","params":["Braiins OS 24.03"]}"#,
                r#"{"id":3,"method":"mining.extranonce.subscribe","params":[]}"#,
                r#"{"id":4,"method":"mining.authorize","params":["{worker}",""]}"#,
            ],
            rolling: Some(Rolling::Bip310),
            unpadded_nonce: false,
        },
        Firmware {
            name: "Whatsminer",
            hello: &[
                r#"{"id":1,"method":"mining.subscribe","params":["btminer/1.0.0"]}"#,
                r#"{"id":2,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":"2"}]}"#,
                r#"{"id":3,"method":"mining.authorize","params":["{worker}","x"]}"#,
            ],
            rolling: Some(Rolling::Cgminer),
            unpadded_nonce: false,
        },
        Firmware {
            name: "NiceHash-style rental proxy: rolls without mining.configure",
            hello: &[
                r#"{"id":1,"method":"mining.subscribe","params":["NiceHash/1.0.0",null]}"#,
                r#"{"id":2,"method":"mining.authorize","params":["{worker}","x"]}"#,
                r#"{"id":3,"method":"mining.extranonce.subscribe","params":[]}"#,
            ],
            rolling: Some(Rolling::WholeVersion),
            unpadded_nonce: false,
        },
        Firmware {
            name: "NerdMiner: authorize sent without waiting, unpadded nonce",
            hello: &[
                r#"{"id": 1, "method": "mining.subscribe", "params": ["NerdMinerV2"]}"#,
                r#"{"params": ["{worker}", "x"], "id": 2, "method": "mining.authorize"}"#,
                r#"{"id": 3, "method": "mining.suggest_difficulty", "params": [0.0001]}"#,
            ],
            rolling: None,
            unpadded_nonce: true,
        },
        Firmware {
            name: "cpuminer",
            hello: &[
                r#"{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}"#,
                r#"{"id": 2, "method": "mining.authorize", "params": ["{worker}", "x"]}"#,
            ],
            rolling: None,
            unpadded_nonce: false,
        },
        Firmware {
            name: "an old proxy: authorize before subscribe",
            hello: &[
                r#"{"id":1,"method":"mining.authorize","params":["{worker}","x"]}"#,
                r#"{"id":2,"method":"mining.subscribe","params":["proxy/0.9"]}"#,
            ],
            rolling: None,
            unpadded_nonce: false,
        },
    ]
}

/// Sends `line` and reads until its answer; the answer.
async fn exchange(client: &mut Client, line: &str) -> Value {
    let id = serde_json::from_str::<Value>(line).unwrap()["id"].clone();
    client
        .send_raw(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    loop {
        let message = tokio::time::timeout(WAIT, client.read_message())
            .await
            .expect("an answer in time")
            .unwrap()
            .expect("the connection stays open");
        if message["id"] == id && message.get("method").is_none() {
            return message;
        }
    }
}

/// The miner's conversation, every answer asserted; the client ready to mine.
async fn greet(addr: std::net::SocketAddr, firmware: &Firmware, worker: &str) -> Client {
    let mut client = Client::connect(addr).await.unwrap();
    for line in firmware.hello {
        let line = line.replace("{worker}", worker);
        let answer = exchange(&mut client, &line).await;
        assert_eq!(
            answer["error"],
            Value::Null,
            "{}: {line}: {answer}",
            firmware.name
        );
        let result = &answer["result"];
        let method = serde_json::from_str::<Value>(&line).unwrap()["method"].clone();
        match method.as_str().unwrap() {
            // Granted the pool's mask, whatever the miner asked for.
            "mining.configure" => assert_eq!(
                result,
                &json!({"version-rolling": true, "version-rolling.mask": "1fffe000"}),
                "{}",
                firmware.name
            ),
            "mining.subscribe" => {
                client.extranonce1 = hex::decode(result[1].as_str().unwrap()).unwrap();
                client.extranonce2_size = result[2].as_u64().unwrap() as usize;
                assert_eq!(client.extranonce1.len(), 4, "{}: {answer}", firmware.name);
                assert_eq!(result[0][1][0], json!("mining.notify"), "{}", firmware.name);
            }
            _ => assert_eq!(result, &json!(true), "{}: {line}", firmware.name),
        }
    }
    client
}

/// The `mining.submit` line as this firmware writes it.
fn submit_line(firmware: &Firmware, id: u64, worker: &str, share: &Share) -> String {
    let nonce = match firmware.unpadded_nonce {
        true => format!("{:X}", share.nonce),
        false => format!("{:08x}", share.nonce),
    };
    let mut params = vec![
        json!(worker),
        json!(share.job_id),
        json!(hex::encode(&share.extranonce2)),
        json!(format!("{:08x}", share.ntime)),
        json!(nonce),
    ];
    if let Some(bits) = share.version_bits {
        params.push(json!(format!("{bits:08x}")));
    }
    json!({"id": id, "method": "mining.submit", "params": params}).to_string()
}

/// A share this firmware would find on `work`, rolling bits across the
/// whole mask (bit 28 among them, half the time).
fn mine(
    firmware: &Firmware,
    client: &Client,
    work: &Work,
    fill: u8,
    wanted: impl Fn(&Share) -> bool,
) -> Share {
    let en2 = vec![fill; client.extranonce2_size];
    (0..100_000u32)
        .map(|nonce| {
            let rolled = firmware.rolling.map(|rolling| {
                (
                    rolling,
                    nonce.wrapping_mul(0x9e37_79b9) & 0x1fff_e000,
                    0x1fff_e000,
                )
            });
            hash_share_rolled(work, &client.extranonce1, &en2, nonce, rolled)
        })
        .find(|share| wanted(share) && (!firmware.unpadded_nonce || share.nonce < 0x1000_0000))
        .expect("a share")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_firmware_family_talks_and_mines_blocks_core_accepts() {
    let pair = RegtestPair::start_signalling_bit_28().await;
    pair.wallet.send_every_kind(&pair.main).await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let running = start_ndas(regtest_config(&pair, dir.path(), &payout)).await;
    let addr = running.stratum_addr();

    for (n, firmware) in families().iter().enumerate() {
        let worker = format!("acct.rig{n}");
        let mut client = greet(addr, firmware, &worker).await;
        let work = client
            .next_job(WAIT)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{}: no job", firmware.name));
        // BIP320: no job version bit inside the mask, whatever Core signals.
        assert_eq!(work.version & 0x1fff_e000, 0, "{}", firmware.name);
        let height = pair.main.height().await;

        let wanted = client.difficulty;
        let plain = mine(firmware, &client, &work, 1, |s| {
            !s.is_block && s.difficulty >= wanted
        });
        let answer = exchange(&mut client, &submit_line(firmware, 100, &worker, &plain)).await;
        assert_eq!(answer["result"], json!(true), "{}: {answer}", firmware.name);

        let block = mine(firmware, &client, &work, 2, |s| s.is_block);
        let answer = exchange(&mut client, &submit_line(firmware, 101, &worker, &block)).await;
        assert_eq!(answer["result"], json!(true), "{}: {answer}", firmware.name);
        pair.wait_height(height + 1).await;
        let best = pair.main.call("getbestblockhash", json!([])).await;
        assert_eq!(
            best,
            json!(block.hash.to_string()),
            "{}: Core's tip is the miner's block",
            firmware.name
        );
        common::next_tip(&mut client, &work).await;
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_reconnecting_with_its_subscription_id_keeps_its_work_in_flight() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let running = start_ndas(regtest_config(&pair, dir.path(), &payout)).await;
    let (addr, http) = (running.stratum_addr(), running.metrics_addr());
    let cpuminer = Firmware {
        name: "cpuminer",
        hello: &[],
        rolling: None,
        unpadded_nonce: false,
    };

    // cpuminer subscribes, mines a share, and loses its connection.
    let mut first = Client::connect(addr).await.unwrap();
    let subscribed = first.subscribe("cpuminer/2.5.1").await.unwrap();
    let id = subscribed["result"][1].as_str().unwrap().to_owned();
    first.authorize("acct.cpu").await.unwrap();
    let work = first.next_job(WAIT).await.unwrap().unwrap();
    let wanted = first.difficulty;
    let before = mine(&cpuminer, &first, &work, 1, |s| {
        !s.is_block && s.difficulty >= wanted
    });
    let answer = exchange(&mut first, &submit_line(&cpuminer, 10, "acct.cpu", &before)).await;
    assert_eq!(answer["result"], json!(true), "{answer}");
    let (extranonce1, extranonce2_size) = (first.extranonce1.clone(), first.extranonce2_size);
    drop(first);
    common::wait_for_metric(http, "ndas_connections", |n| n == 0.0).await;

    // It reconnects with ["agent", "<previous id>"], as cpuminer's util.c
    // does, and goes on with the job it had.
    let mut again = Client::connect(addr).await.unwrap();
    let line = format!(
        r#"{{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1", "{id}"]}}"#
    );
    let answer = exchange(&mut again, &line).await;
    assert_eq!(answer["result"][1], json!(id), "{answer}");
    again.extranonce1 = extranonce1;
    again.extranonce2_size = extranonce2_size;
    again.authorize("acct.cpu").await.unwrap();
    let resent = exchange(&mut again, &submit_line(&cpuminer, 11, "acct.cpu", &before)).await;
    assert_eq!(
        resent["error"][0],
        json!(22),
        "resent, not credited twice: {resent}"
    );
    let height = pair.main.height().await;
    let block = mine(&cpuminer, &again, &work, 2, |s| s.is_block);
    let answer = exchange(&mut again, &submit_line(&cpuminer, 12, "acct.cpu", &block)).await;
    assert_eq!(answer["result"], json!(true), "{answer}");
    pair.wait_height(height + 1).await;
    assert_eq!(
        pair.main.call("getbestblockhash", json!([])).await,
        json!(block.hash.to_string())
    );
    assert_eq!(
        common::metric(http, "ndas_sessions_resumed_total").await,
        1.0
    );
    running.shutdown().await;
}
