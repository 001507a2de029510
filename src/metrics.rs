//! The Prometheus registry: every `ndas_*` metric, with bounded labels only.
//!
//! Per-worker figures never become labels; they are in the JSON API.

use std::sync::Mutex;

use prometheus::{IntCounter, IntCounterVec, Registry};

mod blocks;
mod build;
mod events;
mod nodes;
mod payouts;
mod port;
mod read;
mod scrape;
mod templates;
mod upstreams;
use build::{counter, counters};
use ndas_core::sync::LockAnyway;
use port::PortFamilies;

pub use blocks::{BlockMetrics, SIBLING_OUTCOMES};
pub use nodes::NodeMetrics;
pub use payouts::PayoutMetrics;
pub use port::PortMetrics;
pub use scrape::ScrapedGauges;
pub use templates::TemplateMetrics;

/// Every `reason` of `ndas_disconnects_total`.
const DISCONNECT_REASONS: &[&str] = ndas_core::closed::Closed::REASONS;
/// Every `reason` of `ndas_connections_refused_total`.
const REFUSAL_REASONS: [&str; 6] = [
    "max_connections",
    "max_connections_per_ip",
    "max_handshaking",
    "banned",
    "max_accepts_per_second",
    "no_node",
];

/// Every metric NDAS exports.
pub struct Metrics {
    registry: Registry,
    /// The ports' resolved series (see [`Metrics::port`]), for totals.
    ports: Mutex<Vec<PortMetrics>>,
    /// The connection and share families, by `port`.
    by_port: PortFamilies,
    /// The template's age and the workers' and payout groups' counts, set
    /// at scrape.
    pub scraped: ScrapedGauges,
    /// Disconnected workers dropped from a full registry to make room.
    pub workers_evicted_total: IntCounter,
    /// Names not kept because the registry was full of connected workers.
    pub workers_refused_total: IntCounter,
    pub subscribes_total: IntCounter,
    /// Subscribes that took back a recent session's extranonce1 and jobs.
    pub sessions_resumed_total: IntCounter,
    /// Stratum V2 channels not opened, by `reason` (an
    /// [`ndas_core::sv2::OpenRefusal`] code).
    pub channel_refusals_total: IntCounterVec,
    /// Payout group refusals and fallbacks, and the parked sessions.
    pub payouts: PayoutMetrics,
    /// Found blocks: journaled, submitted, settled, their siblings.
    pub blocks: BlockMetrics,
    /// The nodes: RPC calls, up and behind, ZMQ, verdicts on blocks.
    pub nodes: NodeMetrics,
    /// The upstream pools: up, difficulty, failures.
    pub upstreams: upstreams::UpstreamMetrics,
    pub authorizes_total: IntCounter,
    /// Templates: fetched, held, over the coinbase's limits, and a new
    /// tip's time to the miners.
    pub templates: TemplateMetrics,
    pub vardiff_retargets_total: IntCounter,
    /// Notifications by target (its config name) and outcome.
    pub notifications_total: IntCounterVec,
    pub bytes_received_total: IntCounter,
    pub bytes_sent_total: IntCounter,
}

/// `ndas_channel_refusals_total`, every reason at 0 from the start.
fn channel_refusals(r: &Registry) -> IntCounterVec {
    let refusals = counters(
        r,
        "ndas_channel_refusals_total",
        "Stratum V2 mining channels not opened, by the code the client was sent",
        &["reason"],
    );
    for reason in ndas_core::sv2::OpenRefusal::CODES {
        refusals.with_label_values(&[reason]);
    }
    refusals
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let by_port = PortFamilies::new(r);
        let scraped = ScrapedGauges::new(r);
        Metrics {
            ports: Mutex::new(Vec::new()),
            by_port,
            scraped,
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
            channel_refusals_total: channel_refusals(r),
            payouts: PayoutMetrics::new(r),
            blocks: BlockMetrics::new(r),
            nodes: NodeMetrics::new(r),
            upstreams: upstreams::UpstreamMetrics::new(r),
            authorizes_total: counter(r, "ndas_authorizes_total", "Workers authorized"),
            templates: TemplateMetrics::new(r),
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

    /// The series of the port named `name`, speaking `protocol` (where it is
    /// in [`crate::config::PROTOCOLS`]), its labels created at zero the
    /// first time. Port names come from the config, so the label is bounded.
    pub fn port(&self, name: &str, protocol: usize) -> PortMetrics {
        let mut ports = self.ports.lock_anyway();
        let same = |port: &&PortMetrics| &*port.name == name && port.protocol == protocol;
        if let Some(port) = ports.iter().find(same) {
            return port.clone();
        }
        let port = PortMetrics::new(&self.by_port, name, protocol);
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
