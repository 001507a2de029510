//! The stats as a read model: the template miners work on, whether
//! templates flow, each node's state and the recent blocks, from the
//! stages' events. Metrics and notifications are read models of their own.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Instant;

use ndas_core::clock::unix_now;
use ndas_core::events::{BlockEvent, Event, JobEvent, NodeEvent, ReadModel};
use ndas_core::sync::LockAnyway;

use super::{BlockRecord, Stats, TemplateInfo, RECENT_BLOCKS};

impl ReadModel for Stats {
    fn apply(&self, event: &Event) {
        match event {
            Event::Node(NodeEvent::States { nodes, .. }) => {
                self.nodes.lock_anyway().clone_from(nodes);
            }
            Event::Node(NodeEvent::TemplateFetched { .. }) => {
                self.templates_flowing(true, None);
                if let Some(template) = self.template.lock_anyway().as_mut() {
                    template.fetched_at = Instant::now();
                }
            }
            Event::Node(NodeEvent::NoTemplates { why }) => {
                self.templates_flowing(false, Some(why.clone()));
            }
            Event::Job(JobEvent::OnUpstream { name }) => {
                if let Some(upstreams) = self.upstreams.get() {
                    upstreams.mining_on(Some(name));
                }
            }
            Event::Job(JobEvent::Withdrawn) => {
                if let Some(upstreams) = self.upstreams.get() {
                    upstreams.mining_on(None);
                }
            }
            Event::Job(JobEvent::Published {
                height,
                transactions,
                prev_hash,
                ..
            }) => {
                if let Some(upstreams) = self.upstreams.get() {
                    upstreams.mining_on(None);
                }
                *self.template.lock_anyway() = Some(TemplateInfo {
                    height: *height,
                    transactions: *transactions,
                    prev_hash: prev_hash.clone(),
                    fetched_at: Instant::now(),
                });
            }
            Event::Block(BlockEvent::Found {
                height,
                hash,
                worker,
                payout,
                ..
            }) => {
                let record = BlockRecord {
                    height: *height,
                    hash: hash.clone(),
                    worker: worker.clone(),
                    found_at: unix_now(),
                    status: "pending".into(),
                    payout: payout.clone(),
                };
                keep(&mut self.blocks.lock_anyway(), record);
            }
            Event::Block(BlockEvent::Settled {
                height,
                hash,
                worker,
                found_at,
                payout,
                outcome,
                ..
            }) => {
                let mut blocks = self.blocks.lock_anyway();
                match blocks.iter_mut().find(|b| b.hash == *hash) {
                    Some(known) => (*outcome).clone_into(&mut known.status),
                    // A block from an earlier run: its worker and time from the journal.
                    None => keep(
                        &mut blocks,
                        BlockRecord {
                            height: *height,
                            hash: hash.clone(),
                            worker: worker.clone(),
                            found_at: *found_at,
                            status: (*outcome).into(),
                            payout: payout.clone(),
                        },
                    ),
                }
            }
            _ => {}
        }
    }
}

impl Stats {
    /// Whether templates come from any node, and why not.
    fn templates_flowing(&self, up: bool, error: Option<String>) {
        let changed = self.node_up.swap(up, Ordering::Relaxed) != up;
        let mut node = self.node.lock_anyway();
        if changed || node.since == 0 {
            node.since = unix_now();
        }
        node.last_error = error;
    }
}

/// Adds `record` to the recent blocks, the oldest leaving when full.
fn keep(blocks: &mut VecDeque<BlockRecord>, record: BlockRecord) {
    if blocks.len() == RECENT_BLOCKS {
        blocks.pop_front();
    }
    blocks.push_back(record);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use ndas_core::events::Events;
    use std::sync::Arc;

    fn watched() -> (Arc<Stats>, Events) {
        let stats = Arc::new(Stats::new(Arc::new(Metrics::new())));
        let events = Events::new(vec![stats.metrics.clone(), stats.clone()]);
        (stats, events)
    }

    fn settled(hash: &str, outcome: &'static str) -> BlockEvent {
        BlockEvent::Settled {
            height: 9,
            hash: hash.into(),
            worker: "journal's".into(),
            found_at: 5,
            payout: "bcrt1q".into(),
            paid: vec![],
            outcome,
        }
    }

    #[test]
    fn a_found_block_is_pending_until_its_verdict_and_an_earlier_runs_is_added() {
        let (stats, events) = watched();
        events.block(BlockEvent::Found {
            height: 9,
            hash: "aa".into(),
            worker: "w".into(),
            payout: "bcrt1q".into(),
            paid: vec![],
            delay: 0.1,
        });
        assert_eq!(stats.recent_blocks()[0].status, "pending");
        events.block(settled("aa", "accepted"));
        events.block(settled("bb", "duplicate"));
        let blocks = stats.recent_blocks();
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            (blocks[0].hash.as_str(), blocks[0].status.as_str()),
            ("aa", "accepted")
        );
        assert_eq!(
            blocks[0].worker, "w",
            "the found block keeps its own worker"
        );
        assert_eq!(
            (blocks[1].worker.as_str(), blocks[1].found_at),
            ("journal's", 5)
        );
        let snapshot = stats.snapshot();
        assert_eq!(snapshot["blocks"]["accepted"], 1, "{snapshot}");
    }

    #[test]
    fn the_recent_blocks_keep_the_newest_fifty() {
        let (stats, events) = watched();
        for n in 0..RECENT_BLOCKS + 3 {
            events.block(settled(&format!("{n:x}"), "accepted"));
        }
        let blocks = stats.recent_blocks();
        assert_eq!(blocks.len(), RECENT_BLOCKS);
        assert_eq!(blocks[0].hash, "3");
    }

    #[test]
    fn readiness_follows_whether_templates_flow_and_keeps_the_why() {
        let (stats, events) = watched();
        stats.listening.store(true, Ordering::Relaxed);
        events.job(JobEvent::Published {
            height: 2,
            transactions: 0,
            prev_hash: "00".into(),
            tip_to_job: None,
        });
        events.node(NodeEvent::TemplateFetched { seconds: 0.01 });
        let max_age = std::time::Duration::from_secs(60);
        assert_eq!(stats.readiness(max_age), Ok(vec![]));
        let why = "a: connection refused".to_owned();
        events.node(NodeEvent::NoTemplates { why: why.clone() });
        let reasons = stats.readiness(max_age).unwrap_err();
        assert!(reasons.iter().any(|r| r.contains(&why)), "{reasons:?}");
        assert_eq!(stats.snapshot()["node"]["last_error"], why.as_str());
    }
}
