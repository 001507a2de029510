//! One stratum port's series: the `port` label of the connection and share
//! metrics, resolved once per port so a share does no label lookup.

use std::sync::Arc;

use prometheus::{Counter, IntCounter, IntGauge};

use super::Metrics;

/// A port's handles into the labelled families of [`Metrics`].
#[derive(Clone)]
pub struct PortMetrics {
    pub name: Arc<str>,
    pub connections: IntGauge,
    pub connections_total: IntCounter,
    pub accepted: IntCounter,
    pub accepted_difficulty: Counter,
    /// `ndas_shares_total{result="rejected"}`, in the order of
    /// [`crate::session::share::Reject::REASONS`].
    rejected: Vec<IntCounter>,
    /// `ndas_disconnects_total`, in the order of `DISCONNECT_REASONS`.
    disconnects: Vec<IntCounter>,
    /// `ndas_connections_refused_total`, in the order of `REFUSAL_REASONS`.
    refused: Vec<IntCounter>,
}

fn index(reasons: &[&str], reason: &str) -> usize {
    reasons.iter().position(|r| *r == reason).unwrap_or(0)
}

impl PortMetrics {
    pub(super) fn new(metrics: &Metrics, name: &str) -> PortMetrics {
        let each = |family: &prometheus::IntCounterVec, reasons: &[&str]| {
            reasons
                .iter()
                .map(|reason| family.with_label_values(&[name, reason]))
                .collect()
        };
        PortMetrics {
            name: name.into(),
            connections: metrics.connections.with_label_values(&[name]),
            connections_total: metrics.connections_total.with_label_values(&[name]),
            accepted: metrics
                .shares_total
                .with_label_values(&[name, "accepted", "none"]),
            accepted_difficulty: metrics.accepted_difficulty_total.with_label_values(&[name]),
            rejected: crate::session::share::Reject::REASONS
                .iter()
                .map(|reason| {
                    metrics
                        .shares_total
                        .with_label_values(&[name, "rejected", reason])
                })
                .collect(),
            disconnects: each(&metrics.disconnects_total, &super::DISCONNECT_REASONS),
            refused: each(&metrics.connections_refused_total, &super::REFUSAL_REASONS),
        }
    }

    /// The counter of shares rejected for `reason` (a `Reject` label).
    pub fn rejected(&self, reason: &str) -> &IntCounter {
        &self.rejected[index(crate::session::share::Reject::REASONS, reason)]
    }

    /// Counts a connection ended for `reason` (a `Closed` label).
    pub fn disconnected(&self, reason: &str) {
        self.disconnects[index(&super::DISCONNECT_REASONS, reason)].inc();
    }

    /// Counts a connection refused for being over `bound`.
    pub fn refused(&self, bound: &str) {
        self.refused[index(&super::REFUSAL_REASONS, bound)].inc();
    }

    /// Shares rejected for any reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(IntCounter::get).sum()
    }
}
