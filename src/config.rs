//! Configuration: defaults < TOML file < `NDAS_<SECTION>__<KEY>` environment.
//!
//! [`Config::load`] reports every key it cannot read; [`Config::validate`]
//! names every key whose value cannot work, and why.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use ndas_core::chain::Network;
pub use ndas_core::vardiff::{AgentDifficulty, Rounding};
pub use ports::{Port, PortConfig};

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub network: Network,
    /// First byte of every extranonce1, so replicas never share work (0–255).
    pub instance_id: u8,
    /// Where found blocks are journaled.
    pub data_dir: PathBuf,
    pub stratum: StratumConfig,
    pub difficulty: DifficultyConfig,
    pub mining: MiningConfig,
    pub node: NodeConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    /// Bounds on found blocks waiting to be submitted, and shutdown's grace.
    pub blocks: BlocksConfig,
    /// Where blocks, node changes and offline workers are told (`[[notify]]`).
    pub notify: Vec<NotifyConfig>,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `ndas=debug,info`; `RUST_LOG` wins when set.
    pub level: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DifficultyConfig {
    pub start: f64,
    pub min: f64,
    pub max: f64,
    /// Vardiff aims at one share per this many seconds per connection.
    pub target_share_seconds: f64,
    /// How difficulties of 1 or more are rounded before they are sent.
    pub rounding: Rounding,
    /// Starting difficulty by user agent family, first match wins; setting
    /// it replaces the built-in table, `[]` turns it off.
    pub agents: Vec<AgentDifficulty>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            network: Network::Mainnet,
            instance_id: 0,
            data_dir: PathBuf::from("data"),
            stratum: StratumConfig {
                listen: SocketAddr::from(([0, 0, 0, 0], 3333)),
                name: "main".into(),
                ports: Vec::new(),
                extranonce2_size: 8,
                max_line_bytes: 4096,
                max_connections: 100_000,
                max_connections_per_ip: 20_000,
                max_workers: 0,
                offline_after_share_intervals: 10.0,
                max_accepts_per_second: 0,
                max_handshaking: 0,
                max_lines_per_second: 100,
                handshake_timeout_seconds: 30.0,
                idle_timeout_seconds: 600.0,
                write_timeout_seconds: 10.0,
                max_invalid_shares: 50,
                ban_after_drops: 3,
                ban_seconds: 600.0,
                resume_seconds: 600.0,
                resume_max_bytes: ndas_core::session::resume::DEFAULT_MAX_BYTES,
            },
            difficulty: DifficultyConfig {
                start: 1024.0,
                min: 1.0,
                max: 1e15,
                target_share_seconds: 10.0,
                rounding: Rounding::Integer,
                agents: AgentDifficulty::defaults(),
            },
            mining: MiningConfig::default(),
            node: NodeConfig::default(),
            metrics: MetricsConfig::default(),
            notify: Vec::new(),
            blocks: BlocksConfig::default(),
            log: LogConfig {
                format: LogFormat::Human,
                level: "info".into(),
            },
        }
    }
}

/// A key whose value cannot work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub key: String,
    pub why: String,
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.why)
    }
}

/// Figment's errors, each with its key.
pub(crate) fn config_error(errors: figment::Error) -> ConfigError {
    ConfigError(
        errors
            .into_iter()
            .map(|e| ConfigIssue {
                key: if e.path.is_empty() {
                    "(top level)".into()
                } else {
                    e.path.join(".")
                },
                why: e.kind.to_string(),
            })
            .collect(),
    )
}

/// Why `name` cannot be a label value (a port's, a node's, a notification
/// target's): it must be 1 to `max` of `A-Z a-z 0-9 _ . -`.
pub(crate) fn label_name_issue(name: &str, max: usize) -> Option<String> {
    let ok = (1..=max).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    (!ok).then(|| format!("`{name}` must be 1-{max} of A-Z a-z 0-9 _ . -"))
}

/// Configuration that cannot be used, with every reason found.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|i| format!("  {i}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<ConfigIssue>);

impl Config {
    /// Reads `path` (which must exist) with `NDAS_*` overrides from the environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        if !path.is_file() {
            return Err(ConfigError(vec![ConfigIssue {
                key: "--config".into(),
                why: format!("{} is not a readable file", path.display()),
            }]));
        }
        Self::from_figment(Figment::from(Toml::file(path)))
    }

    /// Reads TOML text with `NDAS_*` overrides (for tests and tools).
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(text)))
    }

    fn from_figment(file: Figment) -> Result<Config, ConfigError> {
        // `NDAS_NODE__BACKUP__<i>__<KEY>` and `NDAS_NOTIFY__<i>__<KEY>` are
        // applied to the i-th entry below: as plain overrides they would
        // replace the file's list.
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(file)
            .merge(
                Env::prefixed("NDAS_")
                    .filter(|key| indexed::LISTS.iter().all(|list| !list.owns(key.as_str())))
                    .split("__"),
            );
        let mut config = figment.extract::<Config>().map_err(config_error)?;
        let backups = &indexed::LISTS[0];
        for (i, entry) in backups.overridden(&figment)? {
            config.node.backup[i] = backups.apply(i, entry, Some(NodeConfig::default()))?;
        }
        let notify = &indexed::LISTS[1];
        for (i, entry) in notify.overridden(&figment)? {
            config.notify[i] = notify.apply(i, entry, None::<NotifyConfig>)?;
        }
        Ok(config)
    }

    /// Every value that cannot work, each with its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut issues = Vec::new();
        let mut issue = |key: &str, why: String| {
            issues.push(ConfigIssue {
                key: key.into(),
                why,
            })
        };
        let s = &self.stratum;
        if !(2..=8).contains(&s.extranonce2_size) {
            issue(
                "stratum.extranonce2_size",
                format!("{} is outside 2..=8", s.extranonce2_size),
            );
        }
        if !(512..=1_048_576).contains(&s.max_line_bytes) {
            issue(
                "stratum.max_line_bytes",
                format!("{} is outside 512..=1048576", s.max_line_bytes),
            );
        }
        let space = ndas_core::work::EXTRANONCE1_SPACE as usize;
        if s.max_connections == 0 || s.max_connections > space {
            issue(
                "stratum.max_connections",
                format!(
                    "{} is outside 1..={space} (one extranonce1 each, per instance)",
                    s.max_connections
                ),
            );
        }
        if s.max_connections_per_ip == 0 {
            issue(
                "stratum.max_connections_per_ip",
                "must be at least 1".into(),
            );
        }
        if s.max_lines_per_second == 0 {
            issue("stratum.max_lines_per_second", "must be at least 1".into());
        }
        if s.max_invalid_shares < 2 {
            issue("stratum.max_invalid_shares", "must be at least 2".into());
        }
        if !(s.ban_seconds.is_finite() && (1.0..=604_800.0).contains(&s.ban_seconds)) {
            issue(
                "stratum.ban_seconds",
                format!("{} is outside 1..=604800", s.ban_seconds),
            );
        }
        if !(s.resume_seconds.is_finite() && (0.0..=86_400.0).contains(&s.resume_seconds)) {
            issue(
                "stratum.resume_seconds",
                format!("{} is outside 0..=86400", s.resume_seconds),
            );
        }
        for (key, value) in [
            (
                "stratum.handshake_timeout_seconds",
                s.handshake_timeout_seconds,
            ),
            ("stratum.idle_timeout_seconds", s.idle_timeout_seconds),
            ("stratum.write_timeout_seconds", s.write_timeout_seconds),
        ] {
            if !(value.is_finite() && (0.1..=86_400.0).contains(&value)) {
                issue(key, format!("{value} is outside 0.1..=86400"));
            }
        }
        let d = &self.difficulty;
        for (key, value) in [
            ("difficulty.start", d.start),
            ("difficulty.min", d.min),
            ("difficulty.max", d.max),
        ] {
            if !(value.is_finite() && value > 0.0) {
                issue(key, format!("{value} must be a positive number"));
            }
        }
        if d.min > d.max {
            issue(
                "difficulty.min",
                format!("{} is above difficulty.max {}", d.min, d.max),
            );
        }
        if d.start < d.min || d.start > d.max {
            issue(
                "difficulty.start",
                format!("{} is outside [difficulty.min, difficulty.max]", d.start),
            );
        }
        if !(d.target_share_seconds.is_finite() && (0.1..=3600.0).contains(&d.target_share_seconds))
        {
            issue(
                "difficulty.target_share_seconds",
                format!("{} is outside 0.1..=3600", d.target_share_seconds),
            );
        }
        let m = &self.mining;
        // Saturating: a huge extranonce2_size is reported above, not a panic.
        let tag_room = (ndas_core::chain::coinbase::MAX_SCRIPT_SIG_LEN - 5 - 1 - 4 - 2)
            .saturating_sub(s.extranonce2_size);
        if m.coinbase_tag.len() > tag_room {
            issue(
                "mining.coinbase_tag",
                format!(
                    "{} bytes; at most {tag_room} fit the coinbase",
                    m.coinbase_tag.len()
                ),
            );
        }
        if !(1..=3600).contains(&m.job_refresh_seconds) {
            issue(
                "mining.job_refresh_seconds",
                format!("{} is outside 1..=3600", m.job_refresh_seconds),
            );
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            issue(
                "log.level",
                format!(
                    "`{}` is not a log filter (e.g. info, ndas=debug)",
                    self.log.level
                ),
            );
        }
        if self.metrics.listen == self.stratum.listen && self.stratum.listen.port() != 0 {
            issue(
                "metrics.listen",
                "is the same address as stratum.listen".into(),
            );
        }
        issues.extend(self.stratum.issues());
        issues.extend(
            self.mining.issues(
                self.network,
                // Saturating: an extranonce2_size near usize::MAX (from the
                // environment) is reported above, not an overflow.
                ndas_core::work::extranonce::EXTRANONCE1_LEN
                    .saturating_add(self.stratum.extranonce2_size),
            ),
        );
        issues.extend(notify::issues(&self.notify));
        issues.extend(self.node.issues());
        issues.extend(self.port_issues());
        issues.extend(self.metrics.issues());
        issues.extend(self.blocks.issues());
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(issues))
        }
    }
}

mod blocks;
mod indexed;
mod mining;
mod node;
mod notify;
mod operator;
mod ports;
mod stratum;
pub use blocks::BlocksConfig;
pub use mining::{MiningConfig, PayoutMode, SplitConfig};
pub use node::{parse_http_url, Backend, NodeConfig, MAX_RESPONSE_BYTES};
pub use notify::{NotifyConfig, NotifyKind};
pub use operator::{MetricsConfig, TokenError};
pub use stratum::StratumConfig;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
