//! The notifications as a read model: a block found, a block's verdict, a
//! node going down or coming back, from the stages' events. The workers
//! notice is a periodic count, sent by its own task.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;

use ndas_core::events::{BlockEvent, Event, JobEvent, NodeEvent, ReadModel};
use ndas_core::sync::LockAnyway;

use super::{Notice, Sink};

/// Turns events into notices for every target's queue.
pub struct Notifier {
    sink: Sink,
    /// Each node's name and whether it was down at the last poll (empty
    /// before the first: a node down at start is not news).
    down: Mutex<Vec<(String, bool)>>,
    /// Whether miners' work is withdrawn (no node served for the bound).
    withdrawn: AtomicBool,
}

impl Notifier {
    pub fn new(sink: Sink) -> Notifier {
        Notifier {
            sink,
            down: Mutex::new(Vec::new()),
            withdrawn: AtomicBool::new(false),
        }
    }
}

impl ReadModel for Notifier {
    fn apply(&self, event: &Event) {
        match event {
            Event::Node(NodeEvent::States { nodes, .. }) => {
                let mut down = self.down.lock_anyway();
                for new in nodes {
                    let is_down = new.state == "down";
                    let Some((_, was_down)) = down.iter().find(|(name, _)| *name == new.name)
                    else {
                        continue;
                    };
                    let node = new.name.clone();
                    match (*was_down, is_down) {
                        (false, true) => self.sink.send(Notice::NodeDown { node }),
                        (true, false) => self.sink.send(Notice::NodeUp { node }),
                        _ => {}
                    }
                }
                *down = nodes
                    .iter()
                    .map(|n| (n.name.clone(), n.state == "down"))
                    .collect();
            }
            Event::Job(JobEvent::Withdrawn) if !self.withdrawn.swap(true, Relaxed) => {
                self.sink.send(Notice::MinersSentAway);
            }
            Event::Job(JobEvent::OnUpstream { name }) => {
                self.withdrawn.store(true, Relaxed);
                self.sink.send(Notice::MinersOnUpstream {
                    upstream: name.clone(),
                });
            }
            Event::Job(JobEvent::Published { .. }) if self.withdrawn.swap(false, Relaxed) => {
                self.sink.send(Notice::MinersBack);
            }
            Event::Block(BlockEvent::Found {
                height,
                hash,
                worker,
                ..
            }) => self.sink.send(Notice::BlockFound {
                height: *height,
                hash: hash.clone(),
                worker: worker.clone(),
            }),
            Event::Block(BlockEvent::Settled {
                height,
                hash,
                worker,
                outcome,
                ..
            }) => self.sink.send(Notice::BlockSettled {
                height: *height,
                hash: hash.clone(),
                worker: worker.clone(),
                outcome,
            }),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NotifyConfig;
    use crate::metrics::Metrics;
    use ndas_core::events::{Events, NodeStatus};
    use std::sync::Arc;
    use tokio::sync::mpsc;

    /// A notifier whose one target's queue the test reads.
    fn notifier() -> (Events, mpsc::Receiver<Notice>) {
        let (sender, receiver) = mpsc::channel(16);
        let config: NotifyConfig = serde_json::from_value(serde_json::json!({
            "name": "ops", "kind": "webhook", "url": "http://127.0.0.1:9/",
        }))
        .unwrap();
        let queue = super::super::Queue {
            config,
            sender,
            metrics: Arc::new(Metrics::new()),
        };
        let sink = Sink(Arc::new(vec![queue]));
        (Events::new(vec![Arc::new(Notifier::new(sink))]), receiver)
    }

    fn states(events: &Events, states: &[(&str, &'static str)]) {
        let nodes = states
            .iter()
            .map(|(name, state)| NodeStatus {
                name: (*name).to_owned(),
                state,
                serving: false,
                height: None,
                tip: None,
                last_error: None,
                since: 0,
                up: *state != "down",
                behind: false,
            })
            .collect();
        events.node(NodeEvent::States {
            nodes,
            serving: None,
        });
    }

    fn told(receiver: &mut mpsc::Receiver<Notice>) -> Vec<Notice> {
        std::iter::from_fn(|| receiver.try_recv().ok()).collect()
    }

    #[test]
    fn a_node_is_news_when_it_goes_down_and_when_it_comes_back_once_each() {
        let (events, mut receiver) = notifier();
        // Down at start: nothing changed, nothing to tell.
        states(&events, &[("a", "down"), ("b", "up")]);
        assert_eq!(told(&mut receiver), []);
        states(&events, &[("a", "up"), ("b", "down")]);
        let node = |name: &str| name.to_owned();
        assert_eq!(
            told(&mut receiver),
            [
                Notice::NodeUp { node: node("a") },
                Notice::NodeDown { node: node("b") }
            ]
        );
        // Still down, or behind (not down): no news.
        states(&events, &[("a", "behind"), ("b", "down")]);
        assert_eq!(told(&mut receiver), []);
    }

    #[test]
    fn miners_sent_away_and_let_back_are_news_once_each() {
        use ndas_core::events::JobEvent;
        let (events, mut receiver) = notifier();
        let published = || JobEvent::Published {
            height: 1,
            transactions: 0,
            prev_hash: String::new(),
            tip_to_job: None,
        };
        // Jobs as usual: no news.
        events.job(published());
        assert_eq!(told(&mut receiver), []);
        events.job(JobEvent::Withdrawn);
        events.job(JobEvent::Withdrawn);
        assert_eq!(told(&mut receiver), [Notice::MinersSentAway]);
        events.job(published());
        events.job(published());
        assert_eq!(told(&mut receiver), [Notice::MinersBack]);
    }

    #[test]
    fn a_found_block_and_its_verdict_are_told_with_their_worker() {
        let (events, mut receiver) = notifier();
        events.block(BlockEvent::Found {
            height: 7,
            hash: "ab".into(),
            worker: "w".into(),
            payout: String::new(),
            paid: vec![],
            delay: 0.0,
        });
        events.block(BlockEvent::Submitting);
        events.block(BlockEvent::Settled {
            height: 7,
            hash: "ab".into(),
            worker: "w".into(),
            found_at: 1,
            payout: String::new(),
            paid: vec![],
            outcome: "rejected",
        });
        let told = told(&mut receiver);
        assert_eq!(told.len(), 2, "{told:?}");
        assert_eq!(told[0].name(), "block_found");
        assert_eq!(told[1].name(), "block_rejected");
    }
}
