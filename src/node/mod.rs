//! The UTEK backend: licence and credentials, the JSON-RPC client, the
//! nodes and their tips, templates. Found blocks are submitted to these
//! nodes' clients by the layer above, which this module does not name.

pub mod chain_check;
pub mod handoff;
mod longpoll;
pub mod nodes;
pub mod rpc;
pub mod testnet;
pub mod utek;
pub mod watcher;
pub mod zmq;

pub use rpc::{RpcClient, RpcError};

use std::path::Path;

use ndas_core::Secret;

use crate::config::{parse_http_url, Backend, NodeConfig};
use ndas_core::chain::Network;
use utek::{NodeEndpoint, UtekError};

/// Why NDAS cannot reach its node.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Utek(#[from] UtekError),
    #[error("node.url must be http://host:port")]
    Url,
    #[error("cannot read node.cookie_file {path}: {reason}")]
    Cookie { path: String, reason: String },
    #[error(
        "node.user and node.password, or node.cookie_file, are required with backend = \"rpc\""
    )]
    Credentials,
}

/// Where the node is and how to log in, from the UTEK files or the `rpc` keys.
pub fn endpoint(config: &NodeConfig, network: Network) -> Result<NodeEndpoint, EndpointError> {
    match config.backend {
        Backend::Utek => {
            let files = [config.utek_metadata.as_path(), config.utek_conf.as_path()];
            for exposed in utek::check_permissions(&files, config.utek_strict_permissions)? {
                tracing::warn!(
                    file = %exposed.path.display(),
                    mode = format!("{:03o}", exposed.mode),
                    "UTEK file is open to other users; chmod 600 it, or 640 owned by root (node.utek_strict_permissions = true refuses to start)"
                );
            }
            utek::check_licence(&config.utek_metadata)?;
            Ok(utek::load_conf(&config.utek_conf, network)?)
        }
        Backend::Rpc => {
            let (host, port) = config
                .url
                .as_deref()
                .and_then(parse_http_url)
                .ok_or(EndpointError::Url)?;
            let (user, password) = match (&config.user, &config.password, &config.cookie_file) {
                (Some(user), Some(password), _) => (user.clone(), password.clone()),
                (_, _, Some(cookie)) => read_cookie(cookie)?,
                _ => return Err(EndpointError::Credentials),
            };
            Ok(NodeEndpoint {
                host,
                port,
                user,
                password,
            })
        }
    }
}

fn read_cookie(path: &Path) -> Result<(String, Secret), EndpointError> {
    let error = |reason: &str| EndpointError::Cookie {
        path: path.display().to_string(),
        reason: reason.into(),
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(&e.to_string()))?;
    let (user, password) = text
        .trim()
        .split_once(':')
        .ok_or_else(|| error("expected user:password"))?;
    Ok((user.to_owned(), Secret::new(password)))
}
