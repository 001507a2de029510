//! What the operator sees: pool totals, per-worker figures, the node's state,
//! found blocks. Updated from session events in one place
//! ([`connection::ConnectionStats::record`]) and read by the HTTP API.

pub mod connection;
pub mod fallback;
pub mod ranking;
pub mod registry;
mod worker;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use ndas_core::rates::Rates;
mod pages;
pub use pages::{WorkerSort, WorkerView};
pub use worker::{Presence, Totals, Worker};

/// A block the nodes gave their verdict on, as the journal has it.
#[derive(Clone, Copy, Debug)]
pub struct SettledBlock<'a> {
    pub hash: &'a str,
    pub height: u32,
    pub worker: &'a str,
    /// Unix seconds its share arrived.
    pub found_at: u64,
    /// The address its main output pays.
    pub payout: &'a str,
}

/// A found block as the API and the history show it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BlockView {
    pub height: u32,
    pub hash: String,
    pub worker: String,
    pub found_at: u64,
    pub status: String,
    /// The address its main output pays (empty in a history written
    /// before payout modes).
    #[serde(default)]
    pub payout: String,
}

use crate::config::Port;
use crate::metrics::Metrics;
use crate::notifications::{Notice, Sink};
use ndas_core::clock::unix_now;
use ndas_core::sync::LockAnyway;

/// Found blocks kept for the API.
const RECENT_BLOCKS: usize = 50;

/// A found block as the API shows it.
#[derive(Clone, Debug)]
struct BlockRecord {
    height: u32,
    hash: String,
    worker: String,
    found_at: u64,
    status: String,
    payout: String,
}

/// The template miners work on now.
#[derive(Clone, Debug)]
struct TemplateInfo {
    height: u32,
    transactions: usize,
    prev_hash: String,
    fetched_at: Instant,
}

/// One configured node, as `/api/stats` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NodeStatus {
    /// Its config name (never its address).
    pub name: String,
    /// `up`, `behind` (its tip trails the best for a while), `down`, or
    /// `unknown` before it first answers.
    pub state: &'static str,
    /// Whether templates come from it now.
    pub serving: bool,
    pub height: Option<u32>,
    pub tip: Option<String>,
    pub last_error: Option<String>,
    /// Unix seconds it last started or stopped answering.
    pub since: u64,
}

#[derive(Debug, Default)]
struct NodeState {
    last_error: Option<String>,
    since: u64,
}

/// Pool-wide state for metrics, health and the JSON API.
/// Pool totals since start: what NDAS logs as it stops, so an operator
/// whose last scrape came before the end still has the final count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accounting {
    pub shares_accepted: u64,
    pub shares_rejected: u64,
    pub accepted_difficulty: f64,
    pub blocks_found: u64,
}

pub struct Stats {
    pub metrics: Arc<Metrics>,
    started: Instant,
    /// Whether the last template fetch succeeded.
    pub node_up: AtomicBool,
    /// Whether the stratum listener accepts miners.
    pub listening: AtomicBool,
    node: Mutex<NodeState>,
    /// Each configured node as the operator sees it, in the config's order.
    nodes: Mutex<Vec<NodeStatus>>,
    template: Mutex<Option<TemplateInfo>>,
    pool_rates: Mutex<Rates>,
    blocks: Mutex<VecDeque<BlockRecord>>,
    /// Workers that earned a place (an accepted share), bounded.
    pub workers: registry::Registry,
    /// The workers by hashrate and by last share, ranked at most every 10 s.
    ranking: ranking::Ranking,
    /// `stratum.offline_after_share_intervals`, as f64 bits.
    offline_after: AtomicU64,
    /// The `[[notify]]` targets' queues.
    notifications: std::sync::OnceLock<Sink>,
    /// Workers mining for the fallback address, for `payouts.fallback`.
    fallbacks: Mutex<fallback::Fallbacks>,
    /// The stratum ports as served (bound addresses), for `/api/stats`.
    ports: Mutex<Vec<Port>>,
}

/// Workers kept when no cap is given (twice the default connection bound).
pub const DEFAULT_MAX_WORKERS: usize = 200_000;

impl Stats {
    pub fn new(metrics: Arc<Metrics>) -> Stats {
        Stats::with_max_workers(metrics, DEFAULT_MAX_WORKERS)
    }

    /// Stats that keep at most `max_workers` workers.
    pub fn with_max_workers(metrics: Arc<Metrics>, max_workers: usize) -> Stats {
        let now = Instant::now();
        Stats {
            metrics,
            started: now,
            node_up: AtomicBool::new(false),
            listening: AtomicBool::new(false),
            node: Mutex::new(NodeState::default()),
            nodes: Mutex::new(Vec::new()),
            template: Mutex::new(None),
            pool_rates: Mutex::new(Rates::new(now)),
            blocks: Mutex::new(VecDeque::new()),
            workers: registry::Registry::new(max_workers),
            ranking: ranking::Ranking::default(),
            offline_after: AtomicU64::new(10f64.to_bits()),
            notifications: std::sync::OnceLock::new(),
            fallbacks: Mutex::default(),
            ports: Mutex::new(Vec::new()),
        }
    }

    /// Forgets workers with no connection that were idle for `idle`.
    pub fn prune_workers(&self, idle: Duration) {
        self.workers.prune(Instant::now(), idle);
    }

    fn add_pool_share(&self, difficulty: f64, now: Instant) {
        self.pool_rates.lock_anyway().add(difficulty, now);
    }

    /// A new template was fetched and turned into a job.
    pub fn template_published(&self, height: u32, transactions: usize, prev_hash: String) {
        self.metrics.templates.height.set(i64::from(height));
        self.metrics.templates.transactions.set(transactions as i64);
        *self.template.lock_anyway() = Some(TemplateInfo {
            height,
            transactions,
            prev_hash,
            fetched_at: Instant::now(),
        });
    }

    /// A template fetch succeeded, whether or not it changed anything.
    pub fn template_fresh(&self) {
        if let Some(template) = self.template.lock_anyway().as_mut() {
            template.fetched_at = Instant::now();
        }
    }

    /// Seconds since the last successful template fetch.
    pub fn template_age(&self) -> Option<Duration> {
        self.template
            .lock_anyway()
            .as_ref()
            .map(|t| t.fetched_at.elapsed())
    }

    /// Records whether templates come from any node; returns true when
    /// that changed (each node's own state is in [`Stats::set_nodes`]).
    pub fn set_node_up(&self, up: bool, error: Option<String>) -> bool {
        let changed = self.node_up.swap(up, Ordering::Relaxed) != up;
        let mut node = self.node.lock_anyway();
        if changed || node.since == 0 {
            node.since = unix_now();
        }
        node.last_error = error;
        changed
    }

    /// Every node's state, from the node module.
    pub fn set_nodes(&self, statuses: Vec<NodeStatus>) {
        let mut nodes = self.nodes.lock_anyway();
        // A node that went down, or came back: told to the operator.
        for new in &statuses {
            let Some(old) = nodes.iter().find(|old| old.name == new.name) else {
                continue;
            };
            let node = new.name.clone();
            match (old.state == "down", new.state == "down") {
                (false, true) => self.tell(Notice::NodeDown { node }),
                (true, false) => self.tell(Notice::NodeUp { node }),
                _ => {}
            }
        }
        *nodes = statuses;
    }

    /// The blocks found lately, with their status.
    pub fn recent_blocks(&self) -> Vec<BlockView> {
        self.blocks
            .lock_anyway()
            .iter()
            .map(|b| BlockView {
                height: b.height,
                hash: b.hash.clone(),
                worker: b.worker.clone(),
                found_at: b.found_at,
                status: b.status.clone(),
                payout: b.payout.clone(),
            })
            .collect()
    }

    /// Where notifications go (set once, at start).
    pub fn set_notifications(&self, sink: Sink) {
        let _ = self.notifications.set(sink);
    }

    /// Tells the operator's notification targets, if any.
    pub fn tell(&self, notice: Notice) {
        if let Some(sink) = self.notifications.get() {
            sink.send(notice);
        }
    }

    /// Whether a notification target takes notices named `name`.
    pub fn tells(&self, name: &str) -> bool {
        self.notifications
            .get()
            .is_some_and(|sink| sink.wants(name))
    }

    /// A block submitted as the first on its parent (its siblings are
    /// counted in `ndas_blocks_found_total` only, where connections count
    /// every block found): the recent list and the notification targets.
    pub fn block_found(&self, height: u32, hash: String, worker: &str, payout: &str) {
        let mut blocks = self.blocks.lock_anyway();
        if blocks.len() == RECENT_BLOCKS {
            blocks.pop_front();
        }
        let found = Notice::BlockFound {
            height,
            hash: hash.clone(),
            worker: worker.to_owned(),
        };
        let record = BlockRecord {
            height,
            hash,
            worker: worker.to_owned(),
            found_at: unix_now(),
            status: "pending".into(),
            payout: payout.to_owned(),
        };
        blocks.push_back(record);
        drop(blocks);
        self.tell(found);
    }

    /// The nodes' verdict on a block (`accepted`, `duplicate`, `inconclusive`, `rejected`).
    pub fn block_settled(&self, block: SettledBlock<'_>, outcome: &'static str) {
        self.metrics
            .blocks
            .settled_total
            .with_label_values(&[outcome])
            .inc();
        self.tell(Notice::BlockSettled {
            height: block.height,
            hash: block.hash.to_owned(),
            worker: block.worker.to_owned(),
            outcome,
        });
        let mut blocks = self.blocks.lock_anyway();
        match blocks.iter_mut().find(|b| b.hash == block.hash) {
            Some(known) => known.status = outcome.to_owned(),
            None => {
                // A block from an earlier run: its worker and time from the journal.
                if blocks.len() == RECENT_BLOCKS {
                    blocks.pop_front();
                }
                blocks.push_back(BlockRecord {
                    height: block.height,
                    hash: block.hash.to_owned(),
                    worker: block.worker.to_owned(),
                    found_at: block.found_at,
                    status: outcome.into(),
                    payout: block.payout.to_owned(),
                });
            }
        }
    }

    /// Pool totals since start, for the last log line.
    pub fn accounting(&self) -> Accounting {
        let m = &self.metrics;
        let rejected = m.shares_rejected_total();
        Accounting {
            shares_accepted: m.shares_accepted(),
            shares_rejected: rejected,
            accepted_difficulty: m.accepted_difficulty(),
            blocks_found: m.blocks.found_total.get(),
        }
    }

    /// What `/readyz` checks: a node serves templates, the template is
    /// fresh, miners can connect. When ready, what is wrong with the other
    /// nodes (a backup down or behind), if anything.
    pub fn readiness(&self, max_template_age: Duration) -> Result<Vec<String>, Vec<String>> {
        let mut reasons = Vec::new();
        if !self.listening.load(Ordering::Relaxed) {
            reasons.push("stratum listener is not accepting".to_owned());
        }
        if !self.node_up.load(Ordering::Relaxed) {
            let error = self
                .node
                .lock_anyway()
                .last_error
                .clone()
                .unwrap_or_else(|| "no template yet".into());
            reasons.push(format!("node unreachable: {error}"));
        }
        match self.template_age() {
            None => reasons.push("no block template yet".to_owned()),
            Some(age) if age > max_template_age => reasons.push(format!(
                "template is {}s old (limit {}s)",
                age.as_secs(),
                max_template_age.as_secs()
            )),
            Some(_) => {}
        }
        let others = self
            .nodes
            .lock_anyway()
            .iter()
            .filter(|n| n.state != "up")
            .map(|n| match &n.last_error {
                Some(error) if n.state == "down" => format!("node {} down: {error}", n.name),
                _ => format!("node {} {}", n.name, n.state),
            })
            .collect();
        if reasons.is_empty() {
            Ok(others)
        } else {
            reasons.extend(others);
            Err(reasons)
        }
    }

    /// The ports served and their difficulty, at start and on each reload.
    pub fn set_ports(&self, ports: Vec<Port>) {
        *self.ports.lock_anyway() = ports;
    }

    /// Each port: where it listens, its difficulty, its connections and shares.
    fn ports_snapshot(&self) -> Vec<Value> {
        let ports = self.ports.lock_anyway().clone();
        ports
            .iter()
            .map(|port| {
                let series = self.metrics.port(&port.name);
                json!({
                    "name": port.name,
                    "listen": port.listen.to_string(),
                    "difficulty": {"start": port.start, "min": port.min, "max": port.max},
                    "connections": series.connections.get(),
                    "shares": {
                        "accepted": series.accepted.get(),
                        "rejected": series.rejected_total(),
                        "accepted_difficulty": series.accepted_difficulty.get(),
                    },
                })
            })
            .collect()
    }

    /// `/api/stats`.
    pub fn snapshot(&self) -> Value {
        let now = Instant::now();
        let [m1, m5, h1] = self.pool_rates.lock_anyway().hashrates(now);
        let m = &self.metrics;
        let rejected: serde_json::Map<String, Value> = ndas_core::share::Reject::REASONS
            .iter()
            .map(|reason| ((*reason).to_owned(), json!(m.shares_rejected(reason))))
            .collect();
        let (workers, connected_workers) = self.workers.counts();
        let template = self.template.lock_anyway().clone();
        let node = self.node.lock_anyway();
        let blocks: Vec<Value> = self.blocks.lock_anyway()
            .iter()
            .rev()
            .map(|b| json!({"height": b.height, "hash": b.hash, "worker": b.worker, "found_at": b.found_at, "status": b.status, "payout": b.payout}))
            .collect();
        json!({
            "uptime_seconds": self.started.elapsed().as_secs(),
            "connections": m.connections_open(),
            "workers": {"known": workers, "connected": connected_workers},
            "hashrate": {"1m": m1, "5m": m5, "1h": h1},
            "shares": {
                "accepted": m.shares_accepted(),
                "rejected": rejected,
                "accepted_difficulty": m.accepted_difficulty(),
            },
            "ports": self.ports_snapshot(),
            "blocks": {
                "found": m.blocks.found_total.get(),
                "accepted": m.blocks.settled_total.with_label_values(&["accepted"]).get(),
                "rejected": m.blocks.settled_total.with_label_values(&["rejected"]).get(),
                "recent": blocks,
            },
            "template": template.map(|t| json!({
                "height": t.height,
                "transactions": t.transactions,
                "prev_hash": t.prev_hash,
                "age_seconds": t.fetched_at.elapsed().as_secs_f64(),
            })),
            "node": {
                "up": self.node_up.load(Ordering::Relaxed),
                "since": node.since,
                "last_error": node.last_error,
            },
            "nodes": &*self.nodes.lock_anyway(),
        })
    }

    /// A worker authorized to mine for the fallback address, and why.
    pub fn fell_back(&self, worker: &str, why: &str) {
        self.metrics.payouts.fallbacks_total.inc();
        self.fallbacks
            .lock_anyway()
            .record(worker, why, Instant::now(), unix_now());
    }

    /// `/api/stats` `payouts.fallback`: the workers mining for the
    /// fallback address, and why.
    pub fn fallbacks(&self) -> Value {
        self.fallbacks.lock_anyway().snapshot()
    }
}
