//! A large worker registry, against Bitcoin Core regtest and `ndas serve`
//! as its own process (so its memory and its threads are its own):
//!
//! - names churned through a capped registry never grow the process's
//!   memory past what the cap holds;
//! - with tens of thousands of workers registered, clients looping on the
//!   heaviest pages of the operator port do not stall a miner's round trip
//!   (every answer is worked out off the miners' threads, on half the cores
//!   at most, and no page copies or sorts the registry under a lock the
//!   miners take).

use ndas_testkit as common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::node::free_port;
use common::process::{config_text, memory_bytes, serve_with_env, wait_for_log};
use common::{http_get, http_json, temp_dir, RegtestPair};
use ndas_tools::miner::grind;
use serde_json::json;

/// One test at a time: each measures its own `ndas serve` (its memory, its
/// round trips), which the other's load would blur.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Workers registered before the flood (the attack left 48,000).
const WORKERS: usize = 48_000;
const NAMES_PER_CONNECTION: usize = 32;

/// Registers `NAMES_PER_CONNECTION` workers, each with one accepted share,
/// on one connection.
async fn register(addr: SocketAddr, first: usize) {
    let names: Vec<String> = (first..first + NAMES_PER_CONNECTION)
        .map(|n| format!("farm{:03}.rig-{n:06}", n / 1000))
        .collect();
    let (mut client, work) = common::ready_miner(addr, "bmminer/2.0.0", &names[0]).await;
    for name in &names[1..] {
        assert_eq!(client.authorize(name).await.unwrap()["result"], json!(true));
    }
    let wanted = client.difficulty;
    for (i, name) in names.iter().enumerate() {
        let en2 = (i as u64).to_le_bytes()[..client.extranonce2_size].to_vec();
        let share = grind(&work, &client.extranonce1, &en2, (None, 0), 1000, |s| {
            s.difficulty >= wanted && !s.is_block
        })
        .unwrap();
        let answer = client.submit(name, &share).await.unwrap();
        assert_eq!(answer["result"], json!(true), "{answer}");
    }
}

/// Round trips of `mining.subscribe` on fresh connections, measured from a
/// thread of its own (not the test's runtime, which the flood keeps busy).
fn subscribe_round_trips(addr: SocketAddr, samples: usize) -> Vec<Duration> {
    std::thread::spawn(move || {
        let mut times = Vec::new();
        for _ in 0..samples {
            let stream = TcpStream::connect(addr).unwrap();
            stream.set_nodelay(true).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let started = Instant::now();
            (&stream)
                .write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"probe/1\"]}\n")
                .unwrap();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            times.push(started.elapsed());
            assert!(line.contains("\"result\""), "{line}");
            std::thread::sleep(Duration::from_millis(20));
        }
        times.sort();
        times
    })
    .join()
    .unwrap()
}

fn median(times: &[Duration]) -> Duration {
    times[times.len() / 2]
}

/// Registers `count` workers from `first`, eight connections at a time.
async fn register_many(addr: SocketAddr, first: usize, count: usize) {
    let mut filling = tokio::task::JoinSet::new();
    let mut next = first;
    while next < first + count {
        if filling.len() == 8 {
            filling.join_next().await.unwrap().unwrap();
        }
        filling.spawn(register(addr, next));
        next += NAMES_PER_CONNECTION;
    }
    while let Some(done) = filling.join_next().await {
        done.unwrap();
    }
}

/// `ndas serve` on `pair` with `env`; its stratum and HTTP addresses.
async fn serve(
    pair: &RegtestPair,
    dir: &std::path::Path,
    env: &[(&str, &std::ffi::OsStr)],
) -> (common::process::Stopped, SocketAddr, SocketAddr) {
    let payout = pair.new_address().await;
    let ports = (free_port(), free_port());
    let config = dir.join("ndas.toml");
    let text = config_text(dir, pair, &payout, ports, 2.5e-10, "/NDAS/", "");
    std::fs::write(&config, text).unwrap();
    let log = dir.join("ndas.log");
    let child = serve_with_env(&config, &log, env);
    wait_for_log(&log, "new job").await;
    let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
    (child, at(ports.0), at(ports.1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_churned_through_a_capped_registry_never_grow_memory_past_the_cap() {
    const CAP: usize = 2_048;
    let _alone = ONE_AT_A_TIME.lock().await;
    let pair = RegtestPair::start().await;
    let dir = temp_dir();
    let (ndas, stratum, http) = serve(
        &pair,
        dir.path(),
        &[("NDAS_STRATUM__MAX_WORKERS", "2048".as_ref())],
    )
    .await;
    // Full once, then churned through: twenty times the cap, every name
    // with a share (the cheapest way in there is), one address.
    register_many(stratum, 0, CAP).await;
    let full = memory_bytes(ndas.0.id(), "VmRSS");
    register_many(stratum, CAP, CAP * 20).await;
    let churned = memory_bytes(ndas.0.id(), "VmRSS");
    let (_, stats) = http_json(http, "/api/stats").await;
    assert_eq!(stats["workers"]["known"], json!(CAP), "{stats}");
    assert_eq!(
        common::metric(http, "ndas_workers_evicted_total").await,
        (CAP * 20) as f64
    );
    // Kept, 40,960 workers would take their ~0.5 KiB each: 20 MiB.
    let grown = churned.saturating_sub(full);
    eprintln!(
        "RSS full {} MiB, after churning {} names {} MiB",
        full >> 20,
        CAP * 20,
        churned >> 20
    );
    assert!(grown < 8 << 20, "grew {} KiB", grown >> 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_flood_against_a_large_registry_does_not_stall_a_miner() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let pair = RegtestPair::start().await;
    let dir = temp_dir();
    // The per-address request rate would turn this flood away at once;
    // lifted, so the flood reaches the heaviest pages.
    let (_ndas, stratum, http) = serve(
        &pair,
        dir.path(),
        &[("NDAS_METRICS__REQUESTS_PER_SECOND", "1000000".as_ref())],
    )
    .await;
    let started = Instant::now();
    register_many(stratum, 0, WORKERS).await;
    let (_, stats) = http_json(http, "/api/stats").await;
    assert_eq!(stats["workers"]["known"], json!(WORKERS), "{stats}");
    eprintln!("{WORKERS} workers registered in {:?}", started.elapsed());

    let idle = subscribe_round_trips(stratum, 40);

    // Eight clients looping on the heaviest answers there are.
    let flooding = Arc::new(AtomicBool::new(true));
    let answered = Arc::new(AtomicU64::new(0));
    let mut flood = tokio::task::JoinSet::new();
    for client in 0..8usize {
        let (flooding, answered) = (flooding.clone(), answered.clone());
        flood.spawn(async move {
            let paths = [
                format!("/api/workers?limit=1000&offset={}", client * 5000),
                "/api/workers?sort=hashrate&limit=1000".to_owned(),
                "/api/workers?sort=hashrate&q=rig-0&limit=1000".to_owned(),
                "/metrics".to_owned(),
                "/api/stats".to_owned(),
            ];
            let mut turn = client;
            while flooding.load(Ordering::Relaxed) {
                let (status, _) = http_get(http, &paths[turn % paths.len()]).await;
                assert_eq!(status, 200);
                answered.fetch_add(1, Ordering::Relaxed);
                turn += 1;
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let flooded = tokio::task::spawn_blocking(move || subscribe_round_trips(stratum, 40))
        .await
        .unwrap();
    flooding.store(false, Ordering::Relaxed);
    while let Some(done) = flood.join_next().await {
        done.unwrap();
    }
    let answered = answered.load(Ordering::Relaxed);
    eprintln!(
        "subscribe round trip p50: idle {:?}, flooded {:?} (max {:?}); {answered} HTTP answers",
        median(&idle),
        median(&flooded),
        flooded.last().unwrap()
    );
    assert!(answered >= 8, "the flood was served ({answered} answers)");
    // A ratio, not a time: the flood may cost the machine's CPU, never the
    // miners' turn. The idle figure is floored at 1 ms (a loopback round
    // trip is noise below it).
    let base = median(&idle).max(Duration::from_millis(1));
    assert!(
        median(&flooded) < base * 20,
        "flooded p50 {:?} against idle {:?}",
        median(&flooded),
        median(&idle)
    );
}
