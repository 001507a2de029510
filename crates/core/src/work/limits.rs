//! Every job within its template's own limits: the block's weight and
//! sigop cost, as Bitcoin Core checks them when the block is submitted.
//!
//! Core's templates leave room for the coinbase by `-blockreservedweight`
//! (8000 weight units by default, an option only from Core 29 on) and 400
//! sigops (`DEFAULT_COINBASE_OUTPUT_MAX_ADDITIONAL_SIGOPS`). NDAS's
//! coinbase may need more (splits, a long tag, a P2PKH payout); a node
//! started with a smaller reservation than `mining.block_reserved_weight`
//! says, or a backup configured otherwise, hands NDAS templates its
//! coinbase does not fit, and every block found on them would be refused
//! as `bad-blk-weight` or `bad-blk-sigops`.
//!
//! The accounting (Core's `validation.cpp` and `consensus/tx_verify.cpp`):
//! a block's weight is four units for every byte of its header and
//! transaction count plus each transaction's BIP141 weight, at most
//! `weightlimit` (4,000,000); its sigop cost is the sum of each
//! transaction's, at most `sigoplimit` (80,000). The coinbase's cost is its
//! legacy sigops (scriptSig and outputs) times four, since it spends
//! nothing: 4 for each P2PKH output, 0 for every other kind NDAS pays (the
//! scriptSig is pushes only, and pushed data is not counted).
//!
//! What NDAS does with a template its largest coinbase does not fit: it
//! leaves out the template's last transactions until it fits, their fees
//! taken out of the reward, and says so (an error log, a metric, an alert).
//! Miners keep mining on the node's tip and every block is valid; what is
//! lost is the fees of a few transactions. Refusing the template instead
//! would leave miners on the last job, which is stale at the first new tip,
//! every template after, until an operator restarts the node: that loses
//! whole blocks. Only a template that cannot be cut (a transaction's fee
//! unknown, or the coinbase alone over the limits) is refused, and nothing
//! is published from it.

use bitcoin::Script;

use super::job::JobConfig;
use super::payout::{worst_case_weight, Payout, LONGEST_PAYOUT_SCRIPT};
use crate::template::{BlockLimits, Template};

/// The largest coinbase a configuration can build, in weight and sigop cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoinbaseBounds {
    pub weight: u64,
    pub sigops: u64,
}

/// Sigop cost of one output paying `script`: its legacy sigops, four each.
pub fn output_sigops(script: &[u8]) -> u64 {
    4 * Script::from_bytes(script).count_sigops_legacy() as u64
}

/// The largest coinbase `config` builds with main output `main` (`None`:
/// any address, as in `username` mode, where it may be a 34-byte script
/// or a P2PKH one).
pub fn coinbase_bounds(config: &JobConfig, main: Option<&Payout>) -> CoinbaseBounds {
    let extranonce_len = super::extranonce::EXTRANONCE1_LEN + config.extranonce2_size;
    let main_len = main.map_or(LONGEST_PAYOUT_SCRIPT, |p| p.script.len());
    // A tag or extranonce no coinbase can carry fails every job's build
    // with its own error; no bound is needed for it here.
    let weight = worst_case_weight(
        &config.coinbase_tag,
        extranonce_len,
        &config.splits,
        main_len,
    )
    .map_or(0, |weight| weight as u64);
    // Any address: a P2PKH one costs the most of those an address can
    // pay (one OP_CHECKSIG, 4).
    let main_sigops = main.map_or(4, |p| output_sigops(&p.script));
    let split_sigops: u64 = config
        .splits
        .iter()
        .map(|split| output_sigops(&split.payout.script))
        .sum();
    CoinbaseBounds {
        weight,
        sigops: main_sigops + split_sigops,
    }
}

/// How a template was made to fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trimmed {
    /// The template as the node sent it: what did not fit.
    pub over: Overrun,
    /// Transactions left out (the template's last ones).
    pub transactions: usize,
    pub weight: u64,
    pub sigops: u64,
    /// Satoshis of fees the coinbase no longer claims.
    pub fees: u64,
}

/// A template's figures against its limits, for the operator's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overrun {
    pub limits: BlockLimits,
    /// Header and transaction count.
    pub header: u64,
    pub transactions_weight: u64,
    pub transactions_sigops: u64,
    pub coinbase: CoinbaseBounds,
}

impl Overrun {
    fn of(template: &Template, coinbase: CoinbaseBounds) -> Overrun {
        Overrun {
            limits: template.limits,
            header: template.header_and_count_weight(),
            transactions_weight: template.transactions_weight(),
            transactions_sigops: template.transactions_sigops(),
            coinbase,
        }
    }

    /// The block's weight with the largest coinbase.
    pub fn weight(&self) -> u64 {
        self.header + self.transactions_weight + self.coinbase.weight
    }

    /// The block's sigop cost with the largest coinbase.
    pub fn sigops(&self) -> u64 {
        self.transactions_sigops + self.coinbase.sigops
    }

    /// The least `-blockreservedweight` under which the node's templates
    /// leave this coinbase its room: it, the header and the longest count.
    pub fn reservation_needed(&self) -> u64 {
        self.coinbase.weight + super::payout::HEADER_AND_COUNT_WEIGHT as u64
    }

    /// What an operator changes so that templates fit again.
    pub fn remedy(&self) -> String {
        format!(
            "start the node with -blockreservedweight={} or more (Core 29 or later) and set mining.block_reserved_weight to match, or make the coinbase smaller (fewer mining.split entries, a shorter mining.coinbase_tag)",
            self.reservation_needed().max(super::payout::MIN_BLOCK_RESERVED_WEIGHT as u64)
        )
    }

    fn fits(&self) -> bool {
        self.weight() <= self.limits.weight && self.sigops() <= self.limits.sigops
    }
}

impl std::fmt::Display for Overrun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "weight {} (header and count {} + transactions {} + coinbase up to {}) against weightlimit {}; sigop cost {} (transactions {} + coinbase up to {}) against sigoplimit {}",
            self.weight(),
            self.header,
            self.transactions_weight,
            self.coinbase.weight,
            self.limits.weight,
            self.sigops(),
            self.transactions_sigops,
            self.coinbase.sigops,
            self.limits.sigops
        )
    }
}

/// A template that no job can be built from within its limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("the template is over its limits with this coinbase ({0}) and its transactions cannot be left out: the node did not give every fee")]
    FeesUnknown(Overrun),
    #[error("the coinbase alone is over the template's limits ({0})")]
    CoinbaseAlone(Overrun),
}

impl LimitError {
    /// The template's figures.
    pub fn overrun(&self) -> &Overrun {
        match self {
            LimitError::FeesUnknown(over) | LimitError::CoinbaseAlone(over) => over,
        }
    }
}

/// `template` as it is when the largest coinbase of `coinbase` fits it,
/// else with its last transactions left out until it does.
pub fn fit(
    template: Template,
    coinbase: CoinbaseBounds,
) -> Result<(Template, Option<Trimmed>), LimitError> {
    let over = Overrun::of(&template, coinbase);
    if over.fits() {
        return Ok((template, None));
    }
    let room = |keep: usize| BlockLimits {
        weight: over
            .limits
            .weight
            .saturating_sub(crate::template::header_and_count_weight(keep)),
        sigops: over.limits.sigops,
    };
    // The longest prefix whose weight and sigops leave the coinbase room.
    let (mut weight, mut sigops, mut keep) = (0u64, 0u64, 0usize);
    for tx in &template.costs {
        let limit = room(keep + 1);
        if weight + tx.weight + coinbase.weight > limit.weight
            || sigops + tx.sigops + coinbase.sigops > limit.sigops
        {
            break;
        }
        weight += tx.weight;
        sigops += tx.sigops;
        keep += 1;
    }
    let empty = room(0);
    if coinbase.weight > empty.weight || coinbase.sigops > empty.sigops {
        return Err(LimitError::CoinbaseAlone(over));
    }
    let fees = template.costs[keep..]
        .iter()
        .try_fold(0u64, |sum, tx| sum.checked_add(tx.fee?));
    let (Some(fees), Some(cut)) = (fees, template.first_transactions(keep)) else {
        return Err(LimitError::FeesUnknown(over));
    };
    let trimmed = Trimmed {
        over,
        transactions: template.tx_count - keep,
        weight: over.transactions_weight - weight,
        sigops: over.transactions_sigops - sigops,
        fees,
    };
    Ok((cut, Some(trimmed)))
}

#[cfg(test)]
mod tests;
