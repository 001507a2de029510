//! `[mining]`'s keys for when no node serves: what miners get, and after
//! how long.

use serde::{Deserialize, Serialize};

use super::ConfigIssue;

/// What miners get when no node has served a template for
/// `mining.failover_after_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenNoNode {
    /// Closed (told to go to `mining.reconnect_to` first, when set), and
    /// new connections refused until a node serves: their firmware's
    /// backup pool takes over. Firmware fails over only when the pool
    /// closes, never when it goes quiet.
    Disconnect,
    /// Kept on the last job until a node serves again.
    Wait,
    /// Moved to the first upstream pool that gives a job (`[[upstream]]`,
    /// in order), with `clean_jobs`; back to the node when one serves.
    /// When no pool has a job, as `disconnect`.
    Upstream,
}

/// The longest `mining.failover_after_seconds` may be.
pub const MAX_FAILOVER_AFTER_SECONDS: u64 = 3600;

/// What cannot work in these keys.
pub(super) fn issues(
    when: WhenNoNode,
    after_seconds: u64,
    reconnect_to: Option<&str>,
    upstreams: usize,
) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    if when == WhenNoNode::Upstream && upstreams == 0 {
        issues.push(ConfigIssue {
            key: "mining.when_no_node".into(),
            why: "\"upstream\" needs at least one [[upstream]] pool".into(),
        });
    }
    if !(1..=MAX_FAILOVER_AFTER_SECONDS).contains(&after_seconds) {
        issues.push(ConfigIssue {
            key: "mining.failover_after_seconds".into(),
            why: format!("{after_seconds} is outside 1..={MAX_FAILOVER_AFTER_SECONDS}"),
        });
    }
    if let Some(target) = reconnect_to {
        if when == WhenNoNode::Wait {
            issues.push(ConfigIssue {
                key: "mining.reconnect_to".into(),
                why: "is used only with mining.when_no_node = \"disconnect\" or \"upstream\" (when no pool has a job)".into(),
            });
        }
        if let Err(why) = super::parse_host_port(target) {
            issues.push(ConfigIssue {
                key: "mining.reconnect_to".into(),
                why,
            });
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_targets_are_host_and_port_and_nothing_else() {
        assert_eq!(
            super::super::parse_host_port("backup.example:3333").unwrap(),
            ("backup.example".to_owned(), 3333)
        );
        assert_eq!(
            super::super::parse_host_port("[2001:db8::1]:3333").unwrap(),
            ("2001:db8::1".to_owned(), 3333)
        );
        for bad in [
            "backup.example",
            "backup.example:0",
            "backup.example:70000",
            ":3333",
            "a b:3333",
            "evil\",\"x:3333",
        ] {
            assert!(super::super::parse_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_bound_and_a_target_that_would_never_be_used_are_reported() {
        let keys = |issues: Vec<ConfigIssue>| -> Vec<String> {
            issues.into_iter().map(|i| i.key).collect()
        };
        assert!(issues(WhenNoNode::Disconnect, 60, Some("pool.example:3333"), 0).is_empty());
        assert!(issues(WhenNoNode::Upstream, 60, Some("pool.example:3333"), 1).is_empty());
        assert_eq!(
            keys(issues(WhenNoNode::Disconnect, 0, None, 0)),
            ["mining.failover_after_seconds"]
        );
        assert_eq!(
            keys(issues(WhenNoNode::Wait, 60, Some("pool.example:3333"), 0)),
            ["mining.reconnect_to"]
        );
        assert_eq!(
            keys(issues(WhenNoNode::Upstream, 60, None, 0)),
            ["mining.when_no_node"]
        );
    }
}
