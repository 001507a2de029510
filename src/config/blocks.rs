//! `[blocks]`: how much a flood of found blocks may hold, and how long
//! shutdown may take.

use serde::{Deserialize, Serialize};

use super::ConfigIssue;

/// Siblings (later blocks found on one parent) kept in all, whatever their
/// size: the triage of found blocks holds them to it, and so it is the most
/// `blocks.siblings_per_parent` may be.
pub const MAX_KEPT_BLOCKS: usize = 4096;

/// Bounds on found blocks waiting for their parent's first block's verdict
/// (see `blocks::triage`), and the shutdown's grace period.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BlocksConfig {
    /// Later blocks on one parent kept (journaled, not submitted) in case
    /// the first is rejected. 0 keeps none.
    pub siblings_per_parent: usize,
    /// What the kept blocks may hold in all, in memory and in the journal
    /// (their heads: their template's transactions are shared).
    pub max_kept_bytes: u64,
    /// From SIGTERM to exit at most, whatever is pending (it stays in the
    /// journal for the next start). Below Kubernetes' default 30 s.
    pub shutdown_grace_seconds: f64,
}

impl Default for BlocksConfig {
    fn default() -> Self {
        BlocksConfig {
            siblings_per_parent: 16,
            max_kept_bytes: 64 << 20,
            shutdown_grace_seconds: 20.0,
        }
    }
}

impl BlocksConfig {
    /// The values that cannot work, each with its key.
    pub(crate) fn issues(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.siblings_per_parent > MAX_KEPT_BLOCKS {
            issues.push(ConfigIssue {
                key: "blocks.siblings_per_parent".into(),
                why: format!("{} is above {MAX_KEPT_BLOCKS}", self.siblings_per_parent),
            });
        }
        if self.max_kept_bytes > 1 << 40 {
            issues.push(ConfigIssue {
                key: "blocks.max_kept_bytes".into(),
                why: format!("{} is above 1 TiB", self.max_kept_bytes),
            });
        }
        let grace = self.shutdown_grace_seconds;
        if !(grace.is_finite() && (1.0..=3600.0).contains(&grace)) {
            issues.push(ConfigIssue {
                key: "blocks.shutdown_grace_seconds".into(),
                why: format!("{grace} is outside 1..=3600"),
            });
        }
        issues
    }

    /// The shutdown's grace period.
    pub fn grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.shutdown_grace_seconds)
    }
}
