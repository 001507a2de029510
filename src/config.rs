//! Configuration: defaults < TOML file < `NDAS_<SECTION>__<KEY>` environment.
//!
//! [`Config::load`] reports every key it cannot read; [`Config::validate`]
//! names every key whose value cannot work, and why.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use failover::WhenNoNode;
use ndas_core::chain::Network;
pub use ndas_core::vardiff::{AgentDifficulty, Rounding};
pub use ports::{Port, PortConfig, TlsFiles, PROTOCOLS};
pub use routes::RouteConfig;
pub use sv2::{Sv2Config, DEFAULT_MAX_CHANNELS};
pub use upstream::{UpstreamConfig, MAX_UPSTREAMS};

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
    /// The Stratum V2 endpoint; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sv2: Option<Sv2Config>,
    /// The pools mined for when no node serves (`[[upstream]]`), in order.
    pub upstream: Vec<UpstreamConfig>,
    /// Shares of the farm for the node and the upstream pools while a
    /// node serves (`[[route]]`); none: every miner mines for the node.
    pub route: Vec<RouteConfig>,
    /// The fleet history's database (`[history]`); none: this box's own
    /// history alone.
    pub history: HistoryConfig,
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

impl LogConfig {
    /// Whether `level` is a filter `tracing` can use.
    fn issues(&self) -> Option<ConfigIssue> {
        tracing_subscriber::EnvFilter::try_new(&self.level)
            .is_err()
            .then(|| ConfigIssue {
                key: "log.level".into(),
                why: format!(
                    "`{}` is not a log filter (e.g. info, ndas=debug)",
                    self.level
                ),
            })
    }
}

impl DifficultyConfig {
    /// What cannot work in `[difficulty]`'s bounds (its agents are checked
    /// with the ports, which they share the bounds with).
    fn issues(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let mut issue = |key: &str, why: String| {
            issues.push(ConfigIssue {
                key: key.into(),
                why,
            })
        };
        for (key, value) in [
            ("difficulty.start", self.start),
            ("difficulty.min", self.min),
            ("difficulty.max", self.max),
        ] {
            if !(value.is_finite() && value > 0.0) {
                issue(key, format!("{value} must be a positive number"));
            }
        }
        if self.min > self.max {
            issue(
                "difficulty.min",
                format!("{} is above difficulty.max {}", self.min, self.max),
            );
        }
        if self.start < self.min || self.start > self.max {
            issue(
                "difficulty.start",
                format!("{} is outside [difficulty.min, difficulty.max]", self.start),
            );
        }
        let seconds = self.target_share_seconds;
        if !(seconds.is_finite() && (0.1..=3600.0).contains(&seconds)) {
            issue(
                "difficulty.target_share_seconds",
                format!("{seconds} is outside 0.1..=3600"),
            );
        }
        issues
    }
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
            upstream: Vec::new(),
            route: Vec::new(),
            history: HistoryConfig::default(),
            sv2: None,
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

/// `host:port` as the config gives an address after its scheme (a node's
/// `http://`, an upstream's `stratum+tcp://`, `mining.reconnect_to`): the
/// host (a name, an IPv4 address, or an IPv6 address without its
/// brackets) and a port that is not 0.
pub fn parse_host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not host:port"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port
        .parse()
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| format!("{text:?}: the port must be 1 to 65535"))?;
    let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_');
    if host.is_empty() || host.len() > 255 || !host.chars().all(fits) {
        return Err(format!(
            "{text:?}: the host must be a name or an address of up to 255 characters"
        ));
    }
    Ok((host.to_owned(), port))
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
        let upstreams = &indexed::LISTS[2];
        for (i, entry) in upstreams.overridden(&figment)? {
            config.upstream[i] = upstreams.apply(i, entry, None::<UpstreamConfig>)?;
        }
        let routes = &indexed::LISTS[3];
        for (i, entry) in routes.overridden(&figment)? {
            config.route[i] = routes.apply(i, entry, None::<RouteConfig>)?;
        }
        Ok(config)
    }

    /// What miners get when no node serves: `mining.when_no_node`, or by
    /// default an upstream pool when one is configured and closed
    /// otherwise.
    pub fn when_no_node(&self) -> WhenNoNode {
        self.mining
            .when_no_node
            .unwrap_or(if self.upstream.is_empty() {
                WhenNoNode::Disconnect
            } else {
                WhenNoNode::Upstream
            })
    }

    /// `[[route]]` as the job stage takes it: what each route sends
    /// miners to, and its weight.
    pub fn routes(&self) -> Vec<(ndas_core::work::routes::RouteTo, f64)> {
        routes::resolve(&self.route, &self.upstream)
    }

    /// Every value that cannot work, each with its key, section by section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.stratum;
        let mut issues = s.connection_issues();
        issues.extend(s.time_issues());
        issues.extend(self.difficulty.issues());
        issues.extend(self.mining.job_issues(s.extranonce2_size));
        issues.extend(self.log.issues());
        issues.extend(self.metrics.listen_issue(s.listen));
        issues.extend(s.issues());
        issues.extend(self.mining.issues(
            self.network,
            // Saturating: an extranonce2_size near usize::MAX (from the
            // environment) is reported above, not an overflow.
            ndas_core::work::extranonce::EXTRANONCE1_LEN.saturating_add(s.extranonce2_size),
        ));
        issues.extend(failover::issues(
            self.when_no_node(),
            self.mining.failover_after_seconds,
            self.mining.reconnect_to.as_deref(),
            self.upstream.len(),
        ));
        issues.extend(notify::issues(&self.notify));
        issues.extend(upstream::issues(&self.upstream));
        issues.extend(routes::issues(&self.route, &self.upstream));
        issues.extend(self.node.issues());
        issues.extend(self.port_issues());
        issues.extend(self.sv2_issues());
        issues.extend(self.metrics.issues());
        issues.extend(self.blocks.issues());
        issues.extend(self.history.issues());
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(issues))
        }
    }
}

mod blocks;
mod failover;
mod history;
mod indexed;
mod mining;
mod node;
mod notify;
mod operator;
mod ports;
mod routes;
mod stratum;
mod sv2;
mod upstream;
pub use blocks::{BlocksConfig, MAX_KEPT_BLOCKS};
pub use history::{HistoryConfig, UrlFileError, DEFAULT_QUEUE_MAX_BYTES};
pub use mining::{MiningConfig, PayoutMode, SplitConfig};
pub use node::{parse_http_url, Backend, NodeConfig, MAX_RESPONSE_BYTES};
pub use notify::{NotifyConfig, NotifyKind};
pub use operator::{MetricsConfig, TokenError};
pub use stratum::StratumConfig;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
