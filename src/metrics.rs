//! The Prometheus registry: every `ndas_*` metric, with bounded labels only.
//!
//! Per-worker figures never become labels; they are in the JSON API.

use std::sync::Mutex;

use prometheus::{
    CounterVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

mod build;
mod payouts;
mod port;
mod read;
use build::{counter, counters, counters_of, gauge, gauges, histogram, latency_buckets, register};
use ndas_core::sync::LockAnyway;

/// `ndas_block_siblings_total`'s outcomes (see [`Metrics::block_siblings_total`]).
pub const SIBLING_OUTCOMES: [&str; 5] = [
    "kept",
    "dropped_full",
    "dropped_superseded",
    "discarded",
    "submitted",
];
pub use payouts::PayoutMetrics;
pub use port::PortMetrics;

/// Every `reason` of `ndas_disconnects_total`.
const DISCONNECT_REASONS: &[&str] = ndas_core::closed::Closed::REASONS;
/// Every `reason` of `ndas_connections_refused_total`.
const REFUSAL_REASONS: [&str; 5] = [
    "max_connections",
    "max_connections_per_ip",
    "max_handshaking",
    "banned",
    "max_accepts_per_second",
];

/// RPC methods named in labels; any other is counted as `other`.
const RPC_METHODS: &[&str] = &["getblocktemplate", "getbestblockhash", "submitblock"];

/// Every metric NDAS exports.
pub struct Metrics {
    registry: Registry,
    /// The ports' resolved series (see [`Metrics::port`]), for totals.
    ports: Mutex<Vec<PortMetrics>>,
    /// By `port` (a configured port's name, so bounded), like every
    /// connection and share metric.
    connections: IntGaugeVec,
    connections_total: IntCounterVec,
    /// `reason`: `max_connections`, `max_connections_per_ip` or `banned`.
    connections_refused_total: IntCounterVec,
    /// `reason`: a [`ndas_core::closed::Closed`] label.
    disconnects_total: IntCounterVec,
    /// Registered workers by `state` (`online`, `offline`; set at scrape).
    pub workers: IntGaugeVec,
    /// Workers with at least one connection (set at scrape).
    pub workers_connected: IntGauge,
    /// Workers kept in the registry, connected or not (set at scrape).
    pub workers_registered: IntGauge,
    /// Payout addresses with a coinbase of their own now (set at scrape).
    pub payout_groups: IntGauge,
    /// Disconnected workers dropped from a full registry to make room.
    pub workers_evicted_total: IntCounter,
    /// Names not kept because the registry was full of connected workers.
    pub workers_refused_total: IntCounter,
    pub subscribes_total: IntCounter,
    /// Subscribes that took back a recent session's extranonce1 and jobs.
    pub sessions_resumed_total: IntCounter,
    /// Payout group refusals and fallbacks, and the parked sessions.
    pub payouts: PayoutMetrics,
    pub authorizes_total: IntCounter,
    /// `result` is `accepted` or `rejected`; `reason` is a [`ndas_core::share::Reject`] label or `none`.
    shares_total: IntCounterVec,
    /// Sum of accepted share difficulty: `rate(...) * 2^32` is the hashrate.
    accepted_difficulty_total: CounterVec,
    pub blocks_found_total: IntCounter,
    pub blocks_submitted_total: IntCounter,
    /// Found blocks the journal could not make durable (a full or failing
    /// disk): submitted anyway, their hex in the error log line.
    pub blocks_unjournaled_total: IntCounter,
    /// Blocks found after the first on their parent (`blocks::triage`), by
    /// `outcome`: `kept`, `dropped_full` (a bound reached), `dropped_superseded`
    /// (a block on the parent was taken), `discarded` (kept, then a block on
    /// the parent was taken), `submitted` (the block before was rejected).
    pub block_siblings_total: IntCounterVec,
    /// Siblings kept now (journaled, not submitted), and what they hold.
    pub block_siblings_kept: IntGauge,
    pub block_siblings_kept_bytes: IntGauge,
    /// From reading the block's share to its first `submitblock` call.
    pub block_submit_delay_seconds: Histogram,
    /// Writing found blocks to the journal and flushing it, per flush.
    pub block_journal_seconds: Histogram,
    /// `outcome`: `accepted`, `duplicate`, `inconclusive`, `rejected`.
    pub blocks_total: IntCounterVec,
    pub template_fetch_seconds: Histogram,
    pub template_age_seconds: prometheus::Gauge,
    pub template_height: IntGauge,
    pub template_transactions: IntGauge,
    /// Templates the largest coinbase did not fit, by what was done:
    /// `trimmed` (last transactions left out) or `refused`.
    pub templates_over_limits_total: IntCounterVec,
    /// From noticing a new tip to the new job being handed to connections.
    pub tip_to_job_seconds: Histogram,
    /// From a job's creation to its notify written to one connection.
    pub notify_delay_seconds: Histogram,
    pub rpc_calls_total: IntCounterVec,
    pub rpc_seconds: HistogramVec,
    /// Failed node calls by what went wrong (see [`crate::node::RpcError::kind`]).
    pub rpc_errors_total: IntCounterVec,
    /// Per node (its config name): 1 while it answers.
    pub node_up: IntGaugeVec,
    /// Per node: 1 while its tip has trailed the best for a while.
    pub node_behind: IntGaugeVec,
    /// Which node templates come from: its place in the config (0 is
    /// `[node]`, 1 the first backup), -1 none.
    pub template_source: IntGauge,
    /// Each node's verdict on each found block, by node and outcome.
    pub node_blocks_total: IntCounterVec,
    pub vardiff_retargets_total: IntCounter,
    pub zmq_hashblocks_total: IntCounterVec,
    /// Per node: 1 while its ZMQ subscription is connected and announcing tips.
    pub zmq_up: IntGaugeVec,
    /// Per node: tips its ZMQ did not announce, each one a resubscription.
    pub zmq_silent_total: IntCounterVec,
    /// Notifications by target (its config name) and outcome.
    pub notifications_total: IntCounterVec,
    pub bytes_received_total: IntCounter,
    pub bytes_sent_total: IntCounter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let by_port = |name: &str, help: &str, labels: &[&str]| {
            let labels: Vec<&str> = std::iter::once("port")
                .chain(labels.iter().copied())
                .collect();
            register(r, IntCounterVec::new(Opts::new(name, help), &labels))
        };
        let shares_total = by_port(
            "ndas_shares_total",
            "Shares judged, by port, result and reject reason",
            &["result", "reason"],
        );
        let connections_refused_total = by_port(
            "ndas_connections_refused_total",
            "Connections closed on arrival, by port and the bound they were over",
            &["reason"],
        );
        let disconnects_total = by_port(
            "ndas_disconnects_total",
            "Miner connections ended, by port and why",
            &["reason"],
        );
        let connections_total = by_port(
            "ndas_connections_total",
            "Miner connections accepted, by port",
            &[],
        );
        let connections = register(
            r,
            IntGaugeVec::new(
                Opts::new("ndas_connections", "Miner connections open now, by port"),
                &["port"],
            ),
        );
        let blocks_total = register(
            r,
            IntCounterVec::new(
                Opts::new("ndas_blocks_total", "Blocks settled, by the node's verdict"),
                &["outcome"],
            ),
        );
        let block_siblings_total = counters(
            r,
            "ndas_block_siblings_total",
            "Blocks found after the first on their parent, by what became of them",
            &["outcome"],
        );
        let rpc_calls_total = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "ndas_rpc_calls_total",
                    "Node RPC calls by method and outcome",
                ),
                &["method", "outcome"],
            ),
        );
        let rpc_seconds = register(
            r,
            HistogramVec::new(
                HistogramOpts::new("ndas_rpc_seconds", "Node RPC latency by method")
                    .buckets(latency_buckets()),
                &["method"],
            ),
        );
        let rpc_errors_total = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "ndas_rpc_errors_total",
                    "Failed node RPC calls by kind: unreachable, timeout, unauthorized, http, rpc, unreadable",
                ),
                &["kind"],
            ),
        );
        let accepted_difficulty_total = register(
            r,
            CounterVec::new(
                Opts::new(
                    "ndas_accepted_difficulty_total",
                    "Sum of accepted share difficulty, by port",
                ),
                &["port"],
            ),
        );
        let template_age_seconds = register(
            r,
            prometheus::Gauge::new(
                "ndas_template_age_seconds",
                "Seconds since the last template was fetched",
            ),
        );
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            let _ = registry.register(Box::new(process));
        }
        // Every labelled series exists from the start, at zero, so rates
        // work at once (a port's, when it is declared: `Metrics::port`).
        for outcome in ["accepted", "duplicate", "inconclusive", "rejected"] {
            blocks_total.with_label_values(&[outcome]);
        }
        for outcome in SIBLING_OUTCOMES {
            block_siblings_total.with_label_values(&[outcome]);
        }
        for method in RPC_METHODS.iter().chain(&["other"]) {
            rpc_calls_total.with_label_values(&[method, "ok"]);
            rpc_calls_total.with_label_values(&[method, "error"]);
            rpc_seconds.with_label_values(&[method]);
        }
        for kind in crate::node::RpcError::KINDS {
            rpc_errors_total.with_label_values(&[kind]);
        }
        Metrics {
            ports: Mutex::new(Vec::new()),
            connections,
            connections_total,
            connections_refused_total,
            disconnects_total,
            workers: {
                let workers = gauges(
                    r,
                    "ndas_workers",
                    "Registered workers: online, or offline (no accepted share for stratum.offline_after_share_intervals of its expected share interval)",
                    &["state"],
                );
                for state in ["online", "offline"] {
                    workers.with_label_values(&[state]);
                }
                workers
            },
            workers_connected: gauge(
                r,
                "ndas_workers_connected",
                "Workers with at least one connection",
            ),
            workers_registered: gauge(
                r,
                "ndas_workers_registered",
                "Workers kept (an accepted share earns a place), connected or not",
            ),
            payout_groups: gauge(
                r,
                "ndas_payout_groups",
                "Payout addresses mined for now, each with a coinbase of its own (1 in fixed mode)",
            ),
            workers_evicted_total: counter(
                r,
                "ndas_workers_evicted_total",
                "Disconnected workers dropped, longest quiet first, to make room in a full registry",
            ),
            workers_refused_total: counter(
                r,
                "ndas_workers_refused_total",
                "Worker names not kept: the registry was full of connected workers",
            ),
            subscribes_total: counter(
                r,
                "ndas_subscribes_total",
                "Successful mining.subscribe calls",
            ),
            sessions_resumed_total: counter(
                r,
                "ndas_sessions_resumed_total",
                "Subscribes that resumed a recent session (its extranonce1 and jobs)",
            ),
            payouts: PayoutMetrics::new(r),
            authorizes_total: counter(r, "ndas_authorizes_total", "Workers authorized"),
            shares_total,
            accepted_difficulty_total,
            blocks_found_total: counter(
                r,
                "ndas_blocks_found_total",
                "Shares that met the network target",
            ),
            blocks_submitted_total: counter(
                r,
                "ndas_blocks_submitted_total",
                "submitblock calls made",
            ),
            blocks_unjournaled_total: counter(
                r,
                "ndas_blocks_unjournaled_total",
                "Found blocks the journal could not make durable (full or failing disk), submitted anyway",
            ),
            block_siblings_total,
            block_siblings_kept: gauge(
                r,
                "ndas_block_siblings_kept",
                "Blocks kept (journaled, not submitted) until their parent's first block is judged",
            ),
            block_siblings_kept_bytes: gauge(
                r,
                "ndas_block_siblings_kept_bytes",
                "What the kept blocks hold in memory and in the journal (blocks.max_kept_bytes bounds it)",
            ),
            block_journal_seconds: histogram(
                r,
                "ndas_block_journal_seconds",
                "Writing found blocks to the journal and flushing it to disk, per flush",
                vec![
                    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01,
                    0.025, 0.1, 1.0,
                ],
            ),
            block_submit_delay_seconds: histogram(
                r,
                "ndas_block_submit_delay_seconds",
                "From reading a block's share to its first submitblock call",
                vec![
                    0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075,
                    0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
                ],
            ),
            blocks_total,
            template_fetch_seconds: histogram(
                r,
                "ndas_template_fetch_seconds",
                "getblocktemplate round trip and validation",
                latency_buckets(),
            ),
            template_age_seconds,
            template_height: gauge(r, "ndas_template_height", "Height of the current template"),
            template_transactions: gauge(
                r,
                "ndas_template_transactions",
                "Transactions in the current template",
            ),
            templates_over_limits_total: counters_of(
                r,
                "ndas_templates_over_limits_total",
                "Templates whose weightlimit or sigoplimit the largest coinbase did not fit (the node reserves less than mining.block_reserved_weight), by action: trimmed (last transactions left out) or refused",
                "action",
                &["trimmed", "refused"],
            ),
            tip_to_job_seconds: histogram(
                r,
                "ndas_tip_to_job_seconds",
                "From noticing a new tip to the new job handed to connections",
                latency_buckets(),
            ),
            notify_delay_seconds: histogram(
                r,
                "ndas_notify_delay_seconds",
                "From job creation to its notify written to a connection (fan-out)",
                latency_buckets(),
            ),
            rpc_calls_total,
            rpc_seconds,
            rpc_errors_total,
            node_up: gauges(r, "ndas_node_up", "1 while the node answers", &["node"]),
            node_behind: gauges(
                r,
                "ndas_node_behind",
                "1 while the node's tip has trailed the best any node reports for 10 s or more",
                &["node"],
            ),
            template_source: gauge(
                r,
                "ndas_template_source",
                "Which node templates come from: 0 is [node], 1 the first [[node.backup]], ...; -1 none",
            ),
            node_blocks_total: counters(
                r,
                "ndas_node_blocks_total",
                "Each node's verdict on each found block",
                &["node", "outcome"],
            ),
            vardiff_retargets_total: counter(
                r,
                "ndas_vardiff_retargets_total",
                "Difficulty changes by vardiff",
            ),
            zmq_hashblocks_total: counters(
                r,
                "ndas_zmq_hashblocks_total",
                "hashblock announcements received over ZMQ",
                &["node"],
            ),
            zmq_up: gauges(
                r,
                "ndas_zmq_up",
                "1 while the node's ZMQ hashblock subscription is connected and announcing tips (0 when lost or silent)",
                &["node"],
            ),
            zmq_silent_total: counters(
                r,
                "ndas_zmq_silent_total",
                "Tip changes the node's ZMQ did not announce within the grace time",
                &["node"],
            ),
            notifications_total: counters(
                r,
                "ndas_notifications_total",
                "Notifications by target and outcome: sent, failed (after its retries), dropped (its queue was full)",
                &["target", "outcome"],
            ),
            bytes_received_total: counter(r, "ndas_bytes_received_total", "Bytes read from miners"),
            bytes_sent_total: counter(r, "ndas_bytes_sent_total", "Bytes written to miners"),
            registry,
        }
    }

    /// Creates the series of the node named `name` at zero. Node names come
    /// from the config, so the label is bounded.
    pub fn node(&self, name: &str) {
        self.node_up.with_label_values(&[name]).set(0);
        self.node_behind.with_label_values(&[name]).set(0);
        self.zmq_up.with_label_values(&[name]).set(0);
        self.zmq_silent_total.with_label_values(&[name]);
        self.zmq_hashblocks_total.with_label_values(&[name]);
        for outcome in ["accepted", "duplicate", "inconclusive", "rejected"] {
            self.node_blocks_total.with_label_values(&[name, outcome]);
        }
    }

    /// The series of the port named `name`, its labels created at zero the
    /// first time. Port names come from the config, so the label is bounded.
    pub fn port(&self, name: &str) -> PortMetrics {
        let mut ports = self.ports.lock_anyway();
        if let Some(port) = ports.iter().find(|port| &*port.name == name) {
            return port.clone();
        }
        let port = PortMetrics::new(self, name);
        ports.push(port.clone());
        port
    }

    /// `figure` summed over every port, read under the lock (no copy).
    fn sum<T: std::iter::Sum<T>>(&self, figure: impl Fn(&PortMetrics) -> T) -> T {
        let ports = self.ports.lock_anyway();
        ports.iter().map(figure).sum()
    }
}

/// Counts every node call; `error` is the failure's kind.
impl crate::node::rpc::ObserveRpc for Metrics {
    fn observe_rpc(&self, method: &str, error: Option<&'static str>, seconds: f64) {
        let ok = error.is_none();
        if let Some(kind) = error {
            self.rpc_errors_total.with_label_values(&[kind]).inc();
        }
        let method = RPC_METHODS
            .iter()
            .find(|m| **m == method)
            .copied()
            .unwrap_or("other");
        self.rpc_calls_total
            .with_label_values(&[method, if ok { "ok" } else { "error" }])
            .inc();
        self.rpc_seconds
            .with_label_values(&[method])
            .observe(seconds);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
