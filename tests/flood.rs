//! A flood of found blocks: on Bitcoin Core regtest half of all hashes are
//! blocks, so an unpaced CPU miner finds thousands a second, all on one
//! parent until the tip moves (as every ASIC does on testnet4 whenever a
//! difficulty-1 block is allowed). Only the first block of a parent is
//! urgent: NDAS must keep its memory, journal, log and shutdown time
//! bounded whatever the flood, through a node outage, and never hold the
//! next tip's block behind siblings.

use ndas_testkit as common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::node::{free_port, RegtestPair};
use common::process::{config_text, log_lines, memory_bytes, serve, signal, wait_for_log};
use common::{metric, start_ndas, temp_dir, two_node_config};
use ndas_tools::miner::{grind, parse_notify, submit_params, Work};
use serde_json::{json, Value};

/// An unpaced CPU miner: one thread per connection grinding shares and
/// writing each `mining.submit` at once, never waiting for the answer (a
/// second thread reads the answers and the jobs).
struct Flood {
    stop: Arc<AtomicBool>,
    submitted: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Flood {
    fn start(addr: SocketAddr, connections: usize) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let submitted = Arc::new(AtomicU64::new(0));
        let threads = (0..connections)
            .map(|i| {
                let (stop, submitted) = (stop.clone(), submitted.clone());
                std::thread::spawn(move || {
                    // Unpaced, but at the lowest priority: it takes every
                    // cycle NDAS and the nodes leave (on 2 cores it would
                    // otherwise starve the node this test needs to grow
                    // its chain), so what it sends is what NDAS can take.
                    // SAFETY: setpriority on this thread's own id.
                    unsafe {
                        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19);
                    }
                    // Reconnects if NDAS closes it; ends when told.
                    while !stop.load(Ordering::Relaxed) {
                        let _ = flood_connection(addr, &format!("flood.{i}"), &stop, &submitted);
                        std::thread::sleep(Duration::from_millis(100));
                    }
                })
            })
            .collect();
        Flood {
            stop,
            submitted,
            threads,
        }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().unwrap();
        }
        self.submitted.load(Ordering::Relaxed)
    }
}

/// What the reading thread has seen: the extranonce1 and its size, the newest job.
type Seen = Arc<Mutex<(Option<(Vec<u8>, usize)>, Option<Work>)>>;

fn flood_connection(
    addr: SocketAddr,
    user: &str,
    stop: &AtomicBool,
    submitted: &AtomicU64,
) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let seen: Seen = Arc::default();
    let reader = {
        let (stream, seen) = (stream.try_clone()?, seen.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                let Ok(message) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let mut seen = seen.lock().unwrap();
                if message["id"] == json!(1) {
                    let result = &message["result"];
                    let extranonce1 = hex::decode(result[1].as_str().unwrap_or("")).unwrap();
                    seen.0 = Some((extranonce1, result[2].as_u64().unwrap() as usize));
                } else if message["method"] == json!("mining.notify") {
                    seen.1 = Some(parse_notify(&message["params"]).unwrap());
                }
            }
        })
    };
    let mut send = |value: Value| -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&value).unwrap();
        line.push(b'\n');
        stream.write_all(&line)
    };
    send(json!({"id": 1, "method": "mining.subscribe", "params": ["flood/1.0"]}))?;
    send(json!({"id": 2, "method": "mining.authorize", "params": [user, "x"]}))?;
    let (mut id, mut extranonce2) = (3u64, 0u64);
    let outcome = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        let (extranonce, work) = {
            let seen = seen.lock().unwrap();
            (seen.0.clone(), seen.1.clone())
        };
        let (Some((extranonce1, size)), Some(work)) = (extranonce, work) else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        extranonce2 += 1;
        let en2 = extranonce2.to_be_bytes()[8 - size.min(8)..].to_vec();
        let Some(share) = grind(&work, &extranonce1, &en2, (None, 0), 64, |_| true) else {
            continue;
        };
        id += 1;
        let submit =
            json!({"id": id, "method": "mining.submit", "params": submit_params(user, &share)});
        if let Err(error) = send(submit) {
            break Err(error);
        }
        submitted.fetch_add(1, Ordering::Relaxed);
    };
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = reader.join();
    outcome
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Messages of `lines` containing `what`.
fn count(lines: &[Value], what: &str) -> usize {
    lines
        .iter()
        .filter(|l| l["message"].as_str().is_some_and(|m| m.contains(what)))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_block_flood_through_a_node_outage_keeps_memory_journal_log_and_shutdown_bounded() {
    let mut pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let ports = (free_port(), free_port());
    let config = dir.path().join("ndas.toml");
    let grace = 5.0;
    let text = config_text(dir.path(), &pair, &payout, ports, 2.5e-10, "/NDAS/", "")
        // An unpaced miner may send as many lines as it likes here.
        .replace("[stratum]\n", "[stratum]\nmax_lines_per_second = 1000000\n")
        + &format!("[blocks]\nsiblings_per_parent = 8\nshutdown_grace_seconds = {grace}\n");
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("ndas.log");
    let mut child = serve(&config, &log);
    let pid = child.0.id();
    wait_for_log(&log, "new job").await;
    let http = SocketAddr::from(([127, 0, 0, 1], ports.1));
    let stratum = SocketAddr::from(([127, 0, 0, 1], ports.0));

    let start_height = pair.main.height().await;
    let flood = Flood::start(stratum, 2);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let before_outage = pair.main.height().await;
    assert!(
        before_outage >= start_height + 3,
        "the chain grows under the flood: {start_height} -> {before_outage}"
    );

    // The node goes away for 15 s while the miner keeps finding blocks on
    // the last job: every one of them on the same parent.
    pair.main.stop();
    let mut peak = 0;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak = peak.max(memory_bytes(pid, "VmRSS"));
    }
    let journal = dir.path().join("data/blocks/found.log");
    let journal_in_outage = file_size(&journal);
    pair.main.restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while pair.main.height().await < before_outage + 3 {
        assert!(
            Instant::now() < deadline,
            "the chain grows again once the node is back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        peak = peak.max(memory_bytes(pid, "VmRSS"));
    }
    let dropped = metric(http, "ndas_block_siblings_total{outcome=\"dropped_full\"}").await;
    let found = metric(http, "ndas_blocks_found_total").await;
    let kept = metric(http, "ndas_block_siblings_kept").await;
    let submitted = flood.stop();
    let end_height = pair.main.height().await;

    // SIGTERM: out within the grace period, whatever is pending.
    let asked = Instant::now();
    signal(pid, "TERM");
    let exited = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs_f64(grace + 5.0),
            "ndas still running {:?} after SIGTERM",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let shutdown = asked.elapsed();
    assert!(exited.success(), "{exited}");

    let lines = log_lines(&log);
    let log_bytes = file_size(&log);
    let chain = end_height - start_height;
    eprintln!(
        "flood: {submitted} shares sent, {found} blocks found, chain +{chain}, {dropped} siblings \
         dropped, {kept} kept; peak RSS {} MiB; journal {} KiB in the outage, {} KiB at the end; \
         log {} lines, {} KiB; shutdown {shutdown:?}",
        peak >> 20,
        journal_in_outage >> 10,
        file_size(&journal) >> 10,
        lines.len(),
        log_bytes >> 10
    );
    assert!(
        found > 4.0 * chain as f64 + 1000.0,
        "a flood: {found} blocks found, chain +{chain}"
    );
    assert!(dropped > 0.0, "the per-parent bound was reached");
    assert!(kept <= 8.0 * 4.0, "{kept} siblings kept");
    assert!(peak < 200 << 20, "peak RSS {} MiB", peak >> 20);
    assert!(
        journal_in_outage < 4 << 20,
        "the journal holds {journal_in_outage} bytes after the outage"
    );
    // A block's lines (found, sent, accepted, new job), one summary per
    // parent every 10 s, and the start and stop: not a line per block.
    let first_lines = count(&lines, "BLOCK FOUND");
    assert!(
        first_lines as u64 <= 2 * chain + 10,
        "{first_lines} BLOCK FOUND lines for a chain of +{chain}"
    );
    assert!(
        (lines.len() as u64) < 12 * chain + 300,
        "{} log lines for a chain of +{chain}",
        lines.len()
    );
    let retries = count(&lines, "not yet submitted");
    assert!(
        retries <= 4,
        "{retries} retry lines in a 15 s outage (one per node per 10 s)"
    );
    let stopped = lines
        .iter()
        .find(|l| l["message"] == json!("stopped"))
        .expect("the clean stop line");
    assert!(stopped["blocks_unsettled"].as_u64().unwrap() <= 8 + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_two_nodes_the_backup_takes_blocks_within_seconds_of_the_primary_stopping() {
    let mut pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let mut config = two_node_config(&pair, dir.path(), &payout);
    config.stratum.max_lines_per_second = 1_000_000;
    let running = start_ndas(config).await;
    let flood = Flood::start(running.stratum_addr(), 2);
    let start = pair.peer.height().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while pair.peer.height().await < start + 3 {
        assert!(Instant::now() < deadline, "the chain grows under the flood");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    pair.main.stop();
    let stopped = Instant::now();
    let at_stop = pair.peer.height().await;
    let mut taken = None;
    while stopped.elapsed() < Duration::from_secs(15) {
        if pair.peer.height().await >= at_stop + 3 {
            taken = Some(stopped.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let submitted = flood.stop();
    let found = metric(running.metrics_addr(), "ndas_blocks_found_total").await;
    eprintln!("two nodes: {submitted} shares, {found} blocks found, backup +3 in {taken:?}");
    let taken = taken.expect("the backup took 3 blocks within 15 s of the primary stopping");
    assert!(
        taken < Duration::from_secs(10),
        "the backup took 3 blocks only after {taken:?}"
    );
    running.shutdown().await;
}
