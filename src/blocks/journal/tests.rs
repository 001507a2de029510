use super::record::{HEADER_LEN, MAGIC};
use super::*;
use ndas_core::stratum::method::{Extranonce2, JobId};
use ndas_core::testkit;
use ndas_core::work::{Extranonce1, Job, JobConfig};

/// An entry whose hash is `name` (two hex digits) repeated to 64.
fn entry(name: &str, block: &[u8]) -> JournalEntry {
    JournalEntry {
        hash: name.repeat(32),
        height: 7,
        worker: "w".into(),
        found_at: 1,
        // Who it paid survives a restart with the rest.
        paid: vec![PaidOutput {
            address: "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080".into(),
            value: 5_000_000_000,
        }],
        block: BlockBytes::whole(block.to_vec()),
        outcome: None,
        nodes: Vec::new(),
    }
}

/// The names of `entries` (their hashes' first two digits).
fn hashes(entries: &[JournalEntry]) -> Vec<&str> {
    entries.iter().map(|e| &e.hash[..2]).collect()
}

/// Flips a byte of the second record's meta: its header stays readable,
/// its CRC fails.
fn damage_second_record(dir: &Path) {
    let path = dir.join("blocks/found.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let second = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| w == MAGIC)
        .nth(1)
        .unwrap()
        .0;
    bytes[second + HEADER_LEN + 3] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
}

fn log_len(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("blocks/found.log"))
        .unwrap()
        .len()
}

#[test]
fn a_recorded_block_is_pending_until_settled() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    journal.record(&entry("aa", &[1, 2, 3])).unwrap();
    journal.record(&entry("bb", &[4; 1000])).unwrap();
    let pending = Journal::open(dir.path()).unwrap().pending().unwrap();
    assert_eq!(hashes(&pending), ["aa", "bb"]);
    assert_eq!(pending[1].block.to_vec(), vec![4; 1000]);

    let mut settled = entry("aa", &[1, 2, 3]);
    settled.outcome = Some(Outcome::Accepted);
    journal.settle(&settled).unwrap();
    assert_eq!(hashes(&journal.pending().unwrap()), ["bb"]);
    assert!(log_len(dir.path()) > 0, "bb is still pending");
    assert_eq!(journal.settled().unwrap(), vec![settled]);

    journal.settle(&entry("bb", &[4; 1000])).unwrap();
    assert!(journal.pending().unwrap().is_empty());
    assert_eq!(journal.settled().unwrap().len(), 2);
}

#[test]
fn a_block_journaled_again_after_settling_is_pending_again() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    journal.record(&entry("aa", &[1])).unwrap();
    journal.record(&entry("bb", &[2])).unwrap();
    journal.settle(&entry("aa", &[1])).unwrap();
    journal.record(&entry("aa", &[1])).unwrap();
    assert_eq!(hashes(&journal.pending().unwrap()), ["bb", "aa"]);
}

#[test]
fn recover_returns_pending_blocks_and_empties_a_settled_log() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    journal.record(&entry("aa", &[1])).unwrap();
    drop(journal);
    let journal = Journal::open(dir.path()).unwrap();
    let pending = journal.recover().unwrap();
    assert_eq!(hashes(&pending), ["aa"]);
    journal.settle(&pending[0]).unwrap();
    assert!(Journal::open(dir.path())
        .unwrap()
        .recover()
        .unwrap()
        .is_empty());
    assert_eq!(log_len(dir.path()), 0, "nothing pending at start: emptied");
}

#[test]
fn a_torn_tail_is_skipped_moved_aside_and_the_good_records_kept() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    journal.record(&entry("aa", &[1; 100])).unwrap();
    journal.record(&entry("bb", &[2; 100])).unwrap();
    let path = dir.path().join("blocks/found.log");
    let full = std::fs::read(&path).unwrap();
    // Killed in the middle of writing bb.
    std::fs::write(&path, &full[..full.len() - 30]).unwrap();

    assert_eq!(hashes(&journal.pending().unwrap()), ["aa"]);
    let journal = Journal::open(dir.path()).unwrap();
    assert_eq!(hashes(&journal.recover().unwrap()), ["aa"]);
    let aside: Vec<_> = std::fs::read_dir(dir.path().join("blocks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("found.log.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged log is kept");
    let kept = std::fs::read(dir.path().join("blocks").join(&aside[0])).unwrap();
    assert_eq!(kept, full[..full.len() - 30]);
    // The fresh log holds aa alone and takes new records after it.
    journal.record(&entry("cc", &[3])).unwrap();
    assert_eq!(hashes(&journal.pending().unwrap()), ["aa", "cc"]);
}

#[test]
fn a_damaged_record_in_the_middle_does_not_hide_the_ones_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    for (hash, byte) in [("aa", 1), ("bb", 2), ("cc", 3)] {
        journal.record(&entry(hash, &[byte; 64])).unwrap();
    }
    damage_second_record(dir.path());

    assert_eq!(hashes(&journal.pending().unwrap()), ["aa", "cc"]);
    let journal = Journal::open(dir.path()).unwrap();
    assert_eq!(hashes(&journal.recover().unwrap()), ["aa", "cc"]);
    assert_eq!(hashes(&journal.pending().unwrap()), ["aa", "cc"]);
}

#[test]
fn settled_entries_are_readable_json_with_the_block_in_hex() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let mut block = entry("aa", &[0xde, 0xad]);
    block.outcome = Some(Outcome::Rejected("bad-txns".into()));
    journal.settle(&block).unwrap();
    let text = std::fs::read_to_string(
        dir.path()
            .join(format!("blocks/settled/{}.json", "aa".repeat(32))),
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["block"], "dead");
    assert_eq!(
        json["outcome"],
        serde_json::json!({"status": "rejected", "reason": "bad-txns"})
    );
}

const GBT_60TX: &str = include_str!("../../../tests/fixtures/core-regtest-gbt-height121-60tx.json");

fn template_60tx() -> Arc<Template> {
    Arc::new(Template::from_json(serde_json::from_str(GBT_60TX).unwrap()).unwrap())
}

fn found_on(template: Arc<Template>, nonce: u8) -> FoundBlock {
    let config = JobConfig {
        payout_script: hex::decode(testkit::PAYOUT).unwrap(),
        coinbase_tag: b"/NDAS/".to_vec(),
        extranonce2_size: 8,
        splits: Vec::new(),
    };
    let job = Arc::new(Job::build(JobId(1), template, &config).unwrap());
    FoundBlock {
        job,
        header: [nonce; 80],
        hash: ndas_core::chain::Hash256([nonce; 32]),
        extranonce1: Extranonce1([1, 2, 3, 4]),
        extranonce2: Extranonce2::from_bytes(&[nonce; 8]).unwrap(),
        worker: "w".into(),
        received: std::time::Instant::now(),
    }
}

#[test]
fn a_block_on_a_journaled_template_records_only_its_head_and_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let template = template_60tx();
    journal.write_transactions(&template, None).unwrap();
    let journaled = journal.written(&template).expect("transactions journaled");
    assert_eq!(journaled.hex, faster_hex::hex_string(&template.tx_data));
    let before = log_len(dir.path());
    assert!(before > template.tx_data.len() as u64);

    let found = found_on(template.clone(), 7);
    let write = journal.write_found(&found);
    write.written.unwrap();
    journal.sync().unwrap();
    assert_eq!(write.transactions_hex, Some(journaled.hex.clone()));
    assert_eq!(write.entry.block.to_vec(), found.serialize());
    let record = log_len(dir.path()) - before;
    assert!(record < 500, "only header and coinbase: {record} bytes");

    let recovered = Journal::open(dir.path()).unwrap().recover().unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].block.to_vec(), found.serialize());
    assert_eq!(recovered[0].hash, found.hash.to_string());
}

#[test]
fn a_block_on_a_template_not_yet_journaled_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let found = found_on(template_60tx(), 7);
    let write = journal.write_found(&found);
    write.written.unwrap();
    assert!(write.transactions_hex.is_none());
    assert!(log_len(dir.path()) > found.job.template.tx_data.len() as u64);
    assert_eq!(
        journal.pending().unwrap()[0].block.to_vec(),
        found.serialize()
    );
}

#[test]
fn a_large_log_is_emptied_before_new_transactions_and_a_pending_block_carried_forward() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap().with_compaction_at(1000);
    let old = template_60tx();
    journal.write_transactions(&old, None).unwrap();
    // A block on that template, its record only its head: it needs the
    // transactions record to be whole.
    let stuck = found_on(old.clone(), 8);
    let write = journal.write_found(&stuck);
    assert!(write.transactions_hex.is_some());
    journal.sync().unwrap();
    // Templates keep coming and the block never gets a verdict: the log is
    // compacted each time, to the block (whole) and the newest transactions.
    let mut sizes = Vec::new();
    for _ in 0..5 {
        journal.write_transactions(&template_60tx(), None).unwrap();
        sizes.push(log_len(dir.path()));
    }
    assert!(sizes.windows(2).all(|w| w[0] == w[1]), "{sizes:?}");
    let pending = Journal::open(dir.path()).unwrap().pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].hash, stuck.hash.to_string());
    assert_eq!(pending[0].block.to_vec(), stuck.serialize());
    journal.settle(&write.entry).unwrap();

    let newest = template_60tx();
    journal.write_transactions(&newest, None).unwrap();
    let one_record = HEADER_LEN + r#"{"id":6}"#.len() + newest.tx_data.len();
    assert_eq!(
        log_len(dir.path()),
        one_record as u64,
        "emptied, then the new transactions"
    );

    // The old template's transactions went with it: its block is written whole.
    let found = found_on(old, 9);
    let write = journal.write_found(&found);
    assert!(write.transactions_hex.is_none());
    assert_eq!(
        journal.pending().unwrap()[0].block.to_vec(),
        found.serialize()
    );
    // The new template's are there.
    let found = found_on(newest, 10);
    assert!(journal.write_found(&found).transactions_hex.is_some());
    assert_eq!(
        journal.pending().unwrap()[1].block.to_vec(),
        found.serialize()
    );
}

#[test]
fn the_same_transactions_are_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let first = template_60tx();
    journal.write_transactions(&first, None).unwrap();
    let size = log_len(dir.path());
    // A refreshed template with the same transactions.
    let second = template_60tx();
    journal.write_transactions(&second, Some(&first)).unwrap();
    assert_eq!(log_len(dir.path()), size);
    assert_eq!(
        journal.written(&second).unwrap().id,
        journal.written(&first).unwrap().id
    );
    let found = found_on(second, 3);
    journal.write_found(&found).written.unwrap();
    assert_eq!(
        journal.pending().unwrap()[0].block.to_vec(),
        found.serialize()
    );
}

#[test]
fn a_record_forged_inside_a_damaged_ones_length_is_never_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    journal.record(&entry("aa", &[1; 64])).unwrap();
    // A settle record for aa, as mempool data could carry it, inside the
    // body of a block record that is then damaged.
    let forged = encode(
        Kind::Settled,
        &json(&SettledMeta {
            hash: "aa".repeat(32),
        }),
        |_| {},
    );
    let mut body = vec![9u8; 40];
    body.extend_from_slice(&forged);
    body.extend_from_slice(&[9; 40]);
    journal.record(&entry("bb", &body)).unwrap();
    journal.record(&entry("cc", &[3; 64])).unwrap();
    damage_second_record(dir.path());
    let journal = Journal::open(dir.path()).unwrap();
    assert_eq!(hashes(&journal.recover().unwrap()), ["aa", "cc"]);
}

#[test]
fn a_record_whose_hash_is_not_a_block_hash_is_never_used_as_a_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let mut evil = entry("aa", &[1; 64]);
    evil.hash = "../../../../tmp/ndas-evil".into();
    journal.record(&evil).unwrap();
    let mut tall = entry("bb", &[2; 64]);
    tall.height = u32::MAX;
    journal.record(&tall).unwrap();
    journal.record(&entry("cc", &[3; 64])).unwrap();
    assert_eq!(hashes(&journal.pending().unwrap()), ["cc"]);
    let refused = journal.settle(&evil).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidData);
    assert!(!dir.path().join("tmp").exists());
}

/// An entry whose body starts with a header of `byte`s and whose hash is
/// that header's, as a real block's is.
fn real(byte: u8, rest: &[u8]) -> JournalEntry {
    let body = [&[byte; 80][..], rest].concat();
    JournalEntry {
        hash: ndas_core::chain::sha256d(&body[..80]).to_string(),
        ..entry("00", &body)
    }
}

#[test]
fn a_damaged_length_hides_no_block_that_checks_out_and_adopts_no_settle_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    let a = real(1, &[]);
    let forged = encode(
        Kind::Settled,
        &json(&SettledMeta {
            hash: a.hash.clone(),
        }),
        |_| {},
    );
    let b = real(2, &[&[9; 40][..], &forged, &[9; 40]].concat());
    let c = real(3, &[5; 64]);
    for entry in [&a, &b, &c] {
        journal.record(entry).unwrap();
    }
    // b's body length now claims far more than the log holds.
    let path = dir.path().join("blocks/found.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let second = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| w == MAGIC)
        .nth(1)
        .unwrap()
        .0;
    bytes[second + 9..second + 13].copy_from_slice(&(u32::MAX / 2).to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();

    let recovered = Journal::open(dir.path()).unwrap().recover().unwrap();
    let found: Vec<&str> = recovered.iter().map(|e| e.hash.as_str()).collect();
    assert_eq!(found, [a.hash.as_str(), c.hash.as_str()]);
    assert_eq!(recovered[1].block.to_vec(), c.block.to_vec());
}

#[test]
fn a_record_whose_magic_straddles_two_reads_after_damage_is_found() {
    use super::record::CHUNK;
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    journal.record(&entry("aa", &[1; 64])).unwrap();
    // Garbage with no magic in it, sized so that the search for the next
    // record (from the garbage's second byte, a chunk at a time) reads the
    // next magic's first three bytes at the end of one chunk and its last
    // at the start of the next.
    std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("blocks/found.log"))
        .unwrap()
        .write_all(&vec![0xee; CHUNK - 1])
        .unwrap();
    journal.record(&entry("bb", &[2; 64])).unwrap();
    journal.record(&entry("cc", &[3; CHUNK * 2])).unwrap();

    let recovered = Journal::open(dir.path()).unwrap().recover().unwrap();
    assert_eq!(hashes(&recovered), ["aa", "bb", "cc"]);
    assert_eq!(recovered[2].block.to_vec(), vec![3; CHUNK * 2]);
    // The fresh log holds the three records and nothing of the garbage.
    assert_eq!(hashes(&journal.pending().unwrap()), ["aa", "bb", "cc"]);
    assert!(log_len(dir.path()) < (CHUNK * 2 + 1024) as u64);
}
