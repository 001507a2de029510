//! The batches the database has not taken yet, in `data_dir/fleet-queue.redb`
//! (the same embedded store as the history: crash-safe, one file). Every
//! batch goes through it: written here before it is sent, removed once the
//! database committed it, so a replica stopped or killed while the database
//! is away sends what it held at its next start, in order.
//!
//! Bounded by bytes. Past the bound the oldest batches lose their worker
//! minutes first (the bulk, and the least precious: blocks, sessions and
//! state changes are kept), then their sessions; what is dropped is
//! counted by the caller. The bound is on the batches' bytes; the file is
//! compacted whenever the queue empties, so it shrinks back after an outage.

use std::collections::BTreeSet;
use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition};

use super::rows::Batch;

const BATCHES: TableDefinition<u64, &[u8]> = TableDefinition::new("batches");

/// An emptied queue's file larger than this is compacted.
const COMPACT_ABOVE: u64 = 16 << 20;

/// The queue's file, and the bytes its batches take.
pub struct Queue {
    db: Database,
    path: std::path::PathBuf,
    bound: u64,
    bytes: u64,
    count: usize,
    /// Batches already shed of their worker minutes, and of their sessions
    /// too: not read again to make room.
    shed: [BTreeSet<u64>; 2],
}

/// What went wrong with the queue's file.
#[derive(Debug, thiserror::Error)]
#[error("fleet history queue: {0}")]
pub struct QueueError(String);

fn error(e: impl std::fmt::Display) -> QueueError {
    QueueError(e.to_string())
}

impl Queue {
    /// Opens (or creates) the file; at most `bound` bytes of batches are kept.
    pub fn open(path: &Path, bound: u64) -> Result<Queue, QueueError> {
        let db = Database::create(path).map_err(error)?;
        let tx = db.begin_write().map_err(error)?;
        tx.open_table(BATCHES).map_err(error)?;
        tx.commit().map_err(error)?;
        let mut queue = Queue {
            db,
            path: path.to_owned(),
            bound,
            bytes: 0,
            count: 0,
            shed: Default::default(),
        };
        let sizes = queue.sizes()?;
        queue.count = sizes.len();
        queue.bytes = sizes.iter().map(|(_, size)| size).sum();
        Ok(queue)
    }

    /// Each batch's key and size, oldest first.
    fn sizes(&self) -> Result<Vec<(u64, u64)>, QueueError> {
        let tx = self.db.begin_read().map_err(error)?;
        let table = tx.open_table(BATCHES).map_err(error)?;
        let sizes = table
            .iter()
            .map_err(error)?
            .filter_map(Result::ok)
            .map(|(k, v)| (k.value(), v.value().len() as u64))
            .collect();
        Ok(sizes)
    }

    /// Batches held, and their bytes.
    pub fn len(&self) -> (usize, u64) {
        (self.count, self.bytes)
    }

    /// Appends `batch`, then makes room; the rows dropped to make it.
    pub fn push(&mut self, batch: &Batch) -> Result<u64, QueueError> {
        let bytes = encode(batch);
        let tx = self.db.begin_write().map_err(error)?;
        {
            let mut table = tx.open_table(BATCHES).map_err(error)?;
            let next = table
                .last()
                .map_err(error)?
                .map_or(1, |(k, _)| k.value() + 1);
            table.insert(next, bytes.as_slice()).map_err(error)?;
        }
        tx.commit().map_err(error)?;
        self.count += 1;
        self.bytes += bytes.len() as u64;
        self.make_room()
    }

    /// Drops the oldest batches' worker minutes, then their sessions, until
    /// the queue is within its bound; the rows dropped.
    fn make_room(&mut self) -> Result<u64, QueueError> {
        let mut dropped = 0;
        for (stage, shed) in [shed_workers as fn(&mut Batch) -> usize, shed_sessions]
            .into_iter()
            .enumerate()
        {
            if self.bytes <= self.bound {
                break;
            }
            for (key, _) in self.sizes()? {
                if self.bytes <= self.bound {
                    break;
                }
                if self.shed[stage].contains(&key) {
                    continue;
                }
                let Some(mut batch) = self.get(key)? else {
                    continue;
                };
                let shed_rows = shed(&mut batch);
                if shed_rows > 0 {
                    dropped += shed_rows as u64;
                    self.replace(key, &batch)?;
                }
                self.shed[stage].insert(key);
            }
        }
        Ok(dropped)
    }

    fn get(&self, key: u64) -> Result<Option<Batch>, QueueError> {
        let tx = self.db.begin_read().map_err(error)?;
        let table = tx.open_table(BATCHES).map_err(error)?;
        let value = table.get(key).map_err(error)?;
        Ok(value.and_then(|v| serde_json::from_slice(v.value()).ok()))
    }

    fn replace(&mut self, key: u64, batch: &Batch) -> Result<(), QueueError> {
        let bytes = encode(batch);
        let tx = self.db.begin_write().map_err(error)?;
        let old = {
            let mut table = tx.open_table(BATCHES).map_err(error)?;
            let old = table
                .insert(key, bytes.as_slice())
                .map_err(error)?
                .map_or(0, |v| v.value().len() as u64);
            old
        };
        tx.commit().map_err(error)?;
        self.bytes = self.bytes - old + bytes.len() as u64;
        Ok(())
    }

    /// The oldest batch and its key; a batch that cannot be read is
    /// removed and counted in the second value (its rows are lost).
    pub fn first(&mut self) -> Result<(Option<(u64, Batch)>, u64), QueueError> {
        let mut unreadable = 0;
        loop {
            let first = {
                let tx = self.db.begin_read().map_err(error)?;
                let table = tx.open_table(BATCHES).map_err(error)?;
                let first = table.first().map_err(error)?;
                first.map(|(k, v)| (k.value(), serde_json::from_slice::<Batch>(v.value())))
            };
            match first {
                None => return Ok((None, unreadable)),
                Some((key, Ok(batch))) => return Ok((Some((key, batch)), unreadable)),
                Some((key, Err(_))) => {
                    self.remove(key)?;
                    unreadable += 1;
                }
            }
        }
    }

    /// Removes batch `key` (the database took it).
    pub fn remove(&mut self, key: u64) -> Result<(), QueueError> {
        let tx = self.db.begin_write().map_err(error)?;
        let removed = {
            let mut table = tx.open_table(BATCHES).map_err(error)?;
            let removed = table
                .remove(key)
                .map_err(error)?
                .map(|v| v.value().len() as u64);
            removed
        };
        tx.commit().map_err(error)?;
        if let Some(size) = removed {
            self.count -= 1;
            self.bytes -= size;
        }
        for shed in &mut self.shed {
            shed.remove(&key);
        }
        let size = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        if self.count == 0 && size > COMPACT_ABOVE {
            // Emptied after an outage: give its space back to the disk.
            self.db.compact().map_err(error)?;
        }
        Ok(())
    }
}

fn shed_workers(batch: &mut Batch) -> usize {
    std::mem::take(&mut batch.workers).len()
}

fn shed_sessions(batch: &mut Batch) -> usize {
    std::mem::take(&mut batch.sessions).len()
}

fn encode(batch: &Batch) -> Vec<u8> {
    serde_json::to_vec(batch)
        .expect("a batch is strings, integers and floats: serde_json writes every one")
}

#[cfg(test)]
mod tests;
