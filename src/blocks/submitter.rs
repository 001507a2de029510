//! Found blocks: journaled to disk (fdatasync) before `submitblock`, triaged
//! ([`super::triage`]: the first block of a parent at once, its siblings
//! kept and submitted only if it is rejected), submitted to every node at
//! once ([`super::deliver`]), and settled with the nodes' verdict: at the
//! first that takes it (accepted or duplicate), or once every node has
//! answered. A node that was down gets the block when it is back, for an
//! hour after the block settled (its peers will have told it by then).
//! Blocks still pending at start-up are triaged and submitted again.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::deliver::{Attempt, NodeDeliveries};
pub use super::journal::{BlockBytes, Journal, JournalEntry, NodeOutcome, Outcome};
use super::sink::{count_kept, submitblock_params, write_templates, BlockTriage, Prepared};
use super::triage::Keep;
use super::verdict::best_of;
use crate::node::nodes::Nodes;
use crate::work::TemplateReceiver;
use ndas_core::events::{BlockEvent, Events, NodeEvent};
use ndas_core::work::payout::Paid;

/// How often the blocks found after a parent's first are summed up in the log.
pub const SIBLINGS_LOG_EVERY: Duration = Duration::from_secs(10);

/// Owns the nodes' clients used for blocks, and the journal.
pub struct Submitter {
    pub nodes: Arc<Nodes>,
    pub journal: Journal,
    /// Woken after an accepted block so miners move to the new tip at once.
    pub wake: Arc<Notify>,
    /// Where the blocks' way is told.
    pub events: Events,
    /// How long shutdown waits for blocks from connections still closing,
    /// then again for submissions in flight.
    pub drain: Duration,
    /// Each new template's transactions are journaled as its first job goes out.
    pub templates: TemplateReceiver,
    /// Bounds the `submitblock` calls in flight to each node (by its
    /// index), blocks on the tip first.
    pub gates: Vec<super::gate::SubmitGate>,
    /// Per node (by its index): its retry lines and the blocks it is owed.
    pub deliveries: Vec<NodeDeliveries>,
    /// Which found blocks are submitted now, kept, or dropped.
    pub triage: Arc<BlockTriage>,
    /// Held (read) while a verdict is written to the journal; taken (write)
    /// when shutdown gives up on the submissions still in flight, so the
    /// journal NDAS leaves is final: what is pending then stays pending.
    pub settling: tokio::sync::RwLock<bool>,
}

impl Submitter {
    /// Submits the blocks `pending` from an earlier run, then each block
    /// the journal thread has made durable, until shutdown; then waits (up
    /// to `drain`) for blocks from connections still closing.
    pub async fn run(
        self,
        pending: Vec<JournalEntry>,
        mut prepared: mpsc::UnboundedReceiver<Prepared>,
        shutdown: CancellationToken,
    ) {
        let this = Arc::new(self);
        let inflight = TaskTracker::new();
        // Siblings to submit after a rejection come back here, so each
        // submission is a task of `inflight` (and none spawns another).
        let (next_tx, mut next) = mpsc::unbounded_channel::<Prepared>();
        let submit = |block| {
            this.clone()
                .submit(block, next_tx.clone(), shutdown.clone())
        };
        for entry in pending {
            let block = Prepared {
                params: submitblock_params(&entry.block, None),
                bytes: BlockTriage::charge(entry.block.head.len()),
                entry,
                durable: Ok(()),
                received: None,
                first: false,
            };
            let (parent, height) = (parent_of(&block.entry), block.entry.height);
            match this.triage.recovered(parent, height, block.bytes, block) {
                Keep::SubmitNow(block) => {
                    tracing::warn!(hash = %block.entry.hash, height, "resubmitting journaled block from an earlier run");
                    inflight.spawn(submit(block));
                }
                Keep::Held => {}
                Keep::Discard(block) => this.discard(vec![block]).await,
            }
        }
        count_kept(&this.triage, &this.events);
        tokio::spawn(write_templates(
            this.journal.clone(),
            this.templates.clone(),
            shutdown.clone(),
        ));
        let mut summaries = tokio::time::interval(SIBLINGS_LOG_EVERY);
        loop {
            let block = tokio::select! {
                block = prepared.recv() => block,
                Some(block) = next.recv() => {
                    inflight.spawn(submit(block));
                    continue;
                }
                _ = summaries.tick() => {
                    this.log_siblings();
                    continue;
                }
                _ = shutdown.cancelled() => break,
            };
            let Some(block) = block else { break };
            if let Some(block) = this.take(block).await {
                inflight.spawn(submit(block));
            }
        }
        let deadline = tokio::time::sleep(this.drain);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                block = prepared.recv() => match block {
                    Some(block) => if let Some(block) = this.take(block).await {
                        inflight.spawn(submit(block));
                    },
                    None => break,
                },
                Some(block) = next.recv() => {
                    inflight.spawn(submit(block));
                }
                _ = &mut deadline => break,
            }
        }
        this.log_siblings();
        inflight.close();
        if tokio::time::timeout(this.drain, inflight.wait())
            .await
            .is_err()
        {
            // Those still in flight stay journaled for the next start; none
            // settles after this (a verdict being written is waited for,
            // briefly: past that the count NDAS logs may be off by it).
            if let Ok(mut abandoned) =
                tokio::time::timeout(Duration::from_secs(1), this.settling.write()).await
            {
                *abandoned = true;
            }
        }
    }

    /// A block the journal made durable: a first block is to be submitted
    /// (returned), a sibling kept (or returned, or discarded, as its parent
    /// stands).
    async fn take(&self, block: Prepared) -> Option<Prepared> {
        if let Err(error) = &block.durable {
            self.events.block(BlockEvent::Unjournaled);
            tracing::error!(hash = %block.entry.hash, %error, block = %faster_hex::hex_string(&block.entry.block.to_vec()), "CANNOT JOURNAL FOUND BLOCK; submitting anyway");
        }
        if block.first {
            return Some(block);
        }
        let parent = parent_of(&block.entry);
        let now = match self.triage.keep(parent, block.bytes, block) {
            Keep::Held => None,
            Keep::SubmitNow(block) => {
                self.count_sibling("submitted");
                Some(block)
            }
            Keep::Discard(block) => {
                self.discard(vec![block]).await;
                None
            }
        };
        count_kept(&self.triage, &self.events);
        now
    }

    /// Submits to every node until the block is settled (see the module's
    /// comment), then hands the triage the verdict.
    async fn submit(
        self: Arc<Self>,
        block: Prepared,
        next: mpsc::UnboundedSender<Prepared>,
        shutdown: CancellationToken,
    ) {
        let Prepared {
            mut entry,
            params,
            received,
            ..
        } = block;
        // Share read to submitblock sent; 0 for blocks from an earlier run.
        let delay = received.map_or(0.0, |received| received.elapsed().as_secs_f64());
        if received.is_some() {
            self.events.block(BlockEvent::Found {
                height: entry.height,
                hash: entry.hash.clone(),
                worker: entry.worker.clone(),
                payout: main_payout(&entry),
                paid: paid_outputs(&entry),
                delay,
            });
        }
        let parent = parent_of(&entry);
        let settled = CancellationToken::new();
        let (verdicts_tx, mut verdicts) = mpsc::unbounded_channel();
        let attempt = Arc::new(Attempt {
            hash: entry.hash.clone(),
            received,
            parent: Some(parent),
            params,
        });
        for node in &self.nodes.list {
            tokio::spawn(self.clone().submit_to(
                node.clone(),
                attempt.clone(),
                (shutdown.clone(), settled.clone()),
                verdicts_tx.clone(),
            ));
        }
        drop((verdicts_tx, attempt));
        let nodes = self.nodes.list.len();
        let outcome = loop {
            let Some((node, outcome)) = verdicts.recv().await else {
                // Every node's attempts ended without a verdict (shutdown):
                // still journaled, submitted again at the next start.
                return;
            };
            self.node_verdict(&entry, &node, &outcome);
            entry.nodes.push(NodeOutcome { node, outcome });
            let taken = entry
                .nodes
                .iter()
                .any(|n| matches!(n.outcome, Outcome::Accepted | Outcome::Duplicate));
            if taken || entry.nodes.len() == nodes {
                break best_of(&entry.nodes);
            }
        };
        self.announce(&entry, &outcome, delay);
        self.settle_siblings(parent, entry.height, &outcome, &next)
            .await;
        // Held while the verdict is written: shutdown waits for it.
        let abandoned = self.settling.read().await;
        if *abandoned {
            // Shutdown gave up on this one: still journaled, submitted again
            // at the next start (and then settled, as a duplicate if taken).
            return;
        }
        let label = outcome.label();
        entry.outcome = Some(outcome);
        self.write_settled(&entry, true).await;
        drop(abandoned);
        self.events.block(BlockEvent::Settled {
            height: entry.height,
            hash: entry.hash.clone(),
            worker: entry.worker.clone(),
            found_at: entry.found_at,
            payout: main_payout(&entry),
            paid: paid_outputs(&entry),
            outcome: label,
        });
        // The nodes still trying deliver it when they are back; their
        // verdicts are added to the settled copy.
        settled.cancel();
        while let Some((node, outcome)) = verdicts.recv().await {
            self.node_verdict(&entry, &node, &outcome);
            entry.nodes.push(NodeOutcome { node, outcome });
            let abandoned = self.settling.read().await;
            if *abandoned {
                return;
            }
            self.write_settled(&entry, false).await;
        }
    }

    /// After a verdict on a parent's block: a rejection submits the next
    /// sibling kept for it; a block taken (accepted, duplicate, or valid
    /// but beaten) discards every sibling at its height or below.
    async fn settle_siblings(
        &self,
        parent: [u8; 32],
        height: u32,
        outcome: &Outcome,
        submit: &mpsc::UnboundedSender<Prepared>,
    ) {
        let taken = !matches!(outcome, Outcome::Rejected(_));
        let settled = self.triage.settled(parent, height, taken);
        if let Some(next) = settled.next {
            self.count_sibling("submitted");
            tracing::warn!(hash = %next.entry.hash, height, "the block on this parent was rejected; submitting the next one found on it");
            // Its own task: this one goes on to write its verdict.
            let _ = submit.send(next);
        }
        if !settled.discard.is_empty() {
            tracing::info!(
                parent = %display_hash(&parent),
                height,
                discarded = settled.discard.len(),
                "a block at this height was taken; blocks kept on its parent or below discarded, never submitted"
            );
            self.discard(settled.discard).await;
        }
        count_kept(&self.triage, &self.events);
    }

    /// Marks kept siblings settled in the journal, never submitted.
    async fn discard(&self, blocks: Vec<Prepared>) {
        let count = blocks.len() as u64;
        let hashes: Vec<String> = blocks.into_iter().map(|b| b.entry.hash).collect();
        let journal = self.journal.clone();
        let written = tokio::task::spawn_blocking(move || {
            let hashes: Vec<&str> = hashes.iter().map(String::as_str).collect();
            journal.discard(&hashes)
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::error!(
                count,
                "cannot mark discarded blocks in the journal; they are triaged again on restart"
            );
        }
        self.events.block(BlockEvent::Siblings {
            outcome: "discarded",
            count,
        });
    }

    fn count_sibling(&self, outcome: &'static str) {
        let event = BlockEvent::Siblings { outcome, count: 1 };
        self.events.block(event);
    }

    /// One line per parent that saw blocks after its first since the last.
    fn log_siblings(&self) {
        for s in self.triage.summaries() {
            tracing::info!(
                parent = %display_hash(&s.parent),
                height = s.height,
                dropped = s.dropped,
                kept_now = s.kept,
                "{} more blocks found on this parent: kept or dropped, not submitted unless the block submitted on it is rejected",
                s.more
            );
        }
    }

    /// Logs and counts one node's verdict.
    fn node_verdict(&self, entry: &JournalEntry, node: &str, outcome: &Outcome) {
        self.events.node(NodeEvent::BlockVerdict {
            node: node.to_owned(),
            outcome: outcome.label(),
        });
        if let Outcome::Rejected(reason) = outcome {
            tracing::warn!(%node, hash = %entry.hash, %reason, "this node rejected the block");
        }
    }

    /// Logs the block's verdict; wakes the fetcher when the tip moved.
    fn announce(&self, entry: &JournalEntry, outcome: &Outcome, delay: f64) {
        match outcome {
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
    }

    /// Writes the settled copy (and, the first time, the settle record).
    async fn write_settled(&self, entry: &JournalEntry, first: bool) {
        let (journal, entry) = (self.journal.clone(), entry.clone());
        let written = tokio::task::spawn_blocking(move || match first {
            true => journal.settle(&entry),
            false => journal.update_settled(&entry),
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::error!("cannot record the block's outcome in the journal; it will be resubmitted on restart");
        }
    }

    /// Whether `parent` is the tip miners are working on now.
    pub(super) fn on_tip(&self, parent: Option<[u8; 32]>) -> bool {
        let tip = self
            .templates
            .borrow()
            .as_ref()
            .map(|template| template.prev_hash);
        tip.is_some_and(|tip| parent == Some(tip.0))
    }
}

/// The block's parent, from its header (zeros for a block too short to
/// have one: a damaged record, triaged on its own).
fn parent_of(entry: &JournalEntry) -> [u8; 32] {
    entry
        .block
        .head
        .get(4..36)
        .and_then(|bytes| bytes.try_into().ok())
        .unwrap_or([0; 32])
}

/// A block hash as Bitcoin shows it (byte-reversed hex).
fn display_hash(hash: &[u8; 32]) -> String {
    let mut shown = *hash;
    shown.reverse();
    faster_hex::hex_string(&shown)
}

/// The address a block's main output pays (the last one paid).
fn paid_outputs(entry: &JournalEntry) -> Vec<Paid> {
    entry
        .paid
        .iter()
        .map(|paid| Paid {
            address: paid.address.as_str().into(),
            value: paid.value,
        })
        .collect()
}

fn main_payout(entry: &JournalEntry) -> String {
    entry
        .paid
        .last()
        .map_or_else(String::new, |paid| paid.address.clone())
}
