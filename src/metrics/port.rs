//! The connection and share families, labelled by `port` and the
//! `protocol` it speaks, and one stratum port's series in them, resolved
//! once per port so a share does no label lookup.

use std::sync::Arc;

use prometheus::{
    Counter, CounterVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use super::build::register;

/// The connection and share families, each labelled by `port` (a configured
/// port's name, so bounded); a port's series are created when it is
/// declared ([`super::Metrics::port`]).
pub(super) struct PortFamilies {
    /// `result` is `accepted` or `rejected`; `reason` is a
    /// [`ndas_core::share::Reject`] label or `none`.
    shares_total: IntCounterVec,
    /// `reason`: a `REFUSAL_REASONS` bound.
    connections_refused_total: IntCounterVec,
    /// `reason`: a [`ndas_core::closed::Closed`] label.
    disconnects_total: IntCounterVec,
    connections_total: IntCounterVec,
    connections: IntGaugeVec,
    /// Sum of accepted share difficulty: `rate(...) * 2^32` is the hashrate.
    accepted_difficulty_total: CounterVec,
}

impl PortFamilies {
    pub(super) fn new(r: &Registry) -> PortFamilies {
        let by_port = |name: &str, help: &str, labels: &[&str]| {
            let labels: Vec<&str> = ["port", "protocol"]
                .into_iter()
                .chain(labels.iter().copied())
                .collect();
            register(r, IntCounterVec::new(Opts::new(name, help), &labels))
        };
        PortFamilies {
            shares_total: by_port(
                "ndas_shares_total",
                "Shares judged, by port, result and reject reason",
                &["result", "reason"],
            ),
            connections_refused_total: by_port(
                "ndas_connections_refused_total",
                "Connections closed on arrival, by port and the bound they were over",
                &["reason"],
            ),
            disconnects_total: by_port(
                "ndas_disconnects_total",
                "Miner connections ended, by port and why",
                &["reason"],
            ),
            connections_total: by_port(
                "ndas_connections_total",
                "Miner connections accepted, by port",
                &[],
            ),
            connections: register(
                r,
                IntGaugeVec::new(
                    Opts::new("ndas_connections", "Miner connections open now, by port"),
                    &["port", "protocol"],
                ),
            ),
            accepted_difficulty_total: register(
                r,
                CounterVec::new(
                    Opts::new(
                        "ndas_accepted_difficulty_total",
                        "Sum of accepted share difficulty, by port",
                    ),
                    &["port", "protocol"],
                ),
            ),
        }
    }
}

/// A port's handles into the labelled families of [`super::Metrics`].
#[derive(Clone)]
pub struct PortMetrics {
    pub name: Arc<str>,
    /// Where its `protocol` label is in [`crate::config::PROTOCOLS`].
    pub protocol: usize,
    pub connections: IntGauge,
    pub connections_total: IntCounter,
    pub accepted: IntCounter,
    pub accepted_difficulty: Counter,
    /// `ndas_shares_total{result="rejected"}`, in the order of
    /// [`ndas_core::share::Reject::REASONS`].
    rejected: Vec<IntCounter>,
    /// `ndas_disconnects_total`, in the order of `DISCONNECT_REASONS`.
    disconnects: Vec<IntCounter>,
    /// `ndas_connections_refused_total`, in the order of `REFUSAL_REASONS`.
    refused: Vec<IntCounter>,
}

/// Where `reason` is in `reasons`; every label NDAS gives is listed (a
/// test holds it to that), so the fallback to the first is never taken.
fn index(reasons: &[&str], reason: &str) -> usize {
    let found = reasons.iter().position(|r| *r == reason);
    debug_assert!(found.is_some(), "{reason} is not a listed label");
    found.unwrap_or(0)
}

impl PortMetrics {
    pub(super) fn new(families: &PortFamilies, name: &str, protocol: usize) -> PortMetrics {
        let speaks = crate::config::PROTOCOLS[protocol];
        let each = |family: &prometheus::IntCounterVec, reasons: &[&str]| {
            reasons
                .iter()
                .map(|reason| family.with_label_values(&[name, speaks, reason]))
                .collect()
        };
        PortMetrics {
            name: name.into(),
            protocol,
            connections: families.connections.with_label_values(&[name, speaks]),
            connections_total: families
                .connections_total
                .with_label_values(&[name, speaks]),
            accepted: families
                .shares_total
                .with_label_values(&[name, speaks, "accepted", "none"]),
            accepted_difficulty: families
                .accepted_difficulty_total
                .with_label_values(&[name, speaks]),
            rejected: ndas_core::share::Reject::REASONS
                .iter()
                .map(|reason| {
                    families
                        .shares_total
                        .with_label_values(&[name, speaks, "rejected", reason])
                })
                .collect(),
            disconnects: each(&families.disconnects_total, super::DISCONNECT_REASONS),
            refused: each(&families.connections_refused_total, &super::REFUSAL_REASONS),
        }
    }

    /// The counter of shares rejected for `reason` (a `Reject` label).
    pub fn rejected(&self, reason: &str) -> &IntCounter {
        &self.rejected[index(ndas_core::share::Reject::REASONS, reason)]
    }

    /// Counts a connection ended for `reason` (a `Closed` label).
    pub fn disconnected(&self, reason: &str) {
        self.disconnects[index(super::DISCONNECT_REASONS, reason)].inc();
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

#[cfg(test)]
mod tests {
    use crate::metrics::Metrics;
    use ndas_core::closed::Closed;
    use ndas_core::share::Reject;

    #[test]
    fn every_label_ndas_gives_has_its_own_series() {
        let rejects = [
            Reject::Unauthorized,
            Reject::NotSubscribed,
            Reject::JobNotFound,
            Reject::Stale,
            Reject::Duplicate,
            Reject::LowDifficulty { achieved: 0.0 },
            Reject::Extranonce2Size { got: 1, want: 8 },
            Reject::NtimeTooOld,
            Reject::NtimeTooNew,
            Reject::NtimeOutsideBits,
            Reject::VersionBits,
        ];
        for reject in rejects {
            assert!(Reject::REASONS.contains(&reject.reason()), "{reject:?}");
        }
        let closes = [
            Closed::Eof,
            Closed::LineTooLong,
            Closed::Protocol,
            Closed::WriteStalled,
            Closed::HandshakeTimeout,
            Closed::Idle,
            Closed::Flood,
            Closed::InvalidShares,
            Closed::Shutdown,
        ];
        for closed in closes {
            assert!(super::super::DISCONNECT_REASONS.contains(&closed.label()));
        }
        let metrics = Metrics::new();
        let port = metrics.port("main", 0);
        port.rejected("stale").inc();
        port.disconnected("flood");
        port.refused("banned");
        assert_eq!(metrics.shares_rejected("stale"), 1);
        assert_eq!(metrics.shares_rejected("unauthorized"), 0);
        let text = metrics.render();
        assert!(text.contains(
            r#"ndas_disconnects_total{port="main",protocol="stratum",reason="flood"} 1"#
        ));
        assert!(text.contains(
            r#"ndas_connections_refused_total{port="main",protocol="stratum",reason="banned"} 1"#
        ));
    }
}
