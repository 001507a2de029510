//! `[metrics]`: the operator's HTTP port, and how it is locked down.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigIssue;
use ndas_core::Secret;

/// Shortest token accepted: 16 bytes, so it cannot be guessed by trying.
pub const MIN_TOKEN_BYTES: usize = 16;

/// The operator port: `/metrics`, `/healthz`, `/readyz`, `/api/*` and the
/// status page.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Loopback by default: binding where others reach it is a choice.
    pub listen: SocketAddr,
    /// Bearer token for `/api/*` and the status page (`Authorization:
    /// Bearer <token>`, or Basic with the token as password, which a
    /// browser asks for). Best from `NDAS_METRICS__TOKEN` or `token_file`.
    pub token: Option<Secret>,
    /// A file holding the token (a Kubernetes Secret, a Docker secret).
    pub token_file: Option<PathBuf>,
    /// Whether the token guards `/metrics` too (`/healthz` and `/readyz`
    /// stay open for probes).
    pub token_protects_metrics: bool,
    /// Connections served at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Requests per second from one address (a burst of as many); more get 429.
    pub requests_per_second: u32,
    /// Longest a connection lives: a client that does not send its request
    /// or read its answer in time is closed.
    pub timeout_seconds: f64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
            token: None,
            token_file: None,
            token_protects_metrics: false,
            max_connections: 64,
            requests_per_second: 20,
            timeout_seconds: 10.0,
        }
    }
}

/// Why the token could not be read.
#[derive(Debug, thiserror::Error)]
#[error("metrics.token_file {path}: {why}")]
pub struct TokenError {
    pub path: String,
    pub why: String,
}

impl MetricsConfig {
    /// The token, from `token` or read from `token_file` (trimmed).
    pub fn load_token(&self) -> Result<Option<Secret>, TokenError> {
        let Some(path) = &self.token_file else {
            // Trimmed as it is checked: a trailing newline from an env file
            // would otherwise lock the operator out.
            return Ok(self.token.as_ref().map(|t| Secret::new(t.expose().trim())));
        };
        let error = |why: String| TokenError {
            path: path.display().to_string(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let token = text.trim();
        if token.len() < MIN_TOKEN_BYTES {
            return Err(error(format!(
                "the token is shorter than {MIN_TOKEN_BYTES} bytes"
            )));
        }
        Ok(Some(Secret::new(token)))
    }

    /// Whether `listen` is taken by `stratum.listen` (the further stratum
    /// ports are checked with the ports).
    pub(super) fn listen_issue(&self, stratum: SocketAddr) -> Option<ConfigIssue> {
        (self.listen == stratum && stratum.port() != 0).then(|| ConfigIssue {
            key: "metrics.listen".into(),
            why: "is the same address as stratum.listen".into(),
        })
    }

    pub(super) fn issues(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let mut issue = |key: &str, why: String| {
            issues.push(ConfigIssue {
                key: key.into(),
                why,
            })
        };
        if let Some(token) = &self.token {
            if token.expose().trim().len() < MIN_TOKEN_BYTES {
                issue(
                    "metrics.token",
                    format!("is shorter than {MIN_TOKEN_BYTES} bytes"),
                );
            }
            if self.token_file.is_some() {
                issue(
                    "metrics.token",
                    "and metrics.token_file are both set".into(),
                );
            }
        }
        if self.token_protects_metrics && self.token.is_none() && self.token_file.is_none() {
            issue(
                "metrics.token_protects_metrics",
                "needs metrics.token or metrics.token_file".into(),
            );
        }
        if !(1..=65_536).contains(&self.max_connections) {
            issue(
                "metrics.max_connections",
                format!("{} is outside 1..=65536", self.max_connections),
            );
        }
        if self.requests_per_second == 0 {
            issue("metrics.requests_per_second", "must be at least 1".into());
        }
        let timeout = self.timeout_seconds;
        if !(timeout.is_finite() && (0.1..=3600.0).contains(&timeout)) {
            issue(
                "metrics.timeout_seconds",
                format!("{timeout} is outside 0.1..=3600"),
            );
        }
        issues
    }
}
