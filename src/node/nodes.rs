//! Several nodes, `[node]` first then each `[[node.backup]]`: every one is
//! followed on its own (its tip polled, its ZMQ heard, its height read once
//! per tip), templates come from the first in that order that answers and
//! is at the best tip any of them reports, and every found block goes to
//! all of them (see the submitter).
//!
//! A node that stops answering, or whose tip is not the best, is passed over
//! at once; it is called `behind` once that lasts [`BEHIND_AFTER`]. Between
//! tips the node serving templates keeps serving (a switch at the same tip
//! would cost miners a job for nothing): a recovered node of higher priority
//! takes over at the next refresh, without `clean_jobs`, or at the next tip.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::rpc::{Backoff, RpcClient};
use ndas_core::chain::Hash256;
use ndas_core::clock::unix_now;
use ndas_core::events::{Events, NodeEvent, NodeStatus};
use ndas_core::sync::LockAnyway;

/// How long a node's tip may trail the best before it is called behind.
pub const BEHIND_AFTER: Duration = Duration::from_secs(10);

/// A node passed over after failed template fetches, for this long at first
/// (doubling to a minute: a node that hangs on `getblocktemplate` while it
/// answers its tip poll costs the fetch its budget once a minute at most),
/// unless no other node answers.
const TEMPLATE_RETRY: Backoff = Backoff {
    first: Duration::from_millis(250),
    max: Duration::from_secs(60),
    attempts: u32::MAX,
};

/// Template fetches failed in a row after which a node that still answers
/// its tip poll is called down.
const DOWN_AFTER_FAILURES: u32 = 3;

/// A node's best block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    pub hash: Hash256,
    pub height: u32,
}

/// One node.
pub struct Node {
    /// Its config name: the `node` label, never its address.
    pub name: String,
    /// Its place in the config's order (0: `[node]`).
    pub index: usize,
    pub rpc: Arc<RpcClient>,
    /// How often its tip is polled.
    pub poll: Duration,
    /// Wakes its tip poll at once (its ZMQ subscription does).
    pub poke: Notify,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Whether its last call answered; `None` before the first.
    answering: Option<bool>,
    tip: Option<Tip>,
    /// Since when its tip has trailed the best.
    trailing_since: Option<Instant>,
    /// Whether it was last published as behind.
    behind: bool,
    template_failures: u32,
    passed_over_until: Option<Instant>,
    /// Whether it was checked to be on NDAS's chain since it last failed.
    chain_checked: bool,
    last_error: Option<String>,
    /// Unix seconds its state last changed.
    since: u64,
}

impl Node {
    pub fn new(name: String, index: usize, rpc: Arc<RpcClient>, poll: Duration) -> Node {
        Node {
            name,
            index,
            rpc,
            poll,
            poke: Notify::new(),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Plain fields, each consistent on its own: keep going after a panic.
        self.state.lock_anyway()
    }

    /// Whether it was checked to be on NDAS's chain since it last failed.
    pub fn chain_checked(&self) -> bool {
        self.state().chain_checked
    }

    pub fn set_chain_checked(&self) {
        self.state().chain_checked = true;
    }

    /// A template came from it, on `tip`.
    pub fn served(&self, tip: Tip) {
        let mut state = self.state();
        if state.answering != Some(true) || state.template_failures >= DOWN_AFTER_FAILURES {
            state.since = unix_now();
        }
        state.template_failures = 0;
        state.passed_over_until = None;
        state.last_error = None;
        state.answering = Some(true);
        if state.tip.is_none_or(|known| known.height <= tip.height) {
            state.tip = Some(tip);
        }
    }

    /// A template fetch (or the chain check before it) failed: passed over
    /// for a while, and checked again when it next serves.
    pub fn failed(&self, error: String, now: Instant) {
        let mut state = self.state();
        state.template_failures += 1;
        if state.template_failures == DOWN_AFTER_FAILURES {
            state.since = unix_now();
        }
        state.passed_over_until = Some(now + TEMPLATE_RETRY.delay(state.template_failures));
        state.chain_checked = false;
        state.last_error = Some(error);
    }

    /// Why it last failed, if it did.
    pub fn last_error(&self) -> Option<String> {
        self.state().last_error.clone()
    }

    /// Its last known tip.
    pub fn tip(&self) -> Option<Tip> {
        self.state().tip
    }
}

/// Every node, in the config's order.
pub struct Nodes {
    pub list: Vec<Arc<Node>>,
    /// Where the nodes' states and the templates' flow are told.
    pub events: Events,
    /// Whether templates come from any node (as last told).
    flowing: AtomicBool,
    /// The node templates come from now.
    serving: Mutex<Option<usize>>,
    /// Held from reading every node's state to handing it on, so two
    /// tasks publishing at once cannot hand on an older picture last.
    publishing: Mutex<()>,
}

impl Nodes {
    pub fn new(list: Vec<Arc<Node>>, events: Events) -> Arc<Nodes> {
        let names = list.iter().map(|node| node.name.clone()).collect();
        events.node(NodeEvent::Configured { names });
        let nodes = Arc::new(Nodes {
            list,
            events,
            flowing: AtomicBool::new(false),
            serving: Mutex::new(None),
            publishing: Mutex::new(()),
        });
        nodes.publish(Instant::now());
        nodes
    }

    /// The highest tip any node that is up reports (the first by priority
    /// among equals: two nodes may disagree at one height). A node whose
    /// templates keep failing does not count: its tip cannot be mined on
    /// through it, and must not hold the others back.
    pub fn best(&self) -> Option<Tip> {
        let mut best: Option<Tip> = None;
        for node in &self.list {
            let state = node.state();
            if state.answering == Some(false) || state.template_failures >= DOWN_AFTER_FAILURES {
                continue;
            }
            if let Some(tip) = state.tip {
                if best.is_none_or(|b| tip.height > b.height) {
                    best = Some(tip);
                }
            }
        }
        best
    }

    /// Whether every node's last poll failed.
    pub fn none_answering(&self) -> bool {
        self.list
            .iter()
            .all(|node| node.state().answering == Some(false))
    }

    /// The node templates come from now.
    pub fn serving(&self) -> Option<usize> {
        *self.serving.lock_anyway()
    }

    /// The nodes to ask for a template, in the order to ask them: those
    /// answering and at the best height by priority, then those passed over
    /// or not answering (asked only when every other has failed). A node
    /// known to trail the best is never asked: its template would send
    /// miners back to an older tip (the watcher also refuses any template
    /// below the best). With `stay`, the serving node leads while it is at
    /// the best height and answering.
    pub fn candidates(&self, stay: bool, now: Instant) -> Vec<Arc<Node>> {
        let best = self.best();
        let rank = |node: &Node| {
            let state = node.state();
            let usable = state.answering != Some(false)
                && state.passed_over_until.is_none_or(|until| now >= until);
            let trailing = matches!((best, state.tip), (Some(b), Some(t)) if t.height < b.height);
            match (usable, trailing) {
                (true, false) => Some(0),
                (true, true) => None,
                (false, _) => Some(1),
            }
        };
        let serving = self.serving().filter(|_| stay);
        let mut ranked: Vec<(u8, bool, usize, Arc<Node>)> = self
            .list
            .iter()
            .filter_map(|node| {
                let stays = serving == Some(node.index);
                Some((rank(node)?, !stays, node.index, node.clone()))
            })
            .collect();
        ranked.sort_by_key(|(rank, moves, index, _)| (*rank, *moves, *index));
        ranked.into_iter().map(|(_, _, _, node)| node).collect()
    }

    /// Templates now come from `index`; true when that changed.
    pub fn set_serving(&self, index: Option<usize>) -> bool {
        let changed = {
            let mut serving = self.serving.lock_anyway();
            std::mem::replace(&mut *serving, index) != index
        };
        if changed {
            self.publish(Instant::now());
        }
        changed
    }

    /// Tells whether templates flow (`why` not, when they do not);
    /// true when that changed.
    pub fn tell_flowing(&self, event: NodeEvent) -> bool {
        let flowing = matches!(event, NodeEvent::TemplateFetched { .. });
        let changed = self.flowing.swap(flowing, Ordering::Relaxed) != flowing;
        self.events.node(event);
        changed
    }

    /// Every node's state, told to the read models.
    pub fn publish(&self, now: Instant) {
        let _one_at_a_time = self.publishing.lock_anyway();
        let best = self.best();
        let serving = self.serving();
        let statuses: Vec<NodeStatus> = self
            .list
            .iter()
            .map(|node| {
                let mut state = node.state();
                let trailing =
                    matches!((best, state.tip), (Some(b), Some(t)) if t.height < b.height);
                if !trailing {
                    state.trailing_since = None;
                } else if state.trailing_since.is_none() {
                    state.trailing_since = Some(now);
                }
                let behind = state
                    .trailing_since
                    .is_some_and(|since| now.saturating_duration_since(since) >= BEHIND_AFTER);
                if behind != state.behind {
                    state.behind = behind;
                    state.since = unix_now();
                }
                // Answering its tip poll is not enough: a node whose
                // templates fail (in initial download, without peers) is down.
                let up =
                    state.answering == Some(true) && state.template_failures < DOWN_AFTER_FAILURES;
                NodeStatus {
                    name: node.name.clone(),
                    state: match (state.answering, up, behind) {
                        (None, _, _) => "unknown",
                        (Some(_), false, _) => "down",
                        (Some(_), true, true) => "behind",
                        (Some(_), true, false) => "up",
                    },
                    serving: serving == Some(node.index),
                    height: state.tip.map(|t| t.height),
                    tip: state.tip.map(|t| t.hash.to_string()),
                    last_error: state.last_error.clone(),
                    since: state.since,
                    up,
                    behind,
                }
            })
            .collect();
        self.events.node(NodeEvent::States {
            nodes: statuses,
            serving,
        });
    }
}

/// Follows `node`'s tip until shutdown: its best block every poll (or at
/// once when its ZMQ pokes), its height once per new tip. `wake` (the
/// template fetcher) is woken when the serving node's tip moves, when a
/// node gets ahead of it, and when a node stops or starts answering.
pub async fn follow(
    node: Arc<Node>,
    nodes: Arc<Nodes>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut ticks = tokio::time::interval(node.poll);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
            _ = node.poke.notified() => {}
        }
        let serving = nodes.serving() == Some(node.index);
        match node.rpc.call::<String>("getbestblockhash", json!([])).await {
            Ok(hash) => {
                let hash = Hash256::from_display_hex(&hash).ok();
                let known = node.tip().map(|t| t.hash);
                let was_answering = node.state().answering;
                if hash.is_some() && hash != known && serving {
                    // The node templates come from moved: fetch now, the
                    // height can follow.
                    wake.notify_one();
                }
                let tip = match hash.filter(|h| Some(*h) != known) {
                    Some(hash) => height_of(&node.rpc, hash)
                        .await
                        .map(|height| Tip { hash, height }),
                    None => None,
                };
                let before = nodes.best();
                {
                    let mut state = node.state();
                    if state.answering != Some(true) {
                        state.since = unix_now();
                    }
                    state.answering = Some(true);
                    if let Some(tip) = tip {
                        state.tip = Some(tip);
                    }
                }
                let ahead = tip.is_some_and(|tip| before.is_none_or(|b| tip.height > b.height));
                if (ahead && !serving) || was_answering != Some(true) {
                    wake.notify_one();
                }
            }
            Err(error) => {
                let was = {
                    let mut state = node.state();
                    let was = state.answering;
                    if was != Some(false) {
                        state.since = unix_now();
                        tracing::warn!(node = %node.name, %error, "node not answering");
                    }
                    state.answering = Some(false);
                    state.chain_checked = false;
                    state.last_error = Some(error.to_string());
                    was
                };
                if serving || was != Some(false) {
                    wake.notify_one();
                }
            }
        }
        nodes.publish(Instant::now());
    }
}

/// The height of block `hash` on `rpc`'s node.
async fn height_of(rpc: &RpcClient, hash: Hash256) -> Option<u32> {
    let header = rpc
        .call::<Value>("getblockheader", json!([hash.to_string()]))
        .await
        .ok()?;
    header["height"]
        .as_u64()
        .and_then(|h| u32::try_from(h).ok())
}

#[cfg(test)]
mod tests;
