//! `[stratum]`: the miners' side, its bounds and what a worker's shares say.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{ConfigIssue, PortConfig};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StratumConfig {
    pub listen: SocketAddr,
    /// `listen`'s name in `/api/stats` and the `port` label of the metrics.
    pub name: String,
    /// Further ports, each with its own difficulty (`[[stratum.ports]]`);
    /// every other setting here applies to them all, and the connection
    /// bounds count them together.
    pub ports: Vec<PortConfig>,
    /// Bytes of extranonce2 each miner rolls (2–8).
    pub extranonce2_size: usize,
    /// Longest line a miner may send; longer closes the connection.
    pub max_line_bytes: usize,
    /// Miners served at once; more are closed as they connect.
    pub max_connections: usize,
    /// Miners from one address at once (a farm behind NAT shares one).
    pub max_connections_per_ip: usize,
    /// Connections not yet subscribed and authorized, at once; more are
    /// closed as they connect. 0: a quarter of `max_connections`, at least
    /// 1,024 (or all of them, when fewer).
    pub max_handshaking: usize,
    /// A worker with no accepted share for this many of its expected share
    /// intervals (its difficulty over its hashrate at its last share) is
    /// offline, until it shares again.
    pub offline_after_share_intervals: f64,
    /// Workers kept for the API and status page, connected or not; a name
    /// earns a place with its first accepted share, and when full the
    /// longest-quiet disconnected one goes. 0: twice `max_connections`.
    pub max_workers: usize,
    /// Connections admitted per second, in all: the whole fleet may connect
    /// at once (a burst of `max_connections`), and connections that come
    /// and go faster than this are closed as they connect. 0: a tenth of
    /// `max_connections`, at least 100.
    pub max_accepts_per_second: u32,
    /// Lines a miner may send per second, with a burst of as many; more
    /// closes the connection.
    pub max_lines_per_second: u32,
    /// A miner not subscribed and authorized this long after connecting is
    /// closed (slow or half-open connections).
    pub handshake_timeout_seconds: f64,
    /// A miner that sends nothing for this long is closed.
    pub idle_timeout_seconds: f64,
    /// A miner that does not take what it is sent within this long is
    /// closed, and its buffers freed.
    pub write_timeout_seconds: f64,
    /// Shares in a row that prove a broken client (see
    /// `Reject::proves_broken_client`) before the miner is told to reconnect
    /// and closed; a warning at half.
    pub max_invalid_shares: u32,
    /// An address closed this many times for invalid shares within
    /// `ban_seconds` is refused for `ban_seconds` (0: never ban).
    pub ban_after_drops: u32,
    pub ban_seconds: f64,
    /// How long a closed connection's extranonce1 and jobs are kept for a
    /// miner that resubscribes with its previous subscription id (cgminer,
    /// cpuminer, NiceHash do, and keep hashing the job they had); 0: never.
    pub resume_seconds: f64,
    /// What those parked sessions' jobs may hold, each job counted once:
    /// a churner of fresh payout addresses leaves a job of its own each time.
    pub resume_max_bytes: usize,
}

impl StratumConfig {
    /// Connections in their handshake at once: `max_handshaking`, or when
    /// 0 a quarter of `max_connections`, at least 1,024 or all of them.
    pub fn handshaking_cap(&self) -> usize {
        match self.max_handshaking {
            0 => (self.max_connections / 4).max(self.max_connections.min(1024)),
            cap => cap,
        }
    }

    /// Connections admitted per second: `max_accepts_per_second`, or when 0
    /// a tenth of `max_connections`, at least 100.
    pub fn accept_rate(&self) -> f64 {
        match self.max_accepts_per_second {
            0 => (self.max_connections as f64 / 10.0).max(100.0),
            rate => f64::from(rate),
        }
    }

    /// What cannot work in the bounds on each connection and on all of
    /// them: extranonce2, line length, connections, lines, invalid shares.
    pub(super) fn connection_issues(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let mut issue = |key: &str, why: String| {
            issues.push(ConfigIssue {
                key: format!("stratum.{key}"),
                why,
            })
        };
        if !(2..=8).contains(&self.extranonce2_size) {
            issue(
                "extranonce2_size",
                format!("{} is outside 2..=8", self.extranonce2_size),
            );
        }
        if !(512..=1_048_576).contains(&self.max_line_bytes) {
            issue(
                "max_line_bytes",
                format!("{} is outside 512..=1048576", self.max_line_bytes),
            );
        }
        let space = ndas_core::work::EXTRANONCE1_SPACE as usize;
        if self.max_connections == 0 || self.max_connections > space {
            issue(
                "max_connections",
                format!(
                    "{} is outside 1..={space} (one extranonce1 each, per instance)",
                    self.max_connections
                ),
            );
        }
        if self.max_connections_per_ip == 0 {
            issue("max_connections_per_ip", "must be at least 1".into());
        }
        if self.max_lines_per_second == 0 {
            issue("max_lines_per_second", "must be at least 1".into());
        }
        if self.max_invalid_shares < 2 {
            issue("max_invalid_shares", "must be at least 2".into());
        }
        issues
    }

    /// What cannot work in the durations: bans, resumption, timeouts.
    pub(super) fn time_issues(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let mut outside = |key: &str, value: f64, range: std::ops::RangeInclusive<f64>| {
            if !(value.is_finite() && range.contains(&value)) {
                let (low, high) = range.into_inner();
                issues.push(ConfigIssue {
                    key: format!("stratum.{key}"),
                    why: format!("{value} is outside {low}..={high}"),
                });
            }
        };
        outside("ban_seconds", self.ban_seconds, 1.0..=604_800.0);
        outside("resume_seconds", self.resume_seconds, 0.0..=86_400.0);
        for (key, value) in [
            ("handshake_timeout_seconds", self.handshake_timeout_seconds),
            ("idle_timeout_seconds", self.idle_timeout_seconds),
            ("write_timeout_seconds", self.write_timeout_seconds),
        ] {
            outside(key, value, 0.1..=86_400.0);
        }
        issues
    }

    /// What cannot work in what a worker's shares say and in the parked
    /// sessions' bound.
    pub(super) fn issues(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let k = self.offline_after_share_intervals;
        if !(k.is_finite() && (2.0..=1000.0).contains(&k)) {
            issues.push(ConfigIssue {
                key: "stratum.offline_after_share_intervals".into(),
                why: format!("{k} is outside 2..=1000"),
            });
        }
        if self.resume_max_bytes > 1 << 34 {
            issues.push(ConfigIssue {
                key: "stratum.resume_max_bytes".into(),
                why: format!("{} is over 17179869184 (16 GiB)", self.resume_max_bytes),
            });
        }
        issues
    }

    /// Workers kept: `max_workers`, or twice `max_connections` when 0.
    pub fn worker_cap(&self) -> usize {
        match self.max_workers {
            0 => self.max_connections.saturating_mul(2),
            cap => cap,
        }
    }
}
