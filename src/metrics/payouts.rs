//! The series of `username` mode's payout groups and of parked sessions:
//! what a squatter, a churner or a customer's typo shows up as. No label
//! names an address or a worker; `reason` is one of four fixed values.

use prometheus::{IntCounter, IntCounterVec, IntGauge, Registry};

use super::build::{counter, counters, gauge};

/// Refusals and fallbacks at authorize, and the parked sessions' memory.
#[derive(Clone)]
pub struct PayoutMetrics {
    /// Authorizes refused by `reason`: a payout group bound, or a name
    /// that is not an address ([`ndas_core::work::groups::JoinError::LABELS`]).
    pub refusals_total: IntCounterVec,
    /// Authorizes that mine for the fallback address (`username_fallback`).
    pub fallbacks_total: IntCounter,
    /// Ended sessions kept for their miner's return.
    pub parked_sessions: IntGauge,
    /// About what their jobs hold, each once (`stratum.resume_max_bytes`).
    pub parked_bytes: IntGauge,
}

impl PayoutMetrics {
    pub(super) fn new(r: &Registry) -> PayoutMetrics {
        let refusals_total = counters(
            r,
            "ndas_payout_refusals_total",
            "Authorizes refused in username mode, by reason: a payout group bound (max_payout_groups, waiting_for_a_share, max_new_payout_groups_per_ip) or not_an_address",
            &["reason"],
        );
        // Every reason from the start, at 0, for alerts on `increase()`.
        for reason in ndas_core::work::groups::JoinError::LABELS {
            refusals_total.with_label_values(&[reason]);
        }
        PayoutMetrics {
            refusals_total,
            fallbacks_total: counter(
                r,
                "ndas_payout_fallbacks_total",
                "Workers authorized to mine for the fallback address because their name is not an address the pool can pay",
            ),
            parked_sessions: gauge(
                r,
                "ndas_parked_sessions",
                "Ended sessions kept for their miner's return (stratum.resume_seconds)",
            ),
            parked_bytes: gauge(
                r,
                "ndas_parked_bytes",
                "About the memory parked sessions' jobs hold, each job once, at most stratum.resume_max_bytes",
            ),
        }
    }
}
