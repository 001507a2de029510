//! One block to one node: `submitblock` through the node's gate, retried
//! with backoff until the node gives a verdict, shutdown, or an hour after
//! the block settled elsewhere. Retries are logged per node, not per block:
//! a line at most every [`RETRY_LOG_EVERY`] with how many were not logged.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::journal::Outcome;
use super::submitter::Submitter;
use super::verdict::{judge_duplicate, verdict};
use crate::node::nodes::Node;
use crate::node::rpc::{Backoff, RpcError};
use ndas_core::events::BlockEvent;
use ndas_core::sync::LockAnyway;

/// A settled block is still sent to a node that has not answered, for this long.
const DELIVER_AFTER_SETTLING: Duration = Duration::from_secs(3600);

/// Settled blocks a node that is down may still be owed at once; past it
/// the oldest are left to its peers (each holds its block's bytes).
pub const DELIVERIES_PER_NODE: usize = 64;

/// A node's retry line at most this often.
pub const RETRY_LOG_EVERY: Duration = Duration::from_secs(10);

/// Per node: how its retries are logged and how many settled blocks it is
/// still owed.
#[derive(Default)]
pub struct NodeDeliveries {
    /// When the last retry line was written, and retries since.
    retries: Mutex<(Option<Instant>, u64)>,
    owed: AtomicUsize,
}

impl NodeDeliveries {
    /// Whether to log this retry, and how many went unlogged before it.
    fn log_retry(&self) -> Option<u64> {
        let mut retries = self.retries.lock_anyway();
        let now = Instant::now();
        match retries.0 {
            Some(last) if now.duration_since(last) < RETRY_LOG_EVERY => {
                retries.1 += 1;
                None
            }
            _ => {
                let unlogged = retries.1;
                *retries = (Some(now), 0);
                Some(unlogged)
            }
        }
    }
}

/// A settled block still owed to a node, counted while it is.
struct Owed<'a>(&'a AtomicUsize);

impl Drop for Owed<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The block one attempt sends, and what it is checked against.
pub(super) struct Attempt {
    pub hash: String,
    /// When the share arrived (`None` for a block from an earlier run).
    pub received: Option<Instant>,
    pub parent: Option<[u8; 32]>,
    pub params: Vec<Bytes>,
}

impl Submitter {
    /// Sends the block to `node` until it gives a verdict (sent on
    /// `verdicts`), shutdown, or an hour after the block settled.
    pub(super) async fn submit_to(
        self: Arc<Self>,
        node: Arc<Node>,
        block: Arc<Attempt>,
        (shutdown, settled): (CancellationToken, CancellationToken),
        verdicts: mpsc::UnboundedSender<(String, Outcome)>,
    ) {
        let backoff = Backoff {
            first: Duration::from_millis(200),
            max: Duration::from_secs(30),
            attempts: u32::MAX,
        };
        let deliveries = &self.deliveries[node.index];
        let hash = &block.hash;
        let mut attempt = 1;
        // An attempt that timed out or lost its connection may have reached
        // the node, which took the block: a later "duplicate" is then ours.
        let mut uncertain = false;
        let mut owed: Option<(Instant, Owed<'_>)> = None;
        let outcome = loop {
            // Each node its own gate: retries to a node that hangs never
            // hold back a new block to another. Ahead of others while the
            // block is on the tip miners work on now.
            let permit = self.gates[node.index]
                .enter(self.on_tip(block.parent))
                .await;
            self.events.block(BlockEvent::Submitting);
            // Share read to this node's submitblock going out (logged once
            // it is out): the last node's is what a second node costs.
            let sent = block
                .received
                .filter(|_| attempt == 1)
                .map(|received| received.elapsed());
            let answer = node
                .rpc
                .call_serialized::<Value>("submitblock", block.params.clone(), node.rpc.timeout())
                .await;
            drop(permit);
            if let Some(sent) = sent {
                tracing::info!(node = %node.name, %hash, sent_ms = sent.as_secs_f64() * 1000.0, "block sent to node");
            }
            let error = match verdict(answer) {
                // With several nodes "duplicate" is usual (a peer relayed
                // it first): whether it is on the node's chain decides.
                Ok(Outcome::Duplicate) if uncertain || self.nodes.list.len() > 1 => {
                    break judge_duplicate(&node, hash).await
                }
                Ok(outcome) => break outcome,
                Err(error) => error,
            };
            uncertain |= matches!(error, RpcError::Timeout { .. } | RpcError::Transport { .. });
            if settled.is_cancelled() {
                // Settled by another node: the rest is delivery, bounded
                // in time and in how many blocks a node may be owed.
                if owed.is_none() {
                    let count = deliveries.owed.fetch_add(1, Ordering::Relaxed);
                    let guard = Owed(&deliveries.owed);
                    if count >= DELIVERIES_PER_NODE {
                        tracing::debug!(node = %node.name, %hash, "node owed too many settled blocks; its peers carry this one");
                        return;
                    }
                    owed = Some((Instant::now(), guard));
                }
                if owed
                    .as_ref()
                    .is_some_and(|(since, _)| since.elapsed() > DELIVER_AFTER_SETTLING)
                {
                    tracing::warn!(node = %node.name, %hash, "settled block never reached this node; its peers carry it");
                    return;
                }
                tracing::debug!(node = %node.name, %hash, attempt, %error, "settled block not yet delivered to this node; retrying");
            } else if let Some(unlogged) = deliveries.log_retry() {
                tracing::warn!(node = %node.name, %hash, attempt, %error, unlogged_retries = unlogged, "block not yet submitted to this node; retrying (one line per node every 10 s)");
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.delay(attempt)) => {}
                // Still journaled: submitted on the next start.
                _ = shutdown.cancelled() => if attempt > 3 { return },
            }
            attempt += 1;
        };
        let _ = verdicts.send((node.name.clone(), outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_logged_once_per_interval_with_the_count_left_out() {
        let node = NodeDeliveries::default();
        assert_eq!(node.log_retry(), Some(0));
        for _ in 0..1000 {
            assert_eq!(node.log_retry(), None);
        }
        node.retries.lock().unwrap().0 = Some(Instant::now() - RETRY_LOG_EVERY);
        assert_eq!(node.log_retry(), Some(1000));
    }
}
