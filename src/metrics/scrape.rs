//! The gauges `/metrics` sets just before it renders (see
//! `http::api::metrics`): the template's age, the worker registry's size and
//! the payout groups mined for now. The process collector (CPU, memory, open
//! files) is registered with them: it too is read at scrape.

use prometheus::{IntGauge, IntGaugeVec, Registry};

use super::build::{float_gauges, gauge, gauges, register};

/// Figures read when `/metrics` is scraped, not counted as they happen.
pub struct ScrapedGauges {
    pub template_age_seconds: prometheus::Gauge,
    /// Registered workers by `state` (`online`, `offline`).
    pub workers: IntGaugeVec,
    /// Workers with at least one connection.
    pub workers_connected: IntGauge,
    /// Workers kept in the registry, connected or not.
    pub workers_registered: IntGauge,
    /// Payout addresses with a coinbase of their own now.
    pub payout_groups: IntGauge,
    /// Per `[[route]]` (`node` or the upstream's name): its miners.
    pub route_miners: IntGaugeVec,
    /// Per route: its part of the weights, and of the accepted difficulty
    /// over 5 minutes.
    pub route_weight: prometheus::GaugeVec,
    pub route_share: prometheus::GaugeVec,
    /// The fleet history (`[history] database_url`): whether its last
    /// write or connect succeeded, what waits in its queue, what it lost.
    pub fleet_up: IntGauge,
    pub fleet_queued_batches: IntGauge,
    pub fleet_queued_bytes: IntGauge,
    pub fleet_dropped_rows_total: prometheus::IntCounter,
}

impl ScrapedGauges {
    pub(super) fn new(r: &Registry) -> ScrapedGauges {
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
            let _ = r.register(Box::new(process));
        }
        let workers = gauges(
            r,
            "ndas_workers",
            "Registered workers: online, or offline (no accepted share for stratum.offline_after_share_intervals of its expected share interval)",
            &["state"],
        );
        // Both states from the start, at zero.
        for state in ["online", "offline"] {
            workers.with_label_values(&[state]);
        }
        ScrapedGauges {
            template_age_seconds,
            workers,
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
            route_miners: gauges(
                r,
                "ndas_route_miners",
                "Miners on the [[route]] (node, or the upstream's name), as of its last plan",
                &["route"],
            ),
            route_weight: float_gauges(
                r,
                "ndas_route_weight",
                "The [[route]]'s part of the configured weights",
                &["route"],
            ),
            route_share: float_gauges(
                r,
                "ndas_route_share",
                "The [[route]]'s part of the routes' accepted difficulty over 5 minutes",
                &["route"],
            ),
            fleet_up: gauge(
                r,
                "ndas_history_fleet_up",
                "1 while the fleet history's database takes this replica's batches",
            ),
            fleet_queued_batches: gauge(
                r,
                "ndas_history_fleet_queued_batches",
                "Fleet history batches waiting in data_dir for the database",
            ),
            fleet_queued_bytes: gauge(
                r,
                "ndas_history_fleet_queued_bytes",
                "Bytes of fleet history batches waiting in data_dir (bounded by history.queue_max_bytes)",
            ),
            fleet_dropped_rows_total: register(
                r,
                prometheus::IntCounter::new(
                    "ndas_history_fleet_dropped_rows_total",
                    "Fleet history rows lost: the queue was full, or a batch could not be read or written",
                ),
            ),
        }
    }
}

impl ScrapedGauges {
    /// Every series of route `name` (`node` or an upstream's), at zero
    /// until the first scrape after its first plan.
    pub fn route_configured(&self, name: &str) {
        self.route_miners.with_label_values(&[name]).set(0);
        self.route_weight.with_label_values(&[name]).set(0.0);
        self.route_share.with_label_values(&[name]).set(0.0);
    }
}
