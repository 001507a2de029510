//! UTEK.V.26: the factory licence (`metadata.json`) and node credentials
//! (`utek_v26.conf`, bitcoin.conf syntax).
//!
//! Error messages name files and fields, never their secret values.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use ndas_core::chain::Network;
use ndas_core::Secret;

/// The only licence version this build speaks.
pub const SUPPORTED_VERSION: &str = "26.0";

/// Where and how to reach the node.
#[derive(Clone, Debug)]
pub struct NodeEndpoint {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Secret,
}

/// A licence or credentials file NDAS cannot use.
#[derive(Debug, thiserror::Error)]
pub enum UtekError {
    #[error("cannot read UTEK file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "UTEK metadata {path} is not valid JSON with `license_uuid` and `factory_token` strings"
    )]
    MetadataShape { path: PathBuf },
    #[error("UTEK metadata {path}: `license_uuid` is not a UUID")]
    LicenceUuid { path: PathBuf },
    #[error("UTEK metadata {path}: `factory_token` is not valid base64")]
    TokenBase64 { path: PathBuf },
    #[error("UTEK metadata {path}: `factory_token` does not decode to JSON with `license` and `version`")]
    TokenShape { path: PathBuf },
    #[error("UTEK metadata {path}: the factory token is issued for a different licence than `license_uuid`")]
    LicenceMismatch { path: PathBuf },
    #[error("UTEK metadata {path}: licence version `{found}` is not supported (this build needs {SUPPORTED_VERSION})")]
    Version { path: PathBuf, found: String },
    #[error("UTEK conf {path} line {line}: expected `key=value`")]
    ConfSyntax { path: PathBuf, line: usize },
    #[error("UTEK conf {path}: `{key}` is missing")]
    ConfMissing { path: PathBuf, key: &'static str },
    #[error("UTEK conf {path}: `rpcport` is not a port number")]
    ConfPort { path: PathBuf },
    #[error("UTEK file {path} is open to other users (mode {mode:03o}); `chmod 600` it, or 640 owned by root (node.utek_strict_permissions is on)")]
    Exposed { path: PathBuf, mode: u32 },
}

/// A UTEK file that group or others may read or write, and its mode.
#[derive(Debug, PartialEq, Eq)]
pub struct Exposed {
    pub path: PathBuf,
    pub mode: u32,
}

/// Whether a file of `mode` owned by `owner` is open to other users: any
/// access for others, or group access beyond reading. Group reading is
/// allowed only for a file root owns — the administrator gave it to a group
/// on purpose (PostgreSQL's rule for key files): Kubernetes mounts a Secret
/// 0440 `root:<fsGroup>` so a non-root NDAS can read it.
pub fn is_exposed(mode: u32, owner: u32) -> bool {
    let group = mode & 0o070;
    mode & 0o007 != 0 || (group != 0 && !(owner == 0 && group == 0o040))
}

/// The UTEK files open to other users (see [`is_exposed`]): an error for
/// the first when `strict`, otherwise the list, for the caller to warn about.
pub fn check_permissions(paths: &[&Path], strict: bool) -> Result<Vec<Exposed>, UtekError> {
    use std::os::unix::fs::MetadataExt;
    let mut exposed = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|source| UtekError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mode = metadata.mode() & 0o777;
        if is_exposed(mode, metadata.uid()) {
            if strict {
                return Err(UtekError::Exposed {
                    path: path.to_path_buf(),
                    mode,
                });
            }
            exposed.push(Exposed {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    Ok(exposed)
}

#[derive(Deserialize)]
struct Metadata {
    license_uuid: String,
    factory_token: String,
}

#[derive(Deserialize)]
struct FactoryToken {
    license: String,
    version: String,
}

fn read(path: &Path) -> Result<String, UtekError> {
    std::fs::read_to_string(path).map_err(|source| UtekError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Validates the licence in `metadata.json`.
pub fn check_licence(path: &Path) -> Result<uuid::Uuid, UtekError> {
    let owned = || path.to_owned();
    let metadata: Metadata = serde_json::from_str(&read(path)?)
        .map_err(|_| UtekError::MetadataShape { path: owned() })?;
    let licence = uuid::Uuid::parse_str(metadata.license_uuid.trim())
        .map_err(|_| UtekError::LicenceUuid { path: owned() })?;
    let token = base64::engine::general_purpose::STANDARD
        .decode(metadata.factory_token.trim())
        .map_err(|_| UtekError::TokenBase64 { path: owned() })?;
    let token: FactoryToken =
        serde_json::from_slice(&token).map_err(|_| UtekError::TokenShape { path: owned() })?;
    if uuid::Uuid::parse_str(token.license.trim()).ok() != Some(licence) {
        return Err(UtekError::LicenceMismatch { path: owned() });
    }
    if token.version != SUPPORTED_VERSION {
        let found = ndas_core::stratum::method::sanitize(&token.version, 16);
        return Err(UtekError::Version {
            path: owned(),
            found,
        });
    }
    Ok(licence)
}

/// Reads the node credentials from `utek_v26.conf`. Keys in the network's
/// section (`[regtest]`, `[test]`, …) override top-level ones, as in bitcoin.conf.
pub fn load_conf(path: &Path, network: Network) -> Result<NodeEndpoint, UtekError> {
    let text = read(path)?;
    let mut section = String::new();
    let mut values: HashMap<String, String> = HashMap::new();
    let mut scoped: HashMap<String, String> = HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            continue;
        }
        let (key, value) = line.split_once('=').ok_or(UtekError::ConfSyntax {
            path: path.to_owned(),
            line: index + 1,
        })?;
        let (key, value) = (key.trim(), value.trim().to_owned());
        if let Some((prefix, key)) = key.split_once('.') {
            if prefix == network.conf_section() {
                scoped.insert(key.to_owned(), value);
            }
        } else if section.is_empty() {
            values.entry(key.to_owned()).or_insert(value);
        } else if section == network.conf_section() {
            scoped.insert(key.to_owned(), value);
        }
    }
    values.extend(scoped);
    let missing = |key| UtekError::ConfMissing {
        path: path.to_owned(),
        key,
    };
    let port = match values.get("rpcport") {
        Some(port) => port.parse().map_err(|_| UtekError::ConfPort {
            path: path.to_owned(),
        })?,
        None => network.default_rpc_port(),
    };
    Ok(NodeEndpoint {
        host: values
            .get("rpcconnect")
            .cloned()
            .unwrap_or_else(|| "127.0.0.1".to_owned()),
        port,
        user: values.remove("rpcuser").ok_or_else(|| missing("rpcuser"))?,
        password: Secret::new(
            values
                .remove("rpcpassword")
                .ok_or_else(|| missing("rpcpassword"))?,
        ),
    })
}

#[cfg(test)]
mod tests;
