//! The row types against rows the history wrote before they existed (then
//! the JSON of `stats::Totals`, `stats::BlockView` and `Bucket`, captured
//! from that code with every field set): such a file must read back byte
//! for byte, the writer must still write it, and the API must show it as
//! it did. A field renamed in a row type fails all but the payout test; one
//! renamed in an API view alone fails only the API's, as it should: the
//! file stays as it was.

use std::path::Path;

use serde::{de::DeserializeOwned, Serialize};
use serde_json::json;

use super::*;
use crate::history::store::{decode, encode, Write, BLOCKS, HOURS, MINUTES, WORKERS};
use crate::history::History;

/// A `workers` row as written before.
const TOTALS_ROW: &str = r#"{"accepted":123456,"rejected":78,"stale":9,"best_share":1234567.891,"last_share":1700000123}"#;
/// A `blocks` row as written before.
const BLOCK_ROW: &str = r#"{"height":840000,"hash":"00000000000000000000e9a3a1bbd2ec4d1a6d5b7f0c3e2a1b9c8d7e6f5a4b3c","worker":"bc1qfarmaccount.rack12-s19-004","found_at":1700000456,"status":"accepted","payout":"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"}"#;
/// A `pool_minutes` and `pool_hours` row as written before.
const BUCKET_ROW: &str = r#"{"accepted":600,"rejected":12,"stale":3,"difficulty":2457600.5,"workers_online":4,"workers_connected":5}"#;

/// `/api/history/worker?name=` for [`TOTALS_ROW`], as answered before.
const WORKER_API: &str = r#"{"name":"bc1qfarmaccount.rack12-s19-004","totals":{"accepted":123456,"best_share":1234567.891,"last_share":1700000123,"rejected":78,"stale":9}}"#;
/// `/api/history/blocks` for [`BLOCK_ROW`], as answered before.
const BLOCKS_API: &str = r#"{"blocks":[{"found_at":1700000456,"hash":"00000000000000000000e9a3a1bbd2ec4d1a6d5b7f0c3e2a1b9c8d7e6f5a4b3c","height":840000,"payout":"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080","status":"accepted","worker":"bc1qfarmaccount.rack12-s19-004"}]}"#;
/// `/api/history?range=1h` and `7d` for [`BUCKET_ROW`], as answered before.
const MINUTES_API: &str = r#"{"bucket_seconds":60,"points":[{"accepted":600,"hashrate":175921896235554.12,"rejected":12,"stale":3,"t":1700000040,"workers_connected":5,"workers_online":4}],"range":"1h"}"#;
const HOURS_API: &str = r#"{"bucket_seconds":3600,"points":[{"accepted":600,"hashrate":2932031603925.9023,"rejected":12,"stale":3,"t":1699999200,"workers_connected":5,"workers_online":4}],"range":"7d"}"#;

const NAME: &str = "bc1qfarmaccount.rack12-s19-004";
const HASH: &str = "00000000000000000000e9a3a1bbd2ec4d1a6d5b7f0c3e2a1b9c8d7e6f5a4b3c";
const MINUTE: u64 = 1_700_000_040;
const HOUR: u64 = 1_699_999_200;
const NOW: u64 = 1_700_000_100;

fn totals() -> Totals {
    Totals {
        accepted: 123_456,
        rejected: 78,
        stale: 9,
        best_share: 1_234_567.891,
        last_share: 1_700_000_123,
    }
}

fn block() -> BlockView {
    BlockView {
        height: 840_000,
        hash: HASH.into(),
        worker: NAME.into(),
        found_at: 1_700_000_456,
        status: "accepted".into(),
        payout: "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080".into(),
    }
}

fn bucket() -> Bucket {
    Bucket {
        accepted: 600,
        rejected: 12,
        stale: 3,
        difficulty: 2_457_600.5,
        workers_online: 4,
        workers_connected: 5,
    }
}

/// `row` decodes to `expected` and encodes back to itself.
fn reads_back<T>(row: &str, expected: T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let decoded: T = decode(row.as_bytes()).unwrap_or_else(|| panic!("cannot decode {row}"));
    assert_eq!(decoded, expected);
    assert_eq!(String::from_utf8(encode(&decoded)).unwrap(), row);
}

#[test]
fn rows_written_before_the_schema_types_read_back_byte_for_byte() {
    reads_back(TOTALS_ROW, StoredTotals::from(totals()));
    reads_back(BLOCK_ROW, StoredBlock::from(block()));
    reads_back(BUCKET_ROW, bucket());
}

#[test]
fn a_block_row_from_before_payout_modes_reads_with_no_payout() {
    let row = r#"{"height":1,"hash":"h","worker":"w","found_at":2,"status":"accepted"}"#;
    let block: StoredBlock = decode(row.as_bytes()).expect("decodes");
    assert_eq!(block.payout, "");
}

#[test]
fn the_writer_stores_what_it_stored_before() {
    let dir = tempfile::tempdir().unwrap();
    let history = History::open(dir.path(), 10).unwrap();
    let write = Write {
        minute: MINUTE,
        hour: HOUR,
        bucket: bucket(),
        workers: vec![(NAME.into(), totals().into())],
        blocks: vec![block().into()],
        keep_minutes: 48 * 3600,
        keep_hours: 90 * 86_400,
        max_workers: 10,
    };
    history.store.write(&write).unwrap();
    drop(history);
    let db = redb::Database::open(dir.path().join("history.redb")).unwrap();
    let tx = db.begin_read().unwrap();
    let row = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).unwrap();
    let workers = tx.open_table(WORKERS).unwrap();
    assert_eq!(row(workers.get(NAME).unwrap().unwrap().value()), TOTALS_ROW);
    let blocks = tx.open_table(BLOCKS).unwrap();
    assert_eq!(row(blocks.get(HASH).unwrap().unwrap().value()), BLOCK_ROW);
    for (table, start) in [(MINUTES, MINUTE), (HOURS, HOUR)] {
        let buckets = tx.open_table(table).unwrap();
        assert_eq!(
            row(buckets.get(start).unwrap().unwrap().value()),
            BUCKET_ROW
        );
    }
}

/// A history file holding the rows as written before.
fn file_written_before(dir: &Path) {
    drop(History::open(dir, 10).unwrap());
    let db = redb::Database::open(dir.join("history.redb")).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut workers = tx.open_table(WORKERS).unwrap();
        workers.insert(NAME, TOTALS_ROW.as_bytes()).unwrap();
        let mut blocks = tx.open_table(BLOCKS).unwrap();
        blocks.insert(HASH, BLOCK_ROW.as_bytes()).unwrap();
        for (table, start) in [(MINUTES, MINUTE), (HOURS, HOUR)] {
            let mut buckets = tx.open_table(table).unwrap();
            buckets.insert(start, BUCKET_ROW.as_bytes()).unwrap();
        }
    }
    tx.commit().unwrap();
}

#[test]
fn the_api_shows_a_file_written_before_as_it_did() {
    let dir = tempfile::tempdir().unwrap();
    file_written_before(dir.path());
    let history = History::open(dir.path(), 10).unwrap();
    // As `/api/history/worker` and `/api/history/blocks` wrap them.
    let totals = history.worker(NAME).unwrap().expect("the row reads");
    assert_eq!(
        json!({"name": NAME, "totals": totals}).to_string(),
        WORKER_API
    );
    let blocks = history.blocks().unwrap();
    assert_eq!(json!({"blocks": blocks}).to_string(), BLOCKS_API);
    assert_eq!(history.series("1h", NOW).unwrap().to_string(), MINUTES_API);
    assert_eq!(history.series("7d", NOW).unwrap().to_string(), HOURS_API);
}
