//! The block journal: every found block is appended to `blocks/found.log`
//! and flushed with `fdatasync` before `submitblock` is sent, so neither a
//! node outage nor a killed process can lose it. Once the node has given its
//! verdict the block is copied, readable, to `blocks/settled/<hash>.json` and
//! a settle record is appended. The log is emptied at start-up when nothing
//! is pending; when it has grown large, just before the next template's
//! transactions are written, it is emptied, or rewritten to the blocks still
//! pending (each whole) when there are any.
//!
//! A template's transactions are written to the log in the background when
//! its first job goes out, so a block found on it journals only its header
//! and coinbase: a few hundred bytes on the critical path instead of the
//! whole block. One append to an open file is the cheapest durable write a
//! disk offers (no file to create, no rename, no folder to flush).
//!
//! A torn or damaged log is moved aside, never deleted, and its readable
//! records are carried into a fresh one.

mod entry;
mod record;
mod recovery;
mod written;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;

pub use entry::{
    BlockBytes, FoundWrite, JournalEntry, JournaledTransactions, NodeOutcome, Outcome, PaidOutput,
};
use entry::{SettledMeta, TransactionsMeta};
use ndas_core::clock::unix_now;
use ndas_core::sync::LockAnyway;
use ndas_core::template::Template;
use ndas_core::FoundBlock;
use record::{encode, scan, Kind};
use recovery::{is_block_hash, Reading};
use written::Written;

/// With no block pending, a log past this size is emptied before the next
/// template's transactions are written.
const COMPACT_AT_BYTES: u64 = 256 << 20;

/// `data_dir/blocks/found.log` and `data_dir/blocks/settled/`.
#[derive(Clone, Debug)]
pub struct Journal {
    log_path: PathBuf,
    settled: PathBuf,
    log: Arc<Mutex<Log>>,
    compact_at_bytes: u64,
}

#[derive(Debug)]
struct Log {
    file: File,
    /// Blocks written and not yet settled, by hash, sharing their bytes
    /// with the submitter's copy: the log is emptied only when there are
    /// none, and compaction writes them from here without reading the log.
    unsettled: HashMap<String, JournalEntry>,
    generation: u64,
    next_transactions_id: u64,
    /// The templates whose transactions are in the log.
    written: Written,
}

impl Journal {
    /// Creates the folders and the log if needed. Reading and repairing the
    /// log is [`Journal::recover`]'s job.
    pub fn open(data_dir: &Path) -> std::io::Result<Journal> {
        let blocks = data_dir.join("blocks");
        let settled = blocks.join("settled");
        std::fs::create_dir_all(&settled)?;
        let log_path = blocks.join("found.log");
        let file = open_log(&log_path)?;
        sync_dir(&blocks)?;
        Ok(Journal {
            log_path,
            settled,
            log: Arc::new(Mutex::new(Log {
                file,
                unsettled: HashMap::new(),
                generation: 0,
                next_transactions_id: 0,
                written: Written::default(),
            })),
            compact_at_bytes: COMPACT_AT_BYTES,
        })
    }

    /// Empties the log (when nothing is pending) once it is past `bytes`
    /// rather than the default 256 MiB.
    pub fn with_compaction_at(mut self, bytes: u64) -> Journal {
        self.compact_at_bytes = bytes;
        self
    }

    /// Appends the whole block and flushes it to disk.
    pub fn record(&self, entry: &JournalEntry) -> std::io::Result<()> {
        let record = encode(Kind::Found, &entry.meta(None), |out| {
            out.extend_from_slice(&entry.block.head);
            out.extend_from_slice(&entry.block.transactions);
        });
        let mut log = self.lock();
        log.unsettled.insert(entry.hash.clone(), entry.clone());
        append(&mut log, &record)?;
        drop(log);
        self.sync()
    }

    /// Writes a just-found block to the log, not yet flushed: call
    /// [`Journal::sync`] before submitting it. When the template's
    /// transactions are already in the log the record holds only the
    /// block's head; otherwise the whole block. The entry's block shares the
    /// record's and the template's buffers. On a write error the entry is
    /// still returned, so the block can be submitted anyway.
    pub fn write_found(&self, block: &FoundBlock) -> FoundWrite {
        let template = &block.job.template;
        let mut entry = JournalEntry::meta_of(block);
        let mut log = self.lock();
        let journaled = log
            .written
            .get(template)
            .filter(|j| j.generation == log.generation)
            .cloned();
        let meta = entry.meta(journaled.as_ref().map(|j| j.id));
        let record = encode(Kind::Found, &meta, |out| match &journaled {
            Some(_) => block.serialize_head_into(out),
            None => block.serialize_into(out),
        });
        entry.block = BlockBytes {
            head: record.slice(record::HEADER_LEN + meta.len()..),
            transactions: match &journaled {
                Some(_) => template.tx_data.clone(),
                None => Bytes::new(),
            },
        };
        // Marked before writing: the log is never emptied under a record
        // that is written and not yet settled.
        log.unsettled.insert(entry.hash.clone(), entry.clone());
        let written = append(&mut log, &record);
        FoundWrite {
            entry,
            transactions_hex: journaled.map(|j| j.hex),
            written,
        }
    }

    /// Writes and flushes the template's transactions (unless `previous`,
    /// already written, has the same ones) and lists the template as
    /// written. Empties a large log first when no block is pending.
    pub fn write_transactions(
        &self,
        template: &Arc<Template>,
        previous: Option<&Arc<Template>>,
    ) -> std::io::Result<()> {
        if template.tx_data.is_empty() {
            return Ok(());
        }
        let mut log = self.lock();
        if log.written.get(template).is_some() {
            return Ok(());
        }
        if let Some(same) = previous
            .filter(|p| p.tx_data == template.tx_data)
            .and_then(|p| log.written.get(p))
            .filter(|j| j.generation == log.generation)
            .cloned()
        {
            log.written.insert(template, same);
            return Ok(());
        }
        if log.file.metadata()?.len() > self.compact_at_bytes {
            if log.unsettled.is_empty() {
                empty(&mut log)?;
            } else {
                // A block that never gets a verdict must not stop the log
                // from shrinking: it is carried into the new one, whole.
                self.carry_forward(&mut log)?;
            }
        }
        let (generation, id) = (log.generation, log.next_transactions_id);
        log.next_transactions_id += 1;
        let record = encode(Kind::Transactions, &json(&TransactionsMeta { id }), |out| {
            out.extend_from_slice(&template.tx_data)
        });
        append(&mut log, &record)?;
        drop(log);
        let hex = Bytes::from(faster_hex::hex_string(&template.tx_data));
        self.sync()?;
        self.lock().written.insert(
            template,
            JournaledTransactions {
                generation,
                id,
                hex,
            },
        );
        Ok(())
    }

    /// Where `template`'s transactions are in the log, if they are.
    #[cfg(test)]
    fn written(&self, template: &Arc<Template>) -> Option<JournaledTransactions> {
        self.lock().written.get(template).cloned()
    }

    /// Rewrites the log as the blocks still pending, each whole (its
    /// template's transactions inline), and nothing else: written to a
    /// new file, flushed, then renamed over the log, so a crash leaves
    /// one log or the other, never neither. The blocks come from memory,
    /// not from the log, so the lock is held for their bytes alone, however
    /// large the log has grown (and a block whose own write had failed is
    /// made durable here).
    fn carry_forward(&self, log: &mut Log) -> std::io::Result<()> {
        let mut pending: Vec<&JournalEntry> = log.unsettled.values().collect();
        pending.sort_by_key(|e| (e.found_at, e.height));
        let fresh_path = self.log_path.with_file_name("found.log.compacting");
        let mut fresh = fresh_log(&fresh_path)?;
        for entry in &pending {
            let record = encode(Kind::Found, &entry.meta(None), |out| {
                out.extend_from_slice(&entry.block.head);
                out.extend_from_slice(&entry.block.transactions);
            });
            fresh.write_all(&record)?;
        }
        fresh.sync_data()?;
        std::fs::rename(&fresh_path, &self.log_path)?;
        // The handle follows the rename: from here on every record goes to
        // the new log, whatever the folder's flush says.
        log.file = fresh;
        // Transactions written before are gone: blocks refer to new ones.
        log.generation += 1;
        sync_dir(self.log_path.parent().expect("the log is in blocks/"))?;
        tracing::info!(
            carried = log.unsettled.len(),
            "block journal compacted; blocks without a verdict carried forward"
        );
        Ok(())
    }

    /// Starts writing the log's dirty pages to disk without waiting
    /// (`sync_file_range`), so work done before [`Journal::sync`] overlaps
    /// the disk's. Best effort: `sync` alone is what makes a record durable.
    pub fn start_flush(&self) {
        use std::os::fd::AsRawFd;
        let log = self.lock();
        // SAFETY: the descriptor stays open while the lock is held, and
        // sync_file_range reads no memory of ours.
        unsafe {
            libc::sync_file_range(log.file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }

    /// Flushes every record written so far to disk (`fdatasync`), without
    /// holding up other writers.
    pub fn sync(&self) -> std::io::Result<()> {
        let file = self.lock().file.try_clone()?;
        file.sync_data()
    }

    /// Writes the settled copy, then marks the block settled in the log.
    pub fn settle(&self, entry: &JournalEntry) -> std::io::Result<()> {
        if !is_block_hash(&entry.hash) {
            // Never a path from anything but 64 hex digits.
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not a block hash: {:?}", entry.hash),
            ));
        }
        write_durably(&self.settled, &format!("{}.json", entry.hash), &json(entry))?;
        let meta = SettledMeta {
            hash: entry.hash.clone(),
        };
        let record = encode(Kind::Settled, &json(&meta), |_| {});
        let mut log = self.lock();
        append(&mut log, &record)?;
        log.file.sync_data()?;
        log.unsettled.remove(&entry.hash);
        Ok(())
    }

    /// Marks blocks settled without a settled copy: siblings of a block the
    /// nodes took, never submitted (`blocks::triage`). One flush for all.
    pub fn discard(&self, hashes: &[&str]) -> std::io::Result<()> {
        if hashes.is_empty() {
            return Ok(());
        }
        let mut records = Vec::new();
        for hash in hashes {
            let meta = SettledMeta {
                hash: (*hash).to_owned(),
            };
            records.extend_from_slice(&encode(Kind::Settled, &json(&meta), |_| {}));
        }
        let mut log = self.lock();
        append(&mut log, &records)?;
        log.file.sync_data()?;
        for hash in hashes {
            log.unsettled.remove(*hash);
        }
        Ok(())
    }

    /// Blocks written and not yet settled, counted in memory.
    pub fn unsettled(&self) -> usize {
        self.lock().unsettled.len()
    }

    /// Writes the settled copy again, with verdicts that came after it
    /// settled (a node that was down); the log already says it is settled.
    pub fn update_settled(&self, entry: &JournalEntry) -> std::io::Result<()> {
        if !is_block_hash(&entry.hash) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not a block hash: {:?}", entry.hash),
            ));
        }
        write_durably(&self.settled, &format!("{}.json", entry.hash), &json(entry))
    }

    /// Reads the log at start-up: returns the blocks still pending, moves a
    /// damaged log aside (carrying its readable records into a fresh one),
    /// and empties the log when nothing is pending. The log is read a piece
    /// at a time; only the pending blocks are held whole.
    pub fn recover(&self) -> std::io::Result<Vec<JournalEntry>> {
        let mut log = self.lock();
        let Some(file) = open_to_read(&self.log_path)? else {
            return Ok(Vec::new());
        };
        let mut reading = Reading::default();
        if let Some(at) = scan(&file, |record| reading.add(&file, record))? {
            // The readable records go to a new file first; only once it is
            // on disk is the damaged log kept aside (a new name, never one
            // that exists) and the new one put in its place. A failure on
            // the way leaves the damaged log where it was, whole.
            let fresh_path = self.log_path.with_file_name("found.log.recovering");
            let mut fresh = fresh_log(&fresh_path)?;
            scan(&file, |record| record.whole().copy(&file, &mut fresh))?;
            fresh.sync_data()?;
            let aside = self.log_path.with_file_name(format!(
                "found.log.damaged-{}-{}",
                unix_now(),
                std::process::id()
            ));
            std::fs::hard_link(&self.log_path, &aside)?;
            std::fs::rename(&fresh_path, &self.log_path)?;
            log.file = fresh;
            sync_dir(self.log_path.parent().expect("the log is in blocks/"))?;
            tracing::error!(
                log = %self.log_path.display(),
                offset = at,
                kept_as = %aside.display(),
                readable_records = reading.records,
                "block journal is damaged; kept aside and its readable records carried over"
            );
        }
        log.next_transactions_id = reading.next_transactions_id;
        let pending = reading.finish(&file)?;
        log.unsettled = pending
            .iter()
            .map(|e| (e.hash.clone(), e.clone()))
            .collect();
        if pending.is_empty() && file.metadata()?.len() > 0 {
            empty(&mut log)?;
        }
        Ok(pending)
    }

    /// Blocks found and not yet settled, oldest first (read-only; a torn
    /// tail is skipped, not repaired).
    pub fn pending(&self) -> std::io::Result<Vec<JournalEntry>> {
        let Some(file) = open_to_read(&self.log_path)? else {
            return Ok(Vec::new());
        };
        let mut reading = Reading::default();
        scan(&file, |record| reading.add(&file, record))?;
        reading.finish(&file)
    }

    /// Blocks with a verdict, oldest first.
    pub fn settled(&self) -> std::io::Result<Vec<JournalEntry>> {
        let mut entries = Vec::new();
        for file in std::fs::read_dir(&self.settled)? {
            let path = file?.path();
            if path.extension().is_some_and(|e| e == "json") {
                match serde_json::from_slice(&std::fs::read(&path)?) {
                    Ok(entry) => entries.push(entry),
                    Err(error) => {
                        tracing::error!(path = %path.display(), %error, "unreadable settled block; left in place")
                    }
                }
            }
        }
        entries.sort_by_key(|e: &JournalEntry| (e.found_at, e.height));
        Ok(entries)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        // A panic while holding the lock leaves at worst a torn tail, which
        // `recover` handles; the file itself is still usable.
        self.log.lock_anyway()
    }
}

/// Appends one record whole or not at all: on a write error (a full disk
/// takes part of it) the log is cut back, since a record written after a
/// torn one would start inside its declared length, where the reader
/// never looks for one.
fn append(log: &mut Log, record: &[u8]) -> std::io::Result<()> {
    let before = log.file.metadata()?.len();
    if let Err(error) = log.file.write_all(record) {
        let _ = log.file.set_len(before);
        return Err(error);
    }
    Ok(())
}

/// Empties the log; transactions written before can no longer be referred to.
fn empty(log: &mut Log) -> std::io::Result<()> {
    log.file.set_len(0)?;
    log.file.sync_data()?;
    log.generation += 1;
    Ok(())
}

fn json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("journal records serialize")
}

/// An empty log at `path` (a leftover from an interrupted run is replaced),
/// opened for appending like the log itself.
fn fresh_log(path: &Path) -> std::io::Result<File> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    OpenOptions::new().create_new(true).append(true).open(path)
}

fn open_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The log opened for reading, or `None` when there is none. Anything but
/// a regular file (a device, a `/proc` file: their length reads as 0) is
/// refused rather than read as an empty log.
fn open_to_read(path: &Path) -> std::io::Result<Option<File>> {
    match File::open(path) {
        Ok(file) if !file.metadata()?.is_file() => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file",
        )),
        Ok(file) => Ok(Some(file)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

fn write_durably(dir: &Path, name: &str, contents: &[u8]) -> std::io::Result<()> {
    let temporary = dir.join(format!(".{name}.tmp"));
    let mut file = File::create(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, dir.join(name))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;
