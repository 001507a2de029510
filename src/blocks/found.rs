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
use crate::metrics::Metrics;
use crate::node::template::Template;
use crate::session::FoundBlock;
use crate::work::manager::TemplateReceiver;

/// Writes each new template's transactions to the journal, off the
/// found-block path, so a block found on it journals only its head.
pub(super) async fn write_templates(
    journal: Journal,
    mut jobs: TemplateReceiver,
    shutdown: CancellationToken,
) {
    let mut previous: Option<Arc<Template>> = None;
    loop {
        let template = jobs.borrow_and_update().clone();
        if let Some(template) = template {
            if !previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, &template)) {
                let (journal, this, last) = (journal.clone(), template.clone(), previous.clone());
                let written = tokio::task::spawn_blocking(move || {
                    journal.write_transactions(&this, last.as_deref())
                })
                .await;
                if let Ok(Err(error)) = written {
                    tracing::warn!(%error, "cannot write the template's transactions to the block journal; blocks on it are journaled whole");
                }
                previous = Some(template);
            }
        }
        tokio::select! {
            changed = jobs.changed() => if changed.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
    }
}

/// A found block, durable (or not, with why) and ready to send.
pub struct Prepared {
    pub(super) entry: JournalEntry,
    pub(super) params: Vec<Bytes>,
    pub(super) durable: std::io::Result<()>,
    pub(super) received: std::time::Instant,
}

/// Where connections hand found blocks: straight to the journal thread, a
/// thread of its own started with the server, so a block waits neither for
/// a runtime worker, nor for a thread to start, nor for a free one in a pool.
#[derive(Clone, Debug)]
pub struct BlockSink(std::sync::mpsc::Sender<Box<FoundBlock>>);

impl BlockSink {
    /// Queues the block for the journal; gives it back if the thread is gone.
    pub fn send(&self, block: Box<FoundBlock>) -> Result<(), Box<FoundBlock>> {
        self.0.send(block).map_err(|error| error.0)
    }
}

/// Starts the journal thread. It ends when every [`BlockSink`] is dropped,
/// and then so does the receiver of prepared blocks.
pub fn start_journal_thread(
    journal: Journal,
    metrics: Arc<Metrics>,
) -> std::io::Result<(BlockSink, mpsc::UnboundedReceiver<Prepared>)> {
    let (sink, queue) = std::sync::mpsc::channel::<Box<FoundBlock>>();
    let (prepared, receiver) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("ndas-block-journal".into())
        .spawn(move || {
            while let Ok(first) = queue.recv() {
                // Blocks found together share one flush (group commit).
                let batch: Vec<Box<FoundBlock>> =
                    std::iter::once(first).chain(queue.try_iter()).collect();
                let started = std::time::Instant::now();
                let prepared_blocks = prepare(&journal, &batch);
                metrics
                    .block_journal_seconds
                    .observe(started.elapsed().as_secs_f64());
                for block in prepared_blocks {
                    // Once journaled, a block the submitter is gone for is
                    // submitted on the next start.
                    let _ = prepared.send(block);
                }
            }
        })?;
    Ok((BlockSink(sink), receiver))
}

/// Writes the blocks' records, starts the disk write, builds the requests
/// while the disk works, then waits for one flush: each block is on disk
/// before it is sent, and its request is ready when it is.
fn prepare(journal: &Journal, blocks: &[Box<FoundBlock>]) -> Vec<Prepared> {
    let writes: Vec<FoundWrite> = blocks.iter().map(|b| journal.write_found(b)).collect();
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
        .map(|((write, params), block)| Prepared {
            durable: match (&write.written, &synced) {
                (Err(error), _) | (Ok(()), Err(error)) => {
                    Err(std::io::Error::new(error.kind(), error.to_string()))
                }
                (Ok(()), Ok(())) => Ok(()),
            },
            entry: write.entry,
            params,
            received: block.received,
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
