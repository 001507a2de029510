//! `[mining]`: who the coinbase pays, and what else goes in it.

use serde::{Deserialize, Serialize};

use super::{ConfigIssue, WhenNoNode};
use ndas_core::chain::Network;
use ndas_core::work::payout::{
    coinbase_weight_budget, worst_case_weight, Payout, Split, BASIS_POINTS, LONGEST_PAYOUT_SCRIPT,
    MIN_BLOCK_RESERVED_WEIGHT,
};

/// The most payout groups `mining.max_payout_groups` may allow: a new tip
/// builds one job per group (and as many again for groups waiting for a
/// first share), about 2.3 µs each on the 3,500-transaction template
/// (BENCHMARKS.md: 10,000 groups in 23 ms, about 30 MB of jobs), so the
/// last group hears of a tip within tens of milliseconds.
pub const MAX_PAYOUT_GROUPS: usize = 10_000;

/// Sigop cost Bitcoin Core's templates leave for the coinbase's outputs
/// (`DEFAULT_COINBASE_OUTPUT_MAX_ADDITIONAL_SIGOPS`).
const COINBASE_SIGOPS: usize = 400;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiningConfig {
    /// Paid what the splits leave: in `fixed` mode always, in `username`
    /// mode for a username that is not an address when `username_fallback`.
    pub payout_address: String,
    /// `fixed`: every block pays `payout_address`. `username`: a block pays
    /// the address its miner's username starts with (solo mining for
    /// hosted machines, as ckpool's btcsolo and public-pool do).
    pub payout_mode: PayoutMode,
    /// In `username` mode, a username that is not an address of `network`
    /// mines for `payout_address` instead of being refused.
    pub username_fallback: bool,
    /// Coinbases built at once per template, one per address with miners
    /// on it that had an accepted share: an authorize that would add another
    /// is refused. As many again may wait for their first share.
    pub max_payout_groups: usize,
    /// New addresses (no accepted share yet) one source address may have
    /// mined for at once: authorizing an address costs nothing, so without
    /// it one host could hold every group and shut new customers out.
    pub max_new_payout_groups_per_ip: usize,
    /// Parts of every block's reward paid first (an operator fee, a donation).
    pub split: Vec<SplitConfig>,
    /// The node's `-blockreservedweight` (Core's default 8000): its
    /// templates leave this much for the header and the coinbase, and the
    /// largest coinbase these settings can build must fit.
    pub block_reserved_weight: usize,
    pub coinbase_tag: String,
    /// How often to pick up new transactions without a new block.
    pub job_refresh_seconds: u64,
    /// What miners get when no node has served a template for
    /// `failover_after_seconds`; none: `upstream` when an upstream pool is
    /// configured, `disconnect` otherwise ([`super::Config::when_no_node`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_no_node: Option<WhenNoNode>,
    /// How long no node may serve before `when_no_node` acts: a node's
    /// restart should not scatter the farm, and minutes of hashing on a
    /// job that may be stale must not happen.
    pub failover_after_seconds: u64,
    /// `host:port` miners closed for want of a node are told to go to
    /// (`client.reconnect`, SV2's `Reconnect`); none: closed only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_to: Option<String>,
}

/// Whose address the coinbase pays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutMode {
    Fixed,
    Username,
}

/// One `[[mining.split]]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    pub address: String,
    /// Out of 10,000: 150 is 1.5 %.
    pub basis_points: u32,
}

impl Default for MiningConfig {
    fn default() -> Self {
        MiningConfig {
            payout_address: String::new(),
            payout_mode: PayoutMode::Fixed,
            username_fallback: false,
            max_payout_groups: 1000,
            max_new_payout_groups_per_ip: 16,
            split: Vec::new(),
            block_reserved_weight: 8000,
            coinbase_tag: "/NDAS/".into(),
            job_refresh_seconds: 30,
            when_no_node: None,
            failover_after_seconds: 60,
            reconnect_to: None,
        }
    }
}

impl MiningConfig {
    /// The address paid when a miner's own is not: always in `fixed` mode,
    /// only with `username_fallback` in `username` mode.
    pub fn fixed_payout(&self, network: Network) -> Option<Payout> {
        let wanted = self.payout_mode == PayoutMode::Fixed || self.username_fallback;
        wanted
            .then(|| Payout::parse(&self.payout_address, network).ok())
            .flatten()
    }

    /// The splits, parsed; those that do not parse are reported by `issues`.
    pub fn splits(&self, network: Network) -> Vec<Split> {
        self.split
            .iter()
            .filter_map(|split| {
                Some(Split {
                    payout: Payout::parse(&split.address, network).ok()?,
                    basis_points: split.basis_points,
                })
            })
            .collect()
    }

    /// What cannot work in every job's coinbase tag, which shares the
    /// coinbase's script with an `extranonce2_size`-byte extranonce2, and
    /// in how often jobs are refreshed.
    pub(super) fn job_issues(&self, extranonce2_size: usize) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        // Saturating: a huge extranonce2_size is reported with `[stratum]`,
        // not a panic.
        let tag_room = (ndas_core::chain::coinbase::MAX_SCRIPT_SIG_LEN - 5 - 1 - 4 - 2)
            .saturating_sub(extranonce2_size);
        if self.coinbase_tag.len() > tag_room {
            issues.push(ConfigIssue {
                key: "mining.coinbase_tag".into(),
                why: format!(
                    "{} bytes; at most {tag_room} fit the coinbase",
                    self.coinbase_tag.len()
                ),
            });
        }
        if !(1..=3600).contains(&self.job_refresh_seconds) {
            issues.push(ConfigIssue {
                key: "mining.job_refresh_seconds".into(),
                why: format!("{} is outside 1..=3600", self.job_refresh_seconds),
            });
        }
        issues
    }

    pub(super) fn issues(&self, network: Network, extranonce_len: usize) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let mut issue = |key: &str, why: String| {
            issues.push(ConfigIssue {
                key: key.into(),
                why,
            })
        };
        let needed = match self.payout_mode {
            PayoutMode::Fixed => Some("the address the coinbase pays"),
            PayoutMode::Username if self.username_fallback => {
                Some("mining.username_fallback pays it to usernames that are not addresses")
            }
            PayoutMode::Username => None,
        };
        let main = Payout::parse(&self.payout_address, network);
        match &main {
            _ if self.payout_address.is_empty() => {
                if let Some(why) = needed {
                    issue("mining.payout_address", format!("is required: {why}"));
                }
            }
            Err(e) => issue("mining.payout_address", e.to_string()),
            Ok(_) => {}
        }
        // In `username` mode the main output may be any kind of address.
        let main = main.ok().filter(|_| self.payout_mode == PayoutMode::Fixed);
        let splits = self.splits(network);
        if !(1..=MAX_PAYOUT_GROUPS).contains(&self.max_payout_groups) {
            issue(
                "mining.max_payout_groups",
                format!(
                    "{} is outside 1..={MAX_PAYOUT_GROUPS} (every new tip builds a job per group)",
                    self.max_payout_groups
                ),
            );
        }
        if !(1..=100_000).contains(&self.max_new_payout_groups_per_ip) {
            issue(
                "mining.max_new_payout_groups_per_ip",
                format!(
                    "{} is outside 1..=100000",
                    self.max_new_payout_groups_per_ip
                ),
            );
        }
        if !(MIN_BLOCK_RESERVED_WEIGHT..=400_000).contains(&self.block_reserved_weight) {
            issue(
                "mining.block_reserved_weight",
                format!(
                    "{} is outside {MIN_BLOCK_RESERVED_WEIGHT}..=400000 (Bitcoin Core's own bounds start at {MIN_BLOCK_RESERVED_WEIGHT})",
                    self.block_reserved_weight
                ),
            );
        }
        for (index, split) in self.split.iter().enumerate() {
            if let Err(e) = Payout::parse(&split.address, network) {
                issue(&format!("mining.split[{index}].address"), e.to_string());
            }
            if split.basis_points == 0 {
                issue(
                    &format!("mining.split[{index}].basis_points"),
                    "is 0: remove the entry instead".into(),
                );
            }
        }
        let total: u64 = self.split.iter().map(|s| u64::from(s.basis_points)).sum();
        if total >= BASIS_POINTS {
            issue(
                "mining.split",
                format!("the basis points add up to {total}; under {BASIS_POINTS} must be left for the miner's output"),
            );
        }
        // Legacy sigops: OP_CHECKSIG in a P2PKH output costs 4 (BIP141's
        // scale), and Core leaves 400 of the block's for the coinbase.
        let p2pkh = |script: &[u8]| script.len() == 25 && script[..2] == [0x76, 0xa9];
        let main_p2pkh = main.as_ref().is_none_or(|p| p2pkh(&p.script));
        let splits_p2pkh = splits
            .iter()
            .filter(|split| p2pkh(&split.payout.script))
            .count();
        let sigops = 4 * (splits_p2pkh + usize::from(main_p2pkh));
        if sigops > COINBASE_SIGOPS {
            issue(
                "mining.split",
                format!("{splits_p2pkh} P2PKH splits make a coinbase of up to {sigops} sigops, over the {COINBASE_SIGOPS} Bitcoin Core leaves for it: use fewer, or another kind of address"),
            );
        }
        // The largest coinbase these settings can make, against the room
        // Core leaves for it in a template.
        let main_len = main.map_or(LONGEST_PAYOUT_SCRIPT, |p| p.script.len());
        if let Ok(weight) = worst_case_weight(
            self.coinbase_tag.as_bytes(),
            extranonce_len,
            &splits,
            main_len,
        ) {
            let budget = coinbase_weight_budget(self.block_reserved_weight);
            if weight > budget {
                issue(
                    "mining.split",
                    format!(
                        "{} entries make a coinbase of up to {weight} WU, over the {budget} the node leaves for it (mining.block_reserved_weight {} less the header): use fewer",
                        self.split.len(),
                        self.block_reserved_weight
                    ),
                );
            }
        }
        issues
    }
}
