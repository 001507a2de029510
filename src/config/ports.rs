//! Stratum ports beyond `stratum.listen`, each with its own difficulty, and
//! the starting difficulty by user agent family.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Config, ConfigIssue};

/// Most ports beyond `stratum.listen`: each is a `port` label value.
pub const MAX_PORTS: usize = 16;
/// Most user agent families in `difficulty.agents`.
pub const MAX_AGENTS: usize = 32;
/// Longest port name (`[A-Za-z0-9_.-]`).
pub const MAX_PORT_NAME: usize = 32;

/// A further stratum port with its own starting and least difficulty, so one
/// box serves S21s, Bitaxes and rentals each at the difficulty they need.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Its name in `/api/stats` and the `port` label of the metrics.
    pub name: String,
    pub listen: SocketAddr,
    pub start: f64,
    /// Defaults to `difficulty.min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Defaults to `difficulty.max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// With `tls_key`: the port speaks Stratum over TLS (`stratum+tls`)
    /// with this PEM certificate chain, read again on each reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
}

/// Where a TLS port's certificate chain and private key are read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A port as it is served: `stratum.listen` is the first, named `stratum.name`.
#[derive(Clone, Debug, PartialEq)]
pub struct Port {
    pub name: String,
    pub listen: SocketAddr,
    pub start: f64,
    pub min: f64,
    pub max: f64,
    /// Its certificate and key, when it speaks TLS.
    pub tls: Option<TlsFiles>,
    /// It speaks Stratum V2 (`[sv2]`), not Stratum V1.
    pub sv2: bool,
}

/// Every `protocol` label value, in the order of [`Port::protocol_index`].
pub const PROTOCOLS: [&str; 3] = ["stratum", "stratum+tls", "stratum2"];

impl Port {
    /// What the port speaks: Stratum V1, V1 over TLS, or Stratum V2 (the
    /// URL scheme miners are given).
    pub fn protocol(&self) -> &'static str {
        PROTOCOLS[self.protocol_index()]
    }

    /// Where [`Port::protocol`] is in [`PROTOCOLS`].
    pub fn protocol_index(&self) -> usize {
        match (self.sv2, self.tls.is_some()) {
            (true, _) => 2,
            (false, true) => 1,
            (false, false) => 0,
        }
    }
}

impl Config {
    /// Every stratum port, `stratum.listen` first.
    pub fn ports(&self) -> Vec<Port> {
        let d = &self.difficulty;
        let main = Port {
            name: self.stratum.name.clone(),
            listen: self.stratum.listen,
            start: d.start,
            min: d.min,
            max: d.max,
            tls: None,
            sv2: false,
        };
        let more = self.stratum.ports.iter().map(|port| Port {
            name: port.name.clone(),
            listen: port.listen,
            start: port.start,
            min: port.min.unwrap_or(d.min),
            max: port.max.unwrap_or(d.max),
            tls: port
                .tls_cert
                .clone()
                .zip(port.tls_key.clone())
                .map(|(cert, key)| TlsFiles { cert, key }),
            sv2: false,
        });
        let sv2 = self.sv2.iter().map(|sv2| Port {
            name: sv2.name.clone(),
            listen: sv2.listen,
            start: sv2.start.unwrap_or(d.start),
            min: sv2.min.unwrap_or(d.min),
            max: sv2.max.unwrap_or(d.max),
            tls: None,
            sv2: true,
        });
        std::iter::once(main).chain(more).chain(sv2).collect()
    }

    /// What is wrong with the ports and the agent table.
    pub(super) fn port_issues(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let mut issue = |key: String, why: String| issues.push(ConfigIssue { key, why });
        if self.stratum.ports.len() > MAX_PORTS {
            issue(
                "stratum.ports".into(),
                format!("{} ports; at most {MAX_PORTS}", self.stratum.ports.len()),
            );
        }
        let keys = std::iter::once("stratum".to_owned())
            .chain((0..self.stratum.ports.len()).map(|i| format!("stratum.ports[{i}]")))
            .chain(self.sv2.iter().map(|_| "sv2".to_owned()));
        let ports = self.ports();
        for (i, (port, key)) in ports.iter().zip(keys).enumerate() {
            if let Some(why) = super::label_name_issue(&port.name, MAX_PORT_NAME) {
                issue(format!("{key}.name"), why);
            }
            if ports[..i].iter().any(|other| other.name == port.name) {
                issue(
                    format!("{key}.name"),
                    format!("`{}` names two ports", port.name),
                );
            }
            let taken = ports[..i].iter().any(|other| other.listen == port.listen);
            if port.listen.port() != 0 && taken {
                issue(
                    format!("{key}.listen"),
                    format!("{} is another port's address", port.listen),
                );
            }
            if i > 0 && port.listen.port() != 0 && port.listen == self.metrics.listen {
                issue(
                    format!("{key}.listen"),
                    "is the same address as metrics.listen".into(),
                );
            }
            if i == 0 {
                continue; // `[difficulty]` is checked with its own keys.
            }
            for (field, value) in [("start", port.start), ("min", port.min), ("max", port.max)] {
                if !(value.is_finite() && value > 0.0) {
                    issue(
                        format!("{key}.{field}"),
                        format!("{value} must be a positive number"),
                    );
                }
            }
            if !(port.min <= port.start && port.start <= port.max) {
                issue(
                    format!("{key}.start"),
                    format!(
                        "{} is outside its [min, max] = [{}, {}]",
                        port.start, port.min, port.max
                    ),
                );
            }
        }
        for (i, port) in self.stratum.ports.iter().enumerate() {
            if port.tls_cert.is_some() != port.tls_key.is_some() {
                issue(
                    format!("stratum.ports[{i}].tls_cert"),
                    "set both tls_cert and tls_key (PEM files), or neither".into(),
                );
            }
        }
        let agents = &self.difficulty.agents;
        if agents.len() > MAX_AGENTS {
            issue(
                "difficulty.agents".into(),
                format!("{} entries; at most {MAX_AGENTS}", agents.len()),
            );
        }
        for (i, agent) in agents.iter().enumerate() {
            let key = format!("difficulty.agents[{i}]");
            if agent.prefix.is_empty() || agent.prefix.len() > 64 {
                issue(format!("{key}.prefix"), "must be 1-64 bytes".into());
            }
            let min = agent.min.unwrap_or(agent.start);
            if !(agent.start.is_finite() && agent.start > 0.0 && min.is_finite() && min > 0.0) {
                issue(
                    format!("{key}.start"),
                    "start and min must be positive numbers".into(),
                );
            } else if min > agent.start {
                issue(
                    format!("{key}.min"),
                    format!("{min} is above its start {}", agent.start),
                );
            }
        }
        issues
    }
}
