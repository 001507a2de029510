//! `[sv2]`: the Stratum V2 endpoint, a port like the Stratum V1 ones (its
//! own difficulty, the same bounds and bans), listed by
//! [`super::Config::ports`] after them.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{Config, ConfigIssue};

/// Channels one connection may hold open by default: a translating proxy
/// opens one per miner behind it (the SRI translator without
/// `aggregate_channels`), so a rack's worth.
pub const DEFAULT_MAX_CHANNELS: usize = 1_000;
/// The most `max_channels_per_connection` may be.
pub const MAX_CHANNELS: usize = 100_000;

/// The Stratum V2 Mining Protocol endpoint (Noise-encrypted).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Sv2Config {
    /// ckpool's and the Stratum Reference Implementation's port is 3336.
    pub listen: SocketAddr,
    /// Its `port` label and name in `/api/stats`.
    #[serde(default = "default_name")]
    pub name: String,
    /// Defaults to `difficulty.start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<f64>,
    /// Defaults to `difficulty.min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Defaults to `difficulty.max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default = "default_max_channels")]
    pub max_channels_per_connection: usize,
}

fn default_name() -> String {
    "sv2".into()
}

fn default_max_channels() -> usize {
    DEFAULT_MAX_CHANNELS
}

impl Config {
    /// What is wrong with `[sv2]` beyond what every port is checked for.
    pub(super) fn sv2_issues(&self) -> Vec<ConfigIssue> {
        let Some(sv2) = &self.sv2 else {
            return Vec::new();
        };
        let channels = sv2.max_channels_per_connection;
        if (1..=MAX_CHANNELS).contains(&channels) {
            return Vec::new();
        }
        vec![ConfigIssue {
            key: "sv2.max_channels_per_connection".into(),
            why: format!("{channels} is outside 1..={MAX_CHANNELS}"),
        }]
    }
}
