//! Found blocks: journaled to disk (fdatasync) before `submitblock`, submitted at
//! once to every node, retried with backoff while a node cannot answer, and
//! settled with the nodes' verdict: at the first that takes it (accepted or
//! duplicate), or once every node has answered. A node that was down gets
//! the block when it is back, for an hour after the block settled (its
//! peers will have told it by then). Blocks still pending at start-up are
//! submitted again.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::found::{submitblock_params, write_templates, Prepared};
pub use super::journal::{BlockBytes, Journal, JournalEntry, NodeOutcome, Outcome};
use crate::node::nodes::{Node, Nodes};
use crate::node::rpc::{Backoff, RpcError};
use crate::stats::Stats;
use crate::work::manager::TemplateReceiver;

/// A settled block is still sent to a node that has not answered, for this long.
const DELIVER_AFTER_SETTLING: Duration = Duration::from_secs(3600);

/// Owns the nodes' clients used for blocks, and the journal.
pub struct Submitter {
    pub nodes: Arc<Nodes>,
    pub journal: Journal,
    /// Woken after an accepted block so miners move to the new tip at once.
    pub wake: Arc<Notify>,
    pub stats: Arc<Stats>,
    /// How long shutdown waits for submissions in flight.
    pub drain: Duration,
    /// Each new template's transactions are journaled as its first job goes out.
    pub jobs: TemplateReceiver,
    /// Bounds the `submitblock` calls in flight to each node (by its
    /// index), blocks on the tip first.
    pub gates: Vec<super::gate::SubmitGate>,
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
        for entry in pending {
            tracing::warn!(hash = %entry.hash, height = entry.height, "resubmitting journaled block from an earlier run");
            let params = submitblock_params(&entry.block, None);
            inflight.spawn(this.clone().submit(entry, params, None, shutdown.clone()));
        }
        tokio::spawn(write_templates(
            this.journal.clone(),
            this.jobs.clone(),
            shutdown.clone(),
        ));
        loop {
            let block = tokio::select! {
                block = prepared.recv() => block,
                _ = shutdown.cancelled() => break,
            };
            let Some(block) = block else { break };
            inflight.spawn(this.clone().submit_found(block, shutdown.clone()));
        }
        let deadline = tokio::time::sleep(this.drain);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                block = prepared.recv() => match block {
                    Some(block) => {
                        inflight.spawn(this.clone().submit_found(block, shutdown.clone()));
                    }
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        inflight.close();
        if tokio::time::timeout(this.drain, inflight.wait())
            .await
            .is_err()
        {
            // Those still in flight stay journaled for the next start; none
            // settles after this.
            *this.settling.write().await = true;
        }
    }

    async fn submit_found(self: Arc<Self>, block: Prepared, shutdown: CancellationToken) {
        let Prepared {
            entry,
            params,
            durable,
            received,
        } = block;
        if let Err(error) = durable {
            self.stats.metrics.blocks_unjournaled_total.inc();
            tracing::error!(hash = %entry.hash, %error, block = %faster_hex::hex_string(&entry.block.to_vec()), "CANNOT JOURNAL FOUND BLOCK; submitting anyway");
        }
        self.submit(entry, params, Some(received), shutdown).await;
    }

    /// Submits to every node until the block is settled (see the module's
    /// comment); `received` is when the share arrived (unknown for blocks
    /// from an earlier run).
    async fn submit(
        self: Arc<Self>,
        mut entry: JournalEntry,
        params: Vec<Bytes>,
        received: Option<std::time::Instant>,
        shutdown: CancellationToken,
    ) {
        // Share read to submitblock sent; 0 for blocks from an earlier run.
        let delay = received.map_or(0.0, |received| received.elapsed().as_secs_f64());
        if received.is_some() {
            self.stats.metrics.block_submit_delay_seconds.observe(delay);
        }
        let settled = CancellationToken::new();
        let (verdicts_tx, mut verdicts) = mpsc::unbounded_channel();
        for node in &self.nodes.list {
            tokio::spawn(self.clone().submit_to(
                node.clone(),
                (entry.hash.clone(), received),
                parent_of(&entry),
                params.clone(),
                (shutdown.clone(), settled.clone()),
                verdicts_tx.clone(),
            ));
        }
        drop(verdicts_tx);
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
        let block = crate::stats::SettledBlock {
            hash: &entry.hash,
            height: entry.height,
            worker: &entry.worker,
            found_at: entry.found_at,
            // The main output is the last one paid.
            payout: entry.paid.last().map_or("", |paid| paid.address.as_str()),
        };
        self.stats.block_settled(block, label);
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

    /// Sends the block to `node` until it gives a verdict (sent on
    /// `verdicts`), shutdown, or an hour after the block settled.
    async fn submit_to(
        self: Arc<Self>,
        node: Arc<Node>,
        (hash, received): (String, Option<std::time::Instant>),
        parent: Option<[u8; 32]>,
        params: Vec<Bytes>,
        (shutdown, settled): (CancellationToken, CancellationToken),
        verdicts: mpsc::UnboundedSender<(String, Outcome)>,
    ) {
        let backoff = Backoff {
            first: Duration::from_millis(200),
            max: Duration::from_secs(30),
            attempts: u32::MAX,
        };
        let mut attempt = 1;
        // An attempt that timed out or lost its connection may have reached
        // the node, which took the block: a later "duplicate" is then ours.
        let mut uncertain = false;
        let mut given_up_at: Option<tokio::time::Instant> = None;
        let outcome = loop {
            // Each node its own gate: retries to a node that hangs never
            // hold back a new block to another. Ahead of others while the
            // block is on the tip miners work on now.
            let permit = self.gates[node.index].enter(self.on_tip(parent)).await;
            self.stats.metrics.blocks_submitted_total.inc();
            // Share read to this node's submitblock going out (logged once
            // it is out): the last node's is what a second node costs.
            let sent = received
                .filter(|_| attempt == 1)
                .map(|received| received.elapsed());
            let answer = node
                .rpc
                .call_serialized::<Value>("submitblock", params.clone(), node.rpc.timeout())
                .await;
            drop(permit);
            if let Some(sent) = sent {
                tracing::info!(node = %node.name, %hash, sent_ms = sent.as_secs_f64() * 1000.0, "block sent to node");
            }
            match verdict(answer) {
                // With several nodes "duplicate" is usual (a peer relayed
                // it first): whether it is on the node's chain decides.
                Ok(Outcome::Duplicate) if uncertain || self.nodes.list.len() > 1 => {
                    break judge_duplicate(&node, &hash).await
                }
                Ok(outcome) => break outcome,
                Err(error) => {
                    uncertain |=
                        matches!(error, RpcError::Timeout { .. } | RpcError::Transport { .. });
                    if settled.is_cancelled() {
                        // Settled by another node: the rest is delivery.
                        tracing::debug!(node = %node.name, %hash, attempt, %error, "settled block not yet delivered to this node; retrying");
                    } else {
                        tracing::warn!(node = %node.name, %hash, attempt, %error, "block not yet submitted to this node; retrying");
                    }
                    if settled.is_cancelled() {
                        let since = *given_up_at.get_or_insert_with(tokio::time::Instant::now);
                        if since.elapsed() > DELIVER_AFTER_SETTLING {
                            tracing::warn!(node = %node.name, %hash, "settled block never reached this node; its peers carry it");
                            return;
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.delay(attempt)) => {}
                        // Still journaled: submitted on the next start.
                        _ = shutdown.cancelled() => if attempt > 3 { return },
                    }
                    attempt += 1;
                }
            }
        };
        let _ = verdicts.send((node.name.clone(), outcome));
    }

    /// Logs and counts one node's verdict.
    fn node_verdict(&self, entry: &JournalEntry, node: &str, outcome: &Outcome) {
        self.stats
            .metrics
            .node_blocks_total
            .with_label_values(&[node, outcome.label()])
            .inc();
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
}

/// The block's parent, from its header.
fn parent_of(entry: &JournalEntry) -> Option<[u8; 32]> {
    entry
        .block
        .head
        .get(4..36)
        .and_then(|bytes| bytes.try_into().ok())
}

/// The best of the nodes' verdicts: accepted, then duplicate, then
/// inconclusive, then a rejection.
fn best_of(verdicts: &[NodeOutcome]) -> Outcome {
    let rank = |o: &Outcome| match o {
        Outcome::Accepted => 0,
        Outcome::Duplicate => 1,
        Outcome::Inconclusive => 2,
        Outcome::Rejected(_) => 3,
    };
    verdicts
        .iter()
        .map(|v| &v.outcome)
        .min_by_key(|o| rank(o))
        .cloned()
        .expect("settled by at least one verdict")
}

/// "duplicate" for a block whose earlier attempt may have reached the
/// node: accepted if it is on the node's active chain (the earlier attempt
/// was taken), a duplicate otherwise.
async fn judge_duplicate(node: &Node, hash: &str) -> Outcome {
    let header = node
        .rpc
        .call::<Value>("getblockheader", serde_json::json!([hash]))
        .await;
    match header {
        Ok(header) if header["confirmations"].as_i64().is_some_and(|c| c >= 1) => {
            tracing::info!(node = %node.name, %hash, "the node already had the block from an attempt that timed out: accepted");
            Outcome::Accepted
        }
        _ => Outcome::Duplicate,
    }
}

impl Submitter {
    /// Whether `parent` is the tip miners are working on now.
    fn on_tip(&self, parent: Option<[u8; 32]>) -> bool {
        let tip = self
            .jobs
            .borrow()
            .as_ref()
            .map(|template| template.prev_hash);
        tip.is_some_and(|tip| parent == Some(tip.0))
    }
}

/// Maps `submitblock`'s answer to a final outcome, or an error worth retrying.
pub fn verdict(answer: Result<Value, RpcError>) -> Result<Outcome, RpcError> {
    match answer {
        Ok(Value::Null) => Ok(Outcome::Accepted),
        Ok(Value::String(text)) => Ok(match text.as_str() {
            "duplicate" => Outcome::Duplicate,
            // BIP22: already known, its validity not yet decided: no rejection.
            "inconclusive" | "duplicate-inconclusive" => Outcome::Inconclusive,
            other => Outcome::Rejected(crate::stratum::method::sanitize(other, 200)),
        }),
        Ok(other) => Ok(Outcome::Rejected(crate::stratum::method::sanitize(
            &other.to_string(),
            200,
        ))),
        // -28 warming up, -9 not connected, -10 initial download, -25 a
        // verification error the node may not repeat: tried again.
        Err(RpcError::Rpc { message, code, .. }) if !matches!(code, -28 | -9 | -10 | -25) => {
            Ok(Outcome::Rejected(format!("{message} (code {code})")))
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpc_error(code: i64) -> RpcError {
        RpcError::Rpc {
            method: "submitblock".into(),
            code,
            message: "m".into(),
        }
    }

    #[test]
    fn a_block_settles_with_the_best_verdict_any_node_gave() {
        let of = |outcomes: &[Outcome]| {
            let verdicts: Vec<NodeOutcome> = outcomes
                .iter()
                .map(|o| NodeOutcome {
                    node: "n".into(),
                    outcome: o.clone(),
                })
                .collect();
            best_of(&verdicts)
        };
        let rejected = Outcome::Rejected("prev-blk-not-found".into());
        assert_eq!(
            of(&[rejected.clone(), Outcome::Accepted]),
            Outcome::Accepted
        );
        assert_eq!(
            of(&[Outcome::Duplicate, rejected.clone()]),
            Outcome::Duplicate
        );
        assert_eq!(
            of(&[rejected.clone(), Outcome::Inconclusive]),
            Outcome::Inconclusive
        );
        assert_eq!(of(std::slice::from_ref(&rejected)), rejected);
    }

    #[test]
    fn the_nodes_answers_map_to_outcomes_or_retries() {
        assert_eq!(verdict(Ok(Value::Null)).unwrap(), Outcome::Accepted);
        assert_eq!(verdict(Ok("duplicate".into())).unwrap(), Outcome::Duplicate);
        for unknown in ["inconclusive", "duplicate-inconclusive"] {
            assert_eq!(verdict(Ok(unknown.into())).unwrap(), Outcome::Inconclusive);
        }
        assert_eq!(
            verdict(Ok("duplicate-invalid".into())).unwrap(),
            Outcome::Rejected("duplicate-invalid".into())
        );
        assert_eq!(
            verdict(Ok("bad-txnmrklroot".into())).unwrap(),
            Outcome::Rejected("bad-txnmrklroot".into())
        );
        for retried in [-28, -9, -10, -25] {
            assert!(verdict(Err(rpc_error(retried))).is_err(), "{retried}");
        }
        assert!(matches!(
            verdict(Err(rpc_error(-22))),
            Ok(Outcome::Rejected(_))
        ));
    }
}
