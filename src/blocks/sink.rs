//! From a connection's found block to a request ready to send: the journal
//! thread writes each block's record and flushes it (blocks found together
//! share one flush) while their `submitblock` bodies are built, so a block
//! is on disk before it is sent and its request is ready when it is; and
//! each new template's transactions are journaled as its first job goes
//! out, so a block found on it journals only its head.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::journal::{BlockBytes, FoundWrite, Journal, JournalEntry};
use super::triage::{Admit, Dropped, Triage};
use crate::work::TemplateReceiver;
use ndas_core::events::{BlockEvent, Events};
use ndas_core::template::Template;
use ndas_core::FoundBlock;

/// Writes each new template's transactions to the journal, off the
/// found-block path, so a block found on it journals only its head.
pub(super) async fn write_templates(
    journal: Journal,
    mut templates: TemplateReceiver,
    shutdown: CancellationToken,
) {
    let mut previous: Option<Arc<Template>> = None;
    loop {
        let template = templates.borrow_and_update().clone();
        if let Some(template) = template {
            if !previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, &template)) {
                let (journal, this, last) = (journal.clone(), template.clone(), previous.clone());
                let written = tokio::task::spawn_blocking(move || {
                    journal.write_transactions(&this, last.as_ref())
                })
                .await;
                if let Ok(Err(error)) = written {
                    tracing::warn!(%error, "cannot write the template's transactions to the block journal; blocks on it are journaled whole");
                }
                previous = Some(template);
            }
        }
        tokio::select! {
            changed = templates.changed() => if changed.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
    }
}

/// A found block, durable (or not, with why) and ready to send.
pub struct Prepared {
    pub(super) entry: JournalEntry,
    pub(super) params: Vec<Bytes>,
    pub(super) durable: std::io::Result<()>,
    /// When the share arrived (`None` for a block from an earlier run).
    pub(super) received: Option<std::time::Instant>,
    /// The first on its parent (submitted at once), or a sibling (kept).
    pub(super) first: bool,
    /// What it holds while kept ([`Triage::charge`]).
    pub(super) bytes: u64,
}

/// The triage of found blocks, shared by the connections' sink and the submitter.
pub type BlockTriage = Triage<Prepared>;

/// A block on its way to the journal thread, with its triage.
struct Queued {
    block: Box<FoundBlock>,
    first: bool,
    bytes: u64,
}

/// Where connections hand found blocks: triaged ([`Triage::admit`]), then
/// straight to the journal thread, a thread of its own started with the
/// server, so a block waits neither for a runtime worker, nor for a thread
/// to start, nor for a free one in a pool.
#[derive(Clone)]
pub struct BlockSink {
    queue: std::sync::mpsc::Sender<Queued>,
    triage: Arc<BlockTriage>,
    events: Events,
}

impl std::fmt::Debug for BlockSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlockSink")
    }
}

impl BlockSink {
    /// Triages the block and queues it for the journal unless dropped; gives
    /// it back if the thread is gone.
    pub fn send(&self, block: Box<FoundBlock>) -> Result<Admit, Box<FoundBlock>> {
        let parent: [u8; 32] = block.header[4..36]
            .try_into()
            .expect("an 80-byte header holds its parent at bytes 4..36");
        // Header, transaction count, coinbase: an upper bound of its head.
        let bytes = BlockTriage::charge(80 + 9 + block.job.coinbase.weight());
        let admit = self.triage.admit(parent, block.job.template.height, bytes);
        let siblings = |outcome| {
            let event = BlockEvent::Siblings { outcome, count: 1 };
            self.events.block(event);
        };
        let first = match admit {
            Admit::First => true,
            Admit::Sibling => {
                siblings("kept");
                self.count_kept();
                false
            }
            Admit::Drop(why) => {
                let label = match why {
                    Dropped::Full => "dropped_full",
                    Dropped::Superseded => "dropped_superseded",
                };
                siblings(label);
                return Ok(admit);
            }
        };
        let queued = Queued {
            block,
            first,
            bytes,
        };
        match self.queue.send(queued) {
            Ok(()) => Ok(admit),
            Err(error) => Err(error.0.block),
        }
    }

    /// Sets the kept-siblings gauges from the triage.
    pub(super) fn count_kept(&self) {
        count_kept(&self.triage, &self.events);
    }
}

/// Sets the kept-siblings gauges from the triage.
pub(super) fn count_kept(triage: &BlockTriage, events: &Events) {
    let (blocks, bytes) = triage.kept();
    events.block(BlockEvent::Kept { blocks, bytes });
}

/// Starts the journal thread. It ends when every [`BlockSink`] is dropped,
/// and then so does the receiver of prepared blocks.
pub fn start_journal_thread(
    journal: Journal,
    triage: Arc<BlockTriage>,
    events: Events,
) -> std::io::Result<(BlockSink, mpsc::UnboundedReceiver<Prepared>)> {
    let (sink, queue) = std::sync::mpsc::channel::<Queued>();
    let (prepared, receiver) = mpsc::unbounded_channel();
    let thread_events = events.clone();
    std::thread::Builder::new()
        .name("ndas-block-journal".into())
        .spawn(move || {
            while let Ok(first) = queue.recv() {
                // Blocks found together share one flush (group commit).
                let batch: Vec<Queued> = std::iter::once(first).chain(queue.try_iter()).collect();
                let started = std::time::Instant::now();
                let prepared_blocks = prepare(&journal, &batch);
                let seconds = started.elapsed().as_secs_f64();
                thread_events.block(BlockEvent::Journaled { seconds });
                for block in prepared_blocks {
                    // Once journaled, a block the submitter is gone for is
                    // submitted on the next start.
                    let _ = prepared.send(block);
                }
            }
        })?;
    let sink = BlockSink {
        queue: sink,
        triage,
        events,
    };
    Ok((sink, receiver))
}

/// Writes the blocks' records, starts the disk write, builds the requests
/// while the disk works, then waits for one flush: each block is on disk
/// before it is sent, and its request is ready when it is.
fn prepare(journal: &Journal, blocks: &[Queued]) -> Vec<Prepared> {
    let writes: Vec<FoundWrite> = blocks
        .iter()
        .map(|q| journal.write_found(&q.block))
        .collect();
    journal.start_flush();
    let params: Vec<Vec<Bytes>> = writes
        .iter()
        .map(|w| submitblock_params(&w.entry.block, w.transactions_hex.clone()))
        .collect();
    let synced = journal.sync();
    writes
        .into_iter()
        .zip(params)
        .zip(blocks)
        .map(|((write, params), queued)| Prepared {
            durable: match (&write.written, &synced) {
                (Err(error), _) | (Ok(()), Err(error)) => {
                    Err(std::io::Error::new(error.kind(), error.to_string()))
                }
                (Ok(()), Ok(())) => Ok(()),
            },
            entry: write.entry,
            params,
            received: Some(queued.block.received),
            first: queued.first,
            bytes: queued.bytes,
        })
        .collect()
}

/// `["<block hex>"]` as parts: the hex of the block's head, then of its
/// transactions (`transactions_hex` when the template has it ready).
pub(super) fn submitblock_params(
    block: &BlockBytes,
    transactions_hex: Option<Bytes>,
) -> Vec<Bytes> {
    let head_hex = block.head.len() * 2;
    let mut head = vec![0; head_hex + 2];
    head[..2].copy_from_slice(b"[\"");
    faster_hex::hex_encode(&block.head, &mut head[2..]).expect("the buffer fits the hex");
    let transactions = transactions_hex
        .unwrap_or_else(|| Bytes::from(faster_hex::hex_string(&block.transactions)));
    vec![head.into(), transactions, Bytes::from_static(b"\"]")]
}
