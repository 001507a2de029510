//! The series of templates and of a new tip's way to the miners: fetching a
//! template, what it holds, the ones the coinbase did not fit, and the time
//! from a tip to its job and from a job to each connection.

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

use super::build::{counter, counters_of, gauge, histogram, latency_buckets};

/// Every template's and new tip's series.
pub struct TemplateMetrics {
    /// `getblocktemplate`'s round trip and the template's validation.
    pub fetch_seconds: Histogram,
    pub height: IntGauge,
    pub transactions: IntGauge,
    /// Templates the largest coinbase did not fit, by what was done:
    /// `trimmed` (last transactions left out) or `refused`.
    pub over_limits_total: IntCounterVec,
    /// From noticing a new tip to the new job being handed to connections.
    pub tip_to_job_seconds: Histogram,
    /// From a job's creation to its notify written to one connection.
    pub notify_delay_seconds: Histogram,
    /// 1 while miners' work is withdrawn (no node served for
    /// `mining.failover_after_seconds`).
    pub work_withdrawn: IntGauge,
    pub withdrawals_total: IntCounter,
}

impl TemplateMetrics {
    pub(super) fn new(r: &Registry) -> TemplateMetrics {
        TemplateMetrics {
            fetch_seconds: histogram(
                r,
                "ndas_template_fetch_seconds",
                "getblocktemplate round trip and validation",
                latency_buckets(),
            ),
            height: gauge(r, "ndas_template_height", "Height of the current template"),
            transactions: gauge(
                r,
                "ndas_template_transactions",
                "Transactions in the current template",
            ),
            over_limits_total: counters_of(
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
            work_withdrawn: gauge(
                r,
                "ndas_work_withdrawn",
                "1 while no node has served for mining.failover_after_seconds: miners are closed and new ones refused (mining.when_no_node = disconnect)",
            ),
            withdrawals_total: counter(
                r,
                "ndas_work_withdrawals_total",
                "Times miners' work was withdrawn for want of a node",
            ),
        }
    }
}
