//! The block journal when the disk fails: NDAS refuses to start rather than
//! believe no block is pending, and a block found on a full disk still goes
//! to the node, counted and alerted as not journaled (never as durable).

use ndas_testkit as common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::node::free_port;
use common::process::memory_bytes;
use common::{endpoint_config, ready_miner, regtest_config, start_ndas, temp_dir, RegtestPair};

const PAYOUT: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_cannot_be_read_stops_the_start() {
    let dir = temp_dir();
    let config = endpoint_config((free_port(), "u", "p"), "regtest", dir.path(), PAYOUT);
    // Not a log at all: the process's own memory, whose length reads as 0
    // (and reading it from offset 0 is EIO). Never taken for an empty log.
    let blocks = config.data_dir.join("blocks");
    std::fs::create_dir_all(blocks.join("settled")).unwrap();
    std::os::unix::fs::symlink("/proc/self/mem", blocks.join("found.log")).unwrap();
    let refused = match ndas::start(config).await {
        Ok(_) => panic!("NDAS started on a journal it could not read"),
        Err(error) => error.to_string(),
    };
    assert!(
        refused.contains("cannot read the block journal"),
        "{refused}"
    );
    assert!(refused.contains("found.log"), "{refused}");
    assert!(refused.contains("Input/output error"), "{refused}");
    // The file is left as it was.
    assert!(blocks
        .join("found.log")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
}

/// A small tmpfs mounted for one test (the tests run as root), unmounted
/// when dropped, however the test ends.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, bytes: usize) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(at)
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs (the tests run as root)");
        SmallDisk(at.to_owned())
    }

    /// Writes a file until the disk refuses (ENOSPC).
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match file.write_all(&chunk).and_then(|_| file.sync_data()) {
                Ok(()) => continue,
                Err(error) => {
                    assert_eq!(error.kind(), std::io::ErrorKind::StorageFull, "{error}");
                    return path;
                }
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Journals a stand-in block sized so that the log then ends `short` bytes
/// before a 4 KiB page boundary.
fn pad_to_page_end(journal: &ndas::blocks::Journal, log: &Path, short: u64) {
    use ndas::blocks::{BlockBytes, JournalEntry};
    let entry = |size: usize| JournalEntry {
        hash: "ee".repeat(32),
        height: 1,
        worker: "pad".into(),
        found_at: 1,
        paid: Vec::new(),
        block: BlockBytes::whole(vec![0u8; size]),
        outcome: None,
        nodes: Vec::new(),
    };
    let before = std::fs::metadata(log).unwrap().len();
    journal.record(&entry(1)).unwrap();
    let overhead = std::fs::metadata(log).unwrap().len() - before - 1;
    let now = before + overhead + 1;
    let wanted = (4096 - short - (now + overhead) % 4096) % 4096 + 4096;
    journal.record(&entry(wanted as usize)).unwrap();
    let len = std::fs::metadata(log).unwrap().len();
    assert_eq!(len % 4096, 4096 - short, "{len}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_found_on_a_full_disk_still_reaches_the_node_and_is_counted_as_not_journaled() {
    let pair = RegtestPair::start().await;
    let payout = pair.new_address().await;
    let dir = temp_dir();
    let disk = SmallDisk::mount(&dir.path().join("disk"), 1 << 20);
    let mut config = regtest_config(&pair, dir.path(), &payout);
    config.data_dir = disk.0.join("data");
    let running = start_ndas(config).await;
    let metrics = running.stats().metrics.clone();
    let (mut client, work) = ready_miner(running.stratum_addr(), "t/1", "acct.rig").await;
    let height = pair.main.height().await;

    // The log ends 50 bytes short of a page, and the disk is then filled:
    // the block's record (a few hundred bytes) fits in part, then ENOSPC.
    let journal = running.journal().clone();
    let log = disk.0.join("data/blocks/found.log");
    pad_to_page_end(&journal, &log, 50);
    let filler = disk.fill();
    let block = common::submit_block(&mut client, &work, "acct.rig", 1).await;
    pair.wait_height(height + 1).await;
    let best = pair
        .main
        .call("getbestblockhash", serde_json::json!([]))
        .await;
    assert_eq!(
        best,
        serde_json::json!(block.hash.to_string()),
        "the node has the block"
    );
    assert_eq!(metrics.blocks.unjournaled_total.get(), 1);
    let pending = journal.pending().unwrap();
    assert!(
        pending.iter().all(|e| e.hash != block.hash.to_string()),
        "never claimed durable"
    );

    // Room again: the next block is journaled and settled as usual.
    std::fs::remove_file(filler).unwrap();
    let work = common::next_tip(&mut client, &work).await;
    let next = common::submit_block(&mut client, &work, "acct.rig", 2).await;
    pair.wait_height(height + 2).await;
    let settled = disk
        .0
        .join(format!("data/blocks/settled/{}.json", next.hash));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !settled.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second block never settled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(metrics.blocks.unjournaled_total.get(), 1);
    running.shutdown().await;
    // What the full disk took of the first block's record was cut back:
    // the log reads clean, nothing moved aside as damaged.
    let data = disk.0.join("data");
    ndas::blocks::Journal::open(&data)
        .unwrap()
        .recover()
        .unwrap();
    let damaged = std::fs::read_dir(data.join("blocks"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("damaged"))
        .count();
    assert_eq!(damaged, 0, "a torn record was left in the log");
    drop(disk);
}

/// A stand-in found block of `size` bytes (no node sees it).
fn stand_in(found_at: u64, size: usize) -> ndas::blocks::JournalEntry {
    ndas::blocks::JournalEntry {
        hash: "ab".repeat(32),
        height: 1,
        worker: "acct.rig".into(),
        found_at,
        paid: Vec::new(),
        block: ndas::blocks::BlockBytes::whole(vec![7u8; size]),
        outcome: None,
        nodes: Vec::new(),
    }
}

/// `ndas serve`'s config on `data`, its node a port where nothing listens.
fn unreachable_node_config(dir: &Path, data: &Path) -> PathBuf {
    let config = dir.join("ndas.toml");
    std::fs::write(
        &config,
        format!(
            r#"network = "regtest"
data_dir = "{data}"
[stratum]
listen = "127.0.0.1:0"
[metrics]
listen = "127.0.0.1:0"
[mining]
payout_address = "{PAYOUT}"
[node]
backend = "rpc"
url = "http://127.0.0.1:{port}"
user = "u"
password = "p"
[log]
format = "json"
"#,
            data = data.display(),
            port = free_port(),
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_log_is_read_at_start_in_far_less_memory_than_its_size() {
    // A block that never got a verdict, journaled again and again (a node
    // behind a proxy answering 401, say): 48 records of 8 MiB, one pending.
    let dir = temp_dir();
    let data = dir.path().join("data");
    let journal = ndas::blocks::Journal::open(&data).unwrap();
    for found_at in 0..48 {
        journal.record(&stand_in(found_at, 8 << 20)).unwrap();
    }
    drop(journal);
    let log_len = std::fs::metadata(data.join("blocks/found.log"))
        .unwrap()
        .len();
    assert!(log_len > 384 << 20, "{log_len}");

    let log = dir.path().join("ndas.log");
    let child = common::process::serve(&unreachable_node_config(dir.path(), &data), &log);
    common::process::wait_for_log(&log, "resubmitting journaled block from an earlier run").await;
    // Read whole, the log alone would take 384 MiB; the one pending block
    // (with its hex for submitblock) takes about 32.
    let peak = memory_bytes(child.0.id(), "VmHWM");
    assert!(
        peak < 160 << 20,
        "start-up peaked at {} MiB reading a {} MiB log",
        peak >> 20,
        log_len >> 20
    );
    let pending = ndas::blocks::Journal::open(&data)
        .unwrap()
        .pending()
        .unwrap();
    assert_eq!(pending.len(), 1, "the one block is still pending");
    assert_eq!(pending[0].block.to_vec().len(), 8 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_log_that_cannot_be_copied_out_stops_the_start_and_is_kept_whole() {
    let dir = temp_dir();
    let disk = SmallDisk::mount(&dir.path().join("disk"), 2 << 20);
    let mut config = endpoint_config((free_port(), "u", "p"), "regtest", dir.path(), PAYOUT);
    config.data_dir = disk.0.join("data");
    let blocks = config.data_dir.join("blocks");
    let journal = ndas::blocks::Journal::open(&config.data_dir).unwrap();
    journal.record(&stand_in(1, 600 << 10)).unwrap();
    drop(journal);
    // A torn tail: the readable record must be copied into a new log, and
    // the disk has no room for it.
    let log = blocks.join("found.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes.extend_from_slice(b"NDAS\x01torn");
    std::fs::write(&log, &bytes).unwrap();
    let filler = disk.fill();
    // One page back, for the instance lock's few bytes.
    let filled = std::fs::metadata(&filler).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(filled - 4096)
        .unwrap();

    let refused = match ndas::start(config.clone()).await {
        Ok(_) => panic!("NDAS started on a journal it could not repair"),
        Err(error) => error.to_string(),
    };
    assert!(refused.contains("found.log"), "{refused}");
    assert!(refused.contains("No space left on device"), "{refused}");
    assert_eq!(
        std::fs::read(&log).unwrap(),
        bytes,
        "the damaged log is left as it was"
    );

    // With room again, the next start carries the block over.
    std::fs::remove_file(filler).unwrap();
    let running = ndas::start(config.clone()).await.expect("starts with room");
    let pending = running.journal().pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].block.to_vec(), vec![7u8; 600 << 10]);
    let kept: Vec<_> = std::fs::read_dir(&blocks)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("damaged"))
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    assert_eq!(kept, vec![bytes], "the damaged log is kept aside, whole");
    running.shutdown().await;
    drop(disk);
}
