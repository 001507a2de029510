//! What the operator sees: pool totals, per-worker figures, the node's state,
//! found blocks. Updated from session events in one place
//! ([`connection::ConnectionStats::record`]) and read by the HTTP API.

pub mod connection;
pub mod fallback;
pub mod ranking;
pub mod registry;
pub mod sessions;
pub mod upstreams;
mod worker;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use ndas_core::rates::Rates;
mod pages;
pub use ndas_core::events::NodeStatus;
pub use pages::{WorkerSort, WorkerView};
mod events;
pub use worker::{MinuteFigures, Presence, Totals, Worker};

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
    /// The pool's hashrate, and each protocol's (in the order of
    /// [`crate::config::PROTOCOLS`]), under one lock.
    pool_rates: Mutex<(Rates, [Rates; 3])>,
    /// Ports of more than one protocol are served: only then are the
    /// protocols' rates kept apart from the pool's (a share pays for it).
    mixed: AtomicBool,
    blocks: Mutex<VecDeque<BlockRecord>>,
    /// Workers that earned a place (an accepted share), bounded.
    pub workers: registry::Registry,
    /// The workers by hashrate and by last share, ranked at most every 10 s.
    ranking: ranking::Ranking,
    /// `stratum.offline_after_share_intervals`, as f64 bits.
    offline_after: AtomicU64,
    /// Workers mining for the fallback address, for `payouts.fallback`.
    fallbacks: Mutex<fallback::Fallbacks>,
    /// The stratum ports as served (bound addresses), for `/api/stats`.
    ports: Mutex<Vec<Port>>,
    /// The upstream pools' status, once their connections are started.
    pub upstreams: std::sync::OnceLock<Arc<upstreams::Upstreams>>,
    /// The routes by weight (`[[route]]`) and the upstreams' names, when
    /// configured.
    pub routes: std::sync::OnceLock<(Arc<ndas_core::work::routes::Routes>, Vec<String>)>,
    /// Workers' sessions for the fleet history, kept only when it is on.
    pub sessions: sessions::SessionLog,
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
            pool_rates: Mutex::new((Rates::new(now), std::array::from_fn(|_| Rates::new(now)))),
            blocks: Mutex::new(VecDeque::new()),
            workers: registry::Registry::new(max_workers),
            ranking: ranking::Ranking::default(),
            offline_after: AtomicU64::new(10f64.to_bits()),
            fallbacks: Mutex::default(),
            ports: Mutex::new(Vec::new()),
            mixed: AtomicBool::new(false),
            upstreams: std::sync::OnceLock::new(),
            routes: std::sync::OnceLock::new(),
            sessions: sessions::SessionLog::default(),
        }
    }

    /// Forgets workers with no connection that were idle for `idle`.
    pub fn prune_workers(&self, idle: Duration) {
        self.workers.prune(Instant::now(), idle);
    }

    /// An accepted share on a port speaking protocol number `protocol`.
    fn add_pool_share(&self, difficulty: f64, now: Instant, protocol: usize) {
        let mut rates = self.pool_rates.lock_anyway();
        rates.0.add(difficulty, now);
        if self.mixed.load(Ordering::Relaxed) {
            if let Some(rates) = rates.1.get_mut(protocol) {
                rates.add(difficulty, now);
            }
        }
    }

    /// Seconds since the last successful template fetch.
    pub fn template_age(&self) -> Option<Duration> {
        self.template
            .lock_anyway()
            .as_ref()
            .map(|t| t.fetched_at.elapsed())
    }

    /// Each configured node's state, in the config's order.
    pub fn node_statuses(&self) -> Vec<NodeStatus> {
        self.nodes.lock_anyway().clone()
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
        let first = ports.first().map(Port::protocol_index);
        let mixed = ports
            .iter()
            .any(|port| Some(port.protocol_index()) != first);
        self.mixed.store(mixed, Ordering::Relaxed);
        *self.ports.lock_anyway() = ports;
    }

    /// Each port: where it listens, its difficulty, its connections and shares.
    fn ports_snapshot(&self) -> Vec<Value> {
        let ports = self.ports.lock_anyway().clone();
        ports
            .iter()
            .map(|port| {
                let series = self.metrics.port(&port.name, port.protocol_index());
                json!({
                    "name": port.name,
                    "protocol": port.protocol(),
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

    /// its hashrate (`by_protocol`, 1 m, 5 m and 1 h).
    fn protocols_snapshot(&self, pool: [f64; 3], by_protocol: [[f64; 3]; 3]) -> Value {
        let ports = self.ports.lock_anyway().clone();
        let mut out = serde_json::Map::new();
        for (index, name) in crate::config::PROTOCOLS.iter().enumerate() {
            let served: Vec<_> = ports
                .iter()
                .filter(|port| port.protocol_index() == index)
                .map(|port| self.metrics.port(&port.name, index))
                .collect();
            if served.is_empty() {
                continue;
            }
            // One protocol served: its hashrate is the pool's.
            let mixed = self.mixed.load(Ordering::Relaxed);
            let [m1, m5, h1] = if mixed { by_protocol[index] } else { pool };
            out.insert(
                (*name).to_owned(),
                json!({
                    "ports": served.len(),
                    "connections": served.iter().map(|s| s.connections.get()).sum::<i64>(),
                    "shares": {
                        "accepted": served.iter().map(|s| s.accepted.get()).sum::<u64>(),
                        "rejected": served.iter().map(|s| s.rejected_total()).sum::<u64>(),
                    },
                    "hashrate": {"1m": m1, "5m": m5, "1h": h1},
                }),
            );
        }
        Value::Object(out)
    }

    /// The pool's hashrate over the last five minutes, in H/s.
    pub fn hashrate_5m(&self) -> f64 {
        self.pool_rates.lock_anyway().0.hashrates(Instant::now())[1]
    }

    /// `/api/stats`.
    pub fn snapshot(&self) -> Value {
        let now = Instant::now();
        let (pool, by_protocol) = {
            let rates = self.pool_rates.lock_anyway();
            (rates.0.hashrates(now), rates.1.map(|r| r.hashrates(now)))
        };
        let [m1, m5, h1] = pool;
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
            "protocols": self.protocols_snapshot(pool, by_protocol),
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
                // No node for mining.failover_after_seconds: miners closed
                // and refused (mining.when_no_node = "disconnect").
                "miners_sent_away": m.templates.work_withdrawn.get() == 1,
            },
            "nodes": &*self.nodes.lock_anyway(),
            "upstreams": self.upstreams.get().map(|u| u.snapshot()).unwrap_or_default(),
            "routes": self.routes(),
        })
    }

    /// Each `[[route]]`'s figures (none configured: empty).
    pub fn routes(&self) -> Vec<upstreams::RouteStatus> {
        self.routes
            .get()
            .map(|(routes, names)| upstreams::routes(routes, names))
            .unwrap_or_default()
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
