//! Testnet's 20-minute rule (testnet3, and testnet4 under BIP94): a block
//! whose time is more than twenty minutes after its parent's may, and then
//! must, carry the minimum-difficulty bits; one at or before the mark must
//! carry the normal bits. Bitcoin Core checks `nBits` against the block's own
//! time (`bad-diffbits`), so a share rolled across the mark is work for a
//! block with the wrong bits. Each template's `bits_time` is bounded to the
//! side of the mark its bits are for, and the watcher fetches again at the
//! mark so the easy job goes out the moment it is valid.
//!
//! Core: `GetNextWorkRequired` in `src/pow.cpp` (`fPowAllowMinDifficultyBlocks`).

use serde::Deserialize;
use serde_json::json;

use super::rpc::{RpcClient, RpcError};
use ndas_core::chain::{Hash256, Network};
use ndas_core::template::Template;

/// Twice the 10-minute target spacing (`nPowTargetSpacing * 2`).
pub const MIN_DIFFICULTY_AFTER_SECONDS: u32 = 1200;
/// Blocks between retargets; at a retarget height the rule does not apply.
const RETARGET_INTERVAL: u32 = 2016;
pub use ndas_core::chain::network::TESTNET_MIN_DIFFICULTY_BITS as MIN_DIFFICULTY_BITS;

/// Whether `network` lets a block fall to the minimum difficulty after twenty minutes.
pub fn has_min_difficulty_rule(network: Network) -> bool {
    matches!(network, Network::Testnet | Network::Testnet4)
}

#[derive(Deserialize)]
struct Header {
    time: u32,
}

/// Remembers the time of the last parent asked for (one call per tip).
#[derive(Default)]
pub struct MinDifficultyRule {
    parent: Option<(Hash256, u32)>,
}

impl MinDifficultyRule {
    /// Bounds `template.bits_time` to the side of the mark its bits are for;
    /// the mark (the last second the normal bits are valid) when the
    /// template is still before it, so the watcher fetches again after it.
    pub async fn apply(
        &mut self,
        rpc: &RpcClient,
        template: &mut Template,
    ) -> Result<Option<u32>, RpcError> {
        if template.height.is_multiple_of(RETARGET_INTERVAL) {
            return Ok(None);
        }
        let parent_time = match self.parent {
            Some((hash, time)) if hash == template.prev_hash => time,
            _ => {
                let params = json!([template.prev_hash.to_string(), true]);
                let header: Header = rpc.call("getblockheader", params).await?;
                self.parent = Some((template.prev_hash, header.time));
                header.time
            }
        };
        Ok(bound(template, parent_time))
    }
}

/// The bound for a template whose parent has `parent_time`: Core chose its
/// bits for `cur_time`, on one side of the mark.
pub fn bound(template: &mut Template, parent_time: u32) -> Option<u32> {
    // The normal bits are the minimum too (testnet3 after a reset): the
    // same on both sides of the mark, so no time is wrong for them.
    if template.bits == MIN_DIFFICULTY_BITS && template.cur_time <= parent_time + 1200 {
        template.bits_time = 0..=u32::MAX;
        return None;
    }
    let mark = parent_time.saturating_add(MIN_DIFFICULTY_AFTER_SECONDS);
    if template.cur_time > mark {
        template.bits_time = mark + 1..=u32::MAX;
        None
    } else {
        template.bits_time = 0..=mark;
        Some(mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(cur_time: u32, height: u32) -> Template {
        let fixture = include_str!("../../tests/fixtures/core-regtest-gbt-height121-60tx.json");
        let mut raw: serde_json::Value = serde_json::from_str(fixture).unwrap();
        raw["curtime"] = json!(cur_time);
        raw["bits"] = json!("1903a30c");
        raw.as_object_mut().unwrap().remove("target");
        raw["height"] = json!(height);
        Template::from_json(raw).unwrap()
    }

    #[test]
    fn a_template_is_bound_to_its_side_of_the_twenty_minute_mark() {
        let parent = 1_700_000_000;
        let mut before = template(parent + 1199, 5000);
        assert_eq!(bound(&mut before, parent), Some(parent + 1200));
        assert_eq!(before.bits_time, 0..=parent + 1200);
        let mut at_the_mark = template(parent + 1200, 5000);
        assert_eq!(bound(&mut at_the_mark, parent), Some(parent + 1200));
        let mut after = template(parent + 1201, 5000);
        assert_eq!(bound(&mut after, parent), None);
        assert_eq!(after.bits_time, parent + 1201..=u32::MAX);
        assert!(!after.bits_time.contains(&(parent + 1200)));
        // Normal bits that are the minimum already: nothing to bound.
        let mut reset = template(parent + 1199, 5000);
        reset.bits = MIN_DIFFICULTY_BITS;
        assert_eq!(bound(&mut reset, parent), None);
        assert_eq!(reset.bits_time, 0..=u32::MAX);
        assert!(has_min_difficulty_rule(Network::Testnet4));
        assert!(!has_min_difficulty_rule(Network::Regtest));
        assert!(!has_min_difficulty_rule(Network::Signet));
    }
}
