//! `[history]`: where the fleet's history goes besides this box's own
//! `history.redb`: one PostgreSQL that every replica writes to.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigIssue;
use ndas_core::Secret;

/// The fleet history's settings; none of it is needed for one box.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// `postgres://user:password@host:port/database` (a secret: it holds
    /// the password). Best from `NDAS_HISTORY__DATABASE_URL` or
    /// `database_url_file`.
    pub database_url: Option<Secret>,
    /// A file holding the URL (a Kubernetes Secret, a Docker secret).
    pub database_url_file: Option<PathBuf>,
    /// This replica's name in the database; `ndas-<instance_id>` when
    /// unset. Rows are keyed by it.
    pub replica: Option<String>,
    /// Bytes of batches kept in `data_dir` while the database cannot take
    /// them; past it the oldest minute aggregates are dropped, and counted.
    pub queue_max_bytes: Option<u64>,
}

/// What the queue holds when `queue_max_bytes` is unset: about 3 hours of
/// 10,000 workers' minutes (about 140 bytes each, BENCHMARKS.md).
pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 256 << 20;

/// Why the URL could not be read.
#[derive(Debug, thiserror::Error)]
#[error("history.database_url_file {path}: {why}")]
pub struct UrlFileError {
    pub path: String,
    pub why: String,
}

impl HistoryConfig {
    /// Whether a database is configured.
    pub fn configured(&self) -> bool {
        self.database_url.is_some() || self.database_url_file.is_some()
    }

    /// The replica's name.
    pub fn replica_name(&self, instance_id: u8) -> String {
        self.replica
            .clone()
            .unwrap_or_else(|| format!("ndas-{instance_id}"))
    }

    pub fn queue_bound(&self) -> u64 {
        self.queue_max_bytes.unwrap_or(DEFAULT_QUEUE_MAX_BYTES)
    }

    /// The URL, from `database_url` or read from `database_url_file`
    /// (trimmed); none when neither is set.
    pub fn load_url(&self) -> Result<Option<Secret>, UrlFileError> {
        let Some(path) = &self.database_url_file else {
            return Ok(self
                .database_url
                .as_ref()
                .map(|u| Secret::new(u.expose().trim())));
        };
        let error = |why: String| UrlFileError {
            path: path.display().to_string(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let url = text.trim();
        if !url_shape_ok(url) {
            return Err(error(
                "does not hold a postgres:// or postgresql:// URL".into(),
            ));
        }
        Ok(Some(Secret::new(url)))
    }

    pub(super) fn issues(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let mut issue = |key: &str, why: String| {
            issues.push(ConfigIssue {
                key: key.into(),
                why,
            })
        };
        if let Some(url) = &self.database_url {
            // The URL holds a password: its text is never repeated.
            if !url_shape_ok(url.expose().trim()) {
                issue(
                    "history.database_url",
                    "must be a postgres:// or postgresql:// URL".into(),
                );
            }
            if self.database_url_file.is_some() {
                issue(
                    "history.database_url",
                    "and history.database_url_file are both set".into(),
                );
            }
        }
        if let Some(replica) = &self.replica {
            let ok = !replica.is_empty()
                && replica.len() <= 64
                && replica
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !ok {
                issue(
                    "history.replica",
                    format!("`{replica:.70}` must be 1 to 64 of A-Z a-z 0-9 - _ ."),
                );
            }
        }
        if let Some(bytes) = self.queue_max_bytes {
            if !(1 << 20..=1 << 40).contains(&bytes) {
                issue(
                    "history.queue_max_bytes",
                    format!("{bytes} is outside 1 MiB..=1 TiB"),
                );
            }
        }
        issues
    }
}

fn url_shape_ok(url: &str) -> bool {
    (url.starts_with("postgres://") || url.starts_with("postgresql://"))
        && url.len() <= 4096
        && !url.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn issues(toml: &str) -> Vec<ConfigIssue> {
        use figment::providers::{Format, Toml};
        let config: HistoryConfig = figment::Figment::from(Toml::string(toml))
            .extract()
            .unwrap();
        config.issues()
    }

    #[test]
    fn a_bad_url_is_named_without_repeating_its_password() {
        let found = issues("database_url = \"mysql://u:hunter2@db/x\"");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key, "history.database_url");
        assert!(!found[0].why.contains("hunter2"), "{}", found[0].why);
        let both = issues("database_url = \"postgres://db/x\"\ndatabase_url_file = \"/run/u\"");
        assert!(both[0].why.contains("both set"), "{both:?}");
        let replica = issues("replica = \"a b\"");
        assert_eq!(replica[0].key, "history.replica");
        assert_eq!(
            issues("queue_max_bytes = 10")[0].key,
            "history.queue_max_bytes"
        );
        assert!(
            issues("database_url = \"postgresql://u:p@db:5432/ndas?sslmode=require\"").is_empty()
        );
    }

    #[test]
    fn the_url_comes_from_its_file_trimmed_and_the_replica_from_the_instance() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        std::fs::write(&file, "postgres://u:p@db/ndas\n").unwrap();
        let config = HistoryConfig {
            database_url_file: Some(file),
            ..HistoryConfig::default()
        };
        assert_eq!(
            config.load_url().unwrap().unwrap().expose(),
            "postgres://u:p@db/ndas"
        );
        assert_eq!(config.replica_name(7), "ndas-7");
        let missing = HistoryConfig {
            database_url_file: Some(dir.path().join("none")),
            ..HistoryConfig::default()
        };
        assert!(missing
            .load_url()
            .unwrap_err()
            .to_string()
            .starts_with("history.database_url_file"));
        assert!(!Config::default().history.configured());
    }
}
