//! `[[upstream]]`: the pools NDAS mines for when its nodes fail, in the
//! order written.

use serde::{Deserialize, Serialize};

use super::ConfigIssue;
use ndas_core::Secret;

/// The most upstream pools one NDAS keeps connections to.
pub const MAX_UPSTREAMS: usize = 8;
/// Longest upstream name (it labels metrics).
const MAX_UPSTREAM_NAME: usize = 32;

/// One `[[upstream]]` pool.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// In the logs, the page and the `upstream` label; unique.
    pub name: String,
    /// `stratum+tcp://host:port`.
    pub url: String,
    /// The pool account (and worker) NDAS mines as.
    pub user: String,
    /// A secret: never logged (`NDAS_UPSTREAM__<i>__PASSWORD`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Most of NDAS's miners on one connection to the pool: more open
    /// another, so the pool's vardiff, its limits per connection and a
    /// dropped connection each touch a bounded part of the farm.
    #[serde(default = "default_miners_per_connection")]
    pub miners_per_connection: usize,
    /// Most connections to the pool; past them each holds more miners.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

/// Braiins Farm Proxy's aggregation: 50 miners per upstream connection.
fn default_miners_per_connection() -> usize {
    50
}

/// Enough for 100,000 miners (`stratum.max_connections`) at 50 each.
fn default_max_connections() -> usize {
    2000
}

/// The most connections one pool may be given.
const MAX_CONNECTIONS: usize = 10_000;

impl UpstreamConfig {
    /// The pool's host and port, from `url`.
    pub fn address(&self) -> Result<(String, u16), String> {
        if let Some(rest) = self.url.strip_prefix("stratum2+tcp://") {
            let (host_port, key) = rest.split_once('/').ok_or_else(|| {
                format!(
                    "{:?} gives no authority key: stratum2+tcp://host:port/<the pool's key>",
                    self.url
                )
            })?;
            if key.contains('/') {
                return Err(format!(
                    "{:?}: the key is the URL's one path part",
                    self.url
                ));
            }
            crate::sv2::keys::parse_public(key)?;
            return super::parse_host_port(host_port);
        }
        let rest = self.url.strip_prefix("stratum+tcp://").ok_or_else(|| {
            format!(
                "{:?} is not a stratum+tcp://host:port or stratum2+tcp://host:port/<key> URL",
                self.url
            )
        })?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        super::parse_host_port(rest)
    }

    /// The pool's Stratum V2 authority key (x-only), for a
    /// `stratum2+tcp://` URL; none for Stratum V1.
    pub fn authority(&self) -> Option<[u8; 32]> {
        let rest = self.url.strip_prefix("stratum2+tcp://")?;
        let (_, key) = rest.split_once('/')?;
        crate::sv2::keys::parse_public(key).ok()
    }
}

/// What cannot work in the `[[upstream]]` entries.
pub(super) fn issues(upstreams: &[UpstreamConfig]) -> Vec<ConfigIssue> {
    let mut issues = Vec::new();
    if upstreams.len() > MAX_UPSTREAMS {
        issues.push(ConfigIssue {
            key: "upstream".into(),
            why: format!("{} entries; at most {MAX_UPSTREAMS}", upstreams.len()),
        });
    }
    for (i, upstream) in upstreams.iter().enumerate() {
        let mut issue = |field: &str, why: String| {
            issues.push(ConfigIssue {
                key: format!("upstream[{i}].{field}"),
                why,
            })
        };
        if let Some(why) = super::label_name_issue(&upstream.name, MAX_UPSTREAM_NAME) {
            issue("name", why);
        } else if upstreams[..i].iter().any(|u| u.name == upstream.name) {
            issue(
                "name",
                format!("{:?} names another upstream too", upstream.name),
            );
        }
        if let Err(why) = upstream.address() {
            issue("url", why);
        }
        if !(1..=100_000).contains(&upstream.miners_per_connection) {
            issue(
                "miners_per_connection",
                format!("{} is outside 1..=100000", upstream.miners_per_connection),
            );
        }
        if !(1..=MAX_CONNECTIONS).contains(&upstream.max_connections) {
            issue(
                "max_connections",
                format!(
                    "{} is outside 1..={MAX_CONNECTIONS}",
                    upstream.max_connections
                ),
            );
        }
        if upstream.user.is_empty()
            || upstream.user.len() > 256
            || upstream.user.chars().any(|c| c.is_control() || c == ' ')
        {
            issue(
                "user",
                "1 to 256 printable characters without spaces".into(),
            );
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(name: &str, url: &str, user: &str) -> UpstreamConfig {
        UpstreamConfig {
            name: name.into(),
            url: url.into(),
            user: user.into(),
            password: None,
            miners_per_connection: 50,
            max_connections: 2000,
        }
    }

    #[test]
    fn an_upstream_is_a_named_stratum_url_and_an_account() {
        let good = upstream("para", "stratum+tcp://pool.example:3333", "tb1qxyz.ndas");
        assert_eq!(good.address().unwrap(), ("pool.example".into(), 3333));
        assert!(issues(std::slice::from_ref(&good)).is_empty());
        let keys = |list: &[UpstreamConfig]| -> Vec<String> {
            issues(list).into_iter().map(|i| i.key).collect()
        };
        assert_eq!(
            keys(&[upstream("a", "stratum2+tcp://p.example:3336/9b", "u")]),
            ["upstream[0].url"]
        );
        assert!(
            issues(&[upstream("a", "stratum2+tcp://p.example:3336/9b", "u")])[0]
                .why
                .contains("not a base58check key")
        );
        let why = &issues(&[upstream("a", "stratum2+tcp://p.example:3336", "u")])[0].why;
        assert!(why.contains("no authority key"), "{why}");
        // The Stratum Reference Implementation's example authority key.
        let key = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72";
        let sv2 = upstream("sri", &format!("stratum2+tcp://p.example:3336/{key}"), "u");
        assert!(issues(std::slice::from_ref(&sv2)).is_empty());
        assert_eq!(sv2.address().unwrap(), ("p.example".into(), 3336));
        let authority = sv2.authority().unwrap();
        assert_eq!(crate::sv2::keys::public_text(&authority), key);
        assert_eq!(good.authority(), None);
        assert_eq!(
            keys(&[upstream("a b", "stratum+tcp://p.example", "u")]),
            ["upstream[0].name", "upstream[0].url"]
        );
        assert_eq!(keys(&[good.clone(), good.clone()]), ["upstream[1].name"]);
        assert_eq!(
            keys(&[upstream("a", "stratum+tcp://p.example:3333", "two words")]),
            ["upstream[0].user"]
        );
        let mut crowded = good.clone();
        (crowded.miners_per_connection, crowded.max_connections) = (0, MAX_CONNECTIONS + 1);
        assert_eq!(
            keys(&[crowded]),
            [
                "upstream[0].miners_per_connection",
                "upstream[0].max_connections"
            ]
        );
        let many = vec![good; MAX_UPSTREAMS + 1];
        assert!(keys(&many).contains(&"upstream".to_owned()));
    }
}
