//! Found blocks: journaled to disk (fsync) before `submitblock`, submitted at
//! once, retried with backoff while the node cannot answer, and settled with
//! the node's verdict. Blocks still pending at start-up are submitted again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::rpc::{Backoff, RpcClient, RpcError};
use crate::session::FoundBlock;
use crate::stats::Stats;

/// A block on disk, waiting for or settled with the node's verdict.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JournalEntry {
    pub hash: String,
    pub height: u32,
    pub worker: String,
    /// Unix seconds when the share arrived.
    pub found_at: u64,
    /// The serialized block, hex, as `submitblock` takes it.
    pub block: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// The node's final word on a block.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    Accepted,
    /// The node already had it.
    Duplicate,
    /// Valid so far, but not on the node's best chain (yet).
    Inconclusive,
    Rejected(String),
}

impl Outcome {
    /// The label on `ndas_blocks_total{outcome=…}`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Rejected(_) => "rejected",
        }
    }
}

impl JournalEntry {
    /// The entry for a block just found.
    pub fn from_block(block: &FoundBlock) -> JournalEntry {
        JournalEntry {
            hash: block.hash.to_string(),
            height: block.job.template.height,
            worker: block.worker.to_string(),
            found_at: unix_now(),
            block: faster_hex::hex_string(&block.serialize()),
            outcome: None,
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `data_dir/blocks/pending` and `data_dir/blocks/settled`.
#[derive(Clone, Debug)]
pub struct Journal {
    pending: PathBuf,
    settled: PathBuf,
}

impl Journal {
    /// Creates the folders if needed.
    pub fn open(data_dir: &Path) -> std::io::Result<Journal> {
        let blocks = data_dir.join("blocks");
        let journal = Journal {
            pending: blocks.join("pending"),
            settled: blocks.join("settled"),
        };
        std::fs::create_dir_all(&journal.pending)?;
        std::fs::create_dir_all(&journal.settled)?;
        Ok(journal)
    }

    /// Writes the entry durably into `pending`.
    pub fn record(&self, entry: &JournalEntry) -> std::io::Result<()> {
        write_durably(&self.pending, &format!("{}.json", entry.hash), entry)
    }

    /// Moves the entry to `settled` with its outcome.
    pub fn settle(&self, entry: &JournalEntry) -> std::io::Result<()> {
        write_durably(&self.settled, &format!("{}.json", entry.hash), entry)?;
        std::fs::remove_file(self.pending.join(format!("{}.json", entry.hash)))?;
        sync_dir(&self.pending)
    }

    /// Entries still waiting for a verdict.
    pub fn pending(&self) -> std::io::Result<Vec<JournalEntry>> {
        self.read_dir(&self.pending)
    }

    /// Entries with a verdict.
    pub fn settled(&self) -> std::io::Result<Vec<JournalEntry>> {
        self.read_dir(&self.settled)
    }

    fn read_dir(&self, dir: &Path) -> std::io::Result<Vec<JournalEntry>> {
        let mut entries = Vec::new();
        for file in std::fs::read_dir(dir)? {
            let path = file?.path();
            if path.extension().is_some_and(|e| e == "json") {
                match serde_json::from_slice(&std::fs::read(&path)?) {
                    Ok(entry) => entries.push(entry),
                    Err(error) => {
                        tracing::error!(path = %path.display(), %error, "unreadable block journal entry; left in place")
                    }
                }
            }
        }
        entries.sort_by_key(|e: &JournalEntry| (e.found_at, e.height));
        Ok(entries)
    }
}

fn write_durably(dir: &Path, name: &str, entry: &JournalEntry) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&serde_json::to_vec(entry).expect("journal entries serialize"))?;
    file.sync_all()?;
    std::fs::rename(&temporary, dir.join(name))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Owns the node client used for blocks and the journal.
pub struct Submitter {
    pub rpc: Arc<RpcClient>,
    pub journal: Journal,
    /// Woken after an accepted block so miners move to the new tip at once.
    pub wake: Arc<Notify>,
    pub stats: Arc<Stats>,
    /// How long shutdown waits for submissions in flight.
    pub drain: Duration,
}

impl Submitter {
    /// Submits pending blocks, then each found block, until shutdown.
    pub async fn run(
        self,
        mut blocks: mpsc::UnboundedReceiver<FoundBlock>,
        shutdown: CancellationToken,
    ) {
        let this = Arc::new(self);
        let inflight = TaskTracker::new();
        match this.journal.pending() {
            Ok(pending) => {
                for entry in pending {
                    tracing::warn!(hash = %entry.hash, height = entry.height, "resubmitting journaled block from an earlier run");
                    inflight.spawn(this.clone().submit(entry, None, shutdown.clone()));
                }
            }
            Err(error) => tracing::error!(%error, "cannot read the block journal"),
        }
        loop {
            let block = tokio::select! {
                block = blocks.recv() => block,
                _ = shutdown.cancelled() => break,
            };
            let Some(block) = block else { break };
            this.accept(block, &inflight, &shutdown);
        }
        // Connections may still hand over blocks while they close.
        let deadline = tokio::time::sleep(this.drain);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                block = blocks.recv() => match block {
                    Some(block) => this.accept(block, &inflight, &shutdown),
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        inflight.close();
        let _ = tokio::time::timeout(this.drain, inflight.wait()).await;
    }

    /// Journals then submits `block` on its own task, so one slow disk write
    /// or node call never delays the next block.
    fn accept(
        self: &Arc<Self>,
        block: FoundBlock,
        inflight: &TaskTracker,
        shutdown: &CancellationToken,
    ) {
        let this = self.clone();
        let shutdown = shutdown.clone();
        inflight.spawn(async move {
            let journal = this.journal.clone();
            let received = block.received;
            let recorded = tokio::task::spawn_blocking(move || {
                let entry = JournalEntry::from_block(&block);
                let written = journal.record(&entry);
                (entry, written)
            })
            .await;
            let Ok((entry, written)) = recorded else {
                tracing::error!("block journaling task failed");
                return;
            };
            if let Err(error) = written {
                tracing::error!(hash = %entry.hash, %error, block = %entry.block, "CANNOT JOURNAL FOUND BLOCK; submitting anyway");
            }
            this.submit(entry, Some(received), shutdown).await;
        });
    }

    /// Submits until the node gives a verdict; `received` is when the share
    /// arrived (unknown for blocks from an earlier run).
    async fn submit(
        self: Arc<Self>,
        mut entry: JournalEntry,
        received: Option<std::time::Instant>,
        shutdown: CancellationToken,
    ) {
        // Share read to submitblock sent; 0 for blocks from an earlier run.
        let delay = received.map_or(0.0, |received| received.elapsed().as_secs_f64());
        if received.is_some() {
            self.stats.metrics.block_submit_delay_seconds.observe(delay);
        }
        let backoff = Backoff {
            first: Duration::from_millis(200),
            max: Duration::from_secs(30),
            attempts: u32::MAX,
        };
        let mut attempt = 1;
        let outcome = loop {
            self.stats.metrics.blocks_submitted_total.inc();
            let answer = self
                .rpc
                .call::<Value>("submitblock", json!([entry.block]))
                .await;
            match verdict(answer) {
                Ok(outcome) => break outcome,
                Err(error) => {
                    tracing::warn!(hash = %entry.hash, attempt, %error, "block not yet submitted; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.delay(attempt)) => {}
                        // Still journaled: submitted on the next start.
                        _ = shutdown.cancelled() => if attempt > 3 { return },
                    }
                    attempt += 1;
                }
            }
        };
        match &outcome {
            Outcome::Accepted => {
                tracing::info!(
                    hash = %entry.hash,
                    height = entry.height,
                    worker = %entry.worker.escape_debug(),
                    submit_delay_ms = delay * 1000.0,
                    "BLOCK ACCEPTED by the node"
                );
                self.wake.notify_one();
            }
            Outcome::Duplicate | Outcome::Inconclusive => {
                tracing::warn!(hash = %entry.hash, height = entry.height, ?outcome, "block submitted; node did not take it as new");
                self.wake.notify_one();
            }
            Outcome::Rejected(reason) => {
                tracing::error!(hash = %entry.hash, height = entry.height, reason = %reason, "BLOCK REJECTED by the node");
            }
        }
        self.stats
            .block_settled(&entry.hash, entry.height, outcome.label());
        entry.outcome = Some(outcome);
        let journal = self.journal.clone();
        let settled = tokio::task::spawn_blocking(move || journal.settle(&entry)).await;
        if !matches!(settled, Ok(Ok(()))) {
            tracing::error!("cannot record the block's outcome in the journal; it will be resubmitted on restart");
        }
    }
}

/// Maps `submitblock`'s answer to a final outcome, or an error worth retrying.
pub fn verdict(answer: Result<Value, RpcError>) -> Result<Outcome, RpcError> {
    match answer {
        Ok(Value::Null) => Ok(Outcome::Accepted),
        Ok(Value::String(text)) => Ok(match text.as_str() {
            "duplicate" => Outcome::Duplicate,
            "inconclusive" => Outcome::Inconclusive,
            other => Outcome::Rejected(crate::stratum::method::sanitize(other, 200)),
        }),
        Ok(other) => Ok(Outcome::Rejected(crate::stratum::method::sanitize(
            &other.to_string(),
            200,
        ))),
        Err(RpcError::Rpc { message, code, .. }) if !matches!(code, -28 | -9 | -10) => {
            Ok(Outcome::Rejected(format!("{message} (code {code})")))
        }
        Err(error) => Err(error),
    }
}
