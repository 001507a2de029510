//! The series of the upstream pools (`[[upstream]]`): whether each takes
//! NDAS, its difficulty, and why it failed. `upstream` labels are config
//! names, so bounded.

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::build::{counters, float_gauges, gauges, register};

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
    /// Per upstream: miners' shares by `verdict`: `accepted` and
    /// `rejected` (the pool's answer), `unanswered`, `not_sent` (the
    /// connection refused it: stale, version bits outside the pool's
    /// mask, too many in flight), `dropped` (the connection was gone or
    /// its queue full).
    pub shares_total: IntCounterVec,
    /// Per upstream: the difficulty the pool accepted.
    pub accepted_difficulty_total: prometheus::CounterVec,
    /// Per upstream: 1 while miners mine its jobs (no node serves).
    pub mining: IntGaugeVec,
    /// Per upstream: its ready connections.
    pub connections: IntGaugeVec,
    /// Per upstream: NDAS's miners on its jobs.
    pub miners: IntGaugeVec,
    /// The configured names, for [`UpstreamMetrics::mining_on`].
    names: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Every `verdict` of `ndas_upstream_shares_total`.
pub const SHARE_VERDICTS: [&str; 5] = ["accepted", "rejected", "unanswered", "not_sent", "dropped"];

impl UpstreamMetrics {
    pub(super) fn new(r: &Registry) -> UpstreamMetrics {
        UpstreamMetrics {
            up_gauge: gauges(
                r,
                "ndas_upstream_up",
                "1 while the upstream pool has NDAS subscribed and authorized",
                &["upstream"],
            ),
            difficulty: float_gauges(
                r,
                "ndas_upstream_difficulty",
                "The upstream pool's share difficulty for NDAS",
                &["upstream"],
            ),
            failures_total: counters(
                r,
                "ndas_upstream_failures_total",
                "Upstream connections that ended, by state: refused (the pool cannot be used: its account, an extranonce2 too small, its protocol) or down (unreachable or gone)",
                &["upstream", "state"],
            ),
            shares_total: counters(
                r,
                "ndas_upstream_shares_total",
                "Miners' shares for the upstream pool, by verdict: accepted or rejected by the pool, unanswered, not_sent (stale, version bits outside its mask, too many in flight), dropped (its connection gone or its queue full)",
                &["upstream", "verdict"],
            ),
            accepted_difficulty_total: register(
                r,
                prometheus::CounterVec::new(
                    Opts::new(
                        "ndas_upstream_accepted_difficulty_total",
                        "Difficulty of the shares the upstream pool accepted (its rate is the hashrate it credits)",
                    ),
                    &["upstream"],
                ),
            ),
            mining: gauges(
                r,
                "ndas_upstream_mining",
                "1 while miners mine the upstream pool's jobs because no node serves",
                &["upstream"],
            ),
            connections: gauges(
                r,
                "ndas_upstream_connections",
                "The upstream pool's ready connections: one per miners_per_connection miners on its jobs, one while none is",
                &["upstream"],
            ),
            miners: gauges(
                r,
                "ndas_upstream_miners",
                "NDAS's miners on the upstream pool's jobs",
                &["upstream"],
            ),
            names: Default::default(),
        }
    }

    /// Which upstream miners mine on now, if any: 1 for it, 0 for the rest.
    pub fn mining_on(&self, upstream: Option<&str>) {
        use ndas_core::sync::LockAnyway;
        for name in self.names.lock_anyway().iter() {
            let on = upstream == Some(name.as_str());
            self.mining.with_label_values(&[name]).set(i64::from(on));
        }
    }

    /// Every series of `name`, at zero: alerts and rates work from the start.
    pub fn configured(&self, name: &str) {
        self.up_gauge.with_label_values(&[name]).set(0);
        for state in ["refused", "down"] {
            self.failures_total.with_label_values(&[name, state]);
        }
        for verdict in SHARE_VERDICTS {
            self.shares_total.with_label_values(&[name, verdict]);
        }
        self.accepted_difficulty_total.with_label_values(&[name]);
        self.mining.with_label_values(&[name]).set(0);
        self.connections.with_label_values(&[name]).set(0);
        self.miners.with_label_values(&[name]).set(0);
        use ndas_core::sync::LockAnyway;
        self.names.lock_anyway().push(name.to_owned());
    }

    pub fn up(&self, name: &str, up: bool) {
        self.up_gauge.with_label_values(&[name]).set(i64::from(up));
    }

    pub fn failed(&self, name: &str, state: &str) {
        self.failures_total.with_label_values(&[name, state]).inc();
    }

    pub fn share(&self, name: &str, verdict: &str) {
        self.shares_total.with_label_values(&[name, verdict]).inc();
    }

    pub fn difficulty(&self, name: &str, difficulty: f64) {
        self.difficulty.with_label_values(&[name]).set(difficulty);
    }
}
