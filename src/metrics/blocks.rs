//! The series of found blocks: found, journaled, submitted, settled, and the
//! siblings kept in case the first on their parent is rejected.

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::build::{counter, counters, gauge, histogram, register};

/// `ndas_block_siblings_total`'s outcomes (see [`BlockMetrics::siblings_total`]).
pub const SIBLING_OUTCOMES: [&str; 5] = [
    "kept",
    "dropped_full",
    "dropped_superseded",
    "discarded",
    "submitted",
];

/// `ndas_blocks_total`'s outcomes.
const VERDICTS: [&str; 4] = ["accepted", "duplicate", "inconclusive", "rejected"];

/// Every found block's series.
#[derive(Clone)]
pub struct BlockMetrics {
    pub found_total: IntCounter,
    pub submitted_total: IntCounter,
    /// Found blocks the journal could not make durable (a full or failing
    /// disk): submitted anyway, their hex in the error log line.
    pub unjournaled_total: IntCounter,
    /// Blocks found after the first on their parent (`blocks::triage`), by
    /// `outcome`: `kept`, `dropped_full` (a bound reached), `dropped_superseded`
    /// (a block on the parent was taken), `discarded` (kept, then a block on
    /// the parent was taken), `submitted` (the block before was rejected).
    pub siblings_total: IntCounterVec,
    /// Siblings kept now (journaled, not submitted), and what they hold.
    pub siblings_kept: IntGauge,
    pub siblings_kept_bytes: IntGauge,
    /// From reading the block's share to its first `submitblock` call.
    pub submit_delay_seconds: Histogram,
    /// Writing found blocks to the journal and flushing it, per flush.
    pub journal_seconds: Histogram,
    /// Blocks settled, by the nodes' verdict: `accepted`, `duplicate`,
    /// `inconclusive`, `rejected`.
    pub settled_total: IntCounterVec,
}

impl BlockMetrics {
    pub(super) fn new(r: &Registry) -> BlockMetrics {
        let settled_total = register(
            r,
            IntCounterVec::new(
                Opts::new("ndas_blocks_total", "Blocks settled, by the node's verdict"),
                &["outcome"],
            ),
        );
        let siblings_total = counters(
            r,
            "ndas_block_siblings_total",
            "Blocks found after the first on their parent, by what became of them",
            &["outcome"],
        );
        // Every labelled series exists from the start, at zero.
        for outcome in VERDICTS {
            settled_total.with_label_values(&[outcome]);
        }
        for outcome in SIBLING_OUTCOMES {
            siblings_total.with_label_values(&[outcome]);
        }
        BlockMetrics {
            found_total: counter(
                r,
                "ndas_blocks_found_total",
                "Shares that met the network target",
            ),
            submitted_total: counter(
                r,
                "ndas_blocks_submitted_total",
                "submitblock calls made",
            ),
            unjournaled_total: counter(
                r,
                "ndas_blocks_unjournaled_total",
                "Found blocks the journal could not make durable (full or failing disk), submitted anyway",
            ),
            siblings_total,
            siblings_kept: gauge(
                r,
                "ndas_block_siblings_kept",
                "Blocks kept (journaled, not submitted) until their parent's first block is judged",
            ),
            siblings_kept_bytes: gauge(
                r,
                "ndas_block_siblings_kept_bytes",
                "What the kept blocks hold in memory and in the journal (blocks.max_kept_bytes bounds it)",
            ),
            journal_seconds: histogram(
                r,
                "ndas_block_journal_seconds",
                "Writing found blocks to the journal and flushing it to disk, per flush",
                vec![
                    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01,
                    0.025, 0.1, 1.0,
                ],
            ),
            submit_delay_seconds: histogram(
                r,
                "ndas_block_submit_delay_seconds",
                "From reading a block's share to its first submitblock call",
                vec![
                    0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075,
                    0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
                ],
            ),
            settled_total,
        }
    }
}
