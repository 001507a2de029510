//! The series of the nodes: their RPC calls, whether each answers and keeps
//! up, which one serves templates, their verdicts on found blocks, and their
//! ZMQ subscriptions. `node` labels are config names, so bounded.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use super::build::{counters, gauge, gauges, latency_buckets, register};

/// RPC methods named in labels; any other is counted as `other`.
pub(super) const RPC_METHODS: &[&str] = &["getblocktemplate", "getbestblockhash", "submitblock"];

/// `ndas_node_blocks_total`'s outcomes.
const VERDICTS: [&str; 4] = ["accepted", "duplicate", "inconclusive", "rejected"];

/// Every node's series.
#[derive(Clone)]
pub struct NodeMetrics {
    pub rpc_calls_total: IntCounterVec,
    pub rpc_seconds: HistogramVec,
    /// Failed node calls by what went wrong (see [`crate::node::RpcError::kind`]).
    pub rpc_errors_total: IntCounterVec,
    /// Per node (its config name): 1 while it answers.
    pub up: IntGaugeVec,
    /// Per node: 1 while its tip has trailed the best for a while.
    pub behind: IntGaugeVec,
    /// Which node templates come from: its place in the config (0 is
    /// `[node]`, 1 the first backup), -1 none.
    pub template_source: IntGauge,
    /// Each node's verdict on each found block, by node and outcome.
    pub blocks_total: IntCounterVec,
    pub zmq_hashblocks_total: IntCounterVec,
    /// Per node: 1 while its ZMQ subscription is connected and announcing tips.
    pub zmq_up: IntGaugeVec,
    /// Per node: tips its ZMQ did not announce, each one a resubscription.
    pub zmq_silent_total: IntCounterVec,
}

impl NodeMetrics {
    pub(super) fn new(r: &Registry) -> NodeMetrics {
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
        // Every labelled series exists from the start, at zero, so rates
        // work at once (a node's, when it is declared: `Metrics::node`).
        for method in RPC_METHODS.iter().chain(&["other"]) {
            rpc_calls_total.with_label_values(&[method, "ok"]);
            rpc_calls_total.with_label_values(&[method, "error"]);
            rpc_seconds.with_label_values(&[method]);
        }
        for kind in crate::node::RpcError::KINDS {
            rpc_errors_total.with_label_values(&[kind]);
        }
        NodeMetrics {
            rpc_calls_total,
            rpc_seconds,
            rpc_errors_total,
            up: gauges(r, "ndas_node_up", "1 while the node answers", &["node"]),
            behind: gauges(
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
            blocks_total: counters(
                r,
                "ndas_node_blocks_total",
                "Each node's verdict on each found block",
                &["node", "outcome"],
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
        }
    }

    /// Creates the series of the node named `name` at zero.
    pub(super) fn declare(&self, name: &str) {
        self.up.with_label_values(&[name]).set(0);
        self.behind.with_label_values(&[name]).set(0);
        self.zmq_up.with_label_values(&[name]).set(0);
        self.zmq_silent_total.with_label_values(&[name]);
        self.zmq_hashblocks_total.with_label_values(&[name]);
        for outcome in VERDICTS {
            self.blocks_total.with_label_values(&[name, outcome]);
        }
    }
}
