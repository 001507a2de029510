//! The series of the upstream pools (`[[upstream]]`): whether each takes
//! NDAS, its difficulty, and why it failed. `upstream` labels are config
//! names, so bounded.

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::build::{counters, gauges, register};

/// Every upstream's series.
#[derive(Clone)]
pub struct UpstreamMetrics {
    /// Per upstream: 1 while subscribed and authorized.
    pub up_gauge: IntGaugeVec,
    /// Per upstream: the pool's share difficulty for NDAS.
    pub difficulty: GaugeVec,
    /// Per upstream: connections that ended, by `state`: `refused` (the
    /// pool cannot be used) or `down` (unreachable, or gone).
    pub failures_total: IntCounterVec,
}

impl UpstreamMetrics {
    pub(super) fn new(r: &Registry) -> UpstreamMetrics {
        UpstreamMetrics {
            up_gauge: gauges(
                r,
                "ndas_upstream_up",
                "1 while the upstream pool has NDAS subscribed and authorized",
                &["upstream"],
            ),
            difficulty: register(
                r,
                GaugeVec::new(
                    Opts::new(
                        "ndas_upstream_difficulty",
                        "The upstream pool's share difficulty for NDAS",
                    ),
                    &["upstream"],
                ),
            ),
            failures_total: counters(
                r,
                "ndas_upstream_failures_total",
                "Upstream connections that ended, by state: refused (the pool cannot be used: its account, an extranonce2 too small, its protocol) or down (unreachable or gone)",
                &["upstream", "state"],
            ),
        }
    }

    /// Every series of `name`, at zero: alerts and rates work from the start.
    pub fn configured(&self, name: &str) {
        self.up_gauge.with_label_values(&[name]).set(0);
        for state in ["refused", "down"] {
            self.failures_total.with_label_values(&[name, state]);
        }
    }

    pub fn up(&self, name: &str, up: bool) {
        self.up_gauge.with_label_values(&[name]).set(i64::from(up));
    }

    pub fn failed(&self, name: &str, state: &str) {
        self.failures_total.with_label_values(&[name, state]).inc();
    }

    pub fn difficulty(&self, name: &str, difficulty: f64) {
        self.difficulty.with_label_values(&[name]).set(difficulty);
    }
}
