//! The history database, `data_dir/history.redb` (redb: an embedded,
//! crash-safe B-tree store in pure Rust, one file, no C library to build;
//! time buckets and per-name totals are keyed lookups and ranges, which is
//! all this needs of a database). Its schema version is in `meta`; the rows
//! are the types of `schema.rs`, as JSON.

use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{de::DeserializeOwned, Serialize};

use super::schema::{Bucket, StoredBlock, StoredTotals};

/// The schema this NDAS writes. A file of a higher one is refused (made by
/// a newer NDAS); a lower one is migrated at open.
pub const SCHEMA_VERSION: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Pool figures per minute, by the minute's start (Unix seconds).
pub(super) const MINUTES: TableDefinition<u64, &[u8]> = TableDefinition::new("pool_minutes");
/// Pool figures per hour, by the hour's start.
pub(super) const HOURS: TableDefinition<u64, &[u8]> = TableDefinition::new("pool_hours");
/// Each worker's totals across runs, by name.
pub(super) const WORKERS: TableDefinition<&str, &[u8]> = TableDefinition::new("workers");
/// Found blocks and their verdicts, by hash.
pub(super) const BLOCKS: TableDefinition<&str, &[u8]> = TableDefinition::new("blocks");

/// What went wrong with the history file.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history database: {0}")]
    Database(String),
    #[error("history database has schema {found}, newer than this NDAS's {SCHEMA_VERSION}: run the newer NDAS, or move the file aside")]
    Newer { found: u64 },
}

fn db_error(error: impl std::fmt::Display) -> HistoryError {
    HistoryError::Database(error.to_string())
}

/// The open database.
pub struct Store {
    db: Database,
}

impl Store {
    /// Opens (or creates) the file, checks its schema, creates the tables.
    pub fn open(path: &Path) -> Result<Store, HistoryError> {
        let db = Database::create(path).map_err(db_error)?;
        let tx = db.begin_write().map_err(db_error)?;
        {
            let mut meta = tx.open_table(META).map_err(db_error)?;
            let found = meta
                .get("schema_version")
                .map_err(db_error)?
                .map(|v| v.value());
            match found {
                Some(found) if found > SCHEMA_VERSION => return Err(HistoryError::Newer { found }),
                // Version 1 is the first: nothing older to migrate from yet.
                _ => {
                    meta.insert("schema_version", SCHEMA_VERSION)
                        .map_err(db_error)?;
                }
            }
            tx.open_table(MINUTES).map_err(db_error)?;
            tx.open_table(HOURS).map_err(db_error)?;
            tx.open_table(WORKERS).map_err(db_error)?;
            tx.open_table(BLOCKS).map_err(db_error)?;
        }
        tx.commit().map_err(db_error)?;
        Ok(Store { db })
    }

    /// One write: the minute and hour buckets added to, worker totals and
    /// blocks replaced, and what is past `keep` dropped.
    pub fn write(&self, write: &Write) -> Result<(), HistoryError> {
        let tx = self.db.begin_write().map_err(db_error)?;
        {
            for (table, start, keep) in [
                (MINUTES, write.minute, write.keep_minutes),
                (HOURS, write.hour, write.keep_hours),
            ] {
                let mut buckets = tx.open_table(table).map_err(db_error)?;
                let mut bucket: Bucket = buckets
                    .get(start)
                    .map_err(db_error)?
                    .and_then(|v| decode(v.value()))
                    .unwrap_or_default();
                bucket.add(&write.bucket);
                buckets
                    .insert(start, encode(&bucket).as_slice())
                    .map_err(db_error)?;
                let old: Vec<u64> = buckets
                    .range(..start.saturating_sub(keep))
                    .map_err(db_error)?
                    .filter_map(|entry| entry.ok().map(|(k, _)| k.value()))
                    .collect();
                for key in old {
                    buckets.remove(key).map_err(db_error)?;
                }
            }
            let mut workers = tx.open_table(WORKERS).map_err(db_error)?;
            for (name, totals) in &write.workers {
                workers
                    .insert(name.as_str(), encode(totals).as_slice())
                    .map_err(db_error)?;
            }
            if workers.len().map_err(db_error)? > write.max_workers as u64 {
                // Bounded: the longest silent go first.
                let mut all: Vec<(u64, String)> = workers
                    .iter()
                    .map_err(db_error)?
                    .filter_map(|entry| entry.ok())
                    .filter_map(|(k, v)| {
                        decode::<StoredTotals>(v.value())
                            .map(|t| (t.last_share, k.value().to_owned()))
                    })
                    .collect();
                all.sort();
                let extra = all.len().saturating_sub(write.max_workers);
                for (_, name) in all.into_iter().take(extra) {
                    workers.remove(name.as_str()).map_err(db_error)?;
                }
            }
            let mut blocks = tx.open_table(BLOCKS).map_err(db_error)?;
            for block in &write.blocks {
                blocks
                    .insert(block.hash.as_str(), encode(block).as_slice())
                    .map_err(db_error)?;
            }
        }
        tx.commit().map_err(db_error)
    }

    /// The buckets of `table` from `since` on, oldest first.
    pub fn buckets(
        &self,
        table: TableDefinition<u64, &[u8]>,
        since: u64,
    ) -> Result<Vec<(u64, Bucket)>, HistoryError> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let buckets = tx.open_table(table).map_err(db_error)?;
        let rows = buckets
            .range(since..)
            .map_err(db_error)?
            .filter_map(|entry| entry.ok())
            .filter_map(|(k, v)| decode(v.value()).map(|b| (k.value(), b)))
            .collect();
        Ok(rows)
    }

    /// A worker's totals, if it was ever seen.
    pub fn worker(&self, name: &str) -> Result<Option<StoredTotals>, HistoryError> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let workers = tx.open_table(WORKERS).map_err(db_error)?;
        let totals = workers
            .get(name)
            .map_err(db_error)?
            .and_then(|v| decode(v.value()));
        Ok(totals)
    }

    /// Every block, newest first.
    pub fn blocks(&self) -> Result<Vec<StoredBlock>, HistoryError> {
        let tx = self.db.begin_read().map_err(db_error)?;
        let blocks = tx.open_table(BLOCKS).map_err(db_error)?;
        let mut rows: Vec<StoredBlock> = blocks
            .iter()
            .map_err(db_error)?
            .filter_map(|entry| entry.ok())
            .filter_map(|(_, v)| decode(v.value()))
            .collect();
        rows.sort_by(|a, b| b.found_at.cmp(&a.found_at).then(b.height.cmp(&a.height)));
        Ok(rows)
    }
}

/// What one write puts in the database.
pub struct Write {
    pub minute: u64,
    pub hour: u64,
    pub bucket: Bucket,
    pub workers: Vec<(String, StoredTotals)>,
    pub blocks: Vec<StoredBlock>,
    /// Seconds of minute and hour buckets kept.
    pub keep_minutes: u64,
    pub keep_hours: u64,
    pub max_workers: usize,
}

pub(super) fn encode(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("history rows serialize")
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}
