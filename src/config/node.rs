//! `[node]`, the primary node, and `[[node.backup]]`, further nodes with the
//! same keys tried in the order written: templates come from the first that
//! is up and at the best tip any of them reports, and every found block goes
//! to all of them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigIssue;
use ndas_core::Secret;

/// Most nodes in all: each is a `node` label value.
pub const MAX_NODES: usize = 8;
/// Longest node name (`[A-Za-z0-9_.-]`).
pub const MAX_NODE_NAME: usize = 32;
/// Largest answer read from the node unless configured (`node.max_response_bytes`):
/// a full 4 MB block's template is about 10 MB of JSON.
pub const MAX_RESPONSE_BYTES: usize = 32 << 20;

/// `http://host:port[/]` as host and port: what `node.url` must be, checked
/// here when the file is read and taken apart by the node client.
pub fn parse_http_url(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("http://")?.trim_end_matches('/');
    super::parse_host_port(rest).ok()
}

/// Which node access layer to use.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Utek,
    Rpc,
}

/// One node. Missing keys take the defaults, in a backup as in `[node]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// The `node` label and the name in `/api/stats` and the logs (never
    /// its address, which the operator port does not show).
    pub name: String,
    pub backend: Backend,
    pub utek_metadata: PathBuf,
    pub utek_conf: PathBuf,
    /// Refuse to start when a UTEK file is open to other users, rather than
    /// warn.
    pub utek_strict_permissions: bool,
    /// For `backend = "rpc"`: `http://host:port`.
    pub url: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub cookie_file: Option<PathBuf>,
    pub timeout_seconds: f64,
    /// `tcp://host:port` of the node's `zmqpubhashblock`, for instant tip changes.
    pub zmq_hashblock: Option<String>,
    /// How often the tip is polled when nothing else reports it.
    pub poll_interval_ms: u64,
    /// Longest answer read from the node; a longer one is an error (a node
    /// or a proxy in front of it cannot make NDAS allocate without bound).
    pub max_response_bytes: usize,
    /// Further nodes, in order (`[[node.backup]]`; only in `[node]`).
    pub backup: Vec<NodeConfig>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            name: "primary".into(),
            backend: Backend::Utek,
            utek_metadata: PathBuf::from("/opt/utek_v26_rpc_lib/metadata.json"),
            utek_conf: PathBuf::from("/etc/utek_v26/utek_v26.conf"),
            utek_strict_permissions: false,
            url: None,
            user: None,
            password: None,
            cookie_file: None,
            timeout_seconds: 10.0,
            zmq_hashblock: None,
            poll_interval_ms: 500,
            max_response_bytes: MAX_RESPONSE_BYTES,
            backup: Vec::new(),
        }
    }
}

impl NodeConfig {
    /// Every node, the primary first, each with its config key
    /// (`node`, `node.backup[0]`, …).
    pub fn entries(&self) -> impl Iterator<Item = (String, &NodeConfig)> {
        std::iter::once(("node".to_owned(), self)).chain(
            self.backup
                .iter()
                .enumerate()
                .map(|(i, backup)| (format!("node.backup[{i}]"), backup)),
        )
    }

    /// Every value of every entry that cannot work, each with its key.
    pub(super) fn issues(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if self.backup.len() + 1 > MAX_NODES {
            issues.push(ConfigIssue {
                key: "node.backup".into(),
                why: format!(
                    "{} backups; at most {} nodes in all",
                    self.backup.len(),
                    MAX_NODES
                ),
            });
        }
        let entries: Vec<(String, &NodeConfig)> = self.entries().collect();
        for (i, (key, entry)) in entries.iter().enumerate() {
            entry.entry_issues(key, &mut issues);
            if i > 0 && !entry.backup.is_empty() {
                issues.push(ConfigIssue {
                    key: format!("{key}.backup"),
                    why: "a backup has no backups of its own: list every node under [node]".into(),
                });
            }
            if entries[..i]
                .iter()
                .any(|(_, other)| other.name == entry.name)
            {
                issues.push(ConfigIssue {
                    key: format!("{key}.name"),
                    why: match i > 0 && entry.name == NodeConfig::default().name {
                        true => "is required: each [[node.backup]] needs a name of its own".into(),
                        false => format!("`{}` names another node too", entry.name),
                    },
                });
            }
            if let Some((other, _)) = entries[..i]
                .iter()
                .find(|(_, other)| other.address() == entry.address())
            {
                issues.push(ConfigIssue {
                    key: key.clone(),
                    why: format!(
                        "is the same node as {other} (a backup without `backend` uses the UTEK files' defaults)"
                    ),
                });
            }
        }
        issues
    }

    /// What tells two entries apart: the UTEK conf they read, or their URL.
    fn address(&self) -> String {
        match self.backend {
            Backend::Utek => format!("utek {}", self.utek_conf.display()),
            Backend::Rpc => format!("rpc {}", self.url.as_deref().unwrap_or("")),
        }
    }

    fn entry_issues(&self, key: &str, issues: &mut Vec<ConfigIssue>) {
        let mut issue = |field: &str, why: String| {
            issues.push(ConfigIssue {
                key: format!("{key}.{field}"),
                why,
            })
        };
        if let Some(why) = super::label_name_issue(&self.name, MAX_NODE_NAME) {
            issue("name", why);
        }
        if !(self.timeout_seconds.is_finite() && (0.1..=600.0).contains(&self.timeout_seconds)) {
            issue(
                "timeout_seconds",
                format!("{} is outside 0.1..=600", self.timeout_seconds),
            );
        }
        if !(10..=60_000).contains(&self.poll_interval_ms) {
            issue(
                "poll_interval_ms",
                format!("{} is outside 10..=60000", self.poll_interval_ms),
            );
        }
        if !((1 << 20)..=(1 << 30)).contains(&self.max_response_bytes) {
            issue(
                "max_response_bytes",
                format!("{} is outside 1 MiB..=1 GiB", self.max_response_bytes),
            );
        }
        if let Some(zmq) = &self.zmq_hashblock {
            let endpoint = zmq.strip_prefix("tcp://").map(super::parse_host_port);
            if !matches!(endpoint, Some(Ok(_))) {
                issue("zmq_hashblock", "must be tcp://host:port".into());
            }
        }
        if self.backend == Backend::Rpc {
            match &self.url {
                None => issue("url", "is required with backend = \"rpc\"".into()),
                Some(url) if parse_http_url(url).is_none() => {
                    issue("url", "must be http://host:port".into())
                }
                Some(_) => {}
            }
            if self.cookie_file.is_none() && (self.user.is_none() || self.password.is_none()) {
                issue(
                    "user",
                    "backend = \"rpc\" needs user and password, or cookie_file".into(),
                );
            }
        }
    }
}
