//! ZMQ `hashblock` subscription: the node announces each new tip at once.
//!
//! Polling and longpoll remain as fallbacks; this only wakes the fetcher
//! sooner. A subscription can die without an error (a node restarted behind
//! a proxy, a publisher bound elsewhere): when the tip moves and no
//! `hashblock` announced it within [`ANNOUNCE_GRACE`], the subscription is
//! called silent, counted, logged, and made again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use zeromq::{Socket, SocketRecv};

use super::rpc::Backoff;
use ndas_core::events::NodeEvent;
use ndas_core::template::Template;

/// The newest published template (the job manager's): a tip that moved
/// tells the silence check that work still flows.
type TemplateReceiver = tokio::sync::watch::Receiver<Option<std::sync::Arc<Template>>>;
use ndas_core::chain::Hash256;

/// How long after NDAS sees a new tip the node's `hashblock` may still come.
pub const ANNOUNCE_GRACE: Duration = Duration::from_secs(3);

/// Tips remembered as announced: enough for a burst of blocks.
const REMEMBERED: usize = 16;

/// Why one subscription ended.
enum Ended {
    Lost(zeromq::ZmqError),
    Silent(Hash256),
}

/// One node's ZMQ `hashblock` subscriber.
pub struct Subscriber {
    pub nodes: Arc<super::nodes::Nodes>,
    pub node: Arc<super::nodes::Node>,
    /// `tcp://host:port`.
    pub endpoint: String,
    /// The fetcher's wake-up, rung per announced block.
    pub wake: Arc<Notify>,
    /// Tells it when the tip moved: one no message announced is silence.
    pub templates: TemplateReceiver,
}

impl Subscriber {
    /// Subscribes until shutdown, reconnecting with backoff.
    pub async fn run(self, shutdown: CancellationToken) {
        run(self, shutdown).await
    }
}

async fn run(subscriber: Subscriber, shutdown: CancellationToken) {
    let Subscriber {
        nodes,
        node,
        endpoint,
        wake,
        templates,
    } = subscriber;
    let backoff = Backoff {
        first: Duration::from_millis(500),
        max: Duration::from_secs(30),
        attempts: u32::MAX,
    };
    let events = nodes.events.clone();
    let name = || node.name.clone();
    let mut subscription = Subscription {
        nodes: &nodes,
        node: &node,
        endpoint: &endpoint,
        wake: &wake,
        templates,
        failures: 0,
    };
    loop {
        let ended = tokio::select! {
            _ = shutdown.cancelled() => return,
            ended = subscription.listen() => ended,
        };
        events.node(NodeEvent::Zmq {
            node: name(),
            up: false,
        });
        subscription.failures += 1;
        let first = subscription.failures == 1;
        match ended {
            Ended::Lost(error) if first => {
                tracing::warn!(node = %node.name, %endpoint, %error, "ZMQ hashblock subscription lost; polling and longpoll continue");
            }
            Ended::Silent(tip) => {
                events.node(NodeEvent::ZmqSilent { node: name() });
                if first {
                    tracing::warn!(node = %node.name, %endpoint, %tip, grace_seconds = ANNOUNCE_GRACE.as_secs(), "ZMQ hashblock subscription silent: the tip moved and no hashblock announced it; subscribing again, polling and longpoll continue");
                }
            }
            Ended::Lost(_) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff.delay(subscription.failures)) => {}
        }
    }
}

struct Subscription<'a> {
    nodes: &'a super::nodes::Nodes,
    node: &'a super::nodes::Node,
    endpoint: &'a str,
    wake: &'a Notify,
    templates: TemplateReceiver,
    /// Subscriptions in a row that ended without announcing a tip.
    failures: u32,
}

impl Subscription<'_> {
    /// Connects, subscribes, and wakes the fetcher per message, until the
    /// socket fails or a tip goes unannounced.
    async fn listen(&mut self) -> Ended {
        let mut socket = zeromq::SubSocket::new();
        if let Err(error) = socket.connect(self.endpoint).await {
            return Ended::Lost(error);
        }
        if let Err(error) = socket.subscribe("hashblock").await {
            return Ended::Lost(error);
        }
        let mut announced = VecDeque::with_capacity(REMEMBERED);
        // The tip at subscription time is not this subscription's to announce.
        let mut tip = self.current_tip();
        let mut unannounced: Option<(Hash256, Instant)> = None;
        loop {
            let deadline = unannounced.map(|(_, at)| at);
            tokio::select! {
                message = socket.recv() => {
                    let message = match message {
                        Ok(message) => message,
                        Err(error) => return Ended::Lost(error),
                    };
                    let Some(hash) = hashblock(&message) else { continue };
                    let events = &self.nodes.events;
                    events.node(NodeEvent::Hashblock { node: self.node.name.clone() });
                    // The fetcher at once when templates come from this
                    // node; and its own tip poll, which tells the fetcher
                    // when it is now ahead of the node they come from.
                    if self.nodes.serving() == Some(self.node.index) {
                        self.wake.notify_one();
                    }
                    self.node.poke.notify_one();
                    if self.failures > 0 {
                        tracing::info!(node = %self.node.name, endpoint = self.endpoint, %hash, "ZMQ hashblock subscription restored");
                        self.failures = 0;
                    }
                    events.node(NodeEvent::Zmq { node: self.node.name.clone(), up: true });
                    if unannounced.is_some_and(|(waiting, _)| waiting == hash) {
                        unannounced = None;
                    }
                    if announced.len() == REMEMBERED {
                        announced.pop_front();
                    }
                    announced.push_back(hash);
                }
                changed = self.templates.changed() => {
                    if changed.is_err() {
                        // The job manager is gone: NDAS is stopping.
                        std::future::pending::<()>().await;
                    }
                    let now = self.current_tip();
                    if now != tip {
                        // A first tip after subscribing to a node not yet
                        // answering is no move for ZMQ to have announced.
                        let moved = tip.is_some();
                        tip = now;
                        if let Some(new) = now.filter(|new| moved && !announced.contains(new)) {
                            let at = deadline.unwrap_or_else(|| Instant::now() + ANNOUNCE_GRACE);
                            unannounced = Some((new, at));
                        }
                    }
                }
                _ = sleep_until(deadline) => {
                    if let Some((tip, _)) = unannounced {
                        return Ended::Silent(tip);
                    }
                }
            }
        }
    }

    /// This node's tip (a job change is when to look: the tip miners are
    /// on may be another node's, and a node that lags is not silent).
    fn current_tip(&mut self) -> Option<Hash256> {
        self.templates.borrow_and_update();
        self.node.tip().map(|tip| tip.hash)
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The block hash of a `hashblock` message (sent in display order), if it is one.
fn hashblock(message: &zeromq::ZmqMessage) -> Option<Hash256> {
    if message.get(0).map(|frame| frame.as_ref()) != Some(b"hashblock".as_slice()) {
        return None;
    }
    let body: [u8; 32] = message.get(1)?.as_ref().try_into().ok()?;
    let mut internal = body;
    internal.reverse();
    Some(Hash256(internal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hashblock_body_is_read_in_display_order() {
        let shown = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";
        let mut message = zeromq::ZmqMessage::from("hashblock");
        message.push_back(hex::decode(shown).unwrap().into());
        message.push_back(vec![0, 0, 0, 0].into());
        assert_eq!(hashblock(&message).unwrap().to_string(), shown);
    }

    #[test]
    fn other_topics_and_short_bodies_are_not_hashblocks() {
        let mut other = zeromq::ZmqMessage::from("hashtx");
        other.push_back(vec![0; 32].into());
        assert!(hashblock(&other).is_none());
        let mut short = zeromq::ZmqMessage::from("hashblock");
        short.push_back(vec![0; 31].into());
        assert!(hashblock(&short).is_none());
    }
}
