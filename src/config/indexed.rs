//! Environment overrides for one entry of a list of tables
//! (`NDAS_NODE__BACKUP__0__PASSWORD`, `NDAS_NOTIFY__1__TOKEN`): figment's own
//! would replace the whole list, so each is applied to the entry it names,
//! which must be in the file.

use std::collections::BTreeMap;

use figment::providers::{Env, Serialized};
use figment::value::Value;
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{config_error, ConfigError, ConfigIssue};

/// A list of tables whose entries take overrides.
pub struct List {
    /// Its config key (`node.backup`).
    pub key: &'static str,
    /// Its environment infix, after `NDAS_` (`NODE__BACKUP__`).
    pub infix: &'static str,
    /// The table's name in the file (`[[node.backup]]`).
    pub table: &'static str,
}

/// Every list that takes overrides by index.
pub const LISTS: [List; 4] = [
    List {
        key: "node.backup",
        infix: "NODE__BACKUP__",
        table: "[[node.backup]]",
    },
    List {
        key: "notify",
        infix: "NOTIFY__",
        table: "[[notify]]",
    },
    List {
        key: "upstream",
        infix: "UPSTREAM__",
        table: "[[upstream]]",
    },
    List {
        key: "route",
        infix: "ROUTE__",
        table: "[[route]]",
    },
];

impl List {
    /// Whether an environment key (after `NDAS_`, any case) is one of it.
    pub fn owns(&self, key: &str) -> bool {
        key.get(..self.infix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(self.infix))
    }

    /// The entries some environment key overrides, by index, each as the
    /// file has it.
    pub fn overridden(&self, figment: &Figment) -> Result<BTreeMap<usize, Value>, ConfigError> {
        let mut entries = BTreeMap::new();
        for key in std::env::vars_os().filter_map(|(key, _)| key.into_string().ok()) {
            // Matched as figment matches the prefix: in any case.
            let Some(rest) = key
                .get(..5)
                .filter(|head| head.eq_ignore_ascii_case("NDAS_"))
                .map(|_| &key[5..])
                .filter(|rest| self.owns(rest))
            else {
                continue;
            };
            let index = rest[self.infix.len()..].split("__").next().unwrap_or("");
            let i = match index.parse::<usize>() {
                // Only as written: `00` or `+0` would not match the prefix.
                Ok(i) if i.to_string() == index => i,
                _ => {
                    return Err(self.issue(
                        self.key.to_owned(),
                        format!(
                            "{key}: `{index}` is not an index (0, 1, 2, ... as in NDAS_{}0__NAME)",
                            self.infix
                        ),
                    ))
                }
            };
            let entry = figment
                .find_value(self.key)
                .ok()
                .and_then(|list| list.into_array())
                .and_then(|mut list| (i < list.len()).then(|| list.swap_remove(i)));
            match entry {
                Some(entry) => {
                    entries.insert(i, entry);
                }
                None => {
                    return Err(self.issue(
                        format!("{}[{i}]", self.key),
                        format!(
                            "NDAS_{}{i}__* is set but the file has no such {} (they count from 0)",
                            self.infix, self.table
                        ),
                    ))
                }
            }
        }
        Ok(entries)
    }

    /// Entry `i` as the file has it, over `defaults`, under its overrides.
    pub fn apply<T: DeserializeOwned + Serialize>(
        &self,
        i: usize,
        entry: Value,
        defaults: Option<T>,
    ) -> Result<T, ConfigError> {
        let base = match defaults {
            Some(defaults) => Figment::from(Serialized::defaults(defaults)),
            None => Figment::new(),
        };
        base.merge(Serialized::defaults(entry))
            .merge(Env::prefixed(&format!("NDAS_{}{i}__", self.infix)).split("__"))
            .extract::<T>()
            .map_err(|errors| {
                let ConfigError(mut issues) = config_error(errors);
                for issue in &mut issues {
                    issue.key = format!("{}[{i}].{}", self.key, issue.key);
                }
                ConfigError(issues)
            })
    }

    fn issue(&self, key: String, why: String) -> ConfigError {
        ConfigError(vec![ConfigIssue { key, why }])
    }
}
