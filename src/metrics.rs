//! The Prometheus registry: every `ndas_*` metric, with bounded labels only.
//!
//! Per-worker figures never become labels; they are in the JSON API.

use std::sync::Mutex;

use prometheus::{
    CounterVec, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

mod blocks;
mod build;
mod events;
mod nodes;
mod payouts;
mod port;
mod read;
use build::{counter, counters, counters_of, gauge, gauges, histogram, latency_buckets, register};
use ndas_core::sync::LockAnyway;

pub use blocks::{BlockMetrics, SIBLING_OUTCOMES};
pub use nodes::NodeMetrics;
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
    /// Found blocks: journaled, submitted, settled, their siblings.
    pub blocks: BlockMetrics,
    /// The nodes: RPC calls, up and behind, ZMQ, verdicts on blocks.
    pub nodes: NodeMetrics,
    pub authorizes_total: IntCounter,
    /// `result` is `accepted` or `rejected`; `reason` is a [`ndas_core::share::Reject`] label or `none`.
    shares_total: IntCounterVec,
    /// Sum of accepted share difficulty: `rate(...) * 2^32` is the hashrate.
    accepted_difficulty_total: CounterVec,
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
    pub vardiff_retargets_total: IntCounter,
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
            blocks: BlockMetrics::new(r),
            nodes: NodeMetrics::new(r),
            authorizes_total: counter(r, "ndas_authorizes_total", "Workers authorized"),
            shares_total,
            accepted_difficulty_total,
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
            vardiff_retargets_total: counter(
                r,
                "ndas_vardiff_retargets_total",
                "Difficulty changes by vardiff",
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
        self.nodes.declare(name);
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
            self.nodes.rpc_errors_total.with_label_values(&[kind]).inc();
        }
        let method = nodes::RPC_METHODS
            .iter()
            .find(|m| **m == method)
            .copied()
            .unwrap_or("other");
        self.nodes
            .rpc_calls_total
            .with_label_values(&[method, if ok { "ok" } else { "error" }])
            .inc();
        self.nodes
            .rpc_seconds
            .with_label_values(&[method])
            .observe(seconds);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
